/* test-training-isbi.c — the pipeline on the real ISBI 2012 data (suite 'isbi'): datasets
 * from the TIFF stacks in $EMSEG_ISBI_DIR (slices standardized, labels binary), one short
 * run of a tiny spec on crops with full-slice validation, V_rand / V_info included, and the
 * shipped model ($EMSEG_MODELS_DIR) reproducing its documented validation scores (plain
 * inference, the mode data/models/README.md recommends for it) with its stored export
 * exponent. */
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emseg-dataset.h"
#include "emseg-gamma.h"
#include "emseg-predict.h"
#include "emseg-training.h"
#include "eng-modelfile.h"

/* The ISBI training volume and its labels from $EMSEG_ISBI_DIR (the caller frees both). */
static void
open_isbi_training(EmsegStack **images, EmsegStack **labels)
{
  const char *dir = g_getenv("EMSEG_ISBI_DIR");
  g_assert_nonnull(dir);
  g_autofree char *im_path = g_build_filename(dir, "train-volume.tif", NULL);
  g_autofree char *lab_path = g_build_filename(dir, "train-labels.tif", NULL);
  g_autoptr(GError) error = NULL;
  *images = emseg_stack_open(im_path, &error);
  g_assert_no_error(error);
  *labels = emseg_stack_open(lab_path, &error);
  g_assert_no_error(error);
}

static void
test_isbi(void)
{
  g_autoptr(EmsegStack) images = NULL;
  g_autoptr(EmsegStack) labels = NULL;
  open_isbi_training(&images, &labels);
  g_autoptr(GError) error = NULL;
  guint tr_idx[] = { 0, 1 }, va_idx[] = { 20 };
  g_autoptr(EmsegDataset) train = emseg_dataset_from_stacks(images, labels, tr_idx, 2, &error);
  g_assert_no_error(error);
  g_autoptr(EmsegDataset) val = emseg_dataset_from_stacks(images, labels, va_idx, 1, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(train->width, ==, 512);
  g_assert_cmpuint(train->n_labeled[0], ==, 512 * 512); /* ISBI labels are complete */
  double mean = 0;
  g_autofree float *x = g_new(float, 512 * 512);
  emseg_dataset_read_image(train, 0, x);
  for (gsize i = 0; i < 512 * 512; i++)
    mean += x[i];
  g_assert_cmpfloat(fabs(mean / (512.0 * 512.0)), <, 1e-3);

  EmsegTrainingConfig cfg;
  emseg_training_config_init(&cfg);
  EngError err;
  g_assert_cmpint(eng_spec_parse(&cfg.spec, "base_width=4,down=1,up=1,across=1,main_block=basic",
                                 &err), ==, ENG_OK);
  cfg.loss = ENG_LOSS_DICE; /* not the default (BCE): its sign is checked below */
  cfg.epochs = 2;
  cfg.crop = 128;
  EmsegTrainingResult res;
  g_assert_true(emseg_training_run(&cfg, train, val, NULL, NULL, NULL, &res, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(res.epochs_run, ==, 2);
  g_assert_true(isfinite(res.best_loss));
  g_assert_cmpfloat(res.best_loss, <, 0); /* Dice: any overlap gives a negative loss */
  emseg_training_result_clear(&res);
}

/* data/models/README.md: slices 20-24 predicted plainly score V_rand 0.9744 / V_info 0.9781
 * with the stored γ 8, and 0.9738 / 0.9777 as probabilities (γ 1). The bounds leave room
 * for other BLAS kernels (they shift a few pixels across a threshold); the exponent's
 * gain is smaller than they are (here 0.0006), so the test also asks that γ 8 scores
 * above γ 1, as it did when the run chose it. */
static void
test_shipped_model(void)
{
  const char *models = g_getenv("EMSEG_MODELS_DIR");
  g_assert_nonnull(models);
  g_autofree char *model_path = g_build_filename(models, "isbi2012-resfcn.emsegmodel", NULL);
  g_autoptr(EmsegStack) images = NULL;
  g_autoptr(EmsegStack) labels = NULL;
  open_isbi_training(&images, &labels);
  g_autoptr(GError) error = NULL;
  EngModel *model = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(model_path, &model, &meta, &err), ==, ENG_OK);
  double gamma = emseg_gamma_from_meta(meta);
  free(meta);
  g_assert_cmpfloat(gamma, ==, 8.0);

  enum { N = 5, PLANE = 512 * 512 };
  guint slices[N] = { 20, 21, 22, 23, 24 };
  g_autofree float *prob = g_new(float, (gsize) N * PLANE);
  g_autofree guint8 *gt = g_new(guint8, (gsize) N * PLANE);
  for (guint k = 0; k < N; k++)
    g_assert_true(emseg_stack_read_u8(labels, slices[k], gt + (gsize) k * PLANE, &error));
  EmsegPredictOptions opts;
  emseg_predict_options_init(&opts);
  g_assert_true(emseg_predict_slices(model, images, slices, N, &opts, prob, NULL, &error));
  g_assert_no_error(error);
  eng_model_free(model);

  const double gammas[] = { 1.0, gamma };
  EngMetricsResult r[2];
  guint best = 0;
  g_assert_true(emseg_gamma_sweep(prob, gt, N, 512, 512, gammas, 2, r, &best, &error));
  g_assert_no_error(error);
  g_test_message("plain: gamma 1 V_rand %.4f V_info %.4f; gamma %g V_rand %.4f V_info %.4f",
                 r[0].vrand, r[0].vinfo, gamma, r[1].vrand, r[1].vinfo);
  g_assert_cmpfloat(fabs(r[0].vrand - 0.9738), <, 0.005);
  g_assert_cmpfloat(fabs(r[1].vrand - 0.9744), <, 0.005);
  g_assert_cmpfloat(fabs(r[1].vinfo - 0.9781), <, 0.005);
  g_assert_cmpuint(best, ==, 1);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/training-isbi/short-run", test_isbi);
  g_test_add_func("/training-isbi/shipped-model", test_shipped_model);
  return g_test_run();
}
