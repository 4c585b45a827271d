/* test-engine-train.c — the engine thread's real jobs on a tiny network and 32 px
 * synthetic slices: stop during validation, two training jobs in a row, an error event on
 * bad data (a slice without labels, an unknown checkpoint), a prediction asked for while
 * training (served from a consistent snapshot of the best weights), test-time augmentation,
 * fine-tuning on fresh
 * corrections, evaluation, and everything a run produced read back from a reopened
 * project. Suite enginethread. */
#include <string.h>

#include "emseg-gamma.h"
#include "engine-test-util.h"
#include "eng-modelfile.h"
#include "eng-preprocess.h"
#include "eng-train.h"

static char *scratch;
static char *project_path;
static gint64 stack_id;
/* Slices 0..N_LABELED-1 carry labels; the rest are unlabeled. */
#define N_SLICES 14
#define N_LABELED 12

static EmsegEngineThread *
new_thread(void)
{
  g_autoptr(GError) error = NULL;
  EmsegEngineThread *t = emseg_engine_thread_new(project_path, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error(error);
  return t;
}

static void
test_stop_during_validation(void)
{
  /* Larger slices than elsewhere, so that validation lasts long enough (tens of ms) for
   * a stop to land inside it. */
  gint64 big_stack;
  g_autofree char *big = test_make_project(scratch, "val", 12, 12, 128, &big_stack);
  g_autoptr(GError) error = NULL;
  EmsegEngineThread *t = emseg_engine_thread_new(big, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error(error);
  EventLog log;
  event_log_init(&log);
  /* One training step per epoch and many validation slices with V_rand / V_info: almost
   * all of an epoch is validation. */
  EmsegEngineJob *job = test_train_job(big_stack, 0, 1, 1, 11, 3, 5);
  job->training.metrics_every = 1;
  guint64 id = emseg_engine_thread_start(t, job);
  const EmsegEngineEvent *st = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STARTED, id);
  gint64 run_id = st->run_id;
  g_assert_cmpint(run_id, >, 0);
  const EmsegEngineEvent *step = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STEP, id);
  g_assert_cmpuint(step->n_steps, ==, 1);
  g_usleep(5000); /* past the step boundary, into validation */
  gint64 t0 = g_get_monotonic_time();
  emseg_engine_thread_stop(t, id);
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, id);
  g_test_message("stop during validation honoured after %.3f s",
                 (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_EPOCH, id), ==, 0);
  emseg_engine_thread_free(t);
  event_log_clear(&log);

  /* The store says so too, from another connection. */
  g_autoptr(EmsegProject) p = emseg_project_open(big, 0, &error);
  g_assert_no_error(error);
  g_autoptr(GArray) runs = emseg_project_list_runs(p, &error);
  g_assert_no_error(error);
  gboolean seen = FALSE;
  for (guint i = 0; i < runs->len; i++) {
    EmsegRun *r = &g_array_index(runs, EmsegRun, i);
    if (r->id == run_id) {
      g_assert_cmpstr(r->status, ==, "cancelled");
      seen = TRUE;
    }
  }
  g_assert_true(seen);
  g_autoptr(GArray) m = emseg_project_get_epoch_metrics(p, run_id, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(m->len, ==, 0);
}

static const EmsegEngineEvent *
find(const EventLog *log, EmsegEngineEventKind kind, guint64 job, guint nth)
{
  for (guint i = 0; i < log->events->len; i++) {
    const EmsegEngineEvent *ev = log->events->pdata[i];
    if (ev->kind == kind && ev->job == job && nth-- == 0)
      return ev;
  }
  return NULL;
}

/* Runs `train` to its end and returns its last CHECKPOINT event (borrowed from the log). */
static const EmsegEngineEvent *
train_to_checkpoint(EmsegEngineThread *t, EventLog *log, EmsegEngineJob *train)
{
  guint64 jt = emseg_engine_thread_start(t, train);
  event_log_wait(log, t, EMSEG_ENGINE_EVENT_FINISHED, jt);
  guint nc = event_log_count(log, EMSEG_ENGINE_EVENT_CHECKPOINT, jt);
  g_assert_cmpuint(nc, >=, 1);
  return find(log, EMSEG_ENGINE_EVENT_CHECKPOINT, jt, nc - 1);
}

/* Two training jobs queued in a row, then everything they wrote read back from a
 * reopened project, then a prediction (asked for after both) with the current model
 * read back too. */
