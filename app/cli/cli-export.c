/* cli-export.c — `emseg export-isbi`: writes an ISBI 2012 submission (32-bit float TIFF,
 * one page per input slice, 0 = membrane, 1 = cell interior) through emseg_isbi_export(),
 * the same validation and writer the GUI uses.
 *
 * Two sources of probabilities:
 *   --model MODEL            predicts every slice with the network (emseg_predict_slices,
 *                            optionally Monte-Carlo dropout with --mc-samples); without it
 *                            the project's model or the shipped one (cli-sources.c);
 *   --probabilities PROB.tif re-validates a float stack from `emseg predict` and writes it
 *                            as a submission.
 * Either way each value is written as p^γ, the export exponent (emseg-gamma.h): --gamma, or
 * else the model's calibrated `export_gamma` (emseg calibrate-gamma), or else 1. The
 * images (and model) may also come from a project: --project P [--stack ID] [--checkpoint
 * NAME] (cli-sources.c). */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>

#include <glib.h>

#include "cli-commands.h"
#include "emseg-gamma.h"
#include "emseg-isbi.h"
#include "emseg-predict.h"
#include "eng-modelfile.h"

typedef struct {
  EngModel *model;           /* owned by the command */
  EmsegStack *images;        /* borrowed */
  EmsegPredictOptions opts;
  double gamma;
} PredictCtx;

/* One slice through the shared stack prediction (app/run), which reads and standardizes
 * the slice itself from the stack, so `image` is not needed here. It returns P(cell
 * interior) already, the submission's convention. */
static gboolean
predict_with_model(gpointer user_data, guint index, const float *image, guint width,
                   guint height, float *prob_out, GError **error)
{
  PredictCtx *pc = user_data;
  if (!emseg_predict_slices(pc->model, pc->images, &index, 1, &pc->opts, prob_out, NULL, error))
    return FALSE;
  emseg_gamma_apply(prob_out, (gsize) width * height, pc->gamma);
  return TRUE;
}

static void
print_progress(gpointer progress, guint done, guint total)
{
  emseg_cli_show_progress(done, total, progress);
}

