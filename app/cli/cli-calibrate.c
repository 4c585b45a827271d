/* cli-calibrate.c — `emseg calibrate-bn`: recomputes every BN layer's running statistics
 * as exact averages over given slices, without augmentation or dropout ("precise BN").
 *
 * Why: training updates the running statistics with momentum 0.9 from one augmented,
 * dropout-perturbed slice at a time, so at the end they describe the last few training
 * images as seen through dropout, not the data; inference then shifts every layer. A pass
 * of training-mode forwards with momentum k/(k+1) for the k-th slice replaces them by the
 * plain mean over the slices (running_var: the mean of per-slice unbiased variances). The
 * weights are untouched. */
#include <stdio.h>
#include <stdlib.h>

#include "cli-commands.h"
#include "emseg-predict.h"
#include "eng-modelfile.h"

int
emseg_cli_calibrate_bn(int argc, char **argv)
{
  g_autofree char *model_path = NULL, *images_path = NULL, *slices_text = NULL,
                  *out_path = NULL;
  gboolean half = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "Model file", "MODEL" },
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack (e.g. the training slices)", "STACK" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text, "Slices to average over, e.g. 0-19 (default all)", "LIST" },
    { "half", 0, 0, G_OPTION_ARG_NONE, &half, "Store the result in half precision", NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Model file to write", "MODEL" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx =
      g_option_context_new("- recompute BN running statistics over slices (no augmentation, no dropout)");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg calibrate-bn: %s\n", error->message);
    return 2;
  }
  if (!model_path || !images_path || !out_path) {
    fprintf(stderr, "emseg calibrate-bn: --model, --images and --out are required (see --help)\n");
    return 2;
  }
  EngModel *model = NULL;
  char *meta = NULL;
  EngError err;
  if (eng_model_load(model_path, &model, &meta, &err) != ENG_OK) {
    fprintf(stderr, "emseg calibrate-bn: %s\n", err.message);
    return 1;
  }
  int rc = 1;
  g_autofree char *meta2 = NULL;
  guint n = 0;
  if (!emseg_calibrate_bn_on_slices(model, images_path, slices_text, &n, &error))
    goto out;
  meta2 = g_strdup_printf("%sbn_calibrated_on=%s %s\n", meta ? meta : "", images_path,
                          slices_text ? slices_text : "all");
  if (eng_model_save(model, out_path, half ? ENG_DTYPE_F16 : ENG_DTYPE_F32, meta2, &err) != ENG_OK) {
    fprintf(stderr, "emseg calibrate-bn: %s\n", err.message);
    goto out;
  }
  printf("recomputed BN statistics over %u slices; wrote %s\n", n, out_path);
  rc = 0;
out:
  if (rc && error)
    fprintf(stderr, "emseg calibrate-bn: %s\n", error->message);
  eng_model_free(model);
  free(meta);
  return rc;
}