static void
test_two_runs_persisted(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  const guint epochs = 3;
  guint64 ja = emseg_engine_thread_start(t, test_train_job(stack_id, 0, 3, 3, 2, epochs, 11));
  EmsegEngineJob *second = test_train_job(stack_id, 0, 3, 3, 2, epochs, 12);
  second->training.conv_bf16 = TRUE; /* recorded with the run's hyperparameters */
  second->training.border_w0 = 10.0f;
  guint64 jb = emseg_engine_thread_start(t, second);
  /* The prediction is asked for once both runs are done: one asked for during training
   * is served at once from the running job's best weights (see predict-during-training),
   * and this test wants the second run's final best. */
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, ja);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jb);
  /* unlabeled slices: predictions need no labels */
  EmsegEngineJob *pj = test_predict_job(stack_id, N_LABELED, 2, NULL);
  guint64 jp = emseg_engine_thread_start(t, pj);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jp);
  emseg_engine_thread_free(t);

  const EmsegEngineEvent *fa = find(&log, EMSEG_ENGINE_EVENT_FINISHED, ja, 0);
  const EmsegEngineEvent *sb = find(&log, EMSEG_ENGINE_EVENT_STARTED, jb, 0);
  g_assert_nonnull(fa);
  g_assert_nonnull(sb);
  g_assert_cmpint(fa->status, ==, EMSEG_ENGINE_STATUS_FINISHED);
  g_assert_cmpint(sb->run_id, >, fa->run_id);
  guint ia = 0, ib = 0;
  g_assert_true(g_ptr_array_find(log.events, fa, &ia));
  g_assert_true(g_ptr_array_find(log.events, sb, &ib));
  g_assert_cmpuint(ia, <, ib); /* one after the other */

  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
  g_assert_no_error(error);
  guint64 jobs[2] = { ja, jb };
  gint64 last_ckpt = 0;
  for (guint j = 0; j < 2; j++) {
    const EmsegEngineEvent *st = find(&log, EMSEG_ENGINE_EVENT_STARTED, jobs[j], 0);
    g_autoptr(GArray) runs = emseg_project_list_runs(p, &error);
    g_assert_no_error(error);
    const EmsegRun *run = NULL;
    for (guint i = 0; i < runs->len; i++)
      if (g_array_index(runs, EmsegRun, i).id == st->run_id)
        run = &g_array_index(runs, EmsegRun, i);
    g_assert_nonnull(run);
    g_assert_cmpstr(run->status, ==, "finished");
    g_assert_cmpuint(run->seed, ==, 11 + j);
    g_autofree char *seed_line = g_strdup_printf("seed=%u\n", 11 + j);
    g_assert_nonnull(strstr(run->params, seed_line));
    g_assert_nonnull(strstr(run->params, "spec="));
    g_assert_nonnull(strstr(run->params, "lr=0.001"));
    g_assert_nonnull(strstr(run->params, j ? "conv_bf16=1\n" : "conv_bf16=0\n"));
    g_assert_nonnull(strstr(run->params, j ? "border_w0=10\nborder_sigma=5\n"
                                           : "border_w0=0\nborder_sigma=5\n"));
    g_assert_nonnull(strstr(run->params, "train_slices=0,1,2\n"));
    g_assert_nonnull(strstr(run->params, "val_slices=3,4\n"));

    /* Curves: the stored rows are the posted figures, epoch by epoch. */
    g_autoptr(GArray) m = emseg_project_get_epoch_metrics(p, st->run_id, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(m->len, ==, epochs);
    for (guint e = 0; e < epochs; e++) {
      const EmsegEngineEvent *ev = find(&log, EMSEG_ENGINE_EVENT_EPOCH, jobs[j], e);
      const EmsegEpochMetrics *row = &g_array_index(m, EmsegEpochMetrics, e);
      g_assert_nonnull(ev);
      g_assert_cmpuint(row->epoch, ==, e + 1);
      g_assert_cmpfloat(row->train_loss, ==, ev->metrics.train_loss);
      g_assert_cmpfloat(row->val_loss, ==, ev->metrics.val_loss);
      g_assert_cmpfloat(row->val_accuracy, ==, ev->metrics.val_accuracy);
      g_assert_true(isfinite(row->val_loss));
    }
    /* Heatmap: n_layers per epoch, same values. */
    g_autoptr(GArray) ls = emseg_project_get_layer_stats(p, st->run_id, &error);
    g_assert_no_error(error);
    const EmsegEngineEvent *l0 = find(&log, EMSEG_ENGINE_EVENT_LAYER_STATS, jobs[j], 0);
    g_assert_nonnull(l0);
    g_assert_cmpuint(l0->n_layers, >, 2);
    g_assert_cmpuint(ls->len, ==, epochs * l0->n_layers);
    for (guint k = 0; k < l0->n_layers; k++) {
      const EmsegLayerStat *s = &g_array_index(ls, EmsegLayerStat, k);
      g_assert_cmpstr(s->layer, ==, l0->layer_names[k]);
      g_assert_cmpfloat(s->mean_abs_update, ==, l0->mean_abs_update[k]);
      g_assert_cmpfloat(s->mean_abs_weight, ==, l0->mean_abs_weight[k]);
    }
    /* The best checkpoint: the last CHECKPOINT event's row, with its scores. */
    guint nc = event_log_count(&log, EMSEG_ENGINE_EVENT_CHECKPOINT, jobs[j]);
    g_assert_cmpuint(nc, >=, 1);
    const EmsegEngineEvent *ck = find(&log, EMSEG_ENGINE_EVENT_CHECKPOINT, jobs[j], nc - 1);
    g_auto(EmsegCheckpointInfo) info = { 0 };
    g_autoptr(GBytes) w = emseg_project_load_checkpoint(p, ck->model_name, &info, &error);
    g_assert_no_error(error);
    g_assert_cmpint(info.id, ==, ck->model_id);
    g_assert_cmpint(info.run_id, ==, st->run_id);
    g_assert_cmpstr(info.scores, ==, ck->scores);
    /* fully labelled validation slices: the export exponent chosen with the checkpoint */
    g_assert_nonnull(strstr(info.scores, "export_gamma="));
    g_assert_cmpfloat(emseg_gamma_from_meta(info.scores), >=, 1.0);
    g_assert_cmpfloat(ck->export_gamma, ==, emseg_gamma_from_meta(info.scores));
    last_ckpt = ck->model_id;
  }

  /* The prediction job used the current model (the second run's best) and stored it. */
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp), ==, 2);
  const EmsegEngineEvent *pe = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, 1);
  g_assert_cmpint(pe->model_id, ==, last_ckpt);
  g_assert_cmpuint(pe->slice, ==, N_LABELED + 1);
  g_autofree float *stored = g_new(float, TEST_SIZE * TEST_SIZE);
  emseg_project_read_prediction(p, pe->model_id, stack_id, pe->slice, stored, &error);
  g_assert_no_error(error);
  double lo = 1, hi = 0;
  for (guint i = 0; i < TEST_SIZE * TEST_SIZE; i++) {
    g_assert_cmpfloat_with_epsilon(stored[i], pe->prob[i], 1.0 / 65535 + 1e-6);
    lo = MIN(lo, pe->prob[i]);
    hi = MAX(hi, pe->prob[i]);
  }
  g_assert_cmpfloat(hi, >, lo); /* a real map, not a constant */
  event_log_clear(&log);
}

