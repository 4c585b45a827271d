/* emseg-engine-thread.c — the engine thread: command loop, job runners (train, fine-tune,
 * predict, evaluate, custom), store writing, and event delivery (queue + coalesced main
 * context dispatch). Protocol and ownership are described in emseg-engine-thread.h.
 *
 * Threads and who touches what:
 *   caller thread(s): start/pause/resume/stop push Commands; stop also marks the job in
 *     the mailbox (so its queued events are dropped) and raises `cancel` under `lock`
 *     when the job is the running one, so a job switching in cannot be hit by a stop
 *     meant for its predecessor.
 *   engine thread: everything in the "engine thread only" group, the project connection,
 *     the models.
 *   context thread: dispatch(), through its own reference on the mailbox, so a source
 *     still scheduled when the thread object is freed finds a closed mailbox, not freed
 *     memory. */
#include "emseg-engine-thread.h"

#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emseg-dataset.h"
#include "emseg-gamma.h"
#include "emseg-predict.h"
#include "eng-clocale.h"
#include "eng-metrics.h"
#include "eng-modelfile.h"
#include "eng-tiles.h"
#include "eng-preprocess.h"
#include "eng-train.h"

G_DEFINE_QUARK(emseg-engine-error-quark, emseg_engine_error)

/* Niceness of the engine thread: the UI thread keeps priority on a 2-core machine. */
#define ENGINE_NICE 10
/* A burst of STEP events is delivered at most this often (ms); other events at idle. */
#define STEP_DISPATCH_MS 30

/* ---- synchronisation ThreadSanitizer can see ------------------------------------------
 * GLib's GMutex, GCond, GAsyncQueue and reference counts synchronise inside the
 * (uninstrumented) GLib library, invisible to ThreadSanitizer, which would then report
 * every hand-off through them as a race. These wrappers state the happens-before edges
 * explicitly under -fsanitize=thread and are plain calls otherwise. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define TSAN_RELEASE(addr) __tsan_release((void *) (addr))
#define TSAN_ACQUIRE(addr) __tsan_acquire((void *) (addr))
#else
#define TSAN_RELEASE(addr) ((void) (addr))
#define TSAN_ACQUIRE(addr) ((void) (addr))
#endif

static void
lock(GMutex *m)
{
  g_mutex_lock(m);
  TSAN_ACQUIRE(m);
}

static void
unlock(GMutex *m)
{
  TSAN_RELEASE(m);
  g_mutex_unlock(m);
}

static void
cond_wait(GCond *c, GMutex *m)
{
  TSAN_RELEASE(m);
  g_cond_wait(c, m);
  TSAN_ACQUIRE(m);
}

static void
queue_push(GAsyncQueue *q, gpointer item)
{
  TSAN_RELEASE(q);
  g_async_queue_push(q, item);
}

/* timeout_us < 0: wait forever; 0: do not wait. */
static gpointer
queue_pop(GAsyncQueue *q, gint64 timeout_us)
{
  gpointer item = timeout_us < 0  ? g_async_queue_pop(q)
                  : timeout_us == 0 ? g_async_queue_try_pop(q)
                                    : g_async_queue_timeout_pop(q, (guint64) timeout_us);
  if (item)
    TSAN_ACQUIRE(q);
  return item;
}

/* ---- events ------------------------------------------------------------------------ */

static void
event_clear(gpointer data)
{
  EmsegEngineEvent *ev = data;
  TSAN_ACQUIRE(ev); /* every holder's last use happens before the free */
  g_strfreev(ev->layer_names);
  g_free(ev->mean_abs_update);
  g_free(ev->mean_abs_weight);
  g_free(ev->model_name);
  g_free(ev->scores);
  g_free(ev->prob);
  g_free(ev->std);
  g_free(ev->message);
}

static EmsegEngineEvent *
event_new(EmsegEngineEventKind kind, guint64 job, EmsegEngineJobKind job_kind, gint64 run_id)
{
  EmsegEngineEvent *ev = g_atomic_rc_box_new0(EmsegEngineEvent);
  ev->kind = kind;
  ev->job = job;
  ev->job_kind = job_kind;
  ev->run_id = run_id;
  ev->metrics.train_loss = ev->metrics.val_loss = NAN;
  ev->metrics.train_accuracy = ev->metrics.val_accuracy = NAN;
  ev->metrics.v_rand = ev->metrics.v_info = ev->metrics.seconds = NAN;
  ev->vrand = ev->vinfo = ev->pixel_accuracy = NAN;
  ev->loss = ev->accuracy = ev->lr = ev->eta_seconds = ev->export_gamma = NAN;
  return ev;
}

EmsegEngineEvent *
emseg_engine_event_ref(EmsegEngineEvent *event)
{
  return g_atomic_rc_box_acquire(event);
}

void
emseg_engine_event_unref(EmsegEngineEvent *event)
{
  if (event)
  {
    TSAN_RELEASE(event);
    g_atomic_rc_box_release_full(event, event_clear);
  }
}

const char *
emseg_engine_event_kind_name(EmsegEngineEventKind kind)
{
  static const char *const names[] = {
    "started", "step", "epoch", "layer-stats", "checkpoint", "prediction",
    "evaluation", "paused", "resumed", "finished", "error", "progress",
  };
  return (guint) kind < G_N_ELEMENTS(names) ? names[kind] : "unknown";
}

const char *
emseg_engine_status_name(EmsegEngineStatus status)
{
  switch (status) {
  case EMSEG_ENGINE_STATUS_FINISHED:
    return "finished";
  case EMSEG_ENGINE_STATUS_CANCELLED:
    return "cancelled";
  case EMSEG_ENGINE_STATUS_FAILED:
    break;
  }
  return "failed";
}

/* ---- jobs -------------------------------------------------------------------------- */

EmsegEngineJob *
emseg_engine_job_new(EmsegEngineJobKind kind)
{
  EmsegEngineJob *job = g_new0(EmsegEngineJob, 1);
  job->kind = kind;
  job->mc_samples = 1;
  emseg_training_config_init(&job->training);
  return job;
}

void
emseg_engine_job_free(EmsegEngineJob *job)
{
  if (!job)
    return;
  if (job->custom_destroy)
    job->custom_destroy(job->custom_data);
  g_free(job->name);
  g_free(job->train_slices);
  g_free(job->val_slices);
  g_free(job->slices);
  g_free(job->model);
  g_free(job);
}

/* ---- the mailbox: event queue, stopped jobs, context dispatch ------------------------ */

typedef struct {
  GAsyncQueue *events;   /* owned: EmsegEngineEvent*, one reference each */
  GMutex lock;           /* guards everything below except the atomics */
  GHashTable *stopped;   /* owned: job ids (guint64*) whose events are dropped */
  guint64 stopped_below; /* every job id < this one is stopped too (stop all) */
  GMainContext *context; /* owned reference, NULL without a callback */
  EmsegEngineEventFunc callback;
  gpointer user_data;
  GDestroyNotify destroy;
  gboolean closed;       /* the thread object is gone: deliver nothing more */
  atomic_int scheduled;  /* a dispatch source is attached and has not run yet */
  atomic_uint dispatches;
} Mailbox;

static void
mailbox_clear(gpointer data)
{
  Mailbox *mb = data;
  TSAN_ACQUIRE(mb);
  g_async_queue_unref(mb->events);
  g_hash_table_unref(mb->stopped);
  if (mb->context)
    g_main_context_unref(mb->context);
  g_mutex_clear(&mb->lock);
}

static void
mailbox_unref(gpointer mb)
{
  TSAN_RELEASE(mb);
  g_atomic_rc_box_release_full(mb, mailbox_clear);
}

static gboolean
mailbox_is_stopped_locked(Mailbox *mb, guint64 job)
{
  return job < mb->stopped_below || g_hash_table_contains(mb->stopped, &job);
}

static gboolean
mailbox_is_stopped(Mailbox *mb, guint64 job)
{
  lock(&mb->lock);
  gboolean stopped = mailbox_is_stopped_locked(mb, job);
  unlock(&mb->lock);
  return stopped;
}

/* After stop, only a job's FINISHED goes through: the caller learns the job is over
 * without seeing figures it asked not to see. */
static gboolean
mailbox_should_drop(Mailbox *mb, const EmsegEngineEvent *ev)
{
  return ev->job != 0 && ev->kind != EMSEG_ENGINE_EVENT_FINISHED &&
         mailbox_is_stopped(mb, ev->job);
}

