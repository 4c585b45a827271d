/* emseg-heatmap-png.h — PNG figures of a training run drawn with Cairo, for the CLI and the
 * experiments (the GUI draws its own live plots):
 *   - the update heatmap of the paper's Figure 4: layers input → output along x, epochs
 *     along y (first epoch at the top), colour = mean |Δw| of the layer over the epoch on
 *     a log10 scale, with a colour bar;
 *   - learning curves (Figure 3): loss per epoch for several series on one plot.
 *
 * Ownership: every array is borrowed for the call; the PNG is written to a temporary file
 * and renamed, so a reader never sees half a picture. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define EMSEG_HEATMAP_ERROR (emseg_heatmap_error_quark())
GQuark emseg_heatmap_error_quark(void);

typedef enum {
  EMSEG_HEATMAP_ERROR_INVALID, /* no data, or sizes the picture cannot hold */
  EMSEG_HEATMAP_ERROR_IO,      /* the PNG could not be written */
} EmsegHeatmapError;

/* values: (n_epochs, n_layers) row-major, >= 0 (0 and NaN drawn grey: "no update").
 * layer_names (may be NULL): names of the first and last layer label the x axis ends.
 * first_epoch: the epoch number of row 0 (1 for a run from scratch). */
gboolean emseg_heatmap_write_png(const char *path, const char *title, const double *values,
                                 guint n_epochs, guint n_layers,
                                 const char *const *layer_names, guint first_epoch,
                                 GError **error);

typedef struct {
  const char *label;     /* legend text */
  const double *values;  /* (n) y per epoch, epoch = first_epoch + index; NaN = gap */
  guint n;
  guint first_epoch;     /* epoch of values[0]: 1, later for a resumed run, 0 when a
                          * fine-tune starts with its starting weights (validate_init) */
  double rgb[3];         /* line colour, components in [0, 1] */
  gboolean dashed;
} EmsegCurve;

/* One plot of every series; y range from the finite values. */
gboolean emseg_curves_write_png(const char *path, const char *title, const char *y_label,
                                const EmsegCurve *curves, guint n_curves, GError **error);

G_END_DECLS
