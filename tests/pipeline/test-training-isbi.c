/* test-training-isbi.c — the pipeline on the real ISBI 2012 data (suite 'isbi'): datasets
 * from the TIFF stacks in $EMSEG_ISBI_DIR (slices standardized, labels binary), and one
 * short run of a tiny spec on crops with full-slice validation, V_rand / V_info included. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "emseg-dataset.h"
#include "emseg-training.h"

static void
test_isbi(void)
{
  const char *dir = g_getenv("EMSEG_ISBI_DIR");
  g_assert_nonnull(dir);
  g_autofree char *im_path = g_build_filename(dir, "train-volume.tif", NULL);
  g_autofree char *lab_path = g_build_filename(dir, "train-labels.tif", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) images = emseg_stack_open(im_path, &error);
  g_assert_no_error(error);
  g_autoptr(EmsegStack) labels = emseg_stack_open(lab_path, &error);
  g_assert_no_error(error);
  guint tr_idx[] = { 0, 1 }, va_idx[] = { 20 };
  g_autoptr(EmsegDataset) train = emseg_dataset_from_stacks(images, labels, tr_idx, 2, &error);
  g_assert_no_error(error);
  g_autoptr(EmsegDataset) val = emseg_dataset_from_stacks(images, labels, va_idx, 1, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(train->width, ==, 512);
  g_assert_cmpuint(train->n_labeled[0], ==, 512 * 512); /* ISBI labels are complete */
  double mean = 0;
  for (gsize i = 0; i < 512 * 512; i++)
    mean += emseg_dataset_image(train, 0)[i];
  g_assert_cmpfloat(fabs(mean / (512.0 * 512.0)), <, 1e-3);

  EmsegTrainingConfig cfg;
  emseg_training_config_init(&cfg);
  EngError err;
  g_assert_cmpint(eng_spec_parse(&cfg.spec, "base_width=4,down=1,up=1,across=1,main_block=basic",
                                 &err), ==, ENG_OK);
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

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/training-isbi/short-run", test_isbi);
  return g_test_run();
}