static gboolean
dispatch(gpointer data)
{
  Mailbox *mb = data;
  /* Cleared before draining: an event pushed from now on schedules a new source, so
   * nothing is left behind; at worst that source finds an empty queue. */
  atomic_store(&mb->scheduled, 0);
  atomic_fetch_add(&mb->dispatches, 1);
  gint n = g_async_queue_length(mb->events);
  if (n <= 0)
    return G_SOURCE_REMOVE;
  EmsegEngineEvent **batch = g_new0(EmsegEngineEvent *, (gsize) n);
  gint got = 0;
  while (got < n && (batch[got] = queue_pop(mb->events, 0)))
    got++;
  for (gint i = 0; i < got; i++) {
    EmsegEngineEvent *ev = batch[i];
    /* A run of steps of one job collapses to its latest: the plot needs the newest loss,
     * not every one of a burst. */
    gboolean superseded = ev->kind == EMSEG_ENGINE_EVENT_STEP && i + 1 < got &&
                          batch[i + 1]->kind == EMSEG_ENGINE_EVENT_STEP &&
                          batch[i + 1]->job == ev->job;
    if (!superseded && !mailbox_should_drop(mb, ev)) {
      lock(&mb->lock);
      EmsegEngineEventFunc cb = mb->closed ? NULL : mb->callback;
      gpointer user_data = mb->user_data;
      unlock(&mb->lock);
      /* Called without the lock: the callback may stop jobs or free the thread. */
      if (cb)
        cb(ev, user_data);
    }
    emseg_engine_event_unref(ev);
  }
  g_free(batch);
  return G_SOURCE_REMOVE;
}

/* Takes over ev. */
static void
mailbox_post(Mailbox *mb, EmsegEngineEvent *ev)
{
  if (mailbox_should_drop(mb, ev)) {
    emseg_engine_event_unref(ev);
    return;
  }
  gboolean step = ev->kind == EMSEG_ENGINE_EVENT_STEP;
  queue_push(mb->events, ev);
  if (!mb->context || atomic_exchange(&mb->scheduled, 1))
    return;
  GSource *source = step ? g_timeout_source_new(STEP_DISPATCH_MS) : g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_static_name(source, "emseg-engine-events");
  /* The source's reference on the mailbox is released when the source is destroyed. */
  g_source_set_callback(source, dispatch, g_atomic_rc_box_acquire(mb), mailbox_unref);
  g_source_attach(source, mb->context);
  g_source_unref(source);
}

/* ---- the thread object --------------------------------------------------------------- */

typedef enum {
  CMD_START,
  CMD_PAUSE,
  CMD_RESUME,
  CMD_STOP,
  CMD_QUIT,
} CommandKind;

typedef struct {
  CommandKind kind;
  guint64 job_id;
  EmsegEngineJob *job; /* CMD_START: owned until handed to a QueuedJob */
} Command;

typedef struct {
  guint64 id;
  EmsegEngineJob *job;      /* owned */
  gboolean started_posted;  /* STARTED already went out (snapshot predictions) */
  /* snapshot predictions in progress */
  EngModel *model;          /* owned copy of the snapshot weights */
  gint64 model_id;
  guint next;               /* index into the job's slices */
  guint *slices;            /* owned: resolved slice list */
  guint n_slices;
} QueuedJob;

struct _EmsegEngineThread {
  /* owned; written before the thread starts, read-only afterwards */
  char *project_path;
  GAsyncQueue *commands; /* Command*: callers -> engine thread */
  Mailbox *mailbox;      /* this reference is released in emseg_engine_thread_free */
  GThread *thread;
  atomic_ullong next_id;

  /* startup handshake and the running job, guarded by lock */
  GMutex lock;
  GCond cond;
  gboolean ready;
  GError *open_error;    /* owned until new() takes it */
  guint64 running_job;
  atomic_int cancel;     /* the engine's cancel flag for the running job */
  /* the snapshot prediction being served between two training steps (0: none) and its
   * own cancel flag, so a stop of it ends the slice in work, not the training */
  guint64 serving_preview;
  atomic_int preview_cancel;

  /* engine thread only */
  EmsegProject *project; /* owned connection, opened and closed on the engine thread */
  GQueue pending;        /* QueuedJob*, run in order */
  GQueue previews;       /* QueuedJob*, PREDICT jobs served between training steps */
  gboolean paused, quit;
  EngModel *model;       /* owned: the current model (last training's best, or loaded) */
  gint64 model_id;       /* its row in the store, 0 if none */
  EngModel *snapshot;    /* owned: best weights of the running training job */
  gint64 snapshot_id;
  /* owned: the checkpoint a job named last, kept for the next job naming it (paging through
   * slices asks for one PREDICT job per slice, each of which loaded, checked and decoded the
   * same checkpoint again); store ids are never reused, so the id says it is the same */
  EngModel *loaded;
  gint64 loaded_id;
};

struct _EmsegEngineJobContext {
  EmsegEngineThread *t;  /* borrowed */
  QueuedJob *q;          /* borrowed */
  gint64 run_id;
  gboolean training;     /* PREDICT jobs may be served between steps */
  gboolean stop;         /* a stop (or quit) command reached this job */
  gint64 best_id;        /* last checkpoint this run stored */
  GError *store_error;   /* owned: a write to the store failed; the run stops */
  char *training_error;  /* owned: the run's ERROR message */
};

static void
queued_job_free(QueuedJob *q)
{
  emseg_engine_job_free(q->job);
  eng_model_free(q->model);
  g_free(q->slices);
  g_free(q);
}

static void
post(EmsegEngineThread *t, EmsegEngineEvent *ev)
{
  mailbox_post(t->mailbox, ev);
}

static void
post_finished(EmsegEngineThread *t, QueuedJob *q, gint64 run_id, EmsegEngineStatus status,
              const char *message)
{
  EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_FINISHED, q->id, q->job->kind, run_id);
  ev->status = status;
  ev->message = g_strdup(message);
  post(t, ev);
}

static void
post_started(EmsegEngineThread *t, QueuedJob *q, gint64 run_id)
{
  if (q->started_posted)
    return;
  q->started_posted = TRUE;
  post(t, event_new(EMSEG_ENGINE_EVENT_STARTED, q->id, q->job->kind, run_id));
}

/* Ends queued jobs `id` (0: all) without running them. Returns whether any was found. */
static gboolean
remove_queued(EmsegEngineThread *t, GQueue *queue, guint64 id)
{
  gboolean found = FALSE;
  GList *l = queue->head;
  while (l) {
    GList *next = l->next;
    QueuedJob *q = l->data;
    if (id == 0 || q->id == id) {
      g_queue_delete_link(queue, l);
      post_finished(t, q, 0, EMSEG_ENGINE_STATUS_CANCELLED, "stopped before it ran");
      queued_job_free(q);
      found = TRUE;
    }
    l = next;
  }
  return found;
}

/* Acts on one command; ctx is the running job or NULL between jobs. */
static void
handle_command(EmsegEngineThread *t, EmsegEngineJobContext *ctx, Command *c)
{
  guint64 running = ctx ? ctx->q->id : 0;
  switch (c->kind) {
  case CMD_START: {
    QueuedJob *q = g_new0(QueuedJob, 1);
    q->id = c->job_id;
    q->job = g_steal_pointer(&c->job);
    if (ctx && ctx->training && q->job->kind == EMSEG_ENGINE_JOB_PREDICT) {
      post_started(t, q, 0);
      g_queue_push_tail(&t->previews, q);
    } else {
      g_queue_push_tail(&t->pending, q);
    }
    break;
  }
  case CMD_PAUSE:
    if (!t->paused) {
      t->paused = TRUE;
      post(t, event_new(EMSEG_ENGINE_EVENT_PAUSED, running,
                        ctx ? ctx->q->job->kind : EMSEG_ENGINE_JOB_CUSTOM, 0));
    }
    break;
  case CMD_RESUME:
    if (t->paused) {
      t->paused = FALSE;
      post(t, event_new(EMSEG_ENGINE_EVENT_RESUMED, running,
                        ctx ? ctx->q->job->kind : EMSEG_ENGINE_JOB_CUSTOM, 0));
    }
    break;
  case CMD_STOP:
  case CMD_QUIT:
    if (c->kind == CMD_QUIT)
      t->quit = TRUE;
    if (ctx && (c->kind == CMD_QUIT || c->job_id == 0 || c->job_id == running)) {
      ctx->stop = TRUE;
      /* Stopping the paused job ends the pause: nothing is left to resume. */
      t->paused = FALSE;
    }
    if (c->kind == CMD_QUIT || c->job_id == 0) {
      remove_queued(t, &t->previews, 0);
      remove_queued(t, &t->pending, 0);
    } else if (!remove_queued(t, &t->previews, c->job_id)) {
      remove_queued(t, &t->pending, c->job_id);
    }
    break;
  }
  emseg_engine_job_free(c->job);
  g_free(c);
}

