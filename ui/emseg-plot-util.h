/* emseg-plot-util.h — small helpers shared by the Cairo plots (loss curves, heatmap):
 * "nice" axis ticks, text drawing through Pango, and the viridis-like colour ramp. Kept
 * out of the widgets so both draw axes and labels the same way. */
#pragma once

#include <cairo.h>
#include <glib.h>

G_BEGIN_DECLS

/* Ticks at multiples of 1, 2 or 5 × 10^k covering [lo, hi] with at most max_ticks. */
void emseg_plot_nice_ticks (double lo, double hi, int max_ticks, double *first, double *step);
/* Draws text with its anchor at (x, y): xalign/yalign 0 = left/top, 0.5 centre, 1 right/bottom. */
void emseg_plot_text (cairo_t *cr, double x, double y, double xalign, double yalign,
                      const char *text);
/* Width and height the text would take. */
void emseg_plot_text_size (cairo_t *cr, const char *text, double *width, double *height);
/* Viridis-like ramp, t in [0, 1] → rgb in [0, 1]. */
void emseg_plot_viridis (double t, double rgb[3]);

G_END_DECLS
