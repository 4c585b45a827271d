/* test-training.c — emseg_training_run on tiny specs and 32–64 px synthetic slices:
 * determinism, best-validation checkpoint selection, early stopping, the lr schedule,
 * layer statistics (shape, sign, zero ⇔ lr 0), unlabeled pixels kept out of the loss,
 * cancel within one step (callback and flag), exact resume, datasets from a project,
 * validation every k epochs, the export exponent chosen with each checkpoint, weight
 * averaging (SWA) with its resume, separation weights on the training loss only, and crops
 * that find sparse labels. */
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emseg-dataset.h"
#include "emseg-gamma.h"
#include "emseg-predict.h"
#include "emseg-project.h"
#include "emseg-training.h"
#include "eng-modelfile.h"
#include "eng-train.h"

#define TINY "base_width=4,down=1,up=1,across=1,main_block=basic"

typedef struct {
  gboolean val_scored; /* from STARTED */
  double last_gamma;   /* export_gamma of the last CHECKPOINT event */
  GArray *step_loss;   /* double */
  GArray *epoch_loss;  /* double: val loss (train loss without val) */
  GArray *epoch_lr;    /* double */
  GArray *checkpoints; /* guint epochs */
  EmsegTrainingLog *log;
  guint n_started, n_finished, n_errors;
  EmsegTrainingFinished finished;
  guint stop_at_step;  /* callback returns FALSE at this global step (0 = never) */
  guint flag_at_step;  /* raise the cancel flag at this global step (0 = never) */
  atomic_int *flag;
  guint steps;
} Record;

static void
record_init(Record *r)
{
  memset(r, 0, sizeof *r);
  r->step_loss = g_array_new(FALSE, FALSE, sizeof(double));
  r->epoch_loss = g_array_new(FALSE, FALSE, sizeof(double));
  r->epoch_lr = g_array_new(FALSE, FALSE, sizeof(double));
  r->checkpoints = g_array_new(FALSE, FALSE, sizeof(guint));
  r->log = emseg_training_log_new();
}

static void
record_clear(Record *r)
{
  g_array_unref(r->step_loss);
  g_array_unref(r->epoch_loss);
  g_array_unref(r->epoch_lr);
  g_array_unref(r->checkpoints);
  emseg_training_log_free(r->log);
}

static gboolean
on_event(const EmsegTrainingEvent *ev, gpointer data)
{
  Record *r = data;
  /* every event must survive a deep copy (what the engine thread does) */
  EmsegTrainingEvent *copy = emseg_training_event_copy(ev);
  g_assert_cmpint(copy->kind, ==, ev->kind);
  emseg_training_log_add(r->log, copy);
  emseg_training_event_free(copy);
  switch (ev->kind) {
  case EMSEG_TRAINING_EVENT_STARTED:
    r->n_started++;
    r->val_scored = ev->u.started.val_scored;
    break;
  case EMSEG_TRAINING_EVENT_STEP:
    g_assert_true(isfinite(ev->u.step.loss));
    g_array_append_val(r->step_loss, ev->u.step.loss);
    r->steps++;
    if (r->flag_at_step && r->steps == r->flag_at_step)
      atomic_store(r->flag, 1);
    if (r->stop_at_step && r->steps == r->stop_at_step)
      return FALSE;
    break;
  case EMSEG_TRAINING_EVENT_EPOCH: {
    double l = isfinite(ev->u.epoch.val_loss) ? ev->u.epoch.val_loss : ev->u.epoch.train_loss;
    g_array_append_val(r->epoch_loss, l);
    g_array_append_val(r->epoch_lr, ev->u.epoch.lr);
    break;
  }
  case EMSEG_TRAINING_EVENT_CHECKPOINT:
    g_assert_nonnull(ev->u.checkpoint.model);
    g_array_append_val(r->checkpoints, ev->epoch);
    r->last_gamma = ev->u.checkpoint.export_gamma;
    break;
  case EMSEG_TRAINING_EVENT_FINISHED:
    r->n_finished++;
    r->finished = ev->u.finished;
    break;
  case EMSEG_TRAINING_EVENT_ERROR:
    r->n_errors++;
    break;
  default:
    break;
  }
  return TRUE;
}

static void
tiny_config(EmsegTrainingConfig *cfg, const char *extra)
{
  emseg_training_config_init(cfg);
  EngError err;
  g_autofree char *text = g_strdup_printf("%s%s%s", TINY, extra ? "," : "", extra ? extra : "");
  g_assert_cmpint(eng_spec_parse(&cfg->spec, text, &err), ==, ENG_OK);
  cfg->epochs = 3;
  cfg->metrics_every = 0;
}

static EmsegDataset *
synth(guint first, guint n, guint size)
{
  g_autoptr(GError) error = NULL;
  EmsegDataset *ds = emseg_dataset_synthetic(7, first, n, size, &error);
  g_assert_no_error(error);
  g_assert_nonnull(ds);
  return ds;
}

static gboolean
run(const EmsegTrainingConfig *cfg, const EmsegDataset *train, const EmsegDataset *val,
    Record *r, atomic_int *flag, EmsegTrainingResult *res, GError **error)
{
  return emseg_training_run(cfg, train, val, r ? on_event : NULL, r, flag, res, error);
}

static void
assert_same_doubles(GArray *a, GArray *b)
{
  g_assert_cmpuint(a->len, ==, b->len);
  for (guint i = 0; i < a->len; i++)
    g_assert_cmpfloat(g_array_index(a, double, i), ==, g_array_index(b, double, i));
}

static void
test_determinism(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 3, 64);
  g_autoptr(EmsegDataset) val = synth(3, 1, 64);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, "dropout=0.2");
  cfg.crop = 32;
  Record a, b, c;
  record_init(&a);
  record_init(&b);
  record_init(&c);
  EmsegTrainingResult ra, rb, rc;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, val, &a, NULL, &ra, &error));
  g_assert_true(run(&cfg, train, val, &b, NULL, &rb, &error));
  cfg.seed = 2;
  g_assert_true(run(&cfg, train, val, &c, NULL, &rc, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(a.step_loss->len, ==, 9);
  assert_same_doubles(a.step_loss, b.step_loss);
  assert_same_doubles(a.epoch_loss, b.epoch_loss);
  size_t n = 0;
  const float *wa = eng_model_params_const(ra.last_model, &n);
  const float *wb = eng_model_params_const(rb.last_model, NULL);
  g_assert_cmpmem(wa, n * sizeof(float), wb, n * sizeof(float));
  /* another seed: other weights, shuffles, crops and masks, so other losses */
  gboolean differs = FALSE;
  for (guint i = 0; i < a.step_loss->len; i++)
    differs |= g_array_index(a.step_loss, double, i) != g_array_index(c.step_loss, double, i);
  g_assert_true(differs);
  g_assert_cmpuint(a.n_started, ==, 1);
  g_assert_cmpuint(a.n_finished, ==, 1);
  emseg_training_result_clear(&ra);
  emseg_training_result_clear(&rb);
  emseg_training_result_clear(&rc);
  record_clear(&a);
  record_clear(&b);
  record_clear(&c);
}

/* Validation loss of a model on a dataset, computed here independently of the run. */
static double
val_loss_of(EngModel *model, const EmsegDataset *val, EngLossKind loss)
{
  EngError err;
  EngRmspropConfig opt;
  eng_rmsprop_default(&opt);
  EngTrainer *tr = eng_trainer_new(model, 1, val->height, val->width, &opt, loss, &err);
  g_assert_nonnull(tr);
  gsize plane = emseg_dataset_plane(val);
  g_autofree float *t = g_new(float, plane), *m = g_new(float, plane);
  g_autofree float *x = g_new(float, plane);
  double sum = 0;
  for (guint i = 0; i < val->n; i++) {
    eng_labels_to_target(t, m, emseg_dataset_labels(val, i), plane);
    emseg_dataset_read_image(val, i, x);
    EngStepResult r;
    g_assert_cmpint(eng_trainer_evaluate(tr, x, t, m, &r, &err), ==, ENG_OK);
    sum += r.loss / val->n;
  }
  eng_trainer_free(tr);
  return sum;
}

static void
test_best_checkpoint(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 3, 32);
  g_autoptr(EmsegDataset) val = synth(3, 2, 32);
  g_autofree char *dir = g_dir_make_tmp("emseg-pipe-XXXXXX", NULL);
  g_autofree char *best = g_build_filename(dir, "best.emsegmodel", NULL);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 6;
  cfg.lr = 0.03; /* large: the validation loss goes up and down, so "best" is not "last" */
  cfg.loss = ENG_LOSS_BCE;
  cfg.best_path = best;
  Record r;
  record_init(&r);
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(r.epoch_loss->len, ==, 6);
  /* argmin, and a checkpoint event exactly at each new minimum */
  double min = INFINITY;
  guint arg = 0, n_new = 0;
  for (guint e = 0; e < 6; e++) {
    double l = g_array_index(r.epoch_loss, double, e);
    if (l < min) {
      min = l;
      arg = e + 1;
      g_assert_cmpuint(n_new, <, r.checkpoints->len);
      g_assert_cmpuint(g_array_index(r.checkpoints, guint, n_new), ==, e + 1);
      n_new++;
    }
  }
  g_assert_cmpuint(r.checkpoints->len, ==, n_new);
  g_assert_cmpuint(res.best_epoch, ==, arg);
  g_assert_cmpfloat(res.best_loss, ==, min);
  g_test_message("val losses: best %g at epoch %u of 6, %u improvements", min, arg, n_new);
  /* the returned and the written model both score the best loss */
  g_assert_cmpfloat_with_epsilon(val_loss_of(res.best_model, val, cfg.loss), min, 1e-5);
  EngModel *loaded = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(best, &loaded, &meta, &err), ==, ENG_OK);
  g_autofree char *want = g_strdup_printf("epoch=%u\n", arg);
  g_assert_true(g_str_has_prefix(meta, want));
  g_assert_cmpfloat_with_epsilon(val_loss_of(loaded, val, cfg.loss), min, 1e-5);
  free(meta);
  eng_model_free(loaded);
  emseg_training_result_clear(&res);
  record_clear(&r);
  g_unlink(best);
  g_rmdir(dir);
}