/* ---- prediction of one slice --------------------------------------------------------- */

/* Inference buffers for one model and slice size, allocated once per job. */
typedef struct {
  EngModel *model; /* borrowed */
  EngGraph *graph; /* owned */
  guint width, height;
  guint margin;    /* context of each window when the graph is smaller than the slice */
  float *image;    /* (height, width) standardized input */
  float *std;      /* (height, width) MC standard deviation; NULL unless samples > 1 */
  /* PROGRESS events from the graph's forward passes: the job reported and the slice in work */
  EmsegPassCount passes;
  EmsegEngineThread *t; /* borrowed */
  QueuedJob *q;         /* borrowed */
  gint64 stack_id;
  guint slice;
  gint64 posted_us;     /* when the last PROGRESS went out (or the slice began) */
} Predictor;

/* After a pass but the slice's last (PREDICTION follows that one): a PROGRESS event when the
 * slice has taken a while since the last one, so fast slices post none. */
static void
predictor_report(double fraction, gpointer data)
{
  Predictor *p = data;
  gint64 now = g_get_monotonic_time();
  if (now - p->posted_us < EMSEG_ENGINE_PROGRESS_MS * 1000)
    return;
  p->posted_us = now;
  EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_PROGRESS, p->q->id, p->q->job->kind, 0);
  ev->stack_id = p->stack_id;
  ev->slice = p->slice;
  ev->fraction = fraction;
  post(p->t, ev);
}

static void
predictor_clear(Predictor *p)
{
  eng_graph_free(p->graph);
  g_free(p->image);
  g_free(p->std);
  memset(p, 0, sizeof *p);
}

static gboolean
predictor_init(Predictor *p, EmsegEngineThread *t, QueuedJob *q, EngModel *model,
               gint64 stack_id, gboolean conv_bf16, atomic_int *cancel, GError **error)
{
  g_auto(EmsegProjectStack) st = { 0 };
  if (!emseg_project_get_stack(t->project, stack_id, &st, error))
    return FALSE;
  /* any slice size: emseg_predict_window rounds the graph up, eng_predict_tiled pads */
  int mult = eng_spec_size_multiple(eng_model_spec(model));
  EngError err;
  p->model = model;
  p->width = st.width;
  p->height = st.height;
  /* The graph takes the precision when it is built; the model may be the thread's current
   * one, shared with later jobs, so its own setting is put back at once. */
  int was_bf16 = eng_model_conv_bf16(model);
  guint gh, gw;
  /* big slices in windows (emseg_predict_window): the whole-slice graph of a 4096² slice
   * would take 10 GB */
  emseg_predict_window(st.height, st.width, (guint) mult, &gh, &gw, &p->margin);
  eng_model_set_conv_bf16(model, conv_bf16);
  p->graph = eng_graph_new(model, 1, gh, gw, 0, &err);
  eng_model_set_conv_bf16(model, was_bf16);
  if (!p->graph) {
    g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_ENGINE, "%s", err.message);
    return FALSE;
  }
  eng_graph_set_cancel(p->graph, cancel);
  p->t = t;
  p->q = q;
  p->stack_id = stack_id;
  emseg_pass_count_attach(&p->passes, p->graph, predictor_report, p);
  p->image = g_new(float, (gsize) st.width * st.height);
  return TRUE;
}

static gboolean
predictor_run(Predictor *p, EmsegProject *project, gint64 stack_id, guint slice, int samples,
              gboolean tta, guint64 seed, float *prob, GError **error)
{
  if (!emseg_project_read_slice_float(project, stack_id, slice, p->image, error))
    return FALSE;
  EngError err;
  /* the spread over MC samples (with TTA: over every pass) travels with the prediction
   * (the GUI's uncertainty) */
  g_clear_pointer(&p->std, g_free);
  if (samples > 1)
    p->std = g_new(float, (gsize) p->width * p->height);
  EngMode mode = samples > 1 ? ENG_MODE_MC : ENG_MODE_INFER;
  p->slice = slice;
  emseg_pass_count_start(&p->passes, p->graph, p->height, p->width, p->margin, tta,
                         MAX(samples, 1));
  p->posted_us = g_get_monotonic_time();
  if (eng_standardize(p->image, p->image, ENG_PIXEL_F32, p->width, p->height, NULL, &err) !=
          ENG_OK ||
      eng_predict_tiled(p->graph, p->image, p->height, p->width, p->margin, tta, mode,
                        MAX(samples, 1), seed, prob, p->std, &err) != ENG_OK) {
    g_set_error(error, EMSEG_ENGINE_ERROR,
                err.status == ENG_ERR_CANCELLED ? EMSEG_ENGINE_ERROR_CANCELLED
                                                : EMSEG_ENGINE_ERROR_ENGINE,
                "stack %" G_GINT64_FORMAT ", slice %u: %s", stack_id, slice, err.message);
    return FALSE;
  }
  return TRUE;
}

static void
post_prediction(EmsegEngineThread *t, QueuedJob *q, gint64 model_id, const Predictor *p,
                guint slice, const float *prob)
{
  EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_PREDICTION, q->id, q->job->kind, 0);
  ev->model_id = model_id;
  ev->model_name = g_strdup(q->job->model);
  ev->stack_id = q->job->stack_id;
  ev->slice = slice;
  ev->width = p->width;
  ev->height = p->height;
  ev->prob = g_memdup2(prob, sizeof(float) * p->width * p->height);
  if (p->std)
    ev->std = g_memdup2(p->std, sizeof(float) * p->width * p->height);
  post(t, ev);
}

/* Every slice of the stack, or the job's list checked against the stack. */
static guint *
resolve_slices(EmsegEngineThread *t, const EmsegEngineJob *job, gboolean labeled_only,
               guint *n_out, GError **error)
{
  g_auto(EmsegProjectStack) st = { 0 };
  if (!emseg_project_get_stack(t->project, job->stack_id, &st, error))
    return NULL;
  if (job->slices) {
    for (guint i = 0; i < job->n_slices; i++)
      if (job->slices[i] >= st.n_slices) {
        g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                    "stack '%s' has %u slices; slice %u does not exist", st.name, st.n_slices,
                    job->slices[i]);
        return NULL;
      }
    *n_out = job->n_slices;
    return g_memdup2(job->slices, sizeof(guint) * job->n_slices);
  }
  if (labeled_only) {
    g_autoptr(GArray) labeled = emseg_project_labeled_slices(t->project, job->stack_id, error);
    if (!labeled)
      return NULL;
    *n_out = labeled->len;
    return (guint *) g_array_free(g_steal_pointer(&labeled), FALSE);
  }
  guint *all = g_new(guint, MAX(st.n_slices, 1));
  for (guint i = 0; i < st.n_slices; i++)
    all[i] = i;
  *n_out = st.n_slices;
  return all;
}

static EngModel *copy_model(const EngModel *src, GError **error);

/* The model a job names (a checkpoint, loaded unless it is the one loaded last), else the
 * thread's current one. *owned receives what the caller must free (NULL when borrowed);
 * borrowed models are shared with later jobs, so callers change nothing in them for good.
 * A training job asks for its own copy (own = TRUE): the previews it serves between its
 * steps may load another checkpoint over the kept one while it runs. */