static void
test_bad_data(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  /* Slice N_LABELED has no labeled pixel. */
  guint64 j1 = emseg_engine_thread_start(t, test_train_job(stack_id, N_LABELED, 1, 0, 1, 1, 1));
  EmsegEngineJob *pj = emseg_engine_job_new(EMSEG_ENGINE_JOB_PREDICT);
  pj->stack_id = stack_id;
  pj->model = g_strdup("no-such-checkpoint");
  guint64 j2 = emseg_engine_thread_start(t, pj);
  EmsegEngineJob *sj = test_train_job(stack_id, 0, 1, 0, 0, 1, 1);
  sj->stack_id = 999;
  guint64 j3 = emseg_engine_thread_start(t, sj);
  EmsegEngineJob *wj = test_train_job(stack_id, 0, 1, 0, 0, 1, 1);
  wj->training.swa_from = 1; /* weight averaging has no place in the store: refused */
  guint64 j4 = emseg_engine_thread_start(t, wj);
  guint64 jobs[] = { j1, j2, j3, j4 };
  const char *expect[] = { "slice 12", "no-such-checkpoint", "999", "emseg train` only" };
  for (guint i = 0; i < G_N_ELEMENTS(jobs); i++) {
    const EmsegEngineEvent *err = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_ERROR, jobs[i]);
    g_test_message("job %u: %s", i, err->message);
    g_assert_nonnull(strstr(err->message, expect[i]));
    const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jobs[i]);
    g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_FAILED);
  }
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

/* Predicts with the checkpoint named by ev on our own connection and compares. */
static void
check_against_checkpoint(EmsegProject *p, const EmsegEngineEvent *pe, const char *name,
                         gboolean tta, gboolean bf16)
{
  g_autoptr(GError) error = NULL;
  g_auto(EmsegCheckpointInfo) info = { 0 };
  g_autoptr(GBytes) w = emseg_project_load_checkpoint(p, name, &info, &error);
  g_assert_no_error(error);
  if (info.id != pe->model_id) {
    g_test_message("checkpoint replaced since the prediction; weights no longer stored");
    return;
  }
  EngModel *m = NULL;
  EngError err;
  gsize len;
  const guint8 *data = g_bytes_get_data(w, &len);
  g_assert_cmpint(eng_model_deserialize(data, len, &m, NULL, &err), ==, ENG_OK);
  eng_model_set_conv_bf16(m, bf16);
  EngGraph *g = eng_graph_new(m, 1, TEST_SIZE, TEST_SIZE, 0, &err);
  g_assert_nonnull(g);
  g_autofree float *img = g_new(float, TEST_SIZE * TEST_SIZE);
  g_autofree float *prob = g_new(float, TEST_SIZE * TEST_SIZE);
  emseg_project_read_slice_float(p, stack_id, pe->slice, img, &error);
  g_assert_no_error(error);
  g_assert_cmpint(eng_standardize(img, img, ENG_PIXEL_F32, TEST_SIZE, TEST_SIZE, NULL, &err),
                  ==, ENG_OK);
  g_assert_cmpint(tta ? eng_predict_tta(g, img, ENG_MODE_INFER, 1, 0, prob, NULL, &err)
                      : eng_predict(g, img, ENG_MODE_INFER, 1, 0, prob, NULL, &err),
                  ==, ENG_OK);
  for (guint i = 0; i < TEST_SIZE * TEST_SIZE; i++)
    g_assert_cmpfloat_with_epsilon(prob[i], pe->prob[i], 1e-5);
  eng_graph_free(g);
  eng_model_free(m);
}

static void
test_predict_during_training(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 jt = emseg_engine_thread_start(t, test_train_job(stack_id, 0, 4, 4, 2, 8, 21));
  const EmsegEngineEvent *ck = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_CHECKPOINT, jt);
  g_autofree char *ck_name = g_strdup(ck->model_name);
  EmsegEngineJob *pj = test_predict_job(stack_id, 5, 3, NULL);
  guint64 jp = emseg_engine_thread_start(t, pj);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jp);
  /* Served while the training still ran, one slice per step, all from one snapshot. */
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_FINISHED, jt), ==, 0);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp), ==, 3);
  const EmsegEngineEvent *p0 = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, 0);
  for (guint i = 1; i < 3; i++)
    g_assert_cmpint(find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, i)->model_id, ==,
                    p0->model_id);
  g_assert_cmpint(p0->model_id, >, 0);
  /* Steps of the training job came between the predictions. */
  guint i0 = 0, i2 = 0;
  g_assert_true(g_ptr_array_find(log.events, p0, &i0));
  g_assert_true(g_ptr_array_find(log.events, find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, 2), &i2));
  guint steps_between = 0;
  for (guint i = i0; i < i2; i++) {
    const EmsegEngineEvent *ev = log.events->pdata[i];
    steps_between += ev->kind == EMSEG_ENGINE_EVENT_STEP && ev->job == jt;
  }
  g_assert_cmpuint(steps_between, >=, 2);
  emseg_engine_thread_stop(t, jt);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jt);
  emseg_engine_thread_free(t);

  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
  g_assert_no_error(error);
  for (guint i = 0; i < 3; i++)
    check_against_checkpoint(p, find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, i), ck_name,
                             FALSE, FALSE);
  event_log_clear(&log);
}

