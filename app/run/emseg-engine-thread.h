/* emseg-engine-thread.h — the engine thread: one dedicated, named, lower-priority thread
 * that owns the model and runs long jobs (train, fine-tune, predict slices, evaluate) for
 * the GUI, without GTK, so the same bridge is testable headless (issue 5, "Engine thread").
 *
 * Protocol. Commands go in on a queue: start(job), pause, resume, stop. The thread acts
 * on them only *between* training steps, so nothing changes mid-step; stop additionally
 * raises the engine's cancel flag, which the trainer polls between layers, so a stop is
 * honoured within one step (also during validation). Events come out as small immutable,
 * reference-counted structs (EmsegEngineEvent) on a GAsyncQueue that the caller drains
 * with emseg_engine_thread_pop_event(), or — when a GMainContext and callback are given —
 * that the thread drains for you on that context: one pending source at a time, and runs
 * of consecutive STEP events of a job collapsed to their latest, so a burst of steps
 * costs the main loop one dispatch. After stop(job), every event of that job except its
 * FINISHED is dropped, including events already queued.
 *
 * Store. The thread opens its own connection to the project (emseg_project_open on the
 * same path; a connection belongs to one thread) and writes everything a run produces
 * there: the run row with all hyperparameters and the seed, per-epoch metrics, layer
 * statistics, the best checkpoint ("run-<id>-best") and predictions, so a reopened project
 * shows the same curves.
 *
 * Predictions while training. A PREDICT job started while a training job runs is served
 * between steps from a snapshot of the weights (eng_model_copy_params into a second
 * model), one slice per step, so a request never sees weights from two different steps
 * and never stalls training for a whole stack. The snapshot is the run's best weights so
 * far (taken at each checkpoint: the training run lends its model only then); requests
 * made before the first checkpoint of a fresh run wait for it.
 *
 * Ownership: the caller owns the EmsegEngineThread and must free it on the thread whose
 * main context receives events (if any). Jobs passed to start are taken over. Events are
 * shared immutable values: whoever receives one owns one reference. */
#pragma once

#include <stdatomic.h>

#include <glib.h>

#include "emseg-project.h"
#include "emseg-training.h"
#include "eng-model.h"

G_BEGIN_DECLS

#define EMSEG_ENGINE_ERROR (emseg_engine_error_quark())
GQuark emseg_engine_error_quark(void);

typedef enum {
  EMSEG_ENGINE_ERROR_INPUT,     /* bad job: no such stack, slice or model, sizes */
  EMSEG_ENGINE_ERROR_ENGINE,    /* the engine failed (memory, numerics) */
  EMSEG_ENGINE_ERROR_CANCELLED, /* stopped by the caller */
} EmsegEngineError;

/* ---- jobs ------------------------------------------------------------------------- */

typedef enum {
  EMSEG_ENGINE_JOB_TRAIN,     /* fresh weights from training.seed */
  EMSEG_ENGINE_JOB_FINE_TUNE, /* continue from `model` on the stack's current labels */
  EMSEG_ENGINE_JOB_PREDICT,   /* P(cell) for `slices`, posted per slice; stored in the
                               * project when plain (mc_samples 1, no tta, float32), and
                               * with mc_samples > 1 (no tta, float32) its standard
                               * deviation is stored as the slice's uncertainty */
  EMSEG_ENGINE_JOB_EVALUATE,  /* predict + V_rand / V_info / accuracy against the masks */
  EMSEG_ENGINE_JOB_ADAPT_BN,  /* `model` with its BN statistics recomputed over `slices` of
                               * the stack's images (no labels; at most EMSEG_ADAPT_BN_TILES
                               * tiles, emseg_calibrate_bn_on_stack; PROGRESS events with
                               * the fraction of tiles done; a stop is honoured within a
                               * tile's forward),
                               * stored as checkpoint `name` with the starting model's
                               * export exponent: one CHECKPOINT event */
  EMSEG_ENGINE_JOB_CUSTOM,    /* caller code on the engine thread (tests, experiments) */
} EmsegEngineJobKind;

typedef struct _EmsegEngineJobContext EmsegEngineJobContext;

/* A custom job's body, run on the engine thread. Call emseg_engine_job_between_steps()
 * between units of work; return FALSE with error set on failure (or cancellation). */
typedef gboolean (*EmsegEngineCustomFunc)(EmsegEngineJobContext *ctx, gpointer data,
                                          GError **error);