static EngModel *
resolve_model(EmsegEngineJobContext *ctx, gboolean own, EngModel **owned, gint64 *model_id,
              double *gamma, GError **error)
{
  EmsegEngineThread *t = ctx->t;
  *owned = NULL;
  if (gamma != NULL)
    *gamma = NAN; /* known for a named checkpoint only */
  if (ctx->q->model) {
    *model_id = ctx->q->model_id;
    return ctx->q->model;
  }
  if (ctx->q->job->model) {
    const char *name = ctx->q->job->model;
    g_autoptr(GArray) cps = emseg_project_list_checkpoints(t->project, error);
    if (!cps)
      return NULL;
    const EmsegCheckpointInfo *found = emseg_checkpoint_find(cps, name);
    if (!found || found->id != t->loaded_id) {
      /* not listed: the load says so with the store's own message */
      g_autoptr(GBytes) bytes = emseg_project_load_checkpoint(t->project, name, NULL, error);
      if (!bytes)
        return NULL;
      gsize len;
      const guint8 *data = g_bytes_get_data(bytes, &len);
      EngModel *m = NULL;
      EngError err;
      if (eng_model_deserialize(data, len, &m, NULL, &err) != ENG_OK) {
        g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT, "checkpoint '%s': %s",
                    name, err.message);
        return NULL;
      }
      eng_model_free(t->loaded);
      t->loaded = m;
      t->loaded_id = found ? found->id : 0;
    }
    *model_id = t->loaded_id;
    if (gamma != NULL)
      *gamma = found ? emseg_gamma_from_meta(found->scores) : NAN;
    if (own)
      return *owned = copy_model(t->loaded, error);
    return t->loaded;
  }
  if (!t->model) {
    g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                        "no model yet: train one first or name a checkpoint of the project");
    return NULL;
  }
  *model_id = t->model_id;
  return t->model;
}

static EngModel *
copy_model(const EngModel *src, GError **error)
{
  EngError err;
  EngModel *m = eng_model_new_zeroed(eng_model_spec(src), &err);
  if (!m || eng_model_copy_params(m, src, &err) != ENG_OK) {
    eng_model_free(m);
    g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_ENGINE,
                "copying the weights for a snapshot: %s", err.message);
    return NULL;
  }
  return m;
}

/* ---- predictions served between training steps -------------------------------------- */

/* Ends a snapshot request: finished (error NULL), stopped mid-slice (a CANCELLED error; the
 * CMD_STOP behind it then finds the job gone) or failed (ERROR, then FINISHED "failed"). */
static void
preview_end(EmsegEngineThread *t, QueuedJob *q, const GError *error)
{
  g_queue_remove(&t->previews, q);
  if (error == NULL) {
    post_finished(t, q, 0, EMSEG_ENGINE_STATUS_FINISHED, NULL);
  } else if (g_error_matches(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_CANCELLED)) {
    post_finished(t, q, 0, EMSEG_ENGINE_STATUS_CANCELLED, NULL);
  } else {
    EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_ERROR, q->id, q->job->kind, 0);
    ev->message = g_strdup(error->message);
    post(t, ev);
    post_finished(t, q, 0, EMSEG_ENGINE_STATUS_FAILED, error->message);
  }
  queued_job_free(q);
}

/* The project keeps one prediction per checkpoint and slice, the plain float32 one the
 * overlay shows; MC-dropout and TTA averages and bfloat16 passes (an export, an
 * uncertainty estimate) are posted but must not replace it. */
static gboolean
is_overlay_prediction(const EmsegEngineJob *job)
{
  return job->mc_samples <= 1 && !job->tta && !job->predict_bf16;
}

/* What the store keeps of a prediction by a checkpoint (model_id > 0): the overlay's plain
 * P(cell), or the Monte-Carlo spread of an uncertainty estimate (float32, no TTA), so the
 * workbench shows it again after a reopen instead of spending the passes again. */
static gboolean
store_prediction(EmsegEngineThread *t, const EmsegEngineJob *job, gint64 model_id,
                 const Predictor *p, guint slice, const float *prob, GError **error)
{
  if (model_id <= 0)
    return TRUE;
  if (is_overlay_prediction(job))
    return emseg_project_save_prediction(t->project, model_id, job->stack_id, slice, prob,
                                         error);
  if (p->std != NULL && !job->tta && !job->predict_bf16)
    return emseg_project_save_uncertainty(t->project, model_id, job->stack_id, slice,
                                          job->mc_samples, p->std, error);
  return TRUE;
}

/* Snapshot requests (PREDICT without a model: "the running training's best weights") that
 * queued up behind a training job before it began become its previews. The window sends
 * its overlay request right after starting a run; when both commands arrived before this
 * thread woke, both were queued as ordinary jobs and the request waited for the whole run
 * (the fine-tune GUI test failed that way on a busy machine). */
static void
adopt_queued_previews(EmsegEngineThread *t)
{
  for (GList *l = t->pending.head; l;) {
    GList *next = l->next;
    QueuedJob *q = l->data;
    if (q->job->kind == EMSEG_ENGINE_JOB_PREDICT && q->job->model == NULL) {
      g_queue_delete_link(&t->pending, l);
      post_started(t, q, 0);
      g_queue_push_tail(&t->previews, q);
    }
    l = next;
  }
}

/* One slice of the oldest request. Its weights are copied once, between two steps, when
 * it begins, so all its slices come from the same weights however long it takes. */
static void
serve_preview(EmsegEngineJobContext *ctx)
{
  EmsegEngineThread *t = ctx->t;
  QueuedJob *q = g_queue_peek_head(&t->previews);
  if (!q || (!q->model && !t->snapshot))
    return; /* nothing asked, or a fresh run has no weights worth showing yet */
  g_autoptr(GError) error = NULL;
  if (!q->model) {
    q->slices = resolve_slices(t, q->job, FALSE, &q->n_slices, &error);
    q->model = q->slices ? copy_model(t->snapshot, &error) : NULL;
    if (!q->model) {
      preview_end(t, q, error);
      return;
    }
    q->model_id = t->snapshot_id;
  }
  if (q->next < q->n_slices) {
    Predictor p = { 0 };
    guint slice = q->slices[q->next];
    float *prob = NULL;
    lock(&t->lock);
    t->serving_preview = q->id;
    atomic_store(&t->preview_cancel, 0);
    unlock(&t->lock);
    gboolean ok = predictor_init(&p, t, q, q->model, q->job->stack_id, q->job->predict_bf16,
                                 &t->preview_cancel, &error);
    if (ok) {
      prob = g_new(float, (gsize) p.width * p.height);
      ok = predictor_run(&p, t->project, q->job->stack_id, slice, q->job->mc_samples,
                         q->job->tta, q->job->training.seed, prob, &error);
    }
    lock(&t->lock);
    t->serving_preview = 0;
    unlock(&t->lock);
    /* Stored only while its checkpoint is the current best: a replaced checkpoint took
     * its predictions with it (ON DELETE CASCADE), and these weights are no longer kept. */
    if (ok && q->model_id == t->snapshot_id)
      ok = store_prediction(t, q->job, q->model_id, &p, slice, prob, &error);
    if (ok)
      post_prediction(t, q, q->model_id, &p, slice, prob);
    g_free(prob);
    predictor_clear(&p);
    if (!ok) {
      preview_end(t, q, error);
      return;
    }
    q->next++;
  }
  if (q->next >= q->n_slices)
    preview_end(t, q, NULL);
}

/* ---- the job context ------------------------------------------------------------------- */

gboolean
emseg_engine_job_between_steps(EmsegEngineJobContext *ctx)
{
  EmsegEngineThread *t = ctx->t;
  for (;;) {
    /* Paused: block here, between two steps, until resume or stop. */
    Command *c = queue_pop(t->commands, t->paused && !ctx->stop ? -1 : 0);
    if (!c)
      break;
    handle_command(t, ctx, c);
  }
  if (ctx->training && !ctx->stop)
    serve_preview(ctx);
  return !ctx->stop;
}

atomic_int *
emseg_engine_job_cancel_flag(EmsegEngineJobContext *ctx)
{
  return &ctx->t->cancel;
}

EmsegProject *
emseg_engine_job_project(EmsegEngineJobContext *ctx)
{
  return ctx->t->project;
}

guint64
emseg_engine_job_id(EmsegEngineJobContext *ctx)
{
  return ctx->q->id;
}

void
emseg_engine_job_post_step(EmsegEngineJobContext *ctx, guint epoch, guint step, guint n_steps,
                           double loss)
{
  EmsegEngineEvent *ev =
      event_new(EMSEG_ENGINE_EVENT_STEP, ctx->q->id, ctx->q->job->kind, ctx->run_id);
  ev->epoch = epoch;
  ev->step = step;
  ev->n_steps = n_steps;
  ev->loss = loss;
  post(ctx->t, ev);
}

