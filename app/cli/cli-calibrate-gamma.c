/* cli-calibrate-gamma.c — `emseg calibrate-gamma`: chooses a model's export exponent γ
 * (emseg-gamma.h) on labelled slices and, with --out, stores it in the model's metadata.
 *
 *   emseg calibrate-gamma --model M --images STACK --labels GT --slices 20-24
 *                         [--tta] [--mc-samples N] [--bf16] [--gammas 1,2,3,4,6,8]
 *                         [--out M2 [--half]]
 *
 * It predicts the slices once, the way the submission will be predicted (plain, MC dropout
 * or TTA), scores p^γ for every γ with the ISBI scorer, prints the table and picks the γ
 * with the highest V_rand (the smaller one on ties). Use slices the model was not trained
 * on: on its own training slices the network is confident and every γ scores alike. The
 * weights are copied unchanged; only the metadata gains `export_gamma=` and a line saying
 * how it was chosen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-commands.h"
#include "emseg-gamma.h"
#include "emseg-predict.h"
#include "emseg-stack.h"
#include "eng-modelfile.h"

/* meta without its export_gamma* lines, then the new ones. Returns a g_malloc'd string. */
static char *
meta_with_gamma(const char *meta, double gamma, const char *how)
{
  GString *s = g_string_new(NULL);
  g_auto(GStrv) lines = g_strsplit(meta ? meta : "", "\n", -1);
  for (int i = 0; lines[i] != NULL; i++)
    if (lines[i][0] != '\0' && !g_str_has_prefix(lines[i], "export_gamma"))
      g_string_append_printf(s, "%s\n", lines[i]);
  g_autofree char *lines_gamma = emseg_gamma_meta_lines(gamma, how);
  g_string_append(s, lines_gamma);
  return g_string_free(s, FALSE);
}

/* Images and labels have the same slice size. */
static gboolean
check_stacks(EmsegStack *images, EmsegStack *labels, const char *images_path,
             const char *labels_path, GError **error)
{
  guint w = emseg_stack_get_width(images), h = emseg_stack_get_height(images);
  if (emseg_stack_get_width(labels) != w || emseg_stack_get_height(labels) != h) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                "labels %s are %u x %u, images %s are %u x %u", labels_path,
                emseg_stack_get_width(labels), emseg_stack_get_height(labels), images_path, w,
                h);
    return FALSE;
  }
  return TRUE;
}