static void
test_early_stopping(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  g_autoptr(EmsegDataset) val = synth(2, 1, 32);
  EmsegTrainingConfig cfg;
  /* lr 0 without BN (whose running statistics would move): the validation loss is the
   * same every epoch, so only epoch 1 improves */
  tiny_config(&cfg, "batchnorm=0");
  cfg.epochs = 10;
  cfg.lr = 0;
  cfg.patience = 2;
  Record r;
  record_init(&r);
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_cmpuint(res.epochs_run, ==, 3);
  g_assert_true(res.stopped_early);
  g_assert_cmpuint(res.best_epoch, ==, 1);
  g_assert_true(r.finished.stopped_early);
  g_assert_cmpuint(r.finished.epochs_run, ==, 3);
  g_assert_cmpuint(r.epoch_loss->len, ==, 3);
  emseg_training_result_clear(&res);
  record_clear(&r);

  /* patience 0: never stops early */
  cfg.patience = 0;
  cfg.epochs = 4;
  record_init(&r);
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_cmpuint(res.epochs_run, ==, 4);
  g_assert_false(res.stopped_early);
  emseg_training_result_clear(&res);
  record_clear(&r);
}

/* --val-every: validation figures, checkpoints and the patience count only on every k-th
 * epoch and the last; the training itself is the same run as with k = 1. */
static void
test_val_every(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  g_autoptr(EmsegDataset) val = synth(2, 1, 32);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 7;
  cfg.metrics_every = 1;
  Record every1, every3;
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  record_init(&every1);
  g_assert_true(run(&cfg, train, val, &every1, NULL, &res, &error));
  emseg_training_result_clear(&res);
  cfg.val_every = 3;
  record_init(&every3);
  g_assert_true(run(&cfg, train, val, &every3, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(res.epochs_run, ==, 7);
  g_assert_cmpuint(every3.log->epochs->len, ==, 7);
  for (guint i = 0; i < 7; i++) {
    const EmsegTrainingLogEpoch *a =
        &g_array_index(every1.log->epochs, EmsegTrainingLogEpoch, i);
    const EmsegTrainingLogEpoch *b =
        &g_array_index(every3.log->epochs, EmsegTrainingLogEpoch, i);
    gboolean validated = b->epoch == 3 || b->epoch == 6 || b->epoch == 7;
    g_assert_cmpint(isfinite(b->m.val_loss), ==, validated);
    g_assert_cmpint(isfinite(b->m.vrand), ==, validated);
    g_assert_true(validated || !b->m.improved);
    /* validation does not touch the weights or the random streams of training */
    g_assert_cmpfloat(a->m.train_loss, ==, b->m.train_loss);
    if (validated)
      g_assert_cmpfloat(fabs(a->m.val_loss - b->m.val_loss), <, 1e-6);
  }
  g_assert_cmpuint(every3.checkpoints->len, >=, 1);
  g_assert_cmpuint(g_array_index(every3.checkpoints, guint, 0), ==, 3);
  for (guint i = 0; i < every3.checkpoints->len; i++) {
    guint e = g_array_index(every3.checkpoints, guint, i);
    g_assert_true(e == 3 || e == 6 || e == 7);
  }
  g_assert_true(res.best_epoch == 3 || res.best_epoch == 6 || res.best_epoch == 7);
  emseg_training_result_clear(&res);
  record_clear(&every1);
  record_clear(&every3);

  /* patience counts epochs: a constant validation loss (lr 0, no BN) checked every second
   * epoch improves at epoch 2 only; patience 4 runs out at epoch 6 (2 + 2 bad epochs each
   * at 4 and 6), not after four validations */
  tiny_config(&cfg, "batchnorm=0");
  cfg.epochs = 20;
  cfg.lr = 0;
  cfg.val_every = 2;
  cfg.patience = 4;
  Record r;
  record_init(&r);
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_true(res.stopped_early);
  g_assert_cmpuint(res.epochs_run, ==, 6);
  g_assert_cmpuint(res.best_epoch, ==, 2);
  emseg_training_result_clear(&res);
  record_clear(&r);
}

/* P(cell) of a model on the slices of a dataset (inference mode), computed here. */
static float *
predict_all(EngModel *model, const EmsegDataset *ds)
{
  EngError err;
  EngGraph *g = eng_graph_new(model, 1, ds->height, ds->width, 0, &err);
  g_assert_nonnull(g);
  gsize plane = emseg_dataset_plane(ds);
  float *prob = g_new(float, plane * ds->n);
  g_autofree float *x = g_new(float, plane);
  for (guint i = 0; i < ds->n; i++) {
    emseg_dataset_read_image(ds, i, x);
    g_assert_cmpint(eng_graph_forward(g, x, ENG_MODE_INFER, 0), ==, ENG_OK);
    const float *z = eng_graph_logits(g);
    for (gsize j = 0; j < plane; j++)
      prob[i * plane + j] = 1.0f / (1.0f + expf(z[j]));
  }
  eng_graph_free(g);
  return prob;
}

/* TRUE when the metadata of the model file at path contains text. */
static gboolean
file_meta_has(const char *path, const char *text)
{
  EngModel *m = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(path, &m, &meta, &err), ==, ENG_OK);
  gboolean found = meta && strstr(meta, text);
  free(meta);
  eng_model_free(m);
  return found;
}

/* The export exponent: with fully labelled validation slices each checkpoint carries the γ
 * that the sweep picks on the best weights' own predictions (recomputed here), the written
 * file holds it as export_gamma; with unlabelled validation pixels, or when switched off,
 * there are no scores and no γ. */
static void
test_export_gamma(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 3, 64);
  g_autoptr(EmsegDataset) val = synth(3, 2, 64);
  g_autofree char *dir = g_dir_make_tmp("emseg-pipe-XXXXXX", NULL);
  g_autofree char *best = g_build_filename(dir, "best.emsegmodel", NULL);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 4;
  cfg.loss = ENG_LOSS_BCE;
  cfg.best_path = best;
  Record r;
  record_init(&r);
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_true(r.val_scored);
  g_assert_true(isfinite(r.last_gamma));
  g_assert_cmpfloat(res.export_gamma, ==, r.last_gamma); /* the result names the best's γ */
  EngModel *loaded = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(best, &loaded, &meta, &err), ==, ENG_OK);
  g_assert_cmpfloat(emseg_gamma_from_meta(meta), ==, r.last_gamma);
  g_assert_nonnull(strstr(meta, "export_gamma_chosen_by="));
  static const double grid[] = { 1, 2, 3, 4, 6, 8 };
  EngMetricsResult scores[G_N_ELEMENTS(grid)];
  guint pick = 0;
  g_autofree float *prob = predict_all(loaded, val);
  g_assert_true(emseg_gamma_sweep(prob, val->labels, val->n, val->height, val->width, grid,
                                  G_N_ELEMENTS(grid), scores, &pick, &error));
  g_test_message("export gamma %g: V_rand %.4f (gamma 1: %.4f)", grid[pick],
                 scores[pick].vrand, scores[0].vrand);
  g_assert_cmpfloat(grid[pick], ==, r.last_gamma);
  free(meta);
  eng_model_free(loaded);
  emseg_training_result_clear(&res);
  record_clear(&r);

  /* switched off: scores, but no exponent in the events or the file */
  cfg.calibrate_gamma = FALSE;
  record_init(&r);
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_true(r.val_scored);
  g_assert_true(isnan(r.last_gamma));
  g_assert_true(isnan(res.export_gamma));
  g_assert_false(file_meta_has(best, "export_gamma"));
  emseg_training_result_clear(&res);
  record_clear(&r);

  /* a patch of unlabelled pixels in one validation slice: no V_rand / V_info, no γ */
  cfg.calibrate_gamma = TRUE;
  for (guint y = 10; y < 20; y++)
    memset(val->labels + (gsize) val->width * val->height + (gsize) y * val->width + 10,
           ENG_LABEL_UNLABELED, 10);
  record_init(&r);
  cfg.metrics_every = 1;
  g_assert_true(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_false(r.val_scored);
  g_assert_true(isnan(r.last_gamma));
  g_assert_true(isnan(res.export_gamma));
  for (guint i = 0; i < r.log->epochs->len; i++) {
    const EmsegTrainingLogEpoch *e = &g_array_index(r.log->epochs, EmsegTrainingLogEpoch, i);
    g_assert_true(isfinite(e->m.val_loss));
    g_assert_true(isnan(e->m.vrand) && isnan(e->m.vinfo));
  }
  g_assert_false(file_meta_has(best, "export_gamma"));
  emseg_training_result_clear(&res);
  record_clear(&r);
  g_unlink(best);
  g_rmdir(dir);
}

