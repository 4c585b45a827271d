/* emseg-heatmap.h — the per-layer update heatmap of the paper's Figure 4: one row per
 * layer from input (top) to output (bottom), one column per epoch, colour = mean update
 * magnitude on a log10 scale, with a labelled colour bar. Fed from plain float arrays
 * (the engine thread's per-epoch layer statistics, issue 5); a new column appears with
 * each append. Non-positive or non-finite values are drawn grey ("no data"). */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define EMSEG_TYPE_HEATMAP (emseg_heatmap_get_type ())
G_DECLARE_FINAL_TYPE (EmsegHeatmap, emseg_heatmap, EMSEG, HEATMAP, GtkWidget)

GtkWidget *emseg_heatmap_new (void);

/* Sets the row names (copied) and drops all columns. */
void emseg_heatmap_set_layers (EmsegHeatmap *self, const char *const *names, guint n_layers);
guint emseg_heatmap_get_n_layers (EmsegHeatmap *self);
/* Appends one epoch: values is (n_layers), copied. */
void emseg_heatmap_append_epoch (EmsegHeatmap *self, const float *values);
/* Replaces all columns: values is (n_epochs, n_layers) row-major, copied. */
void emseg_heatmap_set_data (EmsegHeatmap *self, const float *values, guint n_epochs);
guint emseg_heatmap_get_n_epochs (EmsegHeatmap *self);

/* Draws what the widget shows at width×height into cr (tests draw off-screen). */
void emseg_heatmap_draw (EmsegHeatmap *self, cairo_t *cr, int width, int height);
/* "layer down.1.0.conv2 · epoch 4: 3.2e-04", or NULL outside the cells. Needs a draw. */
char *emseg_heatmap_hover_text (EmsegHeatmap *self, double x, double y);

G_END_DECLS
