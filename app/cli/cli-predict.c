/* cli-predict.c — `emseg predict`: cell-interior probabilities (ISBI convention,
 * 1 = cell, 0 = membrane) as a 32-bit float TIFF stack, one page per slice; optionally
 * Monte-Carlo dropout averaging and its per-pixel standard deviation. --gamma G writes
 * p^G, the export exponent (emseg-gamma.h); the default 1 writes the probabilities. The
 * images and model come from files or from a project (cli-sources.c). */
#include <stdio.h>

#include "cli-commands.h"
#include "emseg-gamma.h"
#include "emseg-predict.h"
#include "emseg-stack.h"
#include "eng-modelfile.h"

/* Where predicted slices go: the probability stack (P(cell)^gamma) and, with --std-out,
 * the MC standard deviation stack (that of P itself). */
typedef struct {
  double gamma;
  gsize plane;
  EmsegStackWriter *prob, *std;
} Outputs;

static void
outputs_clear(Outputs *o)
{
  g_clear_pointer(&o->prob, emseg_stack_writer_free); /* unfinished: the file goes */
  g_clear_pointer(&o->std, emseg_stack_writer_free);
}

/* An EmsegPredictSink: one slice appended to each stack. */
static gboolean
write_slice(guint k, guint slice, float *prob, const float *std, gpointer user_data,
            GError **error)
{
  (void) k;
  (void) slice;
  Outputs *o = user_data;
  emseg_gamma_apply(prob, o->plane, o->gamma); /* the std stack stays that of P */
  return emseg_stack_writer_append(o->prob, prob, error) &&
         (!o->std || emseg_stack_writer_append(o->std, std, error));
}