static double
mean_update(const EmsegTrainingLog *log, guint row)
{
  double s = 0;
  for (guint l = 0; l < log->n_layers; l++)
    s += g_array_index(log->updates, double, (gsize) row * log->n_layers + l);
  return s / log->n_layers;
}

static void
test_lr_steps(void)
{
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.lr = 1e-2;
  cfg.lr_steps[0] = 2;
  cfg.lr_steps[1] = 4;
  cfg.n_lr_steps = 2;
  g_assert_cmpfloat_with_epsilon(emseg_training_lr_at(&cfg, 1), 1e-2, 1e-12);
  g_assert_cmpfloat_with_epsilon(emseg_training_lr_at(&cfg, 2), 1e-3, 1e-12);
  g_assert_cmpfloat_with_epsilon(emseg_training_lr_at(&cfg, 3), 1e-3, 1e-12);
  g_assert_cmpfloat_with_epsilon(emseg_training_lr_at(&cfg, 4), 1e-4, 1e-12);
  g_assert_cmpfloat_with_epsilon(emseg_training_lr_at(&cfg, 9), 1e-4, 1e-12);

  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  cfg.epochs = 4;
  cfg.augment = FALSE;
  Record r;
  record_init(&r);
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, NULL, &r, NULL, &res, &error));
  g_assert_cmpuint(r.epoch_lr->len, ==, 4);
  const double want[] = { 1e-2, 1e-3, 1e-3, 1e-4 };
  for (guint e = 0; e < 4; e++)
    g_assert_cmpfloat_with_epsilon(g_array_index(r.epoch_lr, double, e), want[e], 1e-9);
  /* the optimizer really used it: RMSprop steps scale with lr */
  double u1 = mean_update(r.log, 0), u2 = mean_update(r.log, 1), u4 = mean_update(r.log, 3);
  g_test_message("mean |update| epoch 1 %g, 2 %g, 4 %g", u1, u2, u4);
  g_assert_cmpfloat(u2, <, u1 * 0.3);
  g_assert_cmpfloat(u4, <, u2 * 0.3);
  emseg_training_result_clear(&res);
  record_clear(&r);
}

static void
test_layer_stats(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 2;
  for (int zero = 0; zero < 2; zero++) {
    cfg.lr = zero ? 0 : 1e-3;
    Record r;
    record_init(&r);
    EmsegTrainingResult res;
    g_autoptr(GError) error = NULL;
    g_assert_true(run(&cfg, train, NULL, &r, NULL, &res, &error));
    const EmsegTrainingLog *log = r.log;
    g_assert_cmpuint(log->n_layers, ==, eng_model_n_layers(res.last_model));
    g_assert_cmpuint(log->stat_epochs->len, ==, 2);
    g_assert_cmpuint(log->updates->len, ==, 2 * log->n_layers);
    for (guint l = 0; l < log->n_layers; l++)
      g_assert_cmpstr(log->layer_names[l], ==, eng_model_layer_name(res.last_model, l));
    g_assert_cmpstr(log->layer_names[0], ==, "pre");
    g_assert_cmpstr(log->layer_names[log->n_layers - 1], ==, "classifier");
    for (guint k = 0; k < log->updates->len; k++) {
      double u = g_array_index(log->updates, double, k);
      double w = g_array_index(log->weights, double, k);
      g_assert_true(isfinite(u) && isfinite(w));
      g_assert_cmpfloat(u, >=, 0);
      g_assert_cmpfloat(w, >, 0); /* every layer has a non-zero weight or BN gamma */
      if (zero)
        g_assert_cmpfloat(u, ==, 0);
      else
        g_assert_cmpfloat(u, >, 0);
    }
    emseg_training_result_clear(&res);
    record_clear(&r);
  }
}

/* Labels in region R (the left half) set to `value`; the rest untouched. */
static EmsegDataset *
with_region(guint8 value)
{
  EmsegDataset *ds = synth(0, 2, 32);
  for (guint i = 0; i < ds->n; i++) {
    guint8 *lab = emseg_dataset_labels(ds, i);
    for (guint y = 0; y < ds->height; y++)
      memset(lab + (gsize) y * ds->width, value, ds->width / 2);
  }
  emseg_dataset_recount(ds);
  return ds;
}

static void
test_unlabeled_excluded(void)
{
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 2;
  cfg.loss = ENG_LOSS_BCE;
  /* 128 is the store's unlabeled value; 1 and 200 are unlabeled too (neither 0 nor 255)
   * and would leak as membrane or cell under a threshold bug. 255 labels the region. */
  const guint8 values[] = { 128, 1, 200, 255 };
  Record r[4];
  for (int k = 0; k < 4; k++) {
    g_autoptr(EmsegDataset) ds = with_region(values[k]);
    g_assert_cmpuint(ds->n_labeled[0], ==, values[k] == 255 ? 32 * 32 : 32 * 16);
    record_init(&r[k]);
    EmsegTrainingResult res;
    g_autoptr(GError) error = NULL;
    g_assert_true(run(&cfg, ds, ds, &r[k], NULL, &res, &error));
    emseg_training_result_clear(&res);
  }
  assert_same_doubles(r[0].step_loss, r[1].step_loss);
  assert_same_doubles(r[0].step_loss, r[2].step_loss);
  assert_same_doubles(r[0].epoch_loss, r[1].epoch_loss);
  assert_same_doubles(r[0].epoch_loss, r[2].epoch_loss);
  g_assert_cmpfloat(g_array_index(r[0].step_loss, double, 0), !=,
                    g_array_index(r[3].step_loss, double, 0));
  for (int k = 0; k < 4; k++)
    record_clear(&r[k]);
}

/* Crops find the labels: 96² slices labelled only in an 8×8 patch at (px, py), trained on
 * 32² crops for 40 steps; how many steps saw an empty loss mask (loss 0). */
static guint
steps_without_labels(guint px, guint py, gboolean augment)
{
  g_autoptr(EmsegDataset) ds = synth(0, 4, 96);
  for (guint i = 0; i < ds->n; i++) {
    guint8 *lab = emseg_dataset_labels(ds, i);
    for (guint y = 0; y < ds->height; y++)
      for (guint x = 0; x < ds->width; x++)
        if (!(x >= px && x < px + 8 && y >= py && y < py + 8))
          lab[(gsize) y * ds->width + x] = EMSEG_LABEL_UNLABELED;
    /* both classes in the patch: labels of one class are refused */
    lab[(gsize) py * ds->width + px] = EMSEG_LABEL_MEMBRANE;
    lab[(gsize) (py + 7) * ds->width + px + 7] = EMSEG_LABEL_CELL;
  }
  emseg_dataset_recount(ds);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 10;
  cfg.loss = ENG_LOSS_BCE;
  cfg.crop = 32;
  cfg.augment = augment;
  Record r;
  record_init(&r);
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, ds, NULL, &r, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(r.step_loss->len, ==, 40);
  guint empty = 0;
  for (guint i = 0; i < r.step_loss->len; i++)
    empty += !(g_array_index(r.step_loss, double, i) > 0.0);
  emseg_training_result_clear(&res);
  record_clear(&r);
  g_test_message("patch at (%u, %u), augment %d: %u of 40 steps without labels", px, py,
                 augment, empty);
  return empty;
}

/* A uniform crop misses a patch at the centre about 2 times in 3 (a corner patch 21 in 22)
 * and learns nothing from that step; every step must see labels, without augmentation and
 * with it (a crop is then augmented as a window of the transformed slice and moved to where
 * a labelled source pixel lands). The corner patch runs without augmentation only: rotation
 * and warp often carry it out of a slice this small. */
