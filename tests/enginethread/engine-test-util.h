/* engine-test-util.h — what the engine-thread tests share: a scratch project with a
 * synthetic EM-like stack (eng-synth.h), tiny training jobs, and an event log that pops
 * from the thread's queue until a wanted event arrives (with a deadline, so a protocol
 * bug fails the test instead of hanging it). Header-only helpers, static functions. */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>

#include "emseg-engine-thread.h"
#include "emseg-project.h"
#include "emseg-stack.h"
#include "eng-synth.h"

#define TEST_SIZE 32
/* A deep-enough net for the protocol, small enough for seconds under ASan. */
#define TEST_SPEC "base_width=4,down=1/1,across=1,up=1/1"
#define EVENT_DEADLINE_US (60 * G_USEC_PER_SEC)

/* Writes n synthetic slices (labels for the first n_labeled) and imports them into a new
 * project in dir. Returns the project path; *stack_id the stack. */
static inline char *
test_make_project(const char *dir, const char *stem, guint n, guint n_labeled, guint size,
                  gint64 *stack_id)
{
  g_autoptr(GError) error = NULL;
  EngSynthParams sp;
  eng_synth_params_init(&sp, 7);
  sp.cell_size = 16; /* several cells in 32 px; membranes at most a quarter of a cell */
  gsize plane = (gsize) size * size;
  g_autofree guint8 *img = g_new(guint8, plane * n);
  g_autofree guint8 *lab = g_new(guint8, plane * n);
  EngError err;
  g_assert_cmpint(eng_synth_stack(img, lab, &sp, 0, n, size, size, &err), ==, ENG_OK);
  g_autofree char *ip = g_strdup_printf("%s/%s-images.tif", dir, stem);
  g_autofree char *lp = g_strdup_printf("%s/%s-labels.tif", dir, stem);
  g_autofree char *pp = g_strdup_printf("%s/%s.emseg", dir, stem);
  const struct {
    const char *path;
    const guint8 *data;
    guint pages;
  } files[] = { { ip, img, n }, { lp, lab, n_labeled } };
  for (guint f = 0; f < G_N_ELEMENTS(files); f++) {
    g_autoptr(EmsegStackWriter) w = emseg_stack_writer_new(files[f].path, EMSEG_SAMPLE_U8,
                                                           size, size, files[f].pages, &error);
    g_assert_no_error(error);
    for (guint i = 0; i < files[f].pages; i++) {
      emseg_stack_writer_append(w, files[f].data + plane * i, &error);
      g_assert_no_error(error);
    }
    emseg_stack_writer_finish(w, &error);
    g_assert_no_error(error);
  }
  g_autoptr(EmsegStack) images = emseg_stack_open(ip, &error);
  g_assert_no_error(error);
  g_autoptr(EmsegStack) labels = emseg_stack_open(lp, &error);
  g_assert_no_error(error);
  g_autoptr(EmsegProject) p = emseg_project_open(pp, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error(error);
  emseg_project_import_stack(p, "synthetic", images, labels, stack_id, &error);
  g_assert_no_error(error);
  g_unlink(ip);
  g_unlink(lp);
  return g_steal_pointer(&pp);
}

static inline guint *
test_slices(guint first, guint n)
{
  guint *s = g_new(guint, n);
  for (guint i = 0; i < n; i++)
    s[i] = first + i;
  return s;
}

/* A prediction of slices first .. first + n - 1 with the named checkpoint (model NULL: the
 * running training's snapshot); the caller sets MC, TTA or bfloat16. */
static inline EmsegEngineJob *
test_predict_job(gint64 stack_id, guint first, guint n, const char *model)
{
  EmsegEngineJob *job = emseg_engine_job_new(EMSEG_ENGINE_JOB_PREDICT);
  job->stack_id = stack_id;
  job->slices = test_slices(first, n);
  job->n_slices = n;
  job->model = g_strdup(model);
  return job;
}

/* A small, fast training job: TEST_SPEC, no augmentation, V_rand/V_info off. */
static inline EmsegEngineJob *
test_train_job(gint64 stack_id, guint first_train, guint n_train, guint first_val,
               guint n_val, guint epochs, guint64 seed)
{
  EmsegEngineJob *job = emseg_engine_job_new(EMSEG_ENGINE_JOB_TRAIN);
  EngError err;
  g_assert_cmpint(eng_spec_parse(&job->training.spec, TEST_SPEC, &err), ==, ENG_OK);
  job->name = g_strdup("test");
  job->stack_id = stack_id;
  job->train_slices = test_slices(first_train, n_train);
  job->n_train = n_train;
  if (n_val) {
    job->val_slices = test_slices(first_val, n_val);
    job->n_val = n_val;
  }
  job->training.epochs = epochs;
  job->training.augment = FALSE;
  job->training.metrics_every = 0;
  job->training.seed = seed;
  return job;
}

/* Every event popped so far, in order (owned references). */
typedef struct {
  GPtrArray *events;
} EventLog;

static inline void
event_log_init(EventLog *log)
{
  log->events = g_ptr_array_new_with_free_func((GDestroyNotify) emseg_engine_event_unref);
}

static inline void
event_log_clear(EventLog *log)
{
  g_ptr_array_unref(log->events);
}

/* Pops until an event of `kind` for `job` (0: any job) arrives; returns it (borrowed from
 * the log). Fails the test after EVENT_DEADLINE_US. */
static inline const EmsegEngineEvent *
event_log_wait(EventLog *log, EmsegEngineThread *t, EmsegEngineEventKind kind, guint64 job)
{
  /* A job's FINISHED and ERROR are unique and may have come while waiting for another
   * job's events (a queued job stopped before the running one ends, say). */
  if (kind == EMSEG_ENGINE_EVENT_FINISHED || kind == EMSEG_ENGINE_EVENT_ERROR)
    for (guint i = 0; i < log->events->len; i++) {
      const EmsegEngineEvent *ev = log->events->pdata[i];
      if (ev->kind == kind && (job == 0 || ev->job == job))
        return ev;
    }
  gint64 deadline = g_get_monotonic_time() + EVENT_DEADLINE_US;
  for (;;) {
    gint64 left = deadline - g_get_monotonic_time();
    if (left <= 0)
      g_error("no %s event for job %" G_GUINT64_FORMAT " within %d s",
              emseg_engine_event_kind_name(kind), job, (int) (EVENT_DEADLINE_US / G_USEC_PER_SEC));
    EmsegEngineEvent *ev = emseg_engine_thread_pop_event(t, left);
    if (!ev)
      continue;
    g_ptr_array_add(log->events, ev);
    if (ev->kind == kind && (job == 0 || ev->job == job))
      return ev;
  }
}

/* Events of job and kind in the log. */
static inline guint
event_log_count(const EventLog *log, EmsegEngineEventKind kind, guint64 job)
{
  guint n = 0;
  for (guint i = 0; i < log->events->len; i++) {
    const EmsegEngineEvent *ev = log->events->pdata[i];
    n += ev->kind == kind && ev->job == job;
  }
  return n;
}