static gboolean
cancelled_error(GError **error)
{
  g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_CANCELLED, "stopped");
  return FALSE;
}

/* ---- predict and evaluate jobs ------------------------------------------------------- */

static gboolean
run_predict(EmsegEngineJobContext *ctx, gboolean evaluate, GError **error)
{
  EmsegEngineThread *t = ctx->t;
  QueuedJob *q = ctx->q;
  const EmsegEngineJob *job = q->job;
  post_started(t, q, 0);
  EngModel *owned = NULL;
  gint64 model_id = 0;
  EngModel *model = resolve_model(ctx, FALSE, &owned, &model_id, NULL, error);
  if (!model)
    return FALSE;
  guint n = 0;
  g_autofree guint *slices = resolve_slices(t, job, evaluate, &n, error);
  Predictor p = { 0 };
  gboolean ok =
      slices && predictor_init(&p, t, q, model, job->stack_id, job->predict_bf16, &t->cancel,
                               error);
  if (ok && evaluate && n == 0) {
    g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                "stack %" G_GINT64_FORMAT " has no labeled slice to evaluate against",
                job->stack_id);
    ok = FALSE;
  }
  gsize plane = (gsize) p.width * p.height;
  float *prob = ok ? g_new(float, plane * (evaluate ? n : 1)) : NULL;
  guint8 *gt = ok && evaluate ? g_new(guint8, plane * n) : NULL;
  guint64 correct = 0, labeled = 0;
  gboolean all_labeled = TRUE;
  for (guint i = 0; ok && i < n; i++) {
    float *out = prob + (evaluate ? plane * i : 0);
    if (!emseg_engine_job_between_steps(ctx))
      ok = cancelled_error(error);
    ok = ok && predictor_run(&p, t->project, job->stack_id, slices[i], job->mc_samples,
                             job->tta, job->training.seed, out, error);
    ok = ok && store_prediction(t, job, model_id, &p, slices[i], out, error);
    if (ok && evaluate) {
      guint8 *mask = gt + plane * i;
      ok = emseg_project_read_mask(t->project, job->stack_id, slices[i], mask, NULL, error);
      for (gsize k = 0; ok && k < plane; k++) {
        if (mask[k] == EMSEG_LABEL_UNLABELED) {
          all_labeled = FALSE;
          continue;
        }
        labeled++;
        correct += (out[k] > 0.5f) == (mask[k] == EMSEG_LABEL_CELL);
      }
    }
    if (ok)
      post_prediction(t, q, model_id, &p, slices[i], out);
  }
  if (ok && evaluate) {
    EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_EVALUATION, q->id, job->kind, 0);
    ev->model_id = model_id;
    ev->model_name = g_strdup(job->model);
    ev->stack_id = job->stack_id;
    ev->n_slices = n;
    ev->pixel_accuracy = labeled ? (double) correct / (double) labeled : NAN;
    EngMetricsResult res;
    EngError err;
    if (!all_labeled)
      ev->message = g_strdup("V_rand and V_info need fully labeled slices; some pixels are "
                             "unlabeled, so only the pixel accuracy is given");
    else if (eng_metrics_evaluate(prob, gt, n, p.height, p.width, &res, &err) != ENG_OK)
      ev->message = g_strdup(err.message);
    else {
      ev->vrand = res.vrand;
      ev->vinfo = res.vinfo;
    }
    post(t, ev);
  }
  g_free(prob);
  g_free(gt);
  predictor_clear(&p);
  eng_model_free(owned);
  return ok;
}

/* ---- checkpoints (training runs and BN adaptation) ------------------------------------ */

/* model stored in the project as checkpoint `name`: its file bytes (float32, with meta as
 * the file's metadata), spec text and scores. what: the start of an error message. */
static gboolean
save_model_checkpoint(EmsegProject *project, const char *name, gint64 run_id, guint epoch,
                      const EngModel *model, const char *meta, const char *scores,
                      const char *what, gint64 *model_id, GError **error)
{
  char spec[1024];
  eng_spec_format(eng_model_spec(model), spec, sizeof spec);
  uint8_t *bytes = NULL;
  size_t len = 0;
  EngError err;
  if (eng_model_serialize(model, ENG_DTYPE_F32, meta, &bytes, &len, &err) != ENG_OK) {
    g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_ENGINE, "%s: %s", what,
                err.message);
    return FALSE;
  }
  gboolean ok = emseg_project_save_checkpoint(project, name, run_id, epoch, spec, scores, bytes,
                                              len, model_id, error);
  free(bytes);
  return ok;
}

/* ---- BN adaptation ------------------------------------------------------------------- */

/* PROGRESS events of a BN adaptation: the fraction of its tiles done, at most every
 * EMSEG_ENGINE_PROGRESS_MS. */
typedef struct {
  EmsegEngineThread *t; /* borrowed */
  QueuedJob *q;         /* borrowed */
  gint64 posted_us;
} AdaptProgress;

static void
adapt_progress(guint done, guint total, gpointer data)
{
  AdaptProgress *p = data;
  gint64 now = g_get_monotonic_time();
  if (done == total || now - p->posted_us < EMSEG_ENGINE_PROGRESS_MS * 1000)
    return; /* the CHECKPOINT event says the last */
  p->posted_us = now;
  EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_PROGRESS, p->q->id, p->q->job->kind, 0);
  ev->stack_id = p->q->job->stack_id;
  ev->fraction = (double) done / total;
  post(p->t, ev);
}

/* ADAPT_BN: a copy of the model (the thread's own may be borrowed), its BN statistics
 * recomputed over the stack's images, stored as a checkpoint with where it came from. */
static gboolean
run_adapt_bn(EmsegEngineJobContext *ctx, GError **error)
{
  EmsegEngineThread *t = ctx->t;
  QueuedJob *q = ctx->q;
  const EmsegEngineJob *job = q->job;
  post_started(t, q, 0);
  if (job->name == NULL || *job->name == '\0') {
    g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                        "BN adaptation needs a name for the checkpoint it stores");
    return FALSE;
  }
  EngModel *owned = NULL;
  gint64 from_id = 0;
  double gamma = NAN;
  EngModel *from = resolve_model(ctx, FALSE, &owned, &from_id, &gamma, error);
  if (!from)
    return FALSE;
  EngModel *model = copy_model(from, error);
  eng_model_free(owned);
  if (!model)
    return FALSE;
  guint n = 0, n_tiles = 0;
  g_autofree guint *slices = resolve_slices(t, job, FALSE, &n, error);
  g_autoptr(EmsegStack) stack =
      slices ? emseg_project_open_stack_images(t->project, job->stack_id, error) : NULL;
  gboolean ok = stack != NULL;
  if (ok && !emseg_engine_job_between_steps(ctx))
    ok = cancelled_error(error);
  AdaptProgress progress = { t, q, g_get_monotonic_time() };
  ok = ok && emseg_calibrate_bn_on_stack(model, stack, slices, n, EMSEG_ADAPT_BN_TILES,
                                         &t->cancel, adapt_progress, &progress, &n_tiles,
                                         error);
  if (ok && !emseg_engine_job_between_steps(ctx))
    ok = cancelled_error(error);
  g_autofree char *scores = NULL;
  gint64 model_id = 0;
  if (ok) {
    g_autofree char *gamma_line =
        isfinite(gamma) ? emseg_gamma_meta_lines(gamma, "kept from the starting model: BN "
                                                        "adaptation chooses none")
                        : g_strdup("");
    scores = g_strdup_printf("adapted_from=%s\nadapted_stack_id=%" G_GINT64_FORMAT
                             "\nadapted_slices=%u\nadapted_tiles=%u\n%s",
                             job->model ? job->model : "(the current model)", job->stack_id, n,
                             n_tiles, gamma_line);
    ok = save_model_checkpoint(t->project, job->name, 0, 0, model, scores, scores,
                               "the adapted model", &model_id, error);
  }
  if (ok) {
    EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_CHECKPOINT, q->id, job->kind, 0);
    ev->model_id = model_id;
    ev->model_name = g_strdup(job->name);
    ev->scores = g_steal_pointer(&scores);
    ev->export_gamma = gamma;
    ev->stack_id = job->stack_id;
    ev->n_slices = n;
    post(t, ev);
  }
  eng_model_free(model);
  return ok;
}

/* ---- training jobs ------------------------------------------------------------------- */