static void
test_crops_find_labels(void)
{
  g_assert_cmpuint(steps_without_labels(44, 44, FALSE), ==, 0);
  g_assert_cmpuint(steps_without_labels(44, 44, TRUE), ==, 0);
  g_assert_cmpuint(steps_without_labels(80, 4, FALSE), ==, 0);
}

/* Separation weights change the training loss and nothing else: with lr 0 the weights
 * never move, so the step losses differ (weighted against plain means) while the
 * validation losses, which stay unweighted, are identical. */
static void
test_border_weights(void)
{
  /* 64 px: a 32 px synthetic slice can hold a single cell, leaving nothing to weigh */
  g_autoptr(EmsegDataset) train = synth(0, 2, 64);
  g_autoptr(EmsegDataset) val = synth(2, 1, 64);
  Record r[2];
  for (int k = 0; k < 2; k++) {
    EmsegTrainingConfig cfg;
    tiny_config(&cfg, NULL);
    cfg.epochs = 1;
    cfg.loss = ENG_LOSS_BCE;
    cfg.lr = 0;
    cfg.border_w0 = k ? 10.0f : 0.0f;
    record_init(&r[k]);
    EmsegTrainingResult res;
    g_autoptr(GError) error = NULL;
    g_assert_true(run(&cfg, train, val, &r[k], NULL, &res, &error));
    emseg_training_result_clear(&res);
  }
  for (guint i = 0; i < r[0].step_loss->len; i++)
    g_assert_cmpfloat(fabs(g_array_index(r[0].step_loss, double, i) -
                           g_array_index(r[1].step_loss, double, i)), >, 1e-4);
  assert_same_doubles(r[0].epoch_loss, r[1].epoch_loss);
  for (int k = 0; k < 2; k++)
    record_clear(&r[k]);
}

