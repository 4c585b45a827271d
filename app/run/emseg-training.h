/* emseg-training.h — one whole training run, the paper's recipe (issue 5, "The recipe"):
 * batch 1, slices shuffled each epoch, optional augmentation (flips, rotation, shear,
 * elastic warp: eng-augment.h) applied identically to image and labels (and so to the loss
 * mask, which is derived from the warped labels), optional random crops, RMSprop with
 * weight decay and a ÷10 step schedule, validation every epoch (loss, pixel accuracy,
 * V_rand / V_info every k epochs), the best-validation-loss weights kept, early stopping,
 * per-layer update statistics (Figure 4), checkpoints and resume, and optionally the
 * average of the weights of the last epochs (SWA).
 *
 * Used by `emseg train`, `emseg experiment` and the engine thread. GLib, no GTK: the run
 * executes on the calling thread and reports through a callback on that same thread.
 *
 * Determinism: everything random (initial weights, shuffles, augmentation, crops, dropout
 * masks) is a pure function of cfg->seed and (epoch, position), so the same config and
 * data give the same losses, and a resumed run continues exactly where it stopped.
 *
 * Allocation: buffers are sized once before the first epoch; nothing is allocated per
 * step (per-epoch events are built in preallocated storage too).
 *
 * Ownership: the config, datasets and initial model are borrowed for the call. Events
 * are borrowed by the callback for the duration of the call only (their arrays and the
 * model pointer included): copy what you keep (emseg_training_event_copy makes an owned
 * deep copy for posting to another thread). The result owns its best model. */
#pragma once

#include <stdatomic.h>

#include <glib.h>

#include "emseg-dataset.h"
#include "eng-augment.h"
#include "eng-loss.h"
#include "eng-model.h"
#include "eng-spec.h"

G_BEGIN_DECLS

#define EMSEG_TRAINING_ERROR (emseg_training_error_quark())
GQuark emseg_training_error_quark(void);

typedef enum {
  EMSEG_TRAINING_ERROR_INVALID,   /* bad config or data (message says which field) */
  EMSEG_TRAINING_ERROR_ENGINE,    /* the engine failed: memory, NaN loss, … */
  EMSEG_TRAINING_ERROR_IO,        /* a checkpoint or resume file could not be written/read */
  EMSEG_TRAINING_ERROR_CANCELLED, /* the cancel flag or the callback stopped the run */
} EmsegTrainingError;

#define EMSEG_TRAINING_MAX_LR_STEPS 8

