/* test-engine-protocol.c — the engine thread's queue protocol with fake (custom) jobs, so
 * timing is under the test's control: pause holds a job between steps, resume continues
 * it, stop is honoured inside a step (through the cancel flag) and drops the job's queued
 * events, queued jobs stop without running, jobs run one after the other, a failing job
 * reports ERROR then FINISHED "failed" and the thread goes on, and on a main context a
 * burst of steps is coalesced. Suite enginethread. */
#include <stdatomic.h>
#include <string.h>

#include "engine-test-util.h"

static char *scratch;
static char *project_path;

typedef struct {
  guint n_steps;
  guint sleep_us;
  guint wait_cancel_at; /* this step spins on the cancel flag only (0 = none) */
  const char *fail_message; /* fail after the first step with this message */
  atomic_uint done;     /* steps completed */
} Fake;

static gboolean
fake_run(EmsegEngineJobContext *ctx, gpointer data, GError **error)
{
  Fake *f = data;
  atomic_int *cancel = emseg_engine_job_cancel_flag(ctx);
  for (guint i = 1; i <= f->n_steps; i++) {
    if (i == f->wait_cancel_at) {
      /* A step the engine would abort between layers: only the flag can end it. */
      gint64 until = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
      while (!atomic_load(cancel) && g_get_monotonic_time() < until)
        g_usleep(500);
      g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_CANCELLED,
                          "cancelled inside a step");
      return FALSE;
    }
    if (f->sleep_us)
      g_usleep(f->sleep_us);
    atomic_fetch_add(&f->done, 1);
    emseg_engine_job_post_step(ctx, 1, i, f->n_steps, 1.0 / i);
    if (f->fail_message) {
      g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_INPUT, f->fail_message);
      return FALSE;
    }
    if (!emseg_engine_job_between_steps(ctx)) {
      g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_CANCELLED, "stopped");
      return FALSE;
    }
  }
  return TRUE;
}

static EmsegEngineJob *
fake_job(Fake *f)
{
  EmsegEngineJob *job = emseg_engine_job_new(EMSEG_ENGINE_JOB_CUSTOM);
  job->custom = fake_run;
  job->custom_data = f; /* owned by the test, which outlives the thread */
  return job;
}

static EmsegEngineThread *
new_thread(void)
{
  g_autoptr(GError) error = NULL;
  EmsegEngineThread *t = emseg_engine_thread_new(project_path, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error(error);
  return t;
}

/* Pops for `us` microseconds; returns how many STEP events of job came. */
static guint
steps_within(EventLog *log, EmsegEngineThread *t, guint64 job, gint64 us)
{
  gint64 until = g_get_monotonic_time() + us;
  guint n = 0;
  for (gint64 left; (left = until - g_get_monotonic_time()) > 0;) {
    EmsegEngineEvent *ev = emseg_engine_thread_pop_event(t, left);
    if (!ev)
      break;
    n += ev->kind == EMSEG_ENGINE_EVENT_STEP && ev->job == job;
    g_ptr_array_add(log->events, ev);
  }
  return n;
}

static void
test_pause_resume_stop(void)
{
  Fake f = { .n_steps = 1000000, .sleep_us = 500 };
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 job = emseg_engine_thread_start(t, fake_job(&f));
  g_assert_cmpuint(job, >, 0);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STARTED, job);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STEP, job);

  emseg_engine_thread_pause(t);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_PAUSED, job);
  guint at_pause = atomic_load(&f.done);
  g_assert_cmpuint(steps_within(&log, t, job, 150000), ==, 0);
  g_assert_cmpuint(atomic_load(&f.done), ==, at_pause);

  emseg_engine_thread_resume(t);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_RESUMED, job);
  const EmsegEngineEvent *step = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STEP, job);
  g_assert_cmpuint(step->step, ==, at_pause + 1); /* continues where it paused */

  emseg_engine_thread_stop(t, job);
  guint before = log.events->len;
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, job);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  /* Nothing of the job after its stop but its FINISHED. */
  g_assert_cmpuint(log.events->len, ==, before + 1);
  g_assert_cmpuint(atomic_load(&f.done), <, f.n_steps);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