static void
test_cancel(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 4, 32);
  g_autoptr(EmsegDataset) val = synth(4, 1, 32);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 5;
  /* the callback says stop at global step 6 (epoch 2, step 2) */
  Record r;
  record_init(&r);
  r.stop_at_step = 6;
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  g_assert_false(run(&cfg, train, val, &r, NULL, &res, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED);
  g_assert_cmpuint(r.steps, ==, 6);
  g_assert_true(res.cancelled);
  g_assert_cmpuint(res.epochs_run, ==, 1);
  g_assert_nonnull(res.best_model); /* epoch 1 finished: its weights are kept */
  g_assert_cmpuint(r.n_finished, ==, 1);
  g_assert_true(r.finished.cancelled);
  g_assert_cmpuint(r.n_errors, ==, 0);
  emseg_training_result_clear(&res);
  record_clear(&r);
  g_clear_error(&error);

  /* the atomic flag, raised at step 3 */
  atomic_int flag = 0;
  record_init(&r);
  r.flag = &flag;
  r.flag_at_step = 3;
  g_assert_false(run(&cfg, train, val, &r, &flag, &res, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED);
  g_assert_cmpuint(r.steps, ==, 3);
  g_assert_cmpuint(res.epochs_run, ==, 0);
  g_assert_null(res.best_model);
  g_assert_nonnull(res.last_model);
  emseg_training_result_clear(&res);
  record_clear(&r);
}

static void
remove_state(const char *state)
{
  g_autofree char *opt = g_strconcat(state, ".opt", NULL);
  g_autofree char *best = g_strconcat(state, ".best", NULL);
  g_autofree char *swa = g_strconcat(state, ".swa", NULL);
  g_unlink(swa);
  g_unlink(state);
  g_unlink(opt);
  g_unlink(best);
}

static void
test_resume(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 3, 64);
  g_autoptr(EmsegDataset) val = synth(3, 1, 64);
  g_autofree char *dir = g_dir_make_tmp("emseg-pipe-XXXXXX", NULL);
  g_autofree char *state = g_build_filename(dir, "run.state", NULL);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, "dropout=0.1");
  cfg.crop = 32;
  cfg.epochs = 4;
  cfg.patience = 3;
  cfg.lr_steps[0] = 3;
  cfg.n_lr_steps = 1;
  g_autoptr(GError) error = NULL;

  Record whole;
  record_init(&whole);
  EmsegTrainingResult rw;
  g_assert_true(run(&cfg, train, val, &whole, NULL, &rw, &error));

  /* the same run, stopped by the callback in epoch 3, then resumed */
  cfg.state_path = state;
  Record first, second;
  record_init(&first);
  first.stop_at_step = 7;
  EmsegTrainingResult r1, r2;
  g_assert_false(run(&cfg, train, val, &first, NULL, &r1, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED);
  g_clear_error(&error);
  g_assert_cmpuint(r1.epochs_run, ==, 2);
  cfg.resume = TRUE;
  record_init(&second);
  g_assert_true(run(&cfg, train, val, &second, NULL, &r2, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(second.epoch_loss->len, ==, 2); /* epochs 3 and 4 */
  for (guint e = 0; e < 2; e++)
    g_assert_cmpfloat(g_array_index(second.epoch_loss, double, e), ==,
                      g_array_index(whole.epoch_loss, double, e + 2));
  for (guint s = 0; s < second.step_loss->len; s++)
    g_assert_cmpfloat(g_array_index(second.step_loss, double, s), ==,
                      g_array_index(whole.step_loss, double, s + 6));
  size_t n = 0;
  const float *a = eng_model_params_const(rw.last_model, &n);
  g_assert_cmpmem(a, n * sizeof(float), eng_model_params_const(r2.last_model, NULL),
                  n * sizeof(float));
  g_assert_cmpuint(r2.best_epoch, ==, rw.best_epoch);
  g_assert_cmpfloat(r2.best_loss, ==, rw.best_loss);
  a = eng_model_params_const(rw.best_model, &n);
  g_assert_cmpmem(a, n * sizeof(float), eng_model_params_const(r2.best_model, NULL),
                  n * sizeof(float));

  /* a state from another seed is refused with a reason */
  cfg.seed = 99;
  EmsegTrainingResult r3;
  g_assert_false(run(&cfg, train, val, NULL, NULL, &r3, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "seed"));
  emseg_training_result_clear(&r3);
  g_clear_error(&error);

  /* ... and so is one with other separation weights than it was started with */
  cfg.seed = 1;
  cfg.border_w0 = 10.0f;
  g_assert_false(run(&cfg, train, val, NULL, NULL, &r3, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "started with border weight 0"));
  emseg_training_result_clear(&r3);
  g_clear_error(&error);

  /* ... and one with another loss (its best loss is in the units of the first) */
  cfg.border_w0 = 0.0f;
  g_autofree char *why = g_strdup_printf("with loss dice-cell: it was started with loss %s",
                                         eng_loss_name(cfg.loss));
  g_assert_cmpint(cfg.loss, !=, ENG_LOSS_DICE_CELL);
  cfg.loss = ENG_LOSS_DICE_CELL;
  g_assert_false(run(&cfg, train, val, NULL, NULL, &r3, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, why));
  emseg_training_result_clear(&r3);

  emseg_training_result_clear(&rw);
  emseg_training_result_clear(&r1);
  emseg_training_result_clear(&r2);
  record_clear(&whole);
  record_clear(&first);
  record_clear(&second);
  remove_state(state);
  g_rmdir(dir);
}

/* conv_bf16: the run trains (finite losses) and its checkpoint says how its validation
 * figures were computed (conv_precision=bf16); a float32 run's does not carry the key.
 * That the convolutions really change precision is checked in test-model and
 * test-layers. */
static void
test_conv_bf16(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  g_autoptr(EmsegDataset) val = synth(2, 1, 32);
  g_autofree char *dir = g_dir_make_tmp("emseg-bf16-XXXXXX", NULL);
  for (int bf16 = 0; bf16 <= 1; bf16++) {
    g_autofree char *best = g_build_filename(dir, bf16 ? "bf16.emsegmodel" : "f32.emsegmodel",
                                             NULL);
    EmsegTrainingConfig cfg;
    tiny_config(&cfg, "base_width=16");
    cfg.epochs = 2;
    cfg.conv_bf16 = bf16;
    cfg.best_path = best;
    EmsegTrainingResult res;
    g_autoptr(GError) error = NULL;
    g_assert_true(run(&cfg, train, val, NULL, NULL, &res, &error));
    g_assert_no_error(error);
    g_assert_true(isfinite(res.best_loss));
    EngModel *loaded = NULL;
    g_autofree char *meta = NULL;
    EngError err;
    g_assert_cmpint(eng_model_load(best, &loaded, &meta, &err), ==, ENG_OK);
    g_assert_cmpint(strstr(meta, "conv_precision=bf16\n") != NULL, ==, bf16);
    eng_model_free(loaded);
    emseg_training_result_clear(&res);
    g_unlink(best);
  }
  g_rmdir(dir);
}

/* Weight averaging: the averaged trainable weights are the mean of the end-of-epoch
 * weights of epochs 3..5 (each taken here from a run of that many epochs: runs are
 * deterministic and validation does not touch training); its BN statistics are those a
 * calibration of the averaged weights over the training slices gives (not the average of
 * the epochs' statistics); the file holds the same weights and says what was averaged; an
 * interrupted and resumed run averages to the same bytes; bad settings are refused. */
/* A copy of m whose BN statistics are forgotten and recomputed by eng_model_calibrate_bn over
 * the first two 32² slices of train (un-augmented, standardized). */
static EngModel *
recalibrated_copy(const EngModel *m, const EmsegDataset *train)
{
  EngError err;
  EngModel *again = eng_model_new(eng_model_spec(m), 1, &err);
  g_assert_cmpint(eng_model_copy_params(again, m, &err), ==, ENG_OK);
  float *stats = eng_model_params_arena(again, NULL);
  for (size_t p = 0; p < eng_model_n_params(again); p++) {
    const EngParam *par = eng_model_param(again, p);
    if (par->kind == ENG_PARAM_BN_MEAN || par->kind == ENG_PARAM_BN_VAR)
      for (size_t j = par->offset; j < par->offset + par->count; j++)
        stats[j] = 0.5f; /* forget them */
  }
  EngGraph *g = eng_graph_new(again, 1, 32, 32, 0, &err);
  g_autofree float *x = g_new(float, 2 * 32 * 32);
  emseg_dataset_read_image(train, 0, x);
  emseg_dataset_read_image(train, 1, x + 32 * 32);
  const float *images[2] = { x, x + 32 * 32 };
  g_assert_cmpint(eng_model_calibrate_bn(again, g, images, 2, &err), ==, ENG_OK);
  eng_graph_free(g);
  return again;
}

/* Asserts that a's and b's BN statistics agree to 1e-5 (relative); returns how many. */
static size_t
assert_same_bn_stats(const EngModel *a, const EngModel *b)
{
  const float *x = eng_model_params_const(a, NULL), *y = eng_model_params_const(b, NULL);
  size_t n_stats = 0;
  for (size_t p = 0; p < eng_model_n_params(a); p++) {
    const EngParam *par = eng_model_param(a, p);
    if (par->kind != ENG_PARAM_BN_MEAN && par->kind != ENG_PARAM_BN_VAR)
      continue;
    for (size_t j = par->offset; j < par->offset + par->count; j++, n_stats++)
      g_assert_cmpfloat(fabs(y[j] - x[j]), <=, 1e-5 * (1 + fabs(x[j])));
  }
  return n_stats;
}

static void
test_swa(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  g_autoptr(EmsegDataset) val = synth(2, 1, 32);
  g_autofree char *dir = g_dir_make_tmp("emseg-swa-XXXXXX", NULL);
  g_autofree char *swa_path = g_build_filename(dir, "avg.emsegmodel", NULL);
  g_autofree char *state = g_build_filename(dir, "run.state", NULL);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, "dropout=0.1");
  cfg.metrics_every = 1;
  g_autoptr(GError) error = NULL;
  EmsegTrainingResult ends[3];
  for (guint k = 0; k < 3; k++) {
    cfg.epochs = 3 + k;
    g_assert_true(run(&cfg, train, val, NULL, NULL, &ends[k], &error));
    g_assert_null(ends[k].swa_model);
  }
  cfg.epochs = 5;
  cfg.swa_from = 3;
  cfg.swa_path = swa_path;
  EmsegTrainingResult res;
  g_assert_true(run(&cfg, train, val, NULL, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_nonnull(res.swa_model);
  g_assert_cmpuint(res.swa.first_epoch, ==, 3);
  g_assert_cmpuint(res.swa.last_epoch, ==, 5);
  g_assert_true(isfinite(res.swa.val_loss) && isfinite(res.swa.vrand));
  /* the best checkpoint is chosen as without averaging */
  g_assert_cmpuint(res.best_epoch, ==, ends[2].best_epoch);
  size_t n = 0;
  const float *avg = eng_model_params_const(res.swa_model, &n);
  size_t checked = 0, moved = 0;
  for (size_t p = 0; p < eng_model_n_params(res.swa_model); p++) {
    const EngParam *par = eng_model_param(res.swa_model, p);
    if (!par->trainable)
      continue;
    for (size_t j = par->offset; j < par->offset + par->count; j++) {
      double want = 0;
      for (guint k = 0; k < 3; k++)
        want += eng_model_params_const(ends[k].last_model, NULL)[j] / 3.0;
      g_assert_cmpfloat(fabs(avg[j] - want), <=, 1e-6 * (1 + fabs(want)));
      moved += eng_model_params_const(ends[0].last_model, NULL)[j] !=
               eng_model_params_const(ends[2].last_model, NULL)[j];
      checked++;
    }
  }
  g_assert_cmpuint(moved, >, checked / 2); /* the epochs' weights really differ */
  /* BN statistics: a fresh calibration of the averaged weights gives the same */
  EngError err;
  EngModel *again = recalibrated_copy(res.swa_model, train);
  g_assert_cmpuint(assert_same_bn_stats(again, res.swa_model), >, 0);
  eng_model_free(again);
  /* the file */
  EngModel *loaded = NULL;
  char *meta = NULL;
  g_assert_cmpint(eng_model_load(swa_path, &loaded, &meta, &err), ==, ENG_OK);
  g_assert_cmpmem(eng_model_params_const(loaded, NULL), n * sizeof(float), avg,
                  n * sizeof(float));
  g_assert_nonnull(strstr(meta, "swa_from=3\n"));
  g_assert_nonnull(strstr(meta, "swa_epochs=3\n"));
  free(meta);
  eng_model_free(loaded);

  /* interrupted in epoch 4 (steps 7-8), resumed: the same average, byte for byte */
  cfg.state_path = state;
  Record first;
  record_init(&first);
  first.stop_at_step = 7;
  EmsegTrainingResult r1, r2;
  g_assert_false(run(&cfg, train, val, &first, NULL, &r1, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED);
  g_clear_error(&error);
  g_assert_cmpuint(r1.epochs_run, ==, 3);
  g_assert_null(r1.swa_model);
  cfg.resume = TRUE;
  g_assert_true(run(&cfg, train, val, NULL, NULL, &r2, &error));
  g_assert_no_error(error);
  g_assert_nonnull(r2.swa_model);
  g_assert_cmpmem(eng_model_params_const(r2.swa_model, NULL), n * sizeof(float), avg,
                  n * sizeof(float));
  /* resuming the same state while averaging from another epoch is refused */
  cfg.swa_from = 2;
  EmsegTrainingResult r3;
  remove_state(state);
  cfg.resume = FALSE;
  cfg.epochs = 3;
  first.stop_at_step = 0;
  g_assert_true(run(&cfg, train, val, NULL, NULL, &r3, &error)); /* averages epochs 2-3 */
  emseg_training_result_clear(&r3);
  cfg.swa_from = 3;
  cfg.epochs = 5;
  cfg.resume = TRUE;
  g_assert_false(run(&cfg, train, val, NULL, NULL, &r3, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "another --swa-from"));
  g_clear_error(&error);
  emseg_training_result_clear(&r3);
  /* averaging that would start after the last epoch */
  cfg.resume = FALSE;
  cfg.swa_from = 6;
  g_assert_false(run(&cfg, train, val, NULL, NULL, &r3, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "after the last epoch"));
  emseg_training_result_clear(&r3);

  for (guint k = 0; k < 3; k++)
    emseg_training_result_clear(&ends[k]);
  emseg_training_result_clear(&res);
  emseg_training_result_clear(&r1);
  emseg_training_result_clear(&r2);
  record_clear(&first);
  remove_state(state);
  g_unlink(swa_path);
  g_rmdir(dir);
}

/* Every trainable parameter of a and b (same spec) is bit for bit the same. */
static void
assert_same_trainable(const EngModel *a, const EngModel *b)
{
  const float *pa = eng_model_params_const(a, NULL), *pb = eng_model_params_const(b, NULL);
  for (size_t p = 0; p < eng_model_n_params(a); p++) {
    const EngParam *par = eng_model_param(a, p);
    if (par->trainable)
      g_assert_cmpmem(pa + par->offset, par->count * sizeof(float), pb + par->offset,
                      par->count * sizeof(float));
  }
}

static void
test_fine_tune(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 1;
  EmsegTrainingResult base, tuned, zero;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &base, &error));
  /* lr 0 from an initial model: the weights stay those of the model, dropout changed */
  cfg.init_model = base.last_model;
  cfg.seed = 5;
  cfg.lr = 0;
  cfg.dropout = 0.3f;
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &zero, &error));
  g_assert_cmpfloat(eng_model_spec(zero.last_model)->dropout, ==, 0.3f);
  /* BN running statistics move in training mode; trainable parameters must not */
  assert_same_trainable(base.last_model, zero.last_model);
  size_t n = 0;
  const float *a = eng_model_params_const(base.last_model, &n);
  cfg.lr = 1e-3;
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &tuned, &error));
  g_assert_true(memcmp(a, eng_model_params_const(tuned.last_model, NULL), n * sizeof(float)));
  /* no validation to choose γ by: none, unless the starting model carried one, which is
   * kept (an export would otherwise write plain probabilities), in the file too */
  g_assert_true(isnan(tuned.export_gamma));
  emseg_training_result_clear(&tuned);
  g_autofree char *dir = g_dir_make_tmp("emseg-pipe-XXXXXX", NULL);
  g_autofree char *best = g_build_filename(dir, "best.emsegmodel", NULL);
  cfg.init_gamma = 6.0;
  cfg.best_path = best;
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &tuned, &error));
  g_assert_cmpfloat(tuned.export_gamma, ==, 6.0);
  EngModel *loaded = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(best, &loaded, &meta, &err), ==, ENG_OK);
  g_assert_cmpfloat(emseg_gamma_from_meta(meta), ==, 6.0);
  g_assert_nonnull(strstr(meta, "export_gamma_chosen_by=kept from the starting model"));
  free(meta);
  eng_model_free(loaded);
  g_unlink(best);
  g_rmdir(dir);
  emseg_training_result_clear(&base);
  emseg_training_result_clear(&zero);
  emseg_training_result_clear(&tuned);
}