int
emseg_cli_predict(int argc, char **argv)
{
  g_autofree char *model_path = NULL, *images_path = NULL, *slices_text = NULL,
                  *out_path = NULL, *std_path = NULL, *project_path = NULL,
                  *checkpoint = NULL;
  gint64 stack_id = 0;
  int mc = 1;
  gint64 seed = 1;
  gboolean tta = FALSE, bf16 = FALSE, adapt_bn = FALSE;
  double gamma = 1.0;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "Model file (default: with --project the project's current model (its latest unless one was chosen); else, or when it has none, the shipped ISBI 2012 model)", "MODEL" },
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack (TIFF or PNG folder)", "STACK" },
    { "project", 0, 0, G_OPTION_ARG_FILENAME, &project_path, "Predict a project's stack instead of --images", "PROJECT" },
    { "stack", 0, 0, G_OPTION_ARG_INT64, &stack_id, "With --project: the stack's id (default: the project's only stack)", "ID" },
    { "checkpoint", 0, 0, G_OPTION_ARG_STRING, &checkpoint, "With --project: the model stored under this name (default: the current one)", "NAME" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text, "Slices, e.g. 25-29 (default all)", "LIST" },
    { "mc-samples", 0, 0, G_OPTION_ARG_INT, &mc, "Average N Monte-Carlo dropout passes (default 1)", "N" },
    { "std-out", 0, 0, G_OPTION_ARG_FILENAME, &std_path, "Also write the MC standard deviation stack", "TIFF" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed for MC dropout masks", "S" },
    { "tta", 0, 0, G_OPTION_ARG_NONE, &tta, "Test-time augmentation: average the 8 flips and quarter turns", NULL },
    { "gamma", 0, 0, G_OPTION_ARG_DOUBLE, &gamma, "Write P(cell)^G (default 1; see emseg calibrate-gamma)", "G" },
    { "bf16", 0, 0, G_OPTION_ARG_NONE, &bf16, "Convolve in bfloat16 with float32 sums (faster "
      "with AVX512-BF16 or AMX; the probabilities move by about 1e-3)", NULL },
    { "adapt-bn", 0, 0, G_OPTION_ARG_NONE, &adapt_bn, "First recompute the model's batch-norm statistics over the stack's images, all slices, not only --slices (no labels; for another microscope's stack, see data/models/README.md)", NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Probability stack to write (float32 TIFF)", "PROB.tif" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- predict cell-interior probabilities");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg predict: %s\n", error->message);
    return 2;
  }
  CliSources src = { images_path, project_path, stack_id, checkpoint, model_path, adapt_bn };
  if (!out_path) {
    fprintf(stderr, "emseg predict: --out is required (see --help)\n");
    return 2;
  }
  int usage = emseg_cli_check_sources("predict", &src);
  if (usage)
    return usage;
  if (mc < 1 || (std_path && mc < 2 && !tta)) {
    fprintf(stderr, "emseg predict: --mc-samples must be >= 1 (>= 2 with --std-out, or use --tta)\n");
    return 2;
  }
  if (!emseg_gamma_check(gamma, "--gamma", &error)) {
    fprintf(stderr, "emseg predict: %s\n", error->message);
    return 2;
  }
  EngModel *model = NULL;
  g_autoptr(EmsegStack) images = NULL;
  int rc = emseg_cli_open_sources("predict", &src, TRUE, &images, &model, NULL);
  if (rc)
    return rc;
  eng_model_set_conv_bf16(model, bf16); /* before the first prediction builds its graph */
  if (bf16)
    emseg_cli_report_bf16("predict");
  rc = 1;
  guint n = 0;
  g_autofree guint *idx = NULL;
  float *prob = NULL, *std = NULL;
  idx = emseg_parse_slices(slices_text, emseg_stack_get_n_slices(images), &n, &error);
  if (!idx)
    goto out;
  guint w = emseg_stack_get_width(images), h = emseg_stack_get_height(images);
  /* one slice at a time into the writers: a stack of hundreds of big slices would not fit
   * in memory whole; nothing appears at the paths unless every slice was written */
  prob = g_try_new(float, (gsize) w * h);
  std = std_path ? g_try_new(float, (gsize) w * h) : NULL;
  if (!prob || (std_path && !std)) {
    g_set_error(&error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE,
                "out of memory for a slice of %ux%u", w, h);
    goto out;
  }
  Outputs outputs = { gamma, (gsize) w * h, NULL, NULL };
  outputs.prob = emseg_stack_writer_new(out_path, EMSEG_SAMPLE_F32, w, h, n, &error);
  if (outputs.prob && std_path)
    outputs.std = emseg_stack_writer_new(std_path, EMSEG_SAMPLE_F32, w, h, n, &error);
  if (!outputs.prob || (std_path && !outputs.std)) {
    outputs_clear(&outputs);
    goto out;
  }
  EmsegPredictOptions opts;
  emseg_predict_options_init(&opts);
  opts.mc_samples = mc;
  opts.seed = (guint64) seed;
  opts.tta = tta;
  CliProgress progress;
  emseg_cli_progress_init(&progress, "predict", n);
  opts.progress = emseg_cli_show_progress;
  opts.pass_progress = emseg_cli_show_pass_progress;
  opts.progress_data = &progress;
  opts.sink = write_slice;
  opts.sink_data = &outputs;
  emseg_cli_report_windows("predict", model, images);
  gboolean done = emseg_predict_slices(model, images, idx, n, &opts, prob, std, &error) &&
                  emseg_stack_writer_finish(outputs.prob, &error) &&
                  (!outputs.std || emseg_stack_writer_finish(outputs.std, &error));
  outputs_clear(&outputs);
  if (!done)
    goto out;
  printf("wrote %s (%u slice%s, %ux%u, float32, 1 = cell interior)\n", out_path, n, n == 1 ? "" : "s",
         w, h);
  rc = 0;
out:
  if (rc && error)
    fprintf(stderr, "emseg predict: %s\n", error->message);
  g_free(prob);
  g_free(std);
  eng_model_free(model);
  return rc;
}