static void
test_stop_inside_step(void)
{
  Fake f = { .n_steps = 10, .wait_cancel_at = 3 };
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 job = emseg_engine_thread_start(t, fake_job(&f));
  const EmsegEngineEvent *s;
  do
    s = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STEP, job);
  while (s->step < 2);
  g_usleep(20000); /* let the job enter step 3, which never reaches a step boundary */
  gint64 t0 = g_get_monotonic_time();
  emseg_engine_thread_stop(t, job);
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, job);
  double latency = (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
  g_test_message("stop inside a step honoured after %.3f s", latency);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  g_assert_cmpfloat(latency, <, 5.0); /* the step alone would have waited 30 s */
  g_assert_cmpuint(atomic_load(&f.done), ==, 2);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

static void
test_jobs_in_order_and_queued_stop(void)
{
  Fake a = { .n_steps = 5, .sleep_us = 20000 }, b = { .n_steps = 3 }, c = { .n_steps = 3 };
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 ja = emseg_engine_thread_start(t, fake_job(&a));
  guint64 jb = emseg_engine_thread_start(t, fake_job(&b));
  guint64 jc = emseg_engine_thread_start(t, fake_job(&c));
  g_assert_cmpuint(ja, <, jb);
  emseg_engine_thread_stop(t, jb); /* queued behind a: must never run */
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jc);
  /* a ran to its end, then c; b only reported its cancellation. */
  gint64 fin_a = -1, start_c = -1;
  for (guint i = 0; i < log.events->len; i++) {
    const EmsegEngineEvent *ev = log.events->pdata[i];
    if (ev->kind == EMSEG_ENGINE_EVENT_FINISHED && ev->job == ja) {
      g_assert_cmpint(ev->status, ==, EMSEG_ENGINE_STATUS_FINISHED);
      fin_a = i;
    }
    if (ev->kind == EMSEG_ENGINE_EVENT_STARTED && ev->job == jc)
      start_c = i;
    if (ev->job == jb)
      g_assert_true(ev->kind == EMSEG_ENGINE_EVENT_FINISHED &&
                    ev->status == EMSEG_ENGINE_STATUS_CANCELLED);
  }
  g_assert_cmpint(fin_a, >=, 0);
  g_assert_cmpint(start_c, >, fin_a);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_STEP, ja), ==, 5);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_STEP, jc), ==, 3);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_FINISHED, jb), ==, 1);
  g_assert_cmpuint(atomic_load(&b.done), ==, 0);

  /* stop(0): the running job and everything queued. */
  Fake d = { .n_steps = 1000000, .sleep_us = 500 }, e = { .n_steps = 3 };
  guint64 jd = emseg_engine_thread_start(t, fake_job(&d));
  guint64 je = emseg_engine_thread_start(t, fake_job(&e));
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STEP, jd);
  emseg_engine_thread_stop(t, 0);
  const EmsegEngineEvent *fd = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jd);
  g_assert_cmpint(fd->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  const EmsegEngineEvent *fe = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, je);
  g_assert_cmpint(fe->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  g_assert_cmpuint(atomic_load(&e.done), ==, 0);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

static void
test_error_then_next_job(void)
{
  Fake bad = { .n_steps = 5, .fail_message = "slice 3 of 'vol' has no labels" };
  Fake good = { .n_steps = 2 };
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 jb = emseg_engine_thread_start(t, fake_job(&bad));
  guint64 jg = emseg_engine_thread_start(t, fake_job(&good));
  const EmsegEngineEvent *err = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_ERROR, jb);
  g_assert_cmpstr(err->message, ==, bad.fail_message);
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jb);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_FAILED);
  g_assert_cmpstr(fin->message, ==, bad.fail_message);
  fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jg);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_FINISHED);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

/* ---- main-context delivery -------------------------------------------------------- */

typedef struct {
  EmsegEngineThread *t;
  guint64 stop_job;   /* stop this job from the callback at its 5th step */
  gboolean stopped;
  guint steps, steps_after_stop, last_step, finished;
  EmsegEngineStatus status;
  GThread *owner;
} Delivery;

