/* emseg-train-panel.h — the training side panel: hyperparameters with the paper's
 * defaults, Train / Fine-tune / Pause / Resume / Stop, a progress bar, live loss curves
 * and the per-layer update heatmap.
 *
 * The panel does no training itself. It emits "train-requested" (gboolean fine_tune),
 * "pause-requested", "resume-requested" and "stop-requested", and is fed by whoever runs
 * the engine thread through the plain-data calls below (on the main thread, from the
 * coalesced progress events); EmsegWindow (emseg-window-train.c) does both. */
#pragma once

#include <gtk/gtk.h>

#include "emseg-heatmap.h"
#include "emseg-loss-plot.h"

G_BEGIN_DECLS

typedef enum {
  EMSEG_TRAIN_IDLE,
  EMSEG_TRAIN_RUNNING,
  EMSEG_TRAIN_PAUSED,
} EmsegTrainState;

typedef struct {
  gboolean dice;         /* FALSE = binary cross-entropy */
  guint epochs;
  double learning_rate;  /* RMSprop */
  double dropout;
  gboolean long_skip, short_skip, augment;
  const char *spec;      /* eng_spec_parse overrides of Table 1 for the chosen size (static) */
} EmsegTrainParams;

#define EMSEG_TYPE_TRAIN_PANEL (emseg_train_panel_get_type ())
G_DECLARE_FINAL_TYPE (EmsegTrainPanel, emseg_train_panel, EMSEG, TRAIN_PANEL, GtkBox)

GtkWidget *emseg_train_panel_new (void);

void emseg_train_panel_get_params (EmsegTrainPanel *self, EmsegTrainParams *params);
/* Sets the epochs control (scripted runs and tests). */
void emseg_train_panel_set_epochs (EmsegTrainPanel *self, guint epochs);
void emseg_train_panel_set_dropout (EmsegTrainPanel *self, double dropout);
/* Enables the buttons that make sense in `state`. */
void emseg_train_panel_set_state (EmsegTrainPanel *self, EmsegTrainState state);
EmsegTrainState emseg_train_panel_get_state (EmsegTrainPanel *self);
void emseg_train_panel_set_status (EmsegTrainPanel *self, const char *text);

/* Drops every curve and heatmap column (another project was opened). */
void emseg_train_panel_reset (EmsegTrainPanel *self);
/* Starts the curves and heatmap of a new run. The current run's epoch curves, if any,
 * stay as dashed "run N" series for comparison. layer_names: (n_layers), copied. */
void emseg_train_panel_begin_run (EmsegTrainPanel *self, const char *const *layer_names,
                                  guint n_layers);
/* One optimisation step; epoch_pos is fractional (epoch + step/steps_per_epoch) so the
 * step curve shares the epoch axis. */
void emseg_train_panel_add_step (EmsegTrainPanel *self, double epoch_pos, double loss);
/* One finished epoch (1-based). val_loss may be NAN when there is no validation split;
 * layer_updates is (n_layers) mean update magnitudes or NULL. */
void emseg_train_panel_add_epoch (EmsegTrainPanel *self, guint epoch, double train_loss,
                                  double val_loss, const float *layer_updates);
/* fraction in [0,1]; seconds_left < 0 when unknown. */
void emseg_train_panel_set_progress (EmsegTrainPanel *self, double fraction, guint epoch,
                                     guint n_epochs, guint64 step, double seconds_left);

/* Progress bar text without a running run ("idle", "run 3: 12 epochs"). */
void emseg_train_panel_set_progress_text (EmsegTrainPanel *self, double fraction, const char *text);

EmsegLossPlot *emseg_train_panel_get_loss_plot (EmsegTrainPanel *self); /* borrowed */
EmsegHeatmap *emseg_train_panel_get_heatmap (EmsegTrainPanel *self);    /* borrowed */

G_END_DECLS