/* A snapshot prediction that takes long (endless MC passes) is served between two training
 * steps: it reports progress, and a stop of it ends the slice in work — the training goes on
 * and its own stop is untouched. */
static void
test_stop_preview_mid_slice(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  EmsegEngineJob *train = test_train_job(stack_id, 0, 4, 4, 2, 100000, 23);
  train->training.dropout = 0.2f;
  guint64 jt = emseg_engine_thread_start(t, train);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_CHECKPOINT, jt);
  EmsegEngineJob *pj = test_predict_job(stack_id, 5, 1, NULL);
  pj->mc_samples = 1000000;
  guint64 jp = emseg_engine_thread_start(t, pj);
  const EmsegEngineEvent *progress = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_PROGRESS, jp);
  g_assert_cmpfloat(progress->fraction, <, 1.0);
  emseg_engine_thread_stop(t, jp);
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jp);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp), ==, 0);
  guint steps = event_log_count(&log, EMSEG_ENGINE_EVENT_STEP, jt);
  /* the training steps on after it */
  while (event_log_count(&log, EMSEG_ENGINE_EVENT_STEP, jt) < steps + 3)
    event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STEP, jt);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_FINISHED, jt), ==, 0);
  emseg_engine_thread_stop(t, jt);
  const EmsegEngineEvent *tfin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jt);
  g_assert_cmpint(tfin->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

/* A custom job that holds the thread until released, so the jobs started meanwhile queue
 * up behind it (as when several commands arrive before the thread wakes). */
static gboolean
gate_run(EmsegEngineJobContext *ctx, gpointer data, GError **error)
{
  atomic_int *open = data;
  while (!atomic_load(open)) {
    if (!emseg_engine_job_between_steps(ctx)) {
      g_set_error_literal(error, EMSEG_ENGINE_ERROR, EMSEG_ENGINE_ERROR_CANCELLED, "stopped");
      return FALSE;
    }
    g_usleep(1000);
  }
  return TRUE;
}

/* A snapshot prediction (no model named) queued behind a training job before that job began
 * is still served during the run, from its weights — not after the whole run, which is what
 * left the workbench's overlay empty during a fine-tune when both requests came at once. */
static void
test_predict_queued_behind_training(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  atomic_int open = 0;
  EmsegEngineJob *gate = emseg_engine_job_new(EMSEG_ENGINE_JOB_CUSTOM);
  gate->custom = gate_run;
  gate->custom_data = &open;
  guint64 jg = emseg_engine_thread_start(t, gate);
  guint64 jt = emseg_engine_thread_start(t, test_train_job(stack_id, 0, 4, 4, 2, 30, 23));
  EmsegEngineJob *pj = test_predict_job(stack_id, 5, 1, NULL);
  guint64 jp = emseg_engine_thread_start(t, pj);
  g_usleep(20000); /* both queued behind the gate */
  atomic_store(&open, 1);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jp);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_FINISHED, jg), ==, 1);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_FINISHED, jt), ==, 0);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp), ==, 1);
  g_assert_cmpint(find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, 0)->model_id, >, 0);
  emseg_engine_thread_stop(t, jt);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jt);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

/* A prediction job with test-time augmentation (the export's option) returns the average
 * over flips and turns of the named checkpoint, eng_predict_tta's values, not the plain map;
 * an MC-dropout job's spread is stored as the slice's uncertainty; a long one reports its
 * progress and stops on request. */