typedef struct {
  EmsegEngineJobKind kind;
  char *name;          /* owned; run name (train / fine-tune), label otherwise; may be NULL */
  gint64 stack_id;     /* the project stack to train on / predict / evaluate */
  /* TRAIN / FINE_TUNE: training and validation slices of stack_id (g_new, owned).
   * train_slices NULL: every labeled slice that is not a validation slice. */
  guint *train_slices;
  guint n_train;
  guint *val_slices;
  guint n_val;
  /* PREDICT / EVALUATE / ADAPT_BN: slices (owned, g_new); NULL = every slice (EVALUATE:
   * every labeled slice). */
  guint *slices;
  guint n_slices;
  /* FINE_TUNE / PREDICT / EVALUATE / ADAPT_BN: checkpoint name in the project; NULL = the
   * thread's current model (the best weights of its last training job). */
  char *model;
  int mc_samples;      /* PREDICT / EVALUATE: 1 deterministic, > 1 MC dropout average */
  gboolean tta;        /* PREDICT / EVALUATE: average the 8 flips and quarter turns
                        * (eng_predict_tta), each with mc_samples passes */
  gboolean predict_bf16; /* PREDICT / EVALUATE: convolve in bfloat16 (eng_model_set_conv_bf16;
                          * float32 where the CPU has no kernel); never stored as the
                          * overlay's prediction */
  /* TRAIN / FINE_TUNE: the run's hyperparameters. init_model, best_path, state_path and
   * resume are set by the thread (the store is the record; files are not used). */
  EmsegTrainingConfig training;
  /* CUSTOM */
  EmsegEngineCustomFunc custom;
  gpointer custom_data;
  GDestroyNotify custom_destroy; /* called on custom_data when the job is freed */
} EmsegEngineJob;

/* A job with defaults: training config from emseg_training_config_init, mc_samples 1. */
EmsegEngineJob *emseg_engine_job_new(EmsegEngineJobKind kind);
void emseg_engine_job_free(EmsegEngineJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegEngineJob, emseg_engine_job_free)

/* ---- events ----------------------------------------------------------------------- */

typedef enum {
  EMSEG_ENGINE_EVENT_STARTED,     /* a job began (run_id set for training jobs) */
  EMSEG_ENGINE_EVENT_STEP,        /* a training step: loss */
  EMSEG_ENGINE_EVENT_EPOCH,       /* an epoch's train / validation figures */
  EMSEG_ENGINE_EVENT_LAYER_STATS, /* per-layer update statistics of an epoch */
  EMSEG_ENGINE_EVENT_CHECKPOINT,  /* best weights saved to the store, with scores */
  EMSEG_ENGINE_EVENT_PREDICTION,  /* one slice predicted (stored: see JOB_PREDICT) */
  EMSEG_ENGINE_EVENT_EVALUATION,  /* an EVALUATE job's scores */
  EMSEG_ENGINE_EVENT_PAUSED,
  EMSEG_ENGINE_EVENT_RESUMED,
  EMSEG_ENGINE_EVENT_FINISHED,    /* last event of every job: status says how it ended */
  EMSEG_ENGINE_EVENT_ERROR,       /* a job failed (followed by FINISHED "failed") */
  EMSEG_ENGINE_EVENT_PROGRESS,    /* PREDICT / EVALUATE: how far the slice in work is, at
                                   * most every EMSEG_ENGINE_PROGRESS_MS, none for a slice
                                   * done sooner (a 4096² slice's MC passes take minutes);
                                   * ADAPT_BN: the fraction of its tiles done */
} EmsegEngineEventKind;

#define EMSEG_ENGINE_PROGRESS_MS 250

typedef enum {
  EMSEG_ENGINE_STATUS_FINISHED,
  EMSEG_ENGINE_STATUS_CANCELLED,
  EMSEG_ENGINE_STATUS_FAILED,
} EmsegEngineStatus;