typedef struct {
  EngSpec spec;          /* ignored when init_model is set (its spec is used, except dropout) */
  float dropout;         /* < 0: keep the spec's rate; else overrides it (also for init_model) */
  EngLossKind loss;      /* default BCE (both Dice readings scored far lower on ISBI) */
  guint epochs;          /* total epochs of the run (a resumed run counts earlier ones) */
  double lr;             /* RMSprop initial learning rate (1e-3) */
  double weight_decay;   /* coupled L2 on conv weights (1e-3) */
  /* ÷10 from these 1-based epochs on: lr(e) = lr * 0.1^|{s : s <= e}| */
  guint lr_steps[EMSEG_TRAINING_MAX_LR_STEPS];
  guint n_lr_steps;
  guint patience;        /* stop after this many epochs without a better val loss; 0 = off */
  gboolean augment;      /* default TRUE */
  EngAugmentParams augment_params; /* eng_augment_params_init defaults */
  /* U-Net separation weights on the training loss (eng-border-weight.h): membrane pixels
   * between two close cells weigh 1 + border_w0 * exp(-(d1 + d2)^2 / 2 border_sigma^2).
   * Computed per step on the augmented labels. Validation losses stay unweighted, so the
   * best checkpoint is chosen as without. 0 = off (default); border_sigma default 5 px. */
  float border_w0;
  float border_sigma;
  /* Convolutions in bfloat16 with float32 sums (eng_model_set_conv_bf16) for training,
   * BN calibration and validation: 1.1-1.36x more epochs per hour measured here (AVX512-BF16),
   * float32 on CPUs without it. Saved weights are float32 as always. Default FALSE. */
  gboolean conv_bf16;
  guint crop;            /* random square crops of this size (multiple of the spec's size
                            multiple); 0 = full slices (default) */
  /* Before each validation, recompute the BN running statistics as plain averages over (up
   * to 16 of) the training slices, without augmentation or dropout ("precise BN"): the
   * momentum-0.9 statistics of augmented, dropout-perturbed single slices made inference
   * erratic on ISBI (V_rand 0.21 -> 0.58 on one checkpoint). Without validation slices the
   * same is done to each checkpoint kept (a fine-tune on two slices of a shifted stack:
   * V_rand 0.723 -> 0.987 on three others). Default TRUE. */
  gboolean calibrate_bn;
  /* With init_model and validation slices, a new (not resumed) run first validates the
   * starting weights, as epoch 0 (BN recalibrated like every validation; an EPOCH event
   * with epoch 0 and no training figures), and a checkpoint must beat them. Validation
   * losses of ISBI fine-tunes move by 0.03 from epoch to epoch at any learning rate, so
   * without this a fine-tune of a good model would hand back a worse one as its best. A
   * run no epoch beats ends with the starting weights as its best: best_epoch 0, no
   * CHECKPOINT event. Default TRUE. */
  gboolean validate_init;
  /* Validate (BN calibration, validation loss, choice of the best checkpoint, patience)
   * every k epochs and at the last one; the epochs between report no validation figures.
   * Validation and calibration cost about a quarter of an ISBI epoch on full slices and
   * more than half with 256² crops, so a long run buys training steps with k > 1.
   * Default 1. Patience still counts epochs. */
  guint val_every;
  guint metrics_every;   /* V_rand / V_info every k epochs on validated epochs (and at the
                            last epoch); 0 = never (default 1) */
  /* With each new best checkpoint, choose the export exponent γ (emseg-gamma.h) from 1, 2,
   * 3, 4, 6, 8 by V_rand of the validation slices' plain predictions and write it into the
   * checkpoint's metadata as export_gamma=, which exports then use. Only when the
   * validation slices are fully labelled (see EmsegTrainingStarted.val_scored). Default TRUE. */
  gboolean calibrate_gamma;
  /* Weight averaging (SWA, Izmailov et al. 2018): from this 1-based epoch on, the weights
   * at the end of every epoch are averaged; after the last epoch (or an early stop) the
   * average gets BN statistics recomputed over the training slices, the same validation
   * as a checkpoint, and is written to swa_path (if set) and handed back in the result.
   * Nothing else in the run changes: the best checkpoint is chosen as before. 0 = off. */
  guint swa_from;
  const char *swa_path;
  guint64 seed;          /* default 1 */
  const EngModel *init_model; /* fine-tune from these weights (borrowed); NULL = He init */
  /* The export exponent init_model carries (its export_gamma; emseg_gamma_from_meta), NAN
   * or 1 = none. A run that cannot choose γ itself (no fully labelled validation slices: a
   * workbench fine-tune of one or two corrected slices) writes this one with its weights,
   * rather than none, which would make an export write plain probabilities. */
  double init_gamma;
  /* Files (all optional, NULL = none). best_path: the best-validation weights, rewritten
   * atomically whenever they improve. state_path: after every epoch the run state for
   * resume (state_path, state_path + ".opt" optimizer state, state_path + ".best", and
   * with swa_from state_path + ".swa", the running average). */
  const char *best_path;
  const char *state_path;
  gboolean resume;       /* continue from state_path (which must exist) */
  gboolean half;         /* store best_path in half precision */
  const char *meta;      /* extra "key=value\n" lines written into saved model files */
} EmsegTrainingConfig;

/* Defaults above; spec = Table 1 (eng_spec_default). */
void emseg_training_config_init(EmsegTrainingConfig *cfg);
/* Whether cfg augments with other strengths than the recipe's (eng_augment_params_init):
 * what the log names and the checkpoints record. */
gboolean emseg_training_augment_custom(const EmsegTrainingConfig *cfg);

/* For slices bigger than the prediction window (emseg_predict_window; 1024²), or with a
 * side that is no multiple of the spec's size multiple: sets cfg->crop to the window's
 * side (at most the largest multiple inside the slice) when it is 0 and replaces *val (may
 * hold NULL; freed and replaced) by the window of each validation slice with the most
 * labels, so no graph of the run is bigger than prediction's (whole 4096² slices would need
 * some 36 GB to train) and every graph has a size the network takes. spec: the run's (for
 * its size multiple). Returns TRUE when it cropped. */