int
emseg_cli_export_isbi(int argc, char **argv)
{
  g_autofree char *model_path = NULL, *images_path = NULL, *out_path = NULL,
                  *prob_path = NULL, *project_path = NULL, *checkpoint = NULL;
  gint64 stack_id = 0;
  gint mc_samples = 1;
  gint64 seed = 1;
  gboolean tta = FALSE, bf16 = FALSE, adapt_bn = FALSE;
  double gamma = NAN; /* NAN: not given */
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "model file (.emsegmodel; default: with --project the project's current model (its latest unless one was chosen); else, or when it has none, the shipped ISBI 2012 model)", "MODEL" },
    { "probabilities", 'p', 0, G_OPTION_ARG_FILENAME, &prob_path,
      "float stack of P(cell interior) to validate and export instead of predicting", "PROB" },
    { "images", 'i', 0, G_OPTION_ARG_FILENAME, &images_path, "input stack (TIFF or PNG folder)",
      "STACK" },
    { "project", 0, 0, G_OPTION_ARG_FILENAME, &project_path,
      "export a project's stack instead of --images, with the project's current model unless "
      "--model or --checkpoint says otherwise", "PROJECT" },
    { "stack", 0, 0, G_OPTION_ARG_INT64, &stack_id,
      "with --project: the stack's id (default: the project's only stack)", "ID" },
    { "checkpoint", 0, 0, G_OPTION_ARG_STRING, &checkpoint,
      "with --project: the model stored under this name", "NAME" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "submission TIFF to write", "OUT" },
    { "mc-samples", 0, 0, G_OPTION_ARG_INT, &mc_samples,
      "average N Monte-Carlo dropout passes (default 1: deterministic)", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "seed of the dropout masks", "SEED" },
    { "tta", 0, 0, G_OPTION_ARG_NONE, &tta,
      "test-time augmentation: average the 8 flips and quarter turns", NULL },
    { "gamma", 0, 0, G_OPTION_ARG_DOUBLE, &gamma,
      "write P(cell)^G (default: the model's calibrated export_gamma, else 1)", "G" },
    { "bf16", 0, 0, G_OPTION_ARG_NONE, &bf16,
      "convolve in bfloat16 with float32 sums (faster with AVX512-BF16 or AMX; the "
      "probabilities move by about 1e-3)", NULL },
    { "adapt-bn", 0, 0, G_OPTION_ARG_NONE, &adapt_bn,
      "first recompute the model's batch-norm statistics over the stack's images (no labels; "
      "for another microscope's stack, see data/models/README.md)", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- write an ISBI 2012 submission TIFF");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg export-isbi: %s\n", error->message);
    return 2;
  }
  CliSources src = { images_path, project_path, stack_id, checkpoint, model_path, adapt_bn };
  if (out_path == NULL || (prob_path != NULL && (model_path != NULL || checkpoint != NULL))) {
    fprintf(stderr, "usage: emseg export-isbi [--model MODEL | --probabilities PROB.tif] "
                    "--images STACK --out OUT.tif\n"
                    "   or: emseg export-isbi --project PROJECT [--stack ID] [--model MODEL | "
                    "--checkpoint NAME | --probabilities PROB.tif] --out OUT.tif\n");
    return 2;
  }
  int usage = emseg_cli_check_sources("export-isbi", &src);
  if (usage)
    return usage;

  if (prob_path != NULL && (tta || bf16 || mc_samples != 1)) {
    fprintf(stderr, "emseg export-isbi: --tta, --mc-samples and --bf16 choose how --model "
                    "predicts; with --probabilities nothing is predicted\n");
    return 2;
  }
  if (!isnan(gamma) && !emseg_gamma_check(gamma, "--gamma", &error)) {
    fprintf(stderr, "emseg export-isbi: %s\n", error->message);
    return 2;
  }

  g_autoptr(EmsegStack) images = NULL;
  EngModel *model = NULL;
  char *meta = NULL;
  int rc = emseg_cli_open_sources("export-isbi", &src, prob_path == NULL, &images, &model, &meta);
  if (rc)
    return rc;

  gboolean ok;
  if (prob_path != NULL) {
    g_autoptr(EmsegStack) prob = emseg_stack_open(prob_path, &error);
    if (isnan(gamma))
      gamma = 1.0;
    ok = prob != NULL &&
         emseg_isbi_export_from_probabilities(images, prob, gamma, out_path, &error);
  } else {
    PredictCtx pc = { NULL, images, { 0 }, 1.0 };
    emseg_predict_options_init(&pc.opts);
    pc.opts.mc_samples = mc_samples;
    pc.opts.seed = (guint64)seed;
    pc.opts.tta = tta;
    /* slices through print_progress, passes within one from the predictor */
    CliProgress progress;
    emseg_cli_progress_init(&progress, "export-isbi", emseg_stack_get_n_slices(images));
    pc.opts.pass_progress = emseg_cli_show_pass_progress;
    pc.opts.progress_data = &progress;
    pc.model = model;
    eng_model_set_conv_bf16(pc.model, bf16);
    if (bf16)
      emseg_cli_report_bf16("export-isbi");
    emseg_cli_report_windows("export-isbi", pc.model, images);
    if (isnan(gamma)) {
      gamma = emseg_gamma_from_meta(meta);
      if (gamma != 1.0)
        fprintf(stderr, "export-isbi: writing P(cell)^%g, the model's calibrated exponent "
                        "(--gamma 1 writes the probabilities as they are)\n", gamma);
    }
    free(meta);
    pc.gamma = gamma;
    ok = emseg_isbi_export(images, predict_with_model, &pc, print_progress, &progress,
                           out_path, &error);
    eng_model_free(pc.model);
  }
  if (!ok) {
    fprintf(stderr, "emseg export-isbi: %s\n", error->message);
    return 1;
  }
  printf("%s: %u slices of %u x %u, float32, 1 = cell interior, exponent %g\n", out_path,
         emseg_stack_get_n_slices(images), emseg_stack_get_width(images),
         emseg_stack_get_height(images), gamma);
  return 0;
}
