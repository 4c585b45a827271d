/* emseg-train-panel.h — the training side panel: hyperparameters with the paper's
 * defaults, Train / Fine-tune / Pause / Resume / Stop, a progress bar, live loss curves,
 * V_rand / V_info curves (a second plot, when the run computes them), earlier runs of
 * the project drawn dashed for comparison (chosen in the "Earlier runs" popover) and the
 * per-layer update heatmap.
 *
 * The panel does no training itself. It emits "train-requested" (gboolean fine_tune),
 * "pause-requested", "resume-requested" and "stop-requested", and is fed by whoever runs
 * the engine thread through the plain-data calls below (on the main thread, from the
 * coalesced progress events); EmsegWindow (emseg-window-train.c) does both. */
#pragma once

#include <gtk/gtk.h>

#include "emseg-heatmap.h"
#include "emseg-loss-plot.h"
#include "eng-loss.h"

G_BEGIN_DECLS

typedef enum {
  EMSEG_TRAIN_IDLE,
  EMSEG_TRAIN_RUNNING,
  EMSEG_TRAIN_PAUSED,
} EmsegTrainState;

typedef struct {
  EngLossKind loss;      /* BCE, Dice of the membrane or of the cell class */
  guint epochs;
  double learning_rate;  /* RMSprop */
  double dropout;
  gboolean long_skip, short_skip, augment;
  gboolean bf16; /* convolutions in bfloat16 while training (EmsegTrainingConfig.conv_bf16) */
  double border_weight; /* U-Net separation weight w0 (EmsegTrainingConfig.border_w0); 0 = off */
  const char *spec;      /* eng_spec_parse overrides of Table 1 for the chosen size (static) */
  /* validation slices as typed (emseg_parse_slices syntax, "none", or empty = automatic);
   * borrowed from the entry: valid until the panel's next change */
  const char *val_slices;
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
const char *emseg_train_panel_get_status (EmsegTrainPanel *self); /* borrowed */
/* Which start button is the suggested (blue) one: Fine-tune when the project has a model,
 * else Train. */
void emseg_train_panel_set_has_model (EmsegTrainPanel *self, gboolean has_model);

/* Drops every curve and heatmap column (another project was opened). */
void emseg_train_panel_reset (EmsegTrainPanel *self);
/* Starts the curves and heatmap of a new run; the previous current run's curves go (the
 * caller lists it among the earlier runs to keep it comparable). layer_names: (n_layers),
 * copied. */
void emseg_train_panel_begin_run (EmsegTrainPanel *self, const char *const *layer_names,
                                  guint n_layers);
/* One optimisation step; epoch_pos is fractional (epoch + step/steps_per_epoch) so the
 * step curve shares the epoch axis. */
void emseg_train_panel_add_step (EmsegTrainPanel *self, double epoch_pos, double loss);
/* One finished epoch (1-based; 0 = a fine-tune's starting weights, train_loss NAN).
 * val_loss may be NAN when there is no validation split;
 * layer_updates is (n_layers) mean update magnitudes or NULL. */
void emseg_train_panel_add_epoch (EmsegTrainPanel *self, guint epoch, double train_loss,
                                  double val_loss, const float *layer_updates);
/* V_rand / V_info of an epoch of the current run (NAN: not computed that epoch). */
void emseg_train_panel_add_scores (EmsegTrainPanel *self, guint epoch, double v_rand, double v_info);

/* An earlier run's per-epoch curves (borrowed by the call, which copies them); NULL
 * arrays or NAN entries mean "not computed". */
typedef struct {
  gint64 id;             /* the run's id in the store: legend entries are "run <id> …" */
  const char *label;     /* its row in the popover */
  guint n_epochs;
  const double *epoch, *train_loss, *val_loss, *v_rand, *v_info; /* (n_epochs) */
} EmsegRunCurves;

/* Earlier runs offered for comparison; shown ones are drawn dashed in both plots, in
 * the order added, before the current run's curves. */
void emseg_train_panel_clear_earlier_runs (EmsegTrainPanel *self);
void emseg_train_panel_add_earlier_run (EmsegTrainPanel *self, const EmsegRunCurves *run,
                                        gboolean shown);
guint emseg_train_panel_get_n_earlier_runs (EmsegTrainPanel *self);
void emseg_train_panel_set_earlier_run_shown (EmsegTrainPanel *self, guint index, gboolean shown);
gboolean emseg_train_panel_get_earlier_run_shown (EmsegTrainPanel *self, guint index);
/* Opens the popover with a check button per earlier run. */
void emseg_train_panel_popup_earlier_runs (EmsegTrainPanel *self);
GtkPopover *emseg_train_panel_get_earlier_runs_popover (EmsegTrainPanel *self); /* borrowed */

/* fraction in [0,1]; seconds_left < 0 when unknown. */
void emseg_train_panel_set_progress (EmsegTrainPanel *self, double fraction, guint epoch,
                                     guint n_epochs, guint64 step, double seconds_left);

/* Progress bar text without a running run ("idle", "run 3: 12 epochs") or before its first
 * step ("validating the starting model…"); get returns it (borrowed). */
void emseg_train_panel_set_progress_text (EmsegTrainPanel *self, double fraction, const char *text);
const char *emseg_train_panel_get_progress_text (EmsegTrainPanel *self);

EmsegLossPlot *emseg_train_panel_get_loss_plot (EmsegTrainPanel *self); /* borrowed */
EmsegLossPlot *emseg_train_panel_get_score_plot (EmsegTrainPanel *self); /* borrowed */
EmsegHeatmap *emseg_train_panel_get_heatmap (EmsegTrainPanel *self);    /* borrowed */

G_END_DECLS