gboolean emseg_training_fit_window(EmsegTrainingConfig *cfg, const EngSpec *spec,
                                   const EmsegDataset *train, EmsegDataset **val);
/* Whether height × width slices are trained on crops (what emseg_training_fit_window
 * decides): too big for the prediction window, or a side that is no multiple of spec's. */
gboolean emseg_training_needs_crops(const EngSpec *spec, guint height, guint width);
/* lr of a 1-based epoch under the step schedule. */
double emseg_training_lr_at(const EmsegTrainingConfig *cfg, guint epoch);

typedef enum {
  EMSEG_TRAINING_EVENT_STARTED,     /* once: sizes, layer names, parameter count */
  EMSEG_TRAINING_EVENT_STEP,        /* after each training step */
  EMSEG_TRAINING_EVENT_EPOCH,       /* after validation of an epoch */
  EMSEG_TRAINING_EVENT_LAYER_STATS, /* after each epoch, input to output */
  EMSEG_TRAINING_EVENT_CHECKPOINT,  /* the best weights improved (and were saved if asked) */
  EMSEG_TRAINING_EVENT_FINISHED,    /* once, on success, early stop and cancel alike */
  EMSEG_TRAINING_EVENT_ERROR,       /* once, before the run returns FALSE (not on cancel) */
} EmsegTrainingEventKind;

typedef struct {
  guint n_layers;
  const char *const *layer_names; /* (n_layers) */
  gsize n_trainable;              /* trainable scalars */
  guint n_train, n_val, width, height, first_epoch; /* first_epoch > 1 when resumed */
  /* V_rand / V_info (and γ) need every validation pixel labelled: the scorer's cells are
   * connected regions of the ground truth, which unlabelled pixels would join or split.
   * FALSE when a validation slice has unlabelled pixels (or there is no validation). */
  gboolean val_scored;
} EmsegTrainingStarted;

typedef struct {
  guint step;    /* 1-based within the epoch */
  guint n_steps;
  guint slice;   /* source slice index */
  double loss, accuracy;
} EmsegTrainingStep;

typedef struct {
  double train_loss, train_accuracy;
  double val_loss, val_accuracy; /* NAN without validation slices */
  double vrand, vinfo;           /* NAN when not computed this epoch */
  double lr;
  double seconds;                /* this epoch, training + validation */
  double eta_seconds;            /* estimate for the remaining epochs */
  gboolean improved;             /* best weights updated */
} EmsegTrainingEpoch;

typedef struct {
  guint n_layers;
  const char *const *layer_names; /* (n_layers) input to output */
  const double *mean_abs_update;  /* (n_layers) mean |w_end - w_start| over the epoch */
  const double *mean_abs_weight;  /* (n_layers) mean |w_end| */
} EmsegTrainingLayerStats;

typedef struct {
  double val_loss;         /* the selection loss (train loss without validation slices) */
  double val_accuracy, vrand, vinfo; /* NAN when not computed */
  double export_gamma;     /* γ chosen on the validation slices; NAN when not (see
                              calibrate_gamma) */
  const char *path;        /* best_path or NULL when nothing was written */
  const EngModel *model;   /* the best weights; borrowed, valid during the callback */
} EmsegTrainingCheckpoint;

typedef struct {
  guint epochs_run;        /* epochs completed in total (including resumed ones) */
  guint best_epoch;        /* 0: the starting weights (validate_init) or none (best_loss NAN) */
  double best_loss;
  gboolean stopped_early, cancelled;
} EmsegTrainingFinished;

typedef struct {
  EmsegTrainingEventKind kind;
  guint epoch;             /* 1-based; 0 for STARTED */
  guint n_epochs;
  union {
    EmsegTrainingStarted started;
    EmsegTrainingStep step;
    EmsegTrainingEpoch epoch;
    EmsegTrainingLayerStats layers;
    EmsegTrainingCheckpoint checkpoint;
    EmsegTrainingFinished finished;
    const char *message;   /* ERROR: what went wrong, for a person */
  } u;
} EmsegTrainingEvent;