static void
test_predict_tta(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  EmsegEngineJob *train = test_train_job(stack_id, 0, 3, 3, 2, 2, 31);
  train->training.dropout = 0.2f; /* for the MC job below */
  g_autofree char *ck_name = g_strdup(train_to_checkpoint(t, &log, train)->model_name);
  guint64 jobs[4];
  for (guint k = 0; k < 4; k++) {
    EmsegEngineJob *pj = test_predict_job(stack_id, N_LABELED, 1, ck_name);
    pj->tta = k == 1;
    pj->predict_bf16 = k == 2;
    pj->mc_samples = k == 3 ? 4 : 1;
    jobs[k] = emseg_engine_thread_start(t, pj);
    event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jobs[k]);
  }
  /* A slice that takes long reports how far it is (here endless MC passes, stopped after
   * the first report): the slice, and a fraction of its passes strictly between 0 and 1. */
  EmsegEngineJob *lj = test_predict_job(stack_id, N_LABELED, 1, ck_name);
  lj->mc_samples = 1000000;
  guint64 jl = emseg_engine_thread_start(t, lj);
  const EmsegEngineEvent *progress = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_PROGRESS, jl);
  g_assert_cmpuint(progress->slice, ==, N_LABELED);
  g_assert_cmpint(progress->stack_id, ==, stack_id);
  g_assert_cmpfloat(progress->fraction, >, 0.0);
  g_assert_cmpfloat(progress->fraction, <, 1.0);
  emseg_engine_thread_stop(t, jl);
  const EmsegEngineEvent *stopped = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jl);
  g_assert_cmpint(stopped->status, ==, EMSEG_ENGINE_STATUS_CANCELLED);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_PREDICTION, jl), ==, 0);
  emseg_engine_thread_free(t);

  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
  g_assert_no_error(error);
  const EmsegEngineEvent *plain = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jobs[0], 0);
  const EmsegEngineEvent *tta = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jobs[1], 0);
  const EmsegEngineEvent *bf16 = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jobs[2], 0);
  g_assert_nonnull(plain);
  g_assert_nonnull(tta);
  g_assert_nonnull(bf16);
  check_against_checkpoint(p, plain, ck_name, FALSE, FALSE);
  check_against_checkpoint(p, tta, ck_name, TRUE, FALSE);
  check_against_checkpoint(p, bf16, ck_name, FALSE, TRUE);
  double diff = 0;
  for (guint i = 0; i < TEST_SIZE * TEST_SIZE; i++)
    diff += fabs(plain->prob[i] - tta->prob[i]);
  g_assert_cmpfloat(diff / (TEST_SIZE * TEST_SIZE), >, 1e-5);
  g_assert_null(tta->std); /* one pass per transform: no MC spread to report */
  /* the MC job's spread is kept as the slice's uncertainty, with its number of passes */
  const EmsegEngineEvent *mc = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jobs[3], 0);
  g_assert_nonnull(mc);
  g_assert_nonnull(mc->std);
  g_autofree float *stored_std = g_new(float, TEST_SIZE * TEST_SIZE);
  int samples = 0;
  g_assert_true(emseg_project_read_uncertainty(p, mc->model_id, stack_id, N_LABELED, stored_std,
                                               &samples, &error));
  g_assert_no_error(error);
  g_assert_cmpint(samples, ==, 4);
  double std_diff = 0, std_max = 0;
  for (guint i = 0; i < TEST_SIZE * TEST_SIZE; i++) {
    std_diff = fmax(std_diff, fabs(stored_std[i] - mc->std[i]));
    std_max = fmax(std_max, mc->std[i]);
  }
  g_assert_cmpfloat(std_max, >, 0); /* dropout: the passes differ */
  g_assert_cmpfloat(std_diff, <=, 1.0 / 65535);
  /* the project keeps the plain prediction (16-bit quantized) the overlay shows: the TTA,
   * bfloat16 and MC jobs that ran after it did not replace it */
  g_autofree float *stored = g_new(float, TEST_SIZE * TEST_SIZE);
  g_assert_true(emseg_project_read_prediction(p, plain->model_id, stack_id, N_LABELED, stored,
                                              &error));
  double to_plain = 0, tta_max = 0, bf16_max = 0;
  for (guint i = 0; i < TEST_SIZE * TEST_SIZE; i++) {
    to_plain = fmax(to_plain, fabs(stored[i] - plain->prob[i]));
    tta_max = fmax(tta_max, fabs(tta->prob[i] - plain->prob[i]));
    bf16_max = fmax(bf16_max, fabs(bf16->prob[i] - plain->prob[i]));
  }
  g_test_message("stored vs plain: max %.2g; TTA vs plain: max %.2g; bfloat16 vs plain: max "
                 "%.2g", to_plain, tta_max, bf16_max);
  g_assert_cmpfloat(bf16_max, <, 0.02);
  g_assert_cmpfloat(tta_max, >, 1e-3);
  g_assert_cmpfloat(to_plain, <=, 1.0 / 65535);
  event_log_clear(&log);
}

/* Slices above the prediction window's area (EMSEG_PREDICT_WINDOW=16 makes the 32² test
 * slices "big"): the run trains on 16² crops and validates on 16² windows, its record
 * says crop=16, it scores every epoch and checkpoints; a prediction of a whole slice comes
 * back in windows, every pixel a probability. */
static void
test_big_slices(void)
{
  g_setenv("EMSEG_PREDICT_WINDOW", "16", TRUE);
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 jt = emseg_engine_thread_start(t, test_train_job(stack_id, 0, 3, 3, 2, 2, 41));
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jt);
  EmsegEngineJob *pj = test_predict_job(stack_id, N_LABELED, 1, NULL);
  guint64 jp = emseg_engine_thread_start(t, pj);
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jp);
  emseg_engine_thread_free(t);
  g_unsetenv("EMSEG_PREDICT_WINDOW");

  g_assert_cmpint(find(&log, EMSEG_ENGINE_EVENT_FINISHED, jt, 0)->status, ==,
                  EMSEG_ENGINE_STATUS_FINISHED);
  g_assert_cmpuint(event_log_count(&log, EMSEG_ENGINE_EVENT_CHECKPOINT, jt), >=, 1);
  const EmsegEngineEvent *ep = find(&log, EMSEG_ENGINE_EVENT_EPOCH, jt, 0);
  g_assert_nonnull(ep);
  g_assert_true(isfinite(ep->metrics.val_loss));
  const EmsegEngineEvent *st = find(&log, EMSEG_ENGINE_EVENT_STARTED, jt, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
  g_assert_no_error(error);
  g_autoptr(GArray) runs = emseg_project_list_runs(p, &error);
  g_assert_no_error(error);
  gboolean found = FALSE;
  for (guint i = 0; i < runs->len; i++) {
    const EmsegRun *run = &g_array_index(runs, EmsegRun, i);
    if (run->id == st->run_id) {
      g_assert_nonnull(strstr(run->params, "crop=16\n"));
      found = TRUE;
    }
  }
  g_assert_true(found);
  const EmsegEngineEvent *pr = find(&log, EMSEG_ENGINE_EVENT_PREDICTION, jp, 0);
  g_assert_nonnull(pr);
  g_assert_cmpuint(pr->width, ==, TEST_SIZE);
  for (guint i = 0; i < TEST_SIZE * TEST_SIZE; i++)
    g_assert_true(pr->prob[i] >= 0.0f && pr->prob[i] <= 1.0f);
  event_log_clear(&log);
}

