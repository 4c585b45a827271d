/* emseg-loss-plot.h — line plot of training curves drawn with Cairo: axes with ticks,
 * axis labels, a legend, and the value of the nearest point under the pointer.
 *
 * Data comes from plain arrays, so the engine thread's events (issue 5), a project's
 * stored runs and the tests all feed it the same way: add a series, then append points
 * or replace them. A series with smoothing > 0 is drawn faint (raw) plus an exponential
 * moving average (the noisy step loss); dashed series distinguish earlier runs. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define EMSEG_TYPE_LOSS_PLOT (emseg_loss_plot_get_type ())
G_DECLARE_FINAL_TYPE (EmsegLossPlot, emseg_loss_plot, EMSEG, LOSS_PLOT, GtkWidget)

GtkWidget *emseg_loss_plot_new (void);

void emseg_loss_plot_set_axis_labels (EmsegLossPlot *self, const char *x_label, const char *y_label);
/* Where the legend goes, inside the frame on the right: top (default) or bottom — for
 * curves that rise, such as scores. */
void emseg_loss_plot_set_legend_bottom (EmsegLossPlot *self, gboolean bottom);
/* Returns the series index. smoothing in [0, 1): EMA weight of the previous value. */
guint emseg_loss_plot_add_series (EmsegLossPlot *self, const char *name, const GdkRGBA *color,
                                  double smoothing, gboolean dashed);
guint emseg_loss_plot_get_n_series (EmsegLossPlot *self);
void emseg_loss_plot_append (EmsegLossPlot *self, guint series, double x, double y);
void emseg_loss_plot_set_points (EmsegLossPlot *self, guint series, const double *x,
                                 const double *y, gsize n);
gsize emseg_loss_plot_get_n_points (EmsegLossPlot *self, guint series);
/* Borrowed views of a series' points, valid until the next change; returns the count. */
gsize emseg_loss_plot_get_points (EmsegLossPlot *self, guint series, const double **x,
                                  const double **y);
/* Drops every series. */
void emseg_loss_plot_clear (EmsegLossPlot *self);

/* Draws what the widget shows at width×height into cr (tests draw off-screen). */
void emseg_loss_plot_draw (EmsegLossPlot *self, cairo_t *cr, int width, int height);
/* The hover text for widget point (x, y) — "train loss · epoch 3: 0.412" — or NULL
 * when no point is within reach. Needs a previous draw at the current size. */
char *emseg_loss_plot_hover_text (EmsegLossPlot *self, double x, double y);

G_END_DECLS