static void
append_slices(GString *s, const char *key, const guint *slices, guint n)
{
  g_string_append_printf(s, "%s=", key);
  for (guint i = 0; i < n; i++)
    g_string_append_printf(s, "%s%u", i ? "," : "", slices[i]);
  g_string_append_c(s, '\n');
}

/* Every hyperparameter of the run as "key=value" lines, the record a reopened project
 * (or a person) needs to repeat it. */
static char *
training_params(const EmsegEngineJob *job, const EmsegTrainingConfig *cfg, const EngSpec *spec,
                const EmsegDataset *train, const EmsegDataset *val)
{
  GString *s = g_string_new(NULL);
  char line[1024];
  eng_spec_format(spec, line, sizeof line);
  g_string_append_printf(s, "job=%s\n",
                         job->kind == EMSEG_ENGINE_JOB_FINE_TUNE ? "fine-tune" : "train");
  g_string_append_printf(s, "spec=%s\n", line);
  g_string_append_printf(s, "dropout=%g\n", (double) spec->dropout);
  g_string_append_printf(s, "loss=%s\n", eng_loss_name(cfg->loss));
  g_string_append_printf(s, "epochs=%u\n", cfg->epochs);
  g_string_append_printf(s, "lr=%.9g\nweight_decay=%.9g\n", cfg->lr, cfg->weight_decay);
  append_slices(s, "lr_steps", cfg->lr_steps, cfg->n_lr_steps);
  g_string_append_printf(s, "patience=%u\n", cfg->patience);
  g_string_append_printf(s, "augment=%d\n", cfg->augment ? 1 : 0);
  const EngAugmentParams *a = &cfg->augment_params;
  g_string_append_printf(s,
                         "augment_flip_prob=%g\naugment_rotate_max_deg=%g\naugment_shear_max=%g\n"
                         "augment_elastic_grid=%d\naugment_elastic_sigma=%g\n",
                         (double) a->flip_prob, (double) a->rotate_max_deg,
                         (double) a->shear_max, a->elastic_grid, (double) a->elastic_sigma);
  g_string_append_printf(s, "border_w0=%g\nborder_sigma=%g\n", (double) cfg->border_w0,
                         (double) cfg->border_sigma);
  g_string_append_printf(s, "conv_bf16=%d\n", cfg->conv_bf16 ? 1 : 0);
  g_string_append_printf(s, "crop=%u\nval_every=%u\nmetrics_every=%u\n", cfg->crop,
                         cfg->val_every, cfg->metrics_every);
  g_string_append_printf(s, "seed=%" G_GUINT64_FORMAT "\n", cfg->seed);
  g_string_append_printf(s, "stack_id=%" G_GINT64_FORMAT "\n", job->stack_id);
  append_slices(s, "train_slices", train->slice, train->n);
  append_slices(s, "val_slices", val ? val->slice : NULL, val ? val->n : 0);
  if (job->model)
    g_string_append_printf(s, "parent_model=%s\n", job->model);
  return g_string_free(s, FALSE);
}

static char *
checkpoint_name(gint64 run_id)
{
  return g_strdup_printf("run-%" G_GINT64_FORMAT "-best", run_id);
}

static gboolean
store_checkpoint(EmsegEngineJobContext *ctx, const EmsegTrainingEvent *e, gint64 *model_id,
                 char **scores_out)
{
  const EmsegTrainingCheckpoint *c = &e->u.checkpoint;
  /* export_gamma: the export dialog's default γ for this checkpoint */
  g_autofree char *gamma_line =
      isfinite(c->export_gamma) ? emseg_gamma_meta_lines(c->export_gamma, NULL) : g_strdup("");
  g_autofree char *scores = g_strdup_printf(
      "val_loss=%.9g\nval_accuracy=%.9g\nvrand=%.9g\nvinfo=%.9g\n%s", c->val_loss,
      c->val_accuracy, c->vrand, c->vinfo, gamma_line);
  g_autofree char *meta = g_strdup_printf("run_id=%" G_GINT64_FORMAT "\nepoch=%u\n%s",
                                          ctx->run_id, e->epoch, scores);
  g_autofree char *name = checkpoint_name(ctx->run_id);
  g_autofree char *what = g_strdup_printf("epoch %u checkpoint", e->epoch);
  gboolean ok = save_model_checkpoint(ctx->t->project, name, ctx->run_id, e->epoch, c->model,
                                      meta, scores, what, model_id, &ctx->store_error);
  *scores_out = g_steal_pointer(&scores);
  return ok;
}

/* The training run's callback, on the engine thread: every event is written to the store
 * first (a reopened project must show what the GUI saw), then posted. STEP and EPOCH are
 * the run's step boundaries, where commands take effect. */
static gboolean
on_training_event(const EmsegTrainingEvent *e, gpointer data)
{
  EmsegEngineJobContext *ctx = data;
  EmsegEngineThread *t = ctx->t;
  QueuedJob *q = ctx->q;
  EmsegEngineEvent *ev = NULL;
  switch (e->kind) {
  case EMSEG_TRAINING_EVENT_STEP:
    ev = event_new(EMSEG_ENGINE_EVENT_STEP, q->id, q->job->kind, ctx->run_id);
    ev->epoch = e->epoch;
    ev->n_epochs = e->n_epochs;
    ev->step = e->u.step.step;
    ev->n_steps = e->u.step.n_steps;
    ev->slice = e->u.step.slice;
    ev->loss = e->u.step.loss;
    ev->accuracy = e->u.step.accuracy;
    post(t, ev);
    return emseg_engine_job_between_steps(ctx);
  case EMSEG_TRAINING_EVENT_EPOCH: {
    const EmsegTrainingEpoch *p = &e->u.epoch;
    EmsegEpochMetrics m = {
      .epoch = e->epoch, .train_loss = p->train_loss, .val_loss = p->val_loss,
      .train_accuracy = p->train_accuracy, .val_accuracy = p->val_accuracy,
      .v_rand = p->vrand, .v_info = p->vinfo, .seconds = p->seconds,
    };
    if (!emseg_project_add_epoch_metrics(t->project, ctx->run_id, &m, &ctx->store_error))
      return FALSE;
    ev = event_new(EMSEG_ENGINE_EVENT_EPOCH, q->id, q->job->kind, ctx->run_id);
    ev->epoch = e->epoch;
    ev->n_epochs = e->n_epochs;
    ev->metrics = m;
    ev->lr = p->lr;
    ev->eta_seconds = p->eta_seconds;
    post(t, ev);
    return emseg_engine_job_between_steps(ctx);
  }
  case EMSEG_TRAINING_EVENT_LAYER_STATS: {
    const EmsegTrainingLayerStats *l = &e->u.layers;
    if (!emseg_project_add_layer_stats(t->project, ctx->run_id, e->epoch, l->n_layers,
                                       l->layer_names, l->mean_abs_update, l->mean_abs_weight,
                                       &ctx->store_error))
      return FALSE;
    ev = event_new(EMSEG_ENGINE_EVENT_LAYER_STATS, q->id, q->job->kind, ctx->run_id);
    ev->epoch = e->epoch;
    ev->n_epochs = e->n_epochs;
    ev->n_layers = l->n_layers;
    ev->layer_names = g_new0(char *, l->n_layers + 1);
    for (guint i = 0; i < l->n_layers; i++)
      ev->layer_names[i] = g_strdup(l->layer_names[i]);
    ev->mean_abs_update = g_memdup2(l->mean_abs_update, sizeof(double) * l->n_layers);
    ev->mean_abs_weight = g_memdup2(l->mean_abs_weight, sizeof(double) * l->n_layers);
    post(t, ev);
    break;
  }
  case EMSEG_TRAINING_EVENT_CHECKPOINT: {
    gint64 model_id = 0;
    char *scores = NULL;
    if (!store_checkpoint(ctx, e, &model_id, &scores))
      return FALSE;
    ctx->best_id = model_id;
    /* The run lends its best weights only now: keep a copy for predictions asked for
     * while it trains. */
    g_autoptr(GError) error = NULL;
    if (!t->snapshot)
      t->snapshot = copy_model(e->u.checkpoint.model, &error);
    else if (eng_model_copy_params(t->snapshot, e->u.checkpoint.model, NULL) != ENG_OK)
      g_clear_pointer(&t->snapshot, eng_model_free);
    t->snapshot_id = t->snapshot ? model_id : 0;
    ev = event_new(EMSEG_ENGINE_EVENT_CHECKPOINT, q->id, q->job->kind, ctx->run_id);
    ev->epoch = e->epoch;
    ev->n_epochs = e->n_epochs;
    ev->model_id = model_id;
    ev->model_name = checkpoint_name(ctx->run_id);
    ev->scores = scores;
    ev->metrics.epoch = e->epoch;
    ev->metrics.val_loss = e->u.checkpoint.val_loss;
    ev->metrics.val_accuracy = e->u.checkpoint.val_accuracy;
    ev->metrics.v_rand = e->u.checkpoint.vrand;
    ev->metrics.v_info = e->u.checkpoint.vinfo;
    ev->export_gamma = e->u.checkpoint.export_gamma;
    post(t, ev);
    break;
  }
  case EMSEG_TRAINING_EVENT_ERROR:
    g_free(ctx->training_error);
    ctx->training_error = g_strdup(e->u.message);
    break;
  case EMSEG_TRAINING_EVENT_STARTED:
  case EMSEG_TRAINING_EVENT_FINISHED:
    break;
  }
  return !ctx->stop;
}