static void
test_fine_tune_on_corrections_and_evaluate(void)
{
  g_autoptr(GError) error = NULL;
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  guint64 jt = emseg_engine_thread_start(t, test_train_job(stack_id, 0, 2, 2, 1, 1, 31));
  const EmsegEngineEvent *ck = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_CHECKPOINT, jt);
  g_autofree char *base = g_strdup(ck->model_name);
  gint64 base_id = ck->model_id;
  event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jt);

  /* A correction on a slice that had no labels, through the GUI's own connection. */
  {
    g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
    g_assert_no_error(error);
    const float xy[] = { 4, 4, 28, 28 };
    emseg_project_apply_stroke(p, stack_id, N_LABELED, EMSEG_LABEL_MEMBRANE, 2, xy, 2, NULL,
                               &error);
    g_assert_no_error(error);
  }
  EmsegEngineJob *fj = emseg_engine_job_new(EMSEG_ENGINE_JOB_FINE_TUNE);
  fj->stack_id = stack_id;
  fj->model = g_strdup(base);
  fj->val_slices = test_slices(0, 1);
  fj->n_val = 1;
  fj->training.epochs = 1;
  fj->training.augment = FALSE;
  fj->training.metrics_every = 0;
  guint64 jf = emseg_engine_thread_start(t, fj);
  const EmsegEngineEvent *st = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_STARTED, jf);
  gint64 run_id = st->run_id;
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jf);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_FINISHED);

  EmsegEngineJob *ej = emseg_engine_job_new(EMSEG_ENGINE_JOB_EVALUATE);
  ej->stack_id = stack_id;
  ej->slices = test_slices(0, 3);
  ej->n_slices = 3;
  guint64 je = emseg_engine_thread_start(t, ej);
  const EmsegEngineEvent *ev = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_EVALUATION, je);
  g_test_message("evaluation: V_rand %.4f V_info %.4f accuracy %.4f", ev->vrand, ev->vinfo,
                 ev->pixel_accuracy);
  g_assert_cmpuint(ev->n_slices, ==, 3);
  g_assert_true(ev->vrand >= 0 && ev->vrand <= 1);
  g_assert_true(ev->vinfo >= 0 && ev->vinfo <= 1);
  g_assert_true(ev->pixel_accuracy > 0 && ev->pixel_accuracy <= 1);

  /* A fine-tune with no validation slices cannot choose an export exponent: its checkpoint
   * keeps the starting model's (here 3), not none (an export would write P(cell)^1). */
  {
    g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
    g_auto(EmsegCheckpointInfo) info = { 0 };
    g_autoptr(GBytes) bytes = emseg_project_load_checkpoint(p, base, &info, &error);
    g_assert_no_error(error);
    gsize len = 0;
    const void *data = g_bytes_get_data(bytes, &len);
    g_assert_true(emseg_project_save_checkpoint(p, "with-gamma", 0, 0, info.spec,
                                                "export_gamma=3\n", data, len, NULL, &error));
    g_assert_no_error(error);
  }
  EmsegEngineJob *gj = emseg_engine_job_new(EMSEG_ENGINE_JOB_FINE_TUNE);
  gj->stack_id = stack_id;
  gj->model = g_strdup("with-gamma");
  gj->training.epochs = 1;
  gj->training.augment = FALSE;
  gj->training.metrics_every = 0;
  guint64 jg = emseg_engine_thread_start(t, gj);
  const EmsegEngineEvent *gck = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_CHECKPOINT, jg);
  g_assert_cmpfloat(gck->export_gamma, ==, 3.0);
  g_autofree char *tuned = g_strdup(gck->model_name);
  fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jg);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_FINISHED);
  {
    g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
    g_auto(EmsegCheckpointInfo) info = { 0 };
    g_autoptr(GBytes) bytes = emseg_project_load_checkpoint(p, tuned, &info, &error);
    g_assert_no_error(error);
    g_assert_cmpfloat(emseg_gamma_from_meta(info.scores), ==, 3.0);
  }
  emseg_engine_thread_free(t);

  g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
  g_autoptr(GArray) runs = emseg_project_list_runs(p, &error);
  g_assert_no_error(error);
  const EmsegRun *run = NULL;
  for (guint i = 0; i < runs->len; i++)
    if (g_array_index(runs, EmsegRun, i).id == run_id)
      run = &g_array_index(runs, EmsegRun, i);
  g_assert_nonnull(run);
  g_assert_cmpint(run->parent_model_id, ==, base_id);
  g_assert_nonnull(strstr(run->params, "job=fine-tune\n"));
  /* Every labeled slice but the validation one, the fresh correction included. */
  g_assert_nonnull(strstr(run->params, "train_slices=1,2,3,4,5,6,7,8,9,10,11,12\n"));
  event_log_clear(&log);
}

