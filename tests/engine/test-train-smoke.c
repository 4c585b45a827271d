/* test-train-smoke.c — the whole training path learns: on a generated EM-like slice
 * (engine/augment/eng-synth.h), a small model trained with RMSprop for a few dozen steps
 * brings the loss well below where it started, for both losses, and prediction gives the
 * ISBI convention (high where the labels say cell). */
#include <glib.h>
#include <math.h>

#include "eng-preprocess.h"
#include "eng-synth.h"
#include "eng-train.h"

#define SIZE 96

static void
train_on_synthetic(EngLossKind kind, double *first, double *last, double *cell_prob,
                   double *membrane_prob)
{
  EngError err;
  EngSynthParams sp;
  eng_synth_params_init(&sp, 11);
  sp.cell_size = 24.0f;
  guint8 *img = g_new(guint8, SIZE * SIZE), *lab = g_new(guint8, SIZE * SIZE);
  g_assert_cmpint(eng_synth_slice(img, lab, &sp, 0, SIZE, SIZE, &err), ==, ENG_OK);
  float *x = g_new(float, SIZE * SIZE), *t = g_new(float, SIZE * SIZE),
        *m = g_new(float, SIZE * SIZE), *prob = g_new(float, SIZE * SIZE);
  g_assert_cmpint(eng_standardize(x, img, ENG_PIXEL_U8, SIZE, SIZE, NULL, &err), ==, ENG_OK);
  eng_labels_to_target(t, m, lab, SIZE * SIZE);

  EngSpec spec;
  eng_spec_default(&spec);
  g_assert_cmpint(eng_spec_parse(&spec, "base_width=8,down=1/1,across=1", &err), ==, ENG_OK);
  EngModel *model = eng_model_new(&spec, 1, &err);
  EngRmspropConfig opt;
  eng_rmsprop_default(&opt);
  EngTrainer *tr = eng_trainer_new(model, 1, SIZE, SIZE, &opt, kind, &err);
  g_assert_nonnull(tr);
  EngStepResult r;
  double tail = 0;
  const int steps = 40;
  for (int i = 0; i < steps; i++) {
    g_assert_cmpint(eng_trainer_step(tr, x, t, m, (uint64_t) i, &r, &err), ==, ENG_OK);
    if (i == 0)
      *first = r.loss;
    if (i >= steps - 5)
      tail += r.loss / 5;
  }
  *last = tail;
  EngGraph *g = eng_graph_new(model, 1, SIZE, SIZE, 0, &err);
  g_assert_cmpint(eng_predict(g, x, ENG_MODE_INFER, 1, 0, prob, NULL, &err), ==, ENG_OK);
  double pc = 0, pm = 0;
  size_t nc = 0, nm = 0;
  for (size_t i = 0; i < SIZE * SIZE; i++) {
    g_assert_true(prob[i] >= 0.0f && prob[i] <= 1.0f);
    if (lab[i]) {
      pc += prob[i];
      nc++;
    } else {
      pm += prob[i];
      nm++;
    }
  }
  *cell_prob = pc / (double) nc;
  *membrane_prob = pm / (double) nm;
  eng_graph_free(g);
  eng_trainer_free(tr);
  eng_model_free(model);
  g_free(img);
  g_free(lab);
  g_free(x);
  g_free(t);
  g_free(m);
  g_free(prob);
}

static void
test_bce(void)
{
  double first, last, pc, pm;
  train_on_synthetic(ENG_LOSS_BCE, &first, &last, &pc, &pm);
  g_test_message("bce: first %.4f, mean of last 5 %.4f; mean P(cell) on cell %.3f, on membrane %.3f",
                 first, last, pc, pm);
  g_assert_cmpfloat(last, <, 0.5 * first);
  g_assert_cmpfloat(pc, >, pm + 0.3);
}

static void
test_dice(void)
{
  double first, last, pc, pm;
  train_on_synthetic(ENG_LOSS_DICE, &first, &last, &pc, &pm);
  g_test_message("dice: first %.4f, mean of last 5 %.4f; mean P(cell) on cell %.3f, on membrane %.3f",
                 first, last, pc, pm);
  /* Dice runs from 0 (nothing right) to -1 (perfect). */
  g_assert_cmpfloat(last, <, first - 0.25);
  g_assert_cmpfloat(pc, >, pm + 0.3);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/train/smoke-bce", test_bce);
  g_test_add_func("/train/smoke-dice", test_dice);
  return g_test_run();
}