/* Owned deep copy (layer names and statistics, message; the checkpoint's model pointer is
 * set to NULL since it dies with the call) for handing to another thread. */
EmsegTrainingEvent *emseg_training_event_copy(const EmsegTrainingEvent *event);
void emseg_training_event_free(EmsegTrainingEvent *event);

/* Return FALSE to stop the run: it ends after the current step, as a cancel. */
typedef gboolean (*EmsegTrainingFunc)(const EmsegTrainingEvent *event, gpointer user_data);

/* The averaged weights of a run with swa_from, scored like a checkpoint. */
typedef struct {
  guint first_epoch, last_epoch; /* the epochs averaged (0, 0: none) */
  double val_loss, val_accuracy; /* NAN without validation slices */
  double vrand, vinfo;           /* NAN unless the validation slices are fully labelled */
  double export_gamma;           /* as in EmsegTrainingCheckpoint */
} EmsegTrainingSwa;

typedef struct {
  EngModel *best_model;  /* owned: best validation loss weights, NULL if no epoch finished;
                          * with best_epoch 0 the starting weights (validate_init) */
  EngModel *swa_model;   /* owned: the averaged weights (swa_from), NULL otherwise */
  EmsegTrainingSwa swa;
  EngModel *last_model;  /* owned: weights at the end of the run */
  guint epochs_run, best_epoch;
  double best_loss;
  double export_gamma;   /* γ chosen for the best weights in this session (calibrate_gamma);
                            NAN when none was (after a resume: until a new best) */
  gboolean stopped_early, cancelled;
} EmsegTrainingResult;

void emseg_training_result_clear(EmsegTrainingResult *result);

/* Runs the training. train must be non-empty; val may be NULL or empty (then the
 * training loss selects the best weights). cancel (may be NULL, borrowed for the call) is
 * polled between layers and steps. Returns FALSE with EMSEG_TRAINING_ERROR_CANCELLED when
 * stopped; result is filled in every case (best weights so far included), so a caller may
 * keep the partial run. */
gboolean emseg_training_run(const EmsegTrainingConfig *cfg, const EmsegDataset *train,
                            const EmsegDataset *val, EmsegTrainingFunc callback,
                            gpointer user_data, atomic_int *cancel,
                            EmsegTrainingResult *result, GError **error);

/* ---- a log of a run's figures, for CSV files and pictures --------------------------------
 * Feed it every event (emseg_training_log_add ignores the kinds it does not keep). Owns
 * copies of everything. Used by `emseg train` and `emseg experiment`. */
typedef struct {
  guint epoch;
  EmsegTrainingEpoch m;
} EmsegTrainingLogEpoch;

typedef struct {
  GArray *epochs;      /* EmsegTrainingLogEpoch, in epoch order */
  guint n_layers;
  char **layer_names;  /* (n_layers + 1) NULL-terminated, from the first stats event */
  GArray *stat_epochs; /* guint: the epoch of each stats row */
  GArray *updates;     /* double (rows, n_layers) mean |Δw| */
  GArray *weights;     /* double (rows, n_layers) mean |w| */
  guint best_epoch;
  double best_loss;
} EmsegTrainingLog;

EmsegTrainingLog *emseg_training_log_new(void);
void emseg_training_log_free(EmsegTrainingLog *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegTrainingLog, emseg_training_log_free)
void emseg_training_log_add(EmsegTrainingLog *log, const EmsegTrainingEvent *event);
/* "epoch,train_loss,train_accuracy,val_loss,val_accuracy,vrand,vinfo,lr,seconds" with a
 * header line; NaN written as empty fields. */
gboolean emseg_training_log_write_curves_csv(const EmsegTrainingLog *log, const char *path,
                                             GError **error);
/* Long form, one row per (epoch, layer), layers input to output:
 * "epoch,layer_index,layer,mean_abs_update,mean_abs_weight". */
gboolean emseg_training_log_write_stats_csv(const EmsegTrainingLog *log, const char *path,
                                            GError **error);
/* The Figure 4 heatmap of the logged statistics (emseg-heatmap.h). */
gboolean emseg_training_log_write_heatmap_png(const EmsegTrainingLog *log, const char *path,
                                              const char *title, GError **error);

G_END_DECLS