static gboolean
run_training(EmsegEngineJobContext *ctx, GError **error)
{
  EmsegEngineThread *t = ctx->t;
  QueuedJob *q = ctx->q;
  const EmsegEngineJob *job = q->job;
  EngModel *owned_init = NULL;
  gint64 parent_id = 0;
  EngModel *init = NULL;
  double init_gamma = NAN;
  if (job->training.swa_from) {
    /* the project store has no place for an averaged model yet: refuse rather than drop it */
    g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                        "weight averaging (swa_from) is available in `emseg train` only, not "
                        "in workbench jobs");
    return FALSE;
  }
  if (job->kind == EMSEG_ENGINE_JOB_FINE_TUNE) {
    init = resolve_model(ctx, TRUE, &owned_init, &parent_id, &init_gamma, error);
    if (!init)
      return FALSE;
  }
  g_autoptr(EmsegDataset) val = NULL;
  g_autoptr(EmsegDataset) train = NULL;
  if (job->n_val)
    val = emseg_dataset_from_project(t->project, job->stack_id, job->val_slices, job->n_val,
                                     error);
  if (!job->n_val || val) {
    if (job->train_slices) {
      train = emseg_dataset_from_project(t->project, job->stack_id, job->train_slices,
                                         job->n_train, error);
    } else {
      /* Every labeled slice that does not validate: the project's current labels,
       * fresh corrections included. */
      g_autoptr(GArray) labeled = emseg_project_labeled_slices(t->project, job->stack_id, error);
      g_autoptr(GArray) use = g_array_new(FALSE, FALSE, sizeof(guint));
      for (guint i = 0; labeled && i < labeled->len; i++) {
        guint s = g_array_index(labeled, guint, i);
        gboolean is_val = FALSE;
        for (guint k = 0; k < job->n_val; k++)
          is_val = is_val || job->val_slices[k] == s;
        if (!is_val)
          g_array_append_val(use, s);
      }
      if (labeled && use->len == 0)
        g_set_error(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                    "stack %" G_GINT64_FORMAT " has no labeled slice to train on (besides "
                    "the %u validation slices)",
                    job->stack_id, job->n_val);
      else if (labeled)
        train = emseg_dataset_from_project(t->project, job->stack_id, (guint *) use->data,
                                           use->len, error);
    }
  }
  if (!train) {
    eng_model_free(owned_init);
    return FALSE;
  }

  EmsegTrainingConfig cfg = job->training;
  cfg.init_model = init;
  cfg.init_gamma = init_gamma;
  /* The store is the record of a run; no side files. */
  cfg.best_path = cfg.state_path = NULL;
  cfg.resume = FALSE;
  EngSpec spec = init ? *eng_model_spec(init) : cfg.spec;
  if (cfg.dropout >= 0)
    spec.dropout = cfg.dropout;
  /* big slices: crops and validation windows, as prediction uses */
  emseg_training_fit_window(&cfg, &spec, train, &val);
  g_autofree char *params = training_params(job, &cfg, &spec, train, val);
  g_autofree char *name = g_strdup(job->name ? job->name
                                             : job->kind == EMSEG_ENGINE_JOB_FINE_TUNE
                                                   ? "fine-tune"
                                                   : "train");
  if (!emseg_project_begin_run(t->project, name, params, cfg.seed, parent_id, &ctx->run_id,
                               error)) {
    eng_model_free(owned_init);
    return FALSE;
  }
  post_started(t, q, ctx->run_id);
  ctx->training = TRUE;
  adopt_queued_previews(t);
  if (init) {
    GError *copy_error = NULL;
    g_clear_pointer(&t->snapshot, eng_model_free);
    t->snapshot = copy_model(init, &copy_error);
    t->snapshot_id = t->snapshot ? parent_id : 0;
    g_clear_error(&copy_error); /* previews then wait for the first checkpoint */
  }

  EmsegTrainingResult result = { 0 };
  GError *run_error = NULL;
  gboolean ok = emseg_training_run(&cfg, train, val, on_training_event, ctx, &t->cancel,
                                   &result, &run_error);
  ctx->training = FALSE;
  g_clear_pointer(&t->snapshot, eng_model_free);
  t->snapshot_id = 0;
  if (ctx->store_error) {
    /* The run was stopped because its record could not be written. */
    ok = FALSE;
    g_clear_error(&run_error);
    g_propagate_prefixed_error(error, g_steal_pointer(&ctx->store_error),
                               "run %" G_GINT64_FORMAT " stopped, the project could not be "
                               "written: ",
                               ctx->run_id);
  } else if (!ok) {
    g_propagate_error(error, run_error);
  }
  gboolean cancelled = !ok && (ctx->stop || g_error_matches(*error, EMSEG_TRAINING_ERROR,
                                                            EMSEG_TRAINING_ERROR_CANCELLED));
  const char *status = ok ? "finished" : cancelled ? "cancelled" : "failed";
  GError *end_error = NULL;
  if (!emseg_project_end_run(t->project, ctx->run_id, status, &end_error)) {
    if (ok)
      g_propagate_error(error, end_error);
    else
      g_clear_error(&end_error);
    ok = FALSE;
  }
  if (result.best_model && ctx->best_id > 0) {
    eng_model_free(t->model);
    t->model = g_steal_pointer(&result.best_model);
    t->model_id = ctx->best_id;
  }
  emseg_training_result_clear(&result);
  eng_model_free(owned_init);
  return ok;
}

/* ---- the thread ------------------------------------------------------------------------ */

static void
run_job(EmsegEngineThread *t, QueuedJob *q)
{
  EmsegEngineJobContext ctx = { .t = t, .q = q };
  lock(&t->lock);
  t->running_job = q->id;
  /* A stop that raced with this job's start still reaches it. */
  atomic_store(&t->cancel, mailbox_is_stopped(t->mailbox, q->id) ? 1 : 0);
  unlock(&t->lock);
  ctx.stop = atomic_load(&t->cancel) != 0;

  GError *error = NULL;
  gboolean ok = FALSE;
  switch (q->job->kind) {
  case EMSEG_ENGINE_JOB_TRAIN:
  case EMSEG_ENGINE_JOB_FINE_TUNE:
    ok = run_training(&ctx, &error);
    break;
  case EMSEG_ENGINE_JOB_PREDICT:
  case EMSEG_ENGINE_JOB_EVALUATE:
    ok = run_predict(&ctx, q->job->kind == EMSEG_ENGINE_JOB_EVALUATE, &error);
    break;
  case EMSEG_ENGINE_JOB_ADAPT_BN:
    ok = run_adapt_bn(&ctx, &error);
    break;
  case EMSEG_ENGINE_JOB_CUSTOM:
    post_started(t, q, 0);
    if (q->job->custom)
      ok = q->job->custom(&ctx, q->job->custom_data, &error);
    else
      g_set_error_literal(&error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT,
                          "custom job without a function");
    break;
  }
  EmsegEngineStatus status = EMSEG_ENGINE_STATUS_FINISHED;
  if (!ok) {
    gboolean cancelled = ctx.stop || atomic_load(&t->cancel) ||
                         g_error_matches(error, EMSEG_ENGINE_ERROR,
                                         EMSEG_ENGINE_ERROR_CANCELLED) ||
                         g_error_matches(error, EMSEG_TRAINING_ERROR,
                                         EMSEG_TRAINING_ERROR_CANCELLED);
    status = cancelled ? EMSEG_ENGINE_STATUS_CANCELLED : EMSEG_ENGINE_STATUS_FAILED;
    if (!error)
      g_set_error_literal(&error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_ENGINE,
                          ctx.training_error ? ctx.training_error : "the job failed");
    if (!cancelled) {
      post_started(t, q, ctx.run_id); /* an error event never comes without its start */
      EmsegEngineEvent *ev = event_new(EMSEG_ENGINE_EVENT_ERROR, q->id, q->job->kind,
                                       ctx.run_id);
      ev->message = g_strdup(error->message);
      post(t, ev);
    }
  }
  post_finished(t, q, ctx.run_id, status, error ? error->message : NULL);
  g_clear_error(&error);
  g_clear_error(&ctx.store_error);
  g_free(ctx.training_error);

  lock(&t->lock);
  t->running_job = 0;
  atomic_store(&t->cancel, 0);
  unlock(&t->lock);
  /* Requests that training did not finish serving become ordinary jobs, first in line;
   * those already begun keep their snapshot. */
  while (!g_queue_is_empty(&t->previews))
    g_queue_push_head(&t->pending, g_queue_pop_tail(&t->previews));
  queued_job_free(q);
}