/* The prediction of slice N_LABELED by a PREDICT job naming checkpoint `name`, copied
 * (TEST_SIZE² floats); *model_id: the checkpoint row it came from. */
static float *
predict_named(EmsegEngineThread *t, EventLog *log, const char *name, gint64 *model_id)
{
  guint64 j = emseg_engine_thread_start(t, test_predict_job(stack_id, N_LABELED, 1, name));
  const EmsegEngineEvent *ev = event_log_wait(log, t, EMSEG_ENGINE_EVENT_PREDICTION, j);
  *model_id = ev->model_id;
  float *prob = g_memdup2(ev->prob, (gsize) TEST_SIZE * TEST_SIZE * sizeof(float));
  g_assert_cmpint(event_log_wait(log, t, EMSEG_ENGINE_EVENT_FINISHED, j)->status, ==,
                  EMSEG_ENGINE_STATUS_FINISHED);
  return prob;
}

/* The thread keeps the checkpoint a job named for the next job naming it: the second
 * prediction is the first's, bit for bit. A checkpoint saved again under that name (other
 * weights, a new id) is loaded again, not served from the kept copy; a deleted one is an
 * error, not the kept copy either. */
static void
test_named_checkpoint_kept(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  g_autofree char *name = g_strdup(
      train_to_checkpoint(t, &log, test_train_job(stack_id, 0, 3, 3, 2, 2, 43))->model_name);
  gint64 id1 = 0, id2 = 0, id3 = 0;
  g_autofree float *p1 = predict_named(t, &log, name, &id1);
  g_autofree float *p2 = predict_named(t, &log, name, &id2);
  g_assert_cmpint(id2, ==, id1);
  g_assert_cmpmem(p1, TEST_SIZE * TEST_SIZE * sizeof(float), p2,
                  TEST_SIZE * TEST_SIZE * sizeof(float));

  /* the same name, other weights: the classifier's bias raised by 3 */
  g_autoptr(GError) error = NULL;
  {
    g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
    g_auto(EmsegCheckpointInfo) info = { 0 };
    g_autoptr(GBytes) bytes = emseg_project_load_checkpoint(p, name, &info, &error);
    g_assert_no_error(error);
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(bytes, &len);
    EngModel *m = NULL;
    EngError err;
    g_assert_cmpint(eng_model_deserialize(data, len, &m, NULL, &err), ==, ENG_OK);
    float *w = eng_model_params_arena(m, NULL);
    const EngParam *last = eng_model_param(m, eng_model_n_params(m) - 1);
    g_assert_cmpint(last->kind, ==, ENG_PARAM_CONV_BIAS);
    w[last->offset] += 3.0f;
    uint8_t *out = NULL;
    size_t out_len = 0;
    g_assert_cmpint(eng_model_serialize(m, ENG_DTYPE_F32, NULL, &out, &out_len, &err), ==, ENG_OK);
    g_assert_true(emseg_project_save_checkpoint(p, name, 0, 0, info.spec, info.scores, out,
                                                out_len, NULL, &error));
    g_assert_no_error(error);
    free(out);
    eng_model_free(m);
  }
  g_autofree float *p3 = predict_named(t, &log, name, &id3);
  g_assert_cmpint(id3, !=, id1);
  for (gsize i = 0; i < (gsize) TEST_SIZE * TEST_SIZE; i++)
    g_assert_cmpfloat(p3[i], <, p1[i]); /* the logit is membrane: P(cell) lower everywhere */

  {
    g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
    g_assert_true(emseg_project_delete_checkpoint(p, name, NULL, &error));
    g_assert_no_error(error);
  }
  guint64 jd = emseg_engine_thread_start(t, test_predict_job(stack_id, N_LABELED, 1, name));
  const EmsegEngineEvent *gone = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_ERROR, jd);
  g_assert_nonnull(strstr(gone->message, name));
  g_assert_cmpint(event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jd)->status, ==,
                  EMSEG_ENGINE_STATUS_FAILED);
  emseg_engine_thread_free(t);
  event_log_clear(&log);
}

/* BN adaptation: a checkpoint's copy with its BN statistics recomputed over the stack's
 * images (no labels) is stored under the job's name with the starting model's exponent and
 * where it came from; its weights are the starting model's and its statistics are what
 * eng_model_calibrate_bn gives over every standardized slice; the starting checkpoint is
 * left as it was. Without a name the job fails with a message and stores nothing. */