int
emseg_cli_calibrate_gamma(int argc, char **argv)
{
  g_autofree char *model_path = NULL, *images_path = NULL, *labels_path = NULL,
                  *slices_text = NULL, *gammas_text = NULL, *out_path = NULL;
  gint mc = 1;
  gint64 seed = 1;
  gboolean tta = FALSE, half = FALSE, bf16 = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "Model file", "MODEL" },
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack", "STACK" },
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &labels_path,
      "Labels of the same stack (0 = membrane, non-zero = cell)", "GT" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text,
      "Labelled slices the model was not trained on, e.g. 20-24 (required)", "LIST" },
    { "mc-samples", 0, 0, G_OPTION_ARG_INT, &mc, "Predict as the export will: N MC dropout passes", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed of the dropout masks", "S" },
    { "tta", 0, 0, G_OPTION_ARG_NONE, &tta, "Predict as the export will: with test-time augmentation", NULL },
    { "bf16", 0, 0, G_OPTION_ARG_NONE, &bf16,
      "Predict as the export will: convolutions in bfloat16 with float32 sums", NULL },
    { "gammas", 0, 0, G_OPTION_ARG_STRING, &gammas_text, "Exponents to try (default " EMSEG_GAMMA_DEFAULT_LIST ")", "LIST" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Write the model with the chosen exponent here", "MODEL" },
    { "half", 0, 0, G_OPTION_ARG_NONE, &half, "Store the written model in half precision", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx =
      g_option_context_new("- choose the export exponent γ (P(cell)^γ) by V_rand on labelled slices");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg calibrate-gamma: %s\n", error->message);
    return 2;
  }
  if (!model_path || !images_path || !labels_path || !slices_text) {
    fprintf(stderr, "emseg calibrate-gamma: --model, --images, --labels and --slices are "
                    "required (see --help)\n");
    return 2;
  }
  if (mc < 1) {
    fprintf(stderr, "emseg calibrate-gamma: --mc-samples must be >= 1\n");
    return 2;
  }
  guint n_gammas = 0;
  g_autofree double *gammas =
      emseg_gamma_parse_list(gammas_text ? gammas_text : EMSEG_GAMMA_DEFAULT_LIST, &n_gammas,
                             &error);
  if (!gammas) {
    fprintf(stderr, "emseg calibrate-gamma: --gammas: %s\n", error->message);
    return 2;
  }

  EngModel *model = NULL;
  char *meta = NULL;
  EngError err;
  if (eng_model_load(model_path, &model, &meta, &err) != ENG_OK) {
    fprintf(stderr, "emseg calibrate-gamma: %s\n", err.message);
    return 1;
  }
  eng_model_set_conv_bf16(model, bf16); /* before the first prediction builds its graph */
  if (bf16)
    emseg_cli_report_bf16("calibrate-gamma");
  int rc = 1;
  guint n = 0;
  g_autofree guint *idx = NULL;
  g_autofree float *prob = NULL;
  g_autofree guint8 *gt = NULL;
  g_autofree EngMetricsResult *results = g_new(EngMetricsResult, n_gammas);
  g_autoptr(EmsegStack) images = emseg_stack_open(images_path, &error);
  g_autoptr(EmsegStack) labels = images ? emseg_stack_open(labels_path, &error) : NULL;
  if (!labels || !check_stacks(images, labels, images_path, labels_path, &error))
    goto out;
  /* slices must exist in both stacks: the shorter one bounds the list */
  idx = emseg_parse_slices(slices_text,
                           MIN(emseg_stack_get_n_slices(images), emseg_stack_get_n_slices(labels)),
                           &n, &error);
  if (!idx)
    goto out;
  gsize plane = (gsize) emseg_stack_get_width(images) * emseg_stack_get_height(images);
  prob = g_try_new(float, n * plane);
  gt = g_try_malloc(n * plane);
  if (!prob || !gt) {
    g_set_error(&error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE,
                "not enough memory for %u slices", n);
    goto out;
  }
  for (guint k = 0; k < n; k++)
    if (!emseg_stack_read_u8(labels, idx[k], gt + k * plane, &error))
      goto out;
  EmsegPredictOptions opts;
  emseg_predict_options_init(&opts);
  opts.mc_samples = mc;
  opts.seed = (guint64) seed;
  opts.tta = tta;
  CliProgress progress;
  emseg_cli_progress_init(&progress, "calibrate-gamma", n);
  opts.progress = emseg_cli_show_progress;
  opts.pass_progress = emseg_cli_show_pass_progress;
  opts.progress_data = &progress;
  emseg_cli_report_windows("calibrate-gamma", model, images);
  if (!emseg_predict_slices(model, images, idx, n, &opts, prob, NULL, &error))
    goto out;
  guint best = 0;
  if (!emseg_gamma_sweep(prob, gt, n, emseg_stack_get_height(images),
                         emseg_stack_get_width(images), gammas, n_gammas, results, &best,
                         &error))
    goto out;

  printf("gamma    V_rand (at t)     V_info (at t)     pixel error\n");
  for (guint k = 0; k < n_gammas; k++) {
    const EngMetricsResult *r = &results[k];
    printf("%-8g %.4f (%.1f)      %.4f (%.1f)      %.4f%s\n", gammas[k], r->vrand,
           r->rows[r->vrand_at].threshold, r->vinfo, r->rows[r->vinfo_at].threshold,
           r->pixel_error, k == best ? "   <- chosen" : "");
  }
  printf("export_gamma %g (%u slices, %s%s)\n", gammas[best], n,
         tta ? (mc > 1 ? "TTA x MC dropout" : "TTA") : (mc > 1 ? "MC dropout" : "plain"),
         bf16 ? ", bfloat16 convolutions" : "");
  if (out_path) {
    g_autofree char *how = g_strdup_printf(
        "calibrate-gamma on %s slices %s, tta %s, mc-samples %d%s, V_rand %.4f at gamma %g, "
        "%.4f at %g", images_path, slices_text, tta ? "on" : "off", mc, bf16 ? ", bf16" : "",
        results[0].vrand,
        gammas[0], results[best].vrand, gammas[best]);
    g_autofree char *meta2 = meta_with_gamma(meta, gammas[best], how);
    if (eng_model_save(model, out_path, half ? ENG_DTYPE_F16 : ENG_DTYPE_F32, meta2, &err) !=
        ENG_OK) {
      fprintf(stderr, "emseg calibrate-gamma: %s\n", err.message);
      goto out;
    }
    printf("wrote %s (export_gamma=%g)\n", out_path, gammas[best]);
  }
  rc = 0;
out:
  if (rc && error)
    fprintf(stderr, "emseg calibrate-gamma: %s\n", error->message);
  eng_model_free(model);
  free(meta);
  return rc;
}