static gpointer
engine_main(gpointer data)
{
  EmsegEngineThread *t = data;
  /* Best effort: raising our own niceness needs no privilege; on failure the thread just
   * competes with the UI at normal priority. Threads the engine creates from here (its
   * pool) inherit the value. */
  (void) setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid), ENGINE_NICE);
  /* Everything this thread writes to be read back (run parameters, checkpoint and resume
   * metadata: "%g", "%.9g") must have a '.' decimal point; the GUI runs in the user's
   * locale, which may use a comma. Only this thread switches. */
  locale_t previous_locale = eng_c_locale_enter();
  GError *error = NULL;
  EmsegProject *project = emseg_project_open(t->project_path, EMSEG_PROJECT_OPEN_DEFAULT,
                                             &error);
  lock(&t->lock);
  t->project = project;
  t->open_error = error;
  t->ready = TRUE;
  g_cond_signal(&t->cond);
  unlock(&t->lock);
  if (!project) {
    eng_c_locale_leave(previous_locale);
    return NULL;
  }

  while (!t->quit) {
    gboolean can_run = !t->paused && !g_queue_is_empty(&t->pending);
    Command *c = queue_pop(t->commands, can_run ? 0 : -1);
    if (c)
      handle_command(t, NULL, c);
    else
      run_job(t, g_queue_pop_head(&t->pending));
  }
  g_queue_clear_full(&t->pending, (GDestroyNotify) queued_job_free);
  g_queue_clear_full(&t->previews, (GDestroyNotify) queued_job_free);
  g_clear_pointer(&t->model, eng_model_free);
  g_clear_pointer(&t->loaded, eng_model_free);
  g_clear_pointer(&t->snapshot, eng_model_free);
  g_clear_pointer(&t->project, emseg_project_close);
  eng_c_locale_leave(previous_locale);
  return NULL;
}

static void
command_free(gpointer data)
{
  Command *c = data;
  emseg_engine_job_free(c->job);
  g_free(c);
}

static void
push_command(EmsegEngineThread *t, CommandKind kind, guint64 job_id, EmsegEngineJob *job)
{
  Command *c = g_new0(Command, 1);
  c->kind = kind;
  c->job_id = job_id;
  c->job = job;
  queue_push(t->commands, c);
}

EmsegEngineThread *
emseg_engine_thread_new(const char *project_path, GMainContext *context,
                        EmsegEngineEventFunc callback, gpointer user_data,
                        GDestroyNotify destroy, GError **error)
{
  g_return_val_if_fail(project_path != NULL, NULL);
  g_return_val_if_fail(context == NULL || callback != NULL, NULL);
  EmsegEngineThread *t = g_new0(EmsegEngineThread, 1);
  t->project_path = g_strdup(project_path);
  t->commands = g_async_queue_new_full(command_free);
  atomic_init(&t->next_id, 1);
  atomic_init(&t->cancel, 0);
  atomic_init(&t->preview_cancel, 0);
  g_mutex_init(&t->lock);
  g_cond_init(&t->cond);
  g_queue_init(&t->pending);
  g_queue_init(&t->previews);
  Mailbox *mb = g_atomic_rc_box_new0(Mailbox);
  mb->events = g_async_queue_new_full((GDestroyNotify) emseg_engine_event_unref);
  g_mutex_init(&mb->lock);
  mb->stopped = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
  if (context) {
    mb->context = g_main_context_ref(context);
    mb->callback = callback;
    mb->user_data = user_data;
    mb->destroy = destroy;
  }
  t->mailbox = mb;

  t->thread = g_thread_try_new("emseg-engine", engine_main, t, error);
  if (t->thread) {
    lock(&t->lock);
    while (!t->ready)
      cond_wait(&t->cond, &t->lock);
    unlock(&t->lock);
    if (!t->open_error)
      return t;
    g_thread_join(t->thread);
    g_propagate_error(error, t->open_error);
  }
  /* The caller keeps user_data when construction fails. */
  mb->destroy = NULL;
  mailbox_unref(mb);
  g_async_queue_unref(t->commands);
  g_mutex_clear(&t->lock);
  g_cond_clear(&t->cond);
  g_free(t->project_path);
  g_free(t);
  return NULL;
}

void
emseg_engine_thread_free(EmsegEngineThread *t)
{
  if (!t)
    return;
  lock(&t->lock);
  atomic_store(&t->cancel, 1); /* abort the step in flight rather than finish it */
  unlock(&t->lock);
  push_command(t, CMD_QUIT, 0, NULL);
  g_thread_join(t->thread);

  Mailbox *mb = t->mailbox;
  lock(&mb->lock);
  mb->closed = TRUE;
  GDestroyNotify destroy = mb->destroy;
  gpointer user_data = mb->user_data;
  mb->callback = NULL;
  mb->destroy = NULL;
  unlock(&mb->lock);
  if (destroy)
    destroy(user_data);
  mailbox_unref(mb); /* a source still scheduled holds its own reference */
  g_async_queue_unref(t->commands);
  g_mutex_clear(&t->lock);
  g_cond_clear(&t->cond);
  g_free(t->project_path);
  g_free(t);
}

guint64
emseg_engine_thread_start(EmsegEngineThread *t, EmsegEngineJob *job)
{
  g_return_val_if_fail(t != NULL && job != NULL, 0);
  guint64 id = atomic_fetch_add(&t->next_id, 1);
  push_command(t, CMD_START, id, job);
  return id;
}

void
emseg_engine_thread_pause(EmsegEngineThread *t)
{
  push_command(t, CMD_PAUSE, 0, NULL);
}

void
emseg_engine_thread_resume(EmsegEngineThread *t)
{
  push_command(t, CMD_RESUME, 0, NULL);
}

void
emseg_engine_thread_stop(EmsegEngineThread *t, guint64 job)
{
  Mailbox *mb = t->mailbox;
  lock(&t->lock);
  lock(&mb->lock);
  if (job == 0)
    mb->stopped_below = atomic_load(&t->next_id);
  else
    g_hash_table_add(mb->stopped, g_memdup2(&job, sizeof job));
  unlock(&mb->lock);
  /* Under t->lock: the running job cannot change between this test and the store. */
  if (t->running_job != 0 && (job == 0 || job == t->running_job))
    atomic_store(&t->cancel, 1);
  if (t->serving_preview != 0 && (job == 0 || job == t->serving_preview))
    atomic_store(&t->preview_cancel, 1);
  unlock(&t->lock);
  push_command(t, CMD_STOP, job, NULL);
}

EmsegEngineEvent *
emseg_engine_thread_pop_event(EmsegEngineThread *t, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time() + MAX(timeout_us, 0);
  for (;;) {
    gint64 left = deadline - g_get_monotonic_time();
    EmsegEngineEvent *ev = queue_pop(t->mailbox->events, MAX(left, 0));
    if (!ev || !mailbox_should_drop(t->mailbox, ev))
      return ev;
    emseg_engine_event_unref(ev);
  }
}

guint
emseg_engine_thread_dispatch_count(EmsegEngineThread *t)
{
  return atomic_load(&t->mailbox->dispatches);
}