static void
test_adapt_bn(void)
{
  EmsegEngineThread *t = new_thread();
  EventLog log;
  event_log_init(&log);
  const EmsegEngineEvent *start =
      train_to_checkpoint(t, &log, test_train_job(stack_id, 0, 3, 3, 2, 2, 41));
  g_autofree char *ck_name = g_strdup(start->model_name);
  double start_gamma = emseg_gamma_from_meta(start->scores);

  EmsegEngineJob *aj = emseg_engine_job_new(EMSEG_ENGINE_JOB_ADAPT_BN);
  aj->name = g_strdup("adapted");
  aj->model = g_strdup(ck_name);
  aj->stack_id = stack_id;
  guint64 ja = emseg_engine_thread_start(t, aj);
  const EmsegEngineEvent *ck = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_CHECKPOINT, ja);
  g_assert_cmpstr(ck->model_name, ==, "adapted");
  g_assert_cmpuint(ck->n_slices, ==, N_SLICES);
  g_autofree char *from = g_strdup_printf("adapted_from=%s\n", ck_name);
  g_assert_nonnull(strstr(ck->scores, from));
  g_assert_nonnull(strstr(ck->scores, "adapted_tiles=14\n"));
  g_assert_cmpfloat(emseg_gamma_from_meta(ck->scores), ==, start_gamma);
  const EmsegEngineEvent *fin = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, ja);
  g_assert_cmpint(fin->status, ==, EMSEG_ENGINE_STATUS_FINISHED);

  EmsegEngineJob *bad = emseg_engine_job_new(EMSEG_ENGINE_JOB_ADAPT_BN);
  bad->model = g_strdup(ck_name);
  bad->stack_id = stack_id;
  guint64 jb = emseg_engine_thread_start(t, bad);
  const EmsegEngineEvent *err_ev = event_log_wait(&log, t, EMSEG_ENGINE_EVENT_ERROR, jb);
  g_assert_nonnull(strstr(err_ev->message, "needs a name"));
  g_assert_cmpint(event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, jb)->status, ==,
                  EMSEG_ENGINE_STATUS_FAILED);
  emseg_engine_thread_free(t);

  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
  g_assert_no_error(error);
  EngModel *models[2] = { NULL, NULL };
  const char *names[2] = { ck_name, "adapted" };
  for (guint k = 0; k < 2; k++) {
    g_auto(EmsegCheckpointInfo) info = { 0 };
    g_autoptr(GBytes) w = emseg_project_load_checkpoint(p, names[k], &info, &error);
    g_assert_no_error(error);
    gsize len;
    const guint8 *data = g_bytes_get_data(w, &len);
    EngError err;
    g_assert_cmpint(eng_model_deserialize(data, len, &models[k], NULL, &err), ==, ENG_OK);
  }
  /* the starting model recalibrated here, by hand, over every slice */
  EngError err;
  EngGraph *g = eng_graph_new(models[0], 1, TEST_SIZE, TEST_SIZE, 0, &err);
  g_autofree float *x = g_new(float, (gsize) N_SLICES * TEST_SIZE * TEST_SIZE);
  const float *planes[N_SLICES];
  for (guint i = 0; i < N_SLICES; i++) {
    float *img = x + (gsize) i * TEST_SIZE * TEST_SIZE;
    emseg_project_read_slice_float(p, stack_id, i, img, &error);
    g_assert_no_error(error);
    g_assert_cmpint(eng_standardize(img, img, ENG_PIXEL_F32, TEST_SIZE, TEST_SIZE, NULL, &err),
                    ==, ENG_OK);
    planes[i] = img;
  }
  size_t total;
  const float *before = eng_model_params_arena(models[0], &total);
  g_autofree float *start_params = g_memdup2(before, total * sizeof(float));
  g_assert_cmpint(eng_model_calibrate_bn(models[0], g, planes, N_SLICES, &err), ==, ENG_OK);
  eng_graph_free(g);
  const float *want = eng_model_params_arena(models[0], NULL);
  const float *got = eng_model_params_arena(models[1], NULL);
  guint moved = 0, n_stats = 0;
  for (size_t k = 0; k < eng_model_n_params(models[1]); k++) {
    const EngParam *par = eng_model_param(models[1], k);
    gboolean stat = par->kind == ENG_PARAM_BN_MEAN || par->kind == ENG_PARAM_BN_VAR;
    for (size_t j = par->offset; j < par->offset + par->count; j++) {
      if (!stat) {
        g_assert_cmpfloat(got[j], ==, start_params[j]); /* weights untouched */
        continue;
      }
      g_assert_cmpfloat_with_epsilon(got[j], want[j], 1e-5 * (1 + fabs(want[j])));
      moved += got[j] != start_params[j];
      n_stats++;
    }
  }
  g_assert_cmpuint(n_stats, >, 0);
  g_assert_cmpuint(moved, >, n_stats / 2); /* the statistics really changed */
  eng_model_free(models[0]);
  eng_model_free(models[1]);
  event_log_clear(&log);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_autoptr(GError) error = NULL;
  scratch = g_dir_make_tmp("emseg-engine-train-XXXXXX", &error);
  g_assert_no_error(error);
  project_path = test_make_project(scratch, "train", N_SLICES, N_LABELED, TEST_SIZE, &stack_id);
  g_test_add_func("/engine-thread/train/stop-during-validation", test_stop_during_validation);
  g_test_add_func("/engine-thread/train/two-runs-persisted", test_two_runs_persisted);
  g_test_add_func("/engine-thread/train/bad-data", test_bad_data);
  g_test_add_func("/engine-thread/train/predict-during-training", test_predict_during_training);
  g_test_add_func("/engine-thread/train/predict-tta", test_predict_tta);
  g_test_add_func("/engine-thread/train/stop-preview-mid-slice", test_stop_preview_mid_slice);
  g_test_add_func("/engine-thread/train/predict-queued-behind-training",
                  test_predict_queued_behind_training);
  g_test_add_func("/engine-thread/train/big-slices", test_big_slices);
  g_test_add_func("/engine-thread/train/fine-tune-evaluate",
                  test_fine_tune_on_corrections_and_evaluate);
  g_test_add_func("/engine-thread/train/adapt-bn", test_adapt_bn);
  g_test_add_func("/engine-thread/train/named-checkpoint-kept", test_named_checkpoint_kept);
  int rc = g_test_run();
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
