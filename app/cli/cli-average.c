/* cli-average.c — `emseg average`: the mean of several model files' weights (checkpoint
 * averaging, as in stochastic weight averaging), with BN statistics recomputed over slices.
 *
 * Why BN is recomputed, always: the average of the files' running statistics does not
 * describe the activations of the averaged weights, and inference with them is off (the
 * SWA paper makes the same pass). `emseg train --swa-from` does the same inside a run;
 * this command averages files a run already left behind (resume states, checkpoints). */
#include <stdio.h>
#include <stdlib.h>

#include "cli-commands.h"
#include "emseg-predict.h"
#include "eng-average.h"
#include "eng-modelfile.h"

int
emseg_cli_average(int argc, char **argv)
{
  g_autofree char *images_path = NULL, *slices_text = NULL, *out_path = NULL;
  g_auto(GStrv) inputs = NULL;
  gboolean half = FALSE;
  GOptionEntry entries[] = {
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack to recompute BN statistics on (e.g. the training slices)", "STACK" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text, "Slices of it, e.g. 0-19 (default all)", "LIST" },
    { "half", 0, 0, G_OPTION_ARG_NONE, &half, "Store the result in half precision", NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Model file to write", "MODEL" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &inputs, NULL, "MODEL..." },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new(
      "- average the weights of model files of one architecture; BN statistics are "
      "recomputed over --images");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg average: %s\n", error->message);
    return 2;
  }
  guint n_in = inputs ? g_strv_length(inputs) : 0;
  if (!images_path || !out_path || n_in < 2) {
    fprintf(stderr, "emseg average: two or more model files, --images and --out are required "
                    "(see --help)\n");
    return 2;
  }
  /* everything with a cleanup is declared before the first goto */
  int rc = 1;
  EngModel *mean = NULL;
  guint n = 0;
  EngError err;
  g_autoptr(GString) meta = g_string_new(NULL);
  g_string_append_printf(meta, "averaged_models=%u\n", n_in);
  for (guint i = 0; i < n_in; i++) {
    EngModel *m = NULL;
    char *m_meta = NULL;
    if (eng_model_load(inputs[i], &m, &m_meta, &err) != ENG_OK) {
      fprintf(stderr, "emseg average: %s\n", err.message);
      goto out;
    }
    free(m_meta);
    if (i == 0) {
      mean = m; /* the first file is the running mean's storage: the mean of one */
    } else {
      EngStatus st = eng_model_running_mean(mean, m, i, &err);
      eng_model_free(m);
      if (st != ENG_OK) {
        fprintf(stderr, "emseg average: %s: %s\n", inputs[i], err.message);
        goto out;
      }
    }
    g_string_append_printf(meta, "averaged_model_%u=%s\n", i + 1, inputs[i]);
  }
  if (!emseg_calibrate_bn_on_slices(mean, images_path, slices_text, &n, &error)) {
    fprintf(stderr, "emseg average: %s\n", error->message);
    goto out;
  }
  g_string_append_printf(meta, "bn_calibrated_on=%s %s\n", images_path,
                         slices_text ? slices_text : "all");
  if (eng_model_save(mean, out_path, half ? ENG_DTYPE_F16 : ENG_DTYPE_F32, meta->str, &err) !=
      ENG_OK) {
    fprintf(stderr, "emseg average: %s\n", err.message);
    goto out;
  }
  printf("averaged %u models, recomputed BN statistics over %u slices; wrote %s\n", n_in, n,
         out_path);
  rc = 0;
out:
  eng_model_free(mean);
  return rc;
}