/* validate_init: a fine-tune scores its starting weights as epoch 0 and an epoch must beat
 * them. With lr 0 the weights cannot change, every epoch validates exactly as the start
 * does (BN recalibrated from the same weights), so none beats it: no checkpoint, and the
 * starting weights come back as the best and in best_path. Without validate_init the same
 * run takes epoch 1, as before. */
static void
test_fine_tune_baseline(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  g_autoptr(EmsegDataset) val = synth(2, 1, 32);
  g_autofree char *dir = g_dir_make_tmp("emseg-pipe-XXXXXX", NULL);
  g_autofree char *best = g_build_filename(dir, "best.emsegmodel", NULL);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  cfg.epochs = 2;
  cfg.loss = ENG_LOSS_BCE;
  EmsegTrainingResult base, still, plain, tuned;
  g_autoptr(GError) error = NULL;
  g_assert_true(run(&cfg, train, val, NULL, NULL, &base, &error));
  cfg.init_model = base.best_model;
  cfg.lr = 0;
  cfg.best_path = best;
  Record r;
  record_init(&r);
  g_assert_true(run(&cfg, train, val, &r, NULL, &still, &error));
  g_assert_cmpuint(r.log->epochs->len, ==, 3);
  const EmsegTrainingLogEpoch *e0 = &g_array_index(r.log->epochs, EmsegTrainingLogEpoch, 0);
  g_assert_cmpuint(e0->epoch, ==, 0);
  g_assert_true(isnan(e0->m.train_loss));
  g_assert_true(isfinite(e0->m.val_loss));
  for (guint i = 1; i < 3; i++)
    g_assert_cmpfloat(g_array_index(r.epoch_loss, double, i), ==, e0->m.val_loss);
  g_assert_cmpuint(r.checkpoints->len, ==, 0);
  g_assert_cmpuint(still.best_epoch, ==, 0);
  g_assert_cmpuint(r.finished.best_epoch, ==, 0);
  g_assert_cmpfloat(still.best_loss, ==, e0->m.val_loss);
  g_assert_nonnull(still.best_model);
  assert_same_trainable(base.best_model, still.best_model);
  EngModel *saved = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(best, &saved, &meta, &err), ==, ENG_OK);
  g_assert_nonnull(strstr(meta, "epoch=0\n"));
  g_assert_nonnull(strstr(meta, "starting_weights=1\n"));
  eng_model_free(saved);
  g_free(meta);
  record_clear(&r);

  /* switched off: epoch 1 is the first best, as without a starting model */
  cfg.validate_init = FALSE;
  cfg.best_path = NULL;
  record_init(&r);
  g_assert_true(run(&cfg, train, val, &r, NULL, &plain, &error));
  g_assert_cmpuint(r.log->epochs->len, ==, 2);
  g_assert_cmpuint(plain.best_epoch, ==, 1);
  g_assert_cmpuint(r.checkpoints->len, ==, 1);
  record_clear(&r);

  /* training for real: every checkpoint beats the start */
  cfg.validate_init = TRUE;
  cfg.lr = 0.03;
  cfg.epochs = 4;
  record_init(&r);
  g_assert_true(run(&cfg, train, val, &r, NULL, &tuned, &error));
  g_assert_cmpuint(r.epoch_loss->len, ==, 5);
  double start = g_array_index(r.epoch_loss, double, 0);
  g_assert_cmpfloat(tuned.best_loss, <=, start);
  for (guint i = 0; i < r.checkpoints->len; i++) {
    guint e = g_array_index(r.checkpoints, guint, i);
    g_assert_cmpfloat(g_array_index(r.epoch_loss, double, e), <, start);
  }
  g_test_message("fine-tune from a start at %.4f: %u checkpoints, best %.4f at epoch %u", start,
                 r.checkpoints->len, tuned.best_loss, tuned.best_epoch);
  record_clear(&r);
  emseg_training_result_clear(&base);
  emseg_training_result_clear(&still);
  emseg_training_result_clear(&plain);
  emseg_training_result_clear(&tuned);
  g_unlink(best);
  g_rmdir(dir);
}

static void
test_bad_config(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 1, 36); /* not a multiple of 8 */
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, NULL);
  EmsegTrainingResult res;
  g_autoptr(GError) error = NULL;
  Record r;
  record_init(&r);
  g_assert_false(run(&cfg, train, NULL, &r, NULL, &res, &error));
  g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "36x36"));
  g_assert_cmpuint(r.n_errors, ==, 1);
  emseg_training_result_clear(&res);
  record_clear(&r);
  g_clear_error(&error);
  cfg.crop = 32; /* a crop makes it trainable */
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &res, &error));
  emseg_training_result_clear(&res);

  /* labels of one class only (a stroke along a membrane, nothing else labelled) would teach
   * "everything is membrane": refused, naming the class; the same for cell alone */
  g_autoptr(EmsegDataset) one = synth(0, 2, 32);
  const char *says[] = { "are all membrane (2 pixels) and none cell interior",
                         "are all cell interior (2 pixels) and none membrane" };
  for (int k = 0; k < 2; k++) {
    memset(one->labels, EMSEG_LABEL_UNLABELED, (gsize) one->n * emseg_dataset_plane(one));
    one->labels[5] = one->labels[emseg_dataset_plane(one) + 9] =
        k == 0 ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_CELL;
    emseg_dataset_recount(one);
    cfg.crop = 0;
    g_assert_false(run(&cfg, one, NULL, NULL, NULL, &res, &error));
    g_assert_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, says[k]));
    emseg_training_result_clear(&res);
    g_clear_error(&error);
  }
  /* one pixel of the other class is enough */
  one->labels[7] = EMSEG_LABEL_MEMBRANE;
  g_assert_true(run(&cfg, one, NULL, NULL, NULL, &res, &error));
  g_assert_no_error(error);
  emseg_training_result_clear(&res);
}

/* Datasets keep the samples as read and standardize them when read: the very floats
 * eng_standardize gives for the whole slice, bit for bit, from 8-bit stacks (kept at a byte
 * per pixel) and float ones, whole and in windows; crop_labelled's windows keep the whole
 * slice's standardization. */