static void
on_event(const EmsegEngineEvent *ev, gpointer data)
{
  Delivery *d = data;
  g_assert_true(g_thread_self() == d->owner);
  if (ev->kind == EMSEG_ENGINE_EVENT_STEP) {
    d->steps++;
    d->last_step = ev->step;
    if (d->stopped && ev->job == d->stop_job)
      d->steps_after_stop++;
    if (ev->job == d->stop_job && ev->step >= 5 && !d->stopped) {
      emseg_engine_thread_stop(d->t, ev->job);
      d->stopped = TRUE;
    }
  }
  if (ev->kind == EMSEG_ENGINE_EVENT_FINISHED) {
    d->finished++;
    d->status = ev->status;
  }
}

static void
iterate_until_finished(GMainContext *ctx, Delivery *d)
{
  gint64 until = g_get_monotonic_time() + EVENT_DEADLINE_US;
  while (!d->finished) {
    g_assert_cmpint(g_get_monotonic_time(), <, until);
    g_main_context_iteration(ctx, TRUE);
  }
}

static void
test_context_coalesced(void)
{
  g_autoptr(GMainContext) ctx = g_main_context_new();
  g_main_context_push_thread_default(ctx);
  Delivery d = { .owner = g_thread_self() };
  g_autoptr(GError) error = NULL;
  d.t = emseg_engine_thread_new(project_path, ctx, on_event, &d, NULL, &error);
  g_assert_no_error(error);
  Fake burst = { .n_steps = 3000 };
  emseg_engine_thread_start(d.t, fake_job(&burst));
  iterate_until_finished(ctx, &d);
  guint dispatches = emseg_engine_thread_dispatch_count(d.t);
  g_test_message("3000 steps: %u delivered in %u dispatches", d.steps, dispatches);
  g_assert_cmpint(d.status, ==, EMSEG_ENGINE_STATUS_FINISHED);
  g_assert_cmpuint(d.last_step, ==, 3000); /* the newest loss always arrives */
  g_assert_cmpuint(d.steps, <, 3000);
  g_assert_cmpuint(dispatches, <, 3000);

  /* Stop from the callback: no step of the job is delivered after it. */
  Fake slow = { .n_steps = 100000, .sleep_us = 200 };
  d.finished = 0;
  d.stop_job = emseg_engine_thread_start(d.t, fake_job(&slow));
  iterate_until_finished(ctx, &d);
  g_assert_true(d.stopped);
  g_assert_cmpint(d.status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  g_assert_cmpuint(d.steps_after_stop, ==, 0);
  emseg_engine_thread_free(d.t);
  /* A dispatch scheduled before free runs as a no-op. */
  while (g_main_context_iteration(ctx, FALSE))
    ;
  g_main_context_pop_thread_default(ctx);
}

static void
test_bad_project(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename(scratch, "missing", "nothing.emseg", NULL);
  EmsegEngineThread *t = emseg_engine_thread_new(path, NULL, NULL, NULL, NULL, &error);
  g_assert_null(t);
  g_assert_nonnull(error);
  g_test_message("%s", error->message);
  g_assert_nonnull(strstr(error->message, "nothing.emseg"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_autoptr(GError) error = NULL;
  scratch = g_dir_make_tmp("emseg-engine-protocol-XXXXXX", &error);
  g_assert_no_error(error);
  gint64 stack_id;
  project_path = test_make_project(scratch, "proto", 2, 2, TEST_SIZE, &stack_id);
  g_test_add_func("/engine-thread/pause-resume-stop", test_pause_resume_stop);
  g_test_add_func("/engine-thread/stop-inside-step", test_stop_inside_step);
  g_test_add_func("/engine-thread/jobs-in-order-queued-stop", test_jobs_in_order_and_queued_stop);
  g_test_add_func("/engine-thread/error-then-next-job", test_error_then_next_job);
  g_test_add_func("/engine-thread/context-coalesced", test_context_coalesced);
  g_test_add_func("/engine-thread/bad-project", test_bad_project);
  int rc = g_test_run();
  /* Remove the scratch folder (project, WAL and SHM files). */
  GDir *dir = g_dir_open(scratch, 0, NULL);
  for (const char *name; dir && (name = g_dir_read_name(dir));) {
    g_autofree char *p = g_build_filename(scratch, name, NULL);
    g_unlink(p);
  }
  if (dir)
    g_dir_close(dir);
  g_rmdir(scratch);
  g_free(scratch);
  g_free(project_path);
  return rc;
}