/* Immutable after it is posted. Only the fields of its kind are meaningful. */
typedef struct {
  EmsegEngineEventKind kind;
  guint64 job;              /* the job id emseg_engine_thread_start returned */
  EmsegEngineJobKind job_kind;
  gint64 run_id;            /* training jobs: the run row in the store; else 0 */
  guint epoch, n_epochs;    /* STEP, EPOCH, LAYER_STATS, CHECKPOINT */
  /* STEP */
  guint step, n_steps;
  double loss, accuracy;
  /* EPOCH (the store's row) and its learning rate, ETA */
  EmsegEpochMetrics metrics;
  double lr, eta_seconds;
  /* LAYER_STATS: n_layers entries, input to output */
  guint n_layers;
  char **layer_names;       /* NULL-terminated */
  double *mean_abs_update, *mean_abs_weight;
  /* CHECKPOINT, PREDICTION, EVALUATION: the model's row in the store */
  gint64 model_id;
  char *model_name;
  char *scores;             /* CHECKPOINT: "key=value" lines as stored */
  double export_gamma;      /* CHECKPOINT: the exponent the run chose (also in scores);
                               NAN when it chose none */
  /* PREDICTION: P(cell interior), width * height, ISBI convention */
  gint64 stack_id;
  guint slice, width, height;
  float *prob;
  float *std;               /* per-pixel standard deviation over the job's mc_samples (> 1);
                               NULL for deterministic predictions */
  /* PROGRESS (with stack_id, slice): forward passes of the slice done / all it takes */
  double fraction;
  /* EVALUATION: over n_slices slices; vrand / vinfo NAN when some pixel is unlabeled */
  guint n_slices;
  double vrand, vinfo, pixel_accuracy;
  /* FINISHED */
  EmsegEngineStatus status;
  /* ERROR (and FINISHED "failed"): for a person */
  char *message;
} EmsegEngineEvent;

EmsegEngineEvent *emseg_engine_event_ref(EmsegEngineEvent *event);
void emseg_engine_event_unref(EmsegEngineEvent *event);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegEngineEvent, emseg_engine_event_unref)
const char *emseg_engine_event_kind_name(EmsegEngineEventKind kind);
const char *emseg_engine_status_name(EmsegEngineStatus status); /* as in the runs table */

/* ---- the thread ------------------------------------------------------------------- */

typedef struct _EmsegEngineThread EmsegEngineThread;

/* Called on `context` with a borrowed event. */
typedef void (*EmsegEngineEventFunc)(const EmsegEngineEvent *event, gpointer user_data);

/* Starts the thread ("emseg-engine"), which opens project_path itself; returns NULL and
 * sets error when the project cannot be opened. context NULL: events only through
 * emseg_engine_thread_pop_event. Otherwise the thread drains its queue on context and
 * calls callback there (then do not pop events yourself); destroy (may be NULL) is called
 * on user_data when the thread is freed. */
EmsegEngineThread *emseg_engine_thread_new(const char *project_path, GMainContext *context,
                                           EmsegEngineEventFunc callback, gpointer user_data,
                                           GDestroyNotify destroy, GError **error);
/* Stops every job, joins the thread, closes its connection. Undelivered events are
 * dropped; a dispatch already scheduled on the context becomes a no-op. */
void emseg_engine_thread_free(EmsegEngineThread *thread);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegEngineThread, emseg_engine_thread_free)

/* Queues job (taken over) and returns its id (> 0). Jobs run one after the other in
 * order, except PREDICT jobs started while a training job runs (see above). */
guint64 emseg_engine_thread_start(EmsegEngineThread *thread, EmsegEngineJob *job);
/* Pause takes effect at the next step boundary (the thread then waits for resume or
 * stop); jobs other than training pause between slices. */
void emseg_engine_thread_pause(EmsegEngineThread *thread);
void emseg_engine_thread_resume(EmsegEngineThread *thread);
/* Stops job (0: the running job and every queued one). A queued job ends without
 * running. Its remaining events are dropped except its FINISHED ("cancelled"). */
void emseg_engine_thread_stop(EmsegEngineThread *thread, guint64 job);

/* Next event (caller owns a reference) or NULL after timeout_us (0: do not wait). */
EmsegEngineEvent *emseg_engine_thread_pop_event(EmsegEngineThread *thread, gint64 timeout_us);

/* Number of main-context dispatches so far (to check coalescing; diagnostics). */
guint emseg_engine_thread_dispatch_count(EmsegEngineThread *thread);

/* ---- for custom jobs (on the engine thread) ---------------------------------------- */

/* The step boundary: acts on pending commands (pausing blocks here until resume or
 * stop) and serves pending snapshot predictions. Returns FALSE when the job must stop. */
gboolean emseg_engine_job_between_steps(EmsegEngineJobContext *ctx);
/* The cancel flag the engine should poll (eng_trainer_set_cancel); raised by stop. */
atomic_int *emseg_engine_job_cancel_flag(EmsegEngineJobContext *ctx);
/* The thread's own project connection. */
EmsegProject *emseg_engine_job_project(EmsegEngineJobContext *ctx);
guint64 emseg_engine_job_id(EmsegEngineJobContext *ctx);
/* Posts a STEP event for this job. */
void emseg_engine_job_post_step(EmsegEngineJobContext *ctx, guint epoch, guint step,
                                guint n_steps, double loss);

G_END_DECLS