static void
test_dataset_standardize(void)
{
  enum { SW = 37, SH = 23, SN = 3 };
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("emseg-ds-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *u8p = g_build_filename(dir, "u8.tif", NULL);
  g_autofree char *f32p = g_build_filename(dir, "f32.tif", NULL);
  g_autofree char *labp = g_build_filename(dir, "lab.tif", NULL);
  g_autofree guint8 *u8 = g_new(guint8, SW * SH * SN), *lab = g_new(guint8, SW * SH * SN);
  g_autofree float *f32 = g_new(float, SW * SH * SN);
  for (guint i = 0; i < SW * SH * SN; i++) {
    u8[i] = (guint8) ((i * 2654435761u) >> 24);
    f32[i] = 1000.0f + 0.37f * (float) u8[i] - 0.01f * (float) (i % 97);
    lab[i] = 255;
  }
  g_assert_true(emseg_tiff_write_u8_stack(u8p, u8, SW, SH, SN, &error));
  g_assert_true(emseg_tiff_write_float_stack(f32p, f32, SW, SH, SN, &error));
  g_assert_true(emseg_tiff_write_u8_stack(labp, lab, SW, SH, SN, &error));
  g_autoptr(EmsegStack) labels = emseg_stack_open(labp, &error);
  g_assert_no_error(error);
  const guint slices[SN] = { 0, 1, 2 };
  for (int k = 0; k < 2; k++) {
    g_autoptr(EmsegStack) images = emseg_stack_open(k ? f32p : u8p, &error);
    g_assert_no_error(error);
    g_autoptr(EmsegDataset) ds = emseg_dataset_from_stacks(images, labels, slices, SN, &error);
    g_assert_no_error(error);
    g_assert_cmpint(ds->type, ==, k ? ENG_PIXEL_F32 : ENG_PIXEL_U8);
    g_autoptr(EmsegDataset) cut = emseg_dataset_crop_labelled(ds, 16, 16, 4);
    for (guint i = 0; i < SN; i++) {
      float want[SW * SH], got[SW * SH], win[11 * 20], cw[16 * 16];
      EngError err;
      g_assert_cmpint(eng_standardize(want, k ? (const void *) (f32 + i * SW * SH)
                                              : (const void *) (u8 + i * SW * SH),
                                      k ? ENG_PIXEL_F32 : ENG_PIXEL_U8, SW, SH, NULL, &err),
                      ==, ENG_OK);
      emseg_dataset_read_image(ds, i, got);
      g_assert_cmpmem(got, sizeof got, want, sizeof want);
      emseg_dataset_read_window(ds, i, 5, 4, 20, 11, win);
      for (guint y = 0; y < 11; y++)
        g_assert_cmpmem(win + y * 20, 20 * sizeof(float), want + (4 + y) * SW + 5,
                        20 * sizeof(float));
      /* every pixel labelled: the 16² window on the 4-px grid nearest the centre, (12, 4) */
      emseg_dataset_read_image(cut, i, cw);
      for (guint y = 0; y < 16; y++)
        g_assert_cmpmem(cw + y * 16, 16 * sizeof(float), want + (4 + y) * SW + 12,
                        16 * sizeof(float));
    }
  }
  g_unlink(u8p);
  g_unlink(f32p);
  g_unlink(labp);
  g_rmdir(dir);
}

typedef struct {
  GArray *fractions; /* double, within the slice in work */
  guint slices_done;
} PassLog;

static void
log_pass(double fraction, gpointer data)
{
  PassLog *l = data;
  g_array_append_val(l->fractions, fraction);
}

static gboolean
log_slice(guint done, guint total, gpointer data)
{
  PassLog *l = data;
  g_assert_cmpuint(done, ==, l->slices_done + 1);
  g_assert_cmpuint(total, ==, 2);
  l->slices_done = done;
  g_assert_cmpuint(l->fractions->len % done, ==, 0); /* every slice reports as many */
  return TRUE;
}

/* Prediction reports how far a slice is after every pass but its last (big slices in
 * windows, MC samples: minutes per slice), rising from 0 to 1 and starting again with the
 * next slice; the slice counter still follows. */
static void
test_predict_pass_progress(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("emseg-pass-XXXXXX", &error);
  g_autofree char *tif = g_build_filename(dir, "im.tif", NULL);
  g_autofree guint8 *pix = g_new(guint8, 2 * 64 * 64);
  for (guint i = 0; i < 2 * 64 * 64; i++)
    pix[i] = (guint8) (i * 7 % 251);
  g_assert_true(emseg_tiff_write_u8_stack(tif, pix, 64, 64, 2, &error));
  g_autoptr(EmsegStack) stack = emseg_stack_open(tif, &error);
  g_assert_no_error(error);
  EngSpec spec;
  EngError err;
  eng_spec_default(&spec);
  g_assert_cmpint(eng_spec_parse(&spec, TINY ",dropout=0.2", &err), ==, ENG_OK);
  EngModel *model = eng_model_new(&spec, 3, &err);
  g_assert_nonnull(model);
  PassLog l = { g_array_new(FALSE, FALSE, sizeof(double)), 0 };
  EmsegPredictOptions opts;
  emseg_predict_options_init(&opts);
  opts.mc_samples = 3;
  opts.progress = log_slice;
  opts.pass_progress = log_pass;
  opts.progress_data = &l;
  const guint slices[2] = { 0, 1 };
  g_autofree float *prob = g_new(float, 2 * 64 * 64);
  /* 64² slices in 32² windows, each window 3 MC samples */
  g_setenv("EMSEG_PREDICT_WINDOW", "32", TRUE);
  gboolean ok = emseg_predict_slices(model, stack, slices, 2, &opts, prob, NULL, &error);
  g_unsetenv("EMSEG_PREDICT_WINDOW");
  g_assert_no_error(error);
  g_assert_true(ok);
  g_assert_cmpuint(l.slices_done, ==, 2);
  guint per_slice = l.fractions->len / 2;
  g_test_message("%u passes reported per slice", per_slice);
  g_assert_cmpuint(l.fractions->len, ==, 2 * per_slice);
  g_assert_cmpuint(per_slice, >=, 2 * 3); /* several windows of 3 samples, less the last pass */
  g_assert_cmpuint((per_slice + 1) % 3, ==, 0);
  for (guint i = 0; i < l.fractions->len; i++) {
    double f = g_array_index(l.fractions, double, i);
    g_assert_cmpfloat(f, >, 0.0);
    g_assert_cmpfloat(f, <, 1.0);
    g_assert_cmpfloat_with_epsilon(f, (double) (i % per_slice + 1) / (per_slice + 1), 1e-12);
  }
  g_array_unref(l.fractions);
  eng_model_free(model);
  g_unlink(tif);
  g_rmdir(dir);
}

static void
test_project_dataset(void)
{
  g_autofree char *dir = g_dir_make_tmp("emseg-pipe-XXXXXX", NULL);
  g_autofree char *tif = g_build_filename(dir, "im.tif", NULL);
  g_autofree char *path = g_build_filename(dir, "p.emseg", NULL);
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *pix = g_new(guint8, 3 * 32 * 32);
  for (guint i = 0; i < 3 * 32 * 32; i++)
    pix[i] = (guint8) (i * 7 % 251);
  g_assert_true(emseg_tiff_write_u8_stack(tif, pix, 32, 32, 3, &error));
  g_autoptr(EmsegStack) stack = emseg_stack_open(tif, &error);
  g_assert_no_error(error);
  EmsegProject *project = emseg_project_open(path, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error(error);
  gint64 sid = 0;
  g_assert_true(emseg_project_import_stack(project, "em", stack, NULL, &sid, &error));
  /* only slice 1 gets labels: a few membrane pixels, the rest unlabeled */
  guint8 mask[32 * 32];
  memset(mask, EMSEG_LABEL_UNLABELED, sizeof mask);
  memset(mask, EMSEG_LABEL_MEMBRANE, 10);
  memset(mask + 100, EMSEG_LABEL_CELL, 5);
  g_assert_true(emseg_project_write_mask(project, sid, 1, mask, &error));
  g_autoptr(EmsegDataset) ds = emseg_dataset_from_project(project, sid, NULL, 0, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(ds->n, ==, 1);
  g_assert_cmpuint(ds->slice[0], ==, 1);
  g_assert_cmpuint(ds->n_labeled[0], ==, 15);
  g_assert_cmpmem(emseg_dataset_labels(ds, 0), sizeof mask, mask, sizeof mask);
  double mean = 0;
  float x[32 * 32];
  emseg_dataset_read_image(ds, 0, x);
  for (guint i = 0; i < 32 * 32; i++)
    mean += x[i] / (32.0 * 32.0);
  g_assert_cmpfloat_with_epsilon(mean, 0, 1e-4); /* standardized */
  /* asking for an unlabeled slice names it */
  guint want[] = { 2 };
  EmsegDataset *none = emseg_dataset_from_project(project, sid, want, 1, &error);
  g_assert_null(none);
  g_assert_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT);
  g_assert_nonnull(strstr(error->message, "slice 2"));
  emseg_project_close(project);
  g_autofree char *wal = g_strconcat(path, "-wal", NULL), *shm = g_strconcat(path, "-shm", NULL);
  g_unlink(wal);
  g_unlink(shm);
  g_unlink(path);
  g_unlink(tif);
  g_rmdir(dir);
}

/* Without validation slices the kept checkpoint's BN statistics are recomputed over the
 * training slices (plain averages, no augmentation, no dropout), as a validation would;
 * they used to be the momentum averages of the augmented, dropout-perturbed training steps.
 * With calibrate_bn off they stay those of the training (the last weights' own). */
static void
test_no_val_best_calibrated(void)
{
  g_autoptr(EmsegDataset) train = synth(0, 2, 32);
  EmsegTrainingConfig cfg;
  tiny_config(&cfg, "dropout=0.2");
  cfg.epochs = 3;
  cfg.augment = TRUE;
  g_autoptr(GError) error = NULL;
  EmsegTrainingResult res;
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(res.best_epoch, >, 0);
  EngModel *again = recalibrated_copy(res.best_model, train);
  g_assert_cmpuint(assert_same_bn_stats(again, res.best_model), >, 0);
  const float *want = eng_model_params_const(again, NULL), *best;
  /* off: the training's own statistics, which differ */
  emseg_training_result_clear(&res);
  cfg.calibrate_bn = FALSE;
  g_assert_true(run(&cfg, train, NULL, NULL, NULL, &res, &error));
  best = eng_model_params_const(res.best_model, NULL);
  double diff = 0;
  for (size_t p = 0; p < eng_model_n_params(again); p++) {
    const EngParam *par = eng_model_param(again, p);
    if (par->kind == ENG_PARAM_BN_VAR)
      for (size_t j = par->offset; j < par->offset + par->count; j++)
        diff += fabs(best[j] - want[j]);
  }
  g_assert_cmpfloat(diff, >, 1e-3);
  eng_model_free(again);
  emseg_training_result_clear(&res);
}

/* ---- BN statistics over a stack in tiles (emseg_calibrate_bn_on_stack) ---- */

#define BW 1024
#define BH 600

static gboolean
read_bn_page(gpointer user_data, guint index, void *out, GError **error)
{
  (void) error;
  float *o = out;
  for (gsize i = 0; i < (gsize) BW * BH; i++)
    o[i] = (float) (100.0 + 40.0 * sin(0.05 * (i % BW) + 0.9 * index) * cos(0.07 * (i / BW)) +
                    (i % BW) * 0.05);
  (void) user_data;
  return TRUE;
}

/* The BN statistics a stack's tiles give, computed here by cropping 512² tiles by hand and
 * calling eng_model_calibrate_bn: a 1024×600 slice is 2 × 2 tiles (x 0, 512; y 0, 88). The
 * test also follows its progress calls and stops one midway. */
static float *
stats_of_tiles(EngModel *m, EmsegStack *st, const guint (*tiles)[3], guint n)
{
  EngError err;
  EngGraph *g = eng_graph_new(m, 1, 512, 512, 0, &err);
  g_autofree float *page = g_new(float, (gsize) BW * BH);
  g_autofree float *x = g_new(float, (gsize) 512 * 512 * n);
  g_autofree const float **planes = g_new(const float *, n);
  for (guint k = 0; k < n; k++) {
    g_assert_true(emseg_read_standardized(st, tiles[k][0], page, NULL));
    for (guint y = 0; y < 512; y++)
      memcpy(x + (gsize) 512 * 512 * k + (gsize) y * 512,
             page + (gsize) (tiles[k][2] + y) * BW + tiles[k][1], 512 * sizeof(float));
    planes[k] = x + (gsize) 512 * 512 * k;
  }
  g_assert_cmpint(eng_model_calibrate_bn(m, g, planes, n, &err), ==, ENG_OK);
  eng_graph_free(g);
  size_t total;
  const float *stats = eng_model_params_arena(m, &total);
  return g_memdup2(stats, total * sizeof(float));
}

/* What the progress function of emseg_calibrate_bn_on_stack was told; stop_after > 0 raises
 * cancel after that many tiles. */
typedef struct {
  guint calls, last_done, last_total, stop_after;
  atomic_int cancel;
} TileLog;

static void
log_tile(guint done, guint total, gpointer data)
{
  TileLog *log = data;
  log->calls++;
  log->last_done = done;
  log->last_total = total;
  if (log->stop_after > 0 && done >= log->stop_after)
    atomic_store(&log->cancel, 1);
}

static void
test_calibrate_bn_tiles(void)
{
  EngSpec spec;
  EngError err;
  eng_spec_default(&spec);
  g_assert_cmpint(eng_spec_parse(&spec, TINY, &err), ==, ENG_OK);
  EngModel *m = eng_model_new(&spec, 3, &err);
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) st = emseg_stack_new_from_reader("bn.tif", BW, BH, 2, EMSEG_SAMPLE_F32,
                                                         read_bn_page, NULL, NULL, &error);
  g_assert_no_error(error);
  size_t total;
  float *w = eng_model_params_arena(m, &total);
  /* every tile of slice 1 */
  const guint all[][3] = { { 1, 0, 0 }, { 1, 512, 0 }, { 1, 0, 88 }, { 1, 512, 88 } };
  g_autofree float *want = stats_of_tiles(m, st, all, 4);
  const guint one = 1;
  guint n_tiles = 0;
  g_assert_true(emseg_calibrate_bn_on_stack(m, st, &one, 1, 0, NULL, NULL, NULL, &n_tiles, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(n_tiles, ==, 4);
  g_assert_cmpmem(w, total * sizeof(float), want, total * sizeof(float));
  /* at most 3 of the two slices' 8 tiles: the 0th, 2nd and 5th (k * 8 / 3) */
  const guint some[][3] = { { 0, 0, 0 }, { 0, 0, 88 }, { 1, 512, 0 } };
  g_autofree float *want3 = stats_of_tiles(m, st, some, 3);
  const guint both[] = { 0, 1 };
  TileLog log = { 0 };
  g_assert_true(emseg_calibrate_bn_on_stack(m, st, both, 2, 3, NULL, log_tile, &log, &n_tiles,
                                            &error));
  g_assert_cmpuint(n_tiles, ==, 3);
  g_assert_cmpmem(w, total * sizeof(float), want3, total * sizeof(float));
  g_assert_cmpuint(log.calls, ==, 3); /* 1/3, 2/3, 3/3 */
  g_assert_cmpuint(log.last_done, ==, 3);
  g_assert_cmpuint(log.last_total, ==, 3);
  /* a cancel flag raised after the first tile stops the second's forward */
  TileLog stopper = { .stop_after = 1 };
  atomic_init(&stopper.cancel, 0);
  g_assert_false(emseg_calibrate_bn_on_stack(m, st, both, 2, 3, &stopper.cancel, log_tile,
                                             &stopper, &n_tiles, &error));
  g_assert_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_CANCELLED);
  g_assert_nonnull(strstr(error->message, "bn.tif: stopped"));
  g_clear_error(&error);
  g_assert_cmpuint(stopper.calls, ==, 1);
  /* slices smaller than the network takes are refused, naming both sizes */
  g_autoptr(EmsegStack) small = emseg_stack_new_from_reader("small.tif", 6, 6, 1,
                                                            EMSEG_SAMPLE_F32, read_bn_page, NULL,
                                                            NULL, &error);
  g_assert_false(emseg_calibrate_bn_on_stack(m, small, &one, 0, 0, NULL, NULL, NULL, &n_tiles, &error));
  g_assert_nonnull(strstr(error->message, "no slices"));
  g_clear_error(&error);
  const guint zero = 0;
  g_assert_false(emseg_calibrate_bn_on_stack(m, small, &zero, 1, 0, NULL, NULL, NULL, &n_tiles, &error));
  g_assert_nonnull(strstr(error->message, "small.tif: slices of 6×6 are smaller than the "
                                          "network's 8×8 minimum"));
  eng_model_free(m);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/training/determinism", test_determinism);
  g_test_add_func("/training/best-checkpoint", test_best_checkpoint);
  g_test_add_func("/training/early-stopping", test_early_stopping);
  g_test_add_func("/training/val-every", test_val_every);
  g_test_add_func("/training/export-gamma", test_export_gamma);
  g_test_add_func("/training/lr-steps", test_lr_steps);
  g_test_add_func("/training/layer-stats", test_layer_stats);
  g_test_add_func("/training/unlabeled-excluded", test_unlabeled_excluded);
  g_test_add_func("/training/crops-find-labels", test_crops_find_labels);
  g_test_add_func("/training/cancel", test_cancel);
  g_test_add_func("/training/resume", test_resume);
  g_test_add_func("/training/fine-tune", test_fine_tune);
  g_test_add_func("/training/fine-tune-baseline", test_fine_tune_baseline);
  g_test_add_func("/training/swa", test_swa);
  g_test_add_func("/training/border-weights", test_border_weights);
  g_test_add_func("/training/conv-bf16", test_conv_bf16);
  g_test_add_func("/training/bad-config", test_bad_config);
  g_test_add_func("/training/project-dataset", test_project_dataset);
  g_test_add_func("/training/dataset-standardize", test_dataset_standardize);
  g_test_add_func("/training/predict-pass-progress", test_predict_pass_progress);
  g_test_add_func("/training/calibrate-bn-tiles", test_calibrate_bn_tiles);
  g_test_add_func("/training/no-val-best-calibrated", test_no_val_best_calibrated);
  return g_test_run();
}
