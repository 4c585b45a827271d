/* cli-bench.c — `emseg bench`: speed and memory of the Table 1 model (or --spec) at one
 * slice size, batch 1, printed one figure per line as "name value" so that
 * tests/bench/compare.sh can set them beside PyTorch's. A program, not a test: it
 * asserts nothing about time. */
#include <cblas.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "cli-commands.h"
#include "emseg-conv-kernel.h"
#include "eng-layers.h"
#include "eng-parallel.h"
#include "eng-preprocess.h"
#include "eng-synth.h"
#include "eng-train.h"

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
  qsort(v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* OpenBLAS square sgemm: what this machine's cores can do on the friendliest shape. */
static double
sgemm_gflops(void)
{
  const int n = 2048;
  float *a = g_new(float, (gsize) n * n), *b = g_new(float, (gsize) n * n),
        *c = g_new0(float, (gsize) n * n);
  for (gsize i = 0; i < (gsize) n * n; i++) {
    a[i] = (float) (i % 17) * 0.01f;
    b[i] = (float) (i % 13) * 0.02f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  double best = 0;
  for (int r = 0; r < 3; r++) {
    gint64 t0 = g_get_monotonic_time();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double s = (double) (g_get_monotonic_time() - t0) / 1e6;
    double gf = 2.0 * n * (double) n * n / s / 1e9;
    if (gf > best)
      best = gf;
  }
  g_free(a);
  g_free(b);
  g_free(c);
  return best;
}

int
emseg_cli_bench(int argc, char **argv)
{
  int size = 512, steps = 5;
  gboolean profile = FALSE, bf16 = FALSE;
  g_autofree char *spec_text = NULL, *loss_text = NULL;
  GOptionEntry entries[] = {
    { "size", 0, 0, G_OPTION_ARG_INT, &size, "Slice width and height (default 512)", "N" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, "Timed repetitions after one warm-up (default 5)", "N" },
    { "spec", 0, 0, G_OPTION_ARG_STRING, &spec_text, "Model spec overrides (default: Table 1)", "SPEC" },
    { "loss", 0, 0, G_OPTION_ARG_STRING, &loss_text, "bce (default, the shipped model's loss), dice (of the membrane class) or dice-cell (of the cell interior)", "LOSS" },
    { "profile", 0, 0, G_OPTION_ARG_NONE, &profile, "Also print time per layer kind of one training step", NULL },
    { "bf16", 0, 0, G_OPTION_ARG_NONE, &bf16, "Convolutions in bfloat16 (float32 sums) where the CPU has fast kernels", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- measure training and inference speed");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg bench: %s\n", error->message);
    return 2;
  }
  if (steps < 1 || size < 16) {
    fprintf(stderr, "emseg bench: --steps must be >= 1 and --size >= 16\n");
    return 2;
  }
  EngSpec spec;
  EngError err;
  eng_spec_default(&spec);
  if (spec_text && eng_spec_parse(&spec, spec_text, &err) != ENG_OK) {
    fprintf(stderr, "emseg bench: %s\n", err.message);
    return 2;
  }
  EngLossKind loss = ENG_LOSS_BCE;
  if (loss_text && !eng_loss_from_name(loss_text, &loss)) {
    fprintf(stderr, "emseg bench: --loss must be " ENG_LOSS_NAMES ", not '%s'\n", loss_text);
    return 2;
  }
  size_t plane = (size_t) size * (size_t) size;
  guint8 *img = g_new(guint8, plane), *lab = g_new(guint8, plane);
  float *x = g_new(float, plane), *t = g_new(float, plane), *m = g_new(float, plane),
        *prob = g_new(float, plane);
  EngSynthParams sp;
  eng_synth_params_init(&sp, 1);
  if (eng_synth_slice(img, lab, &sp, 0, (size_t) size, (size_t) size, &err) != ENG_OK ||
      eng_standardize(x, img, ENG_PIXEL_U8, (size_t) size, (size_t) size, NULL, &err) != ENG_OK) {
    fprintf(stderr, "emseg bench: %s\n", err.message);
    return 1;
  }
  eng_labels_to_target(t, m, lab, plane);

  printf("threads %d\n", eng_parallel_threads());
  printf("openblas %s\n", openblas_get_config());
  /* which convolution path this build and environment run (oneDNN or im2col), named by
   * a representative 3×3 layer: the figures below mean nothing without it */
  printf("conv_path %s\n", emseg_conv_kernel((size_t) size, bf16));
  printf("sgemm_gflops %.1f\n", sgemm_gflops());
  fflush(stdout);

  int rc = 1;
  EngModel *model = eng_model_new(&spec, 1, &err);
  if (model)
    eng_model_set_conv_bf16(model, bf16);
  EngRmspropConfig opt;
  eng_rmsprop_default(&opt);
  EngTrainer *tr = model ? eng_trainer_new(model, 1, (size_t) size, (size_t) size, &opt, loss, &err) : NULL;
  EngGraph *infer = tr ? eng_graph_new(model, 1, (size_t) size, (size_t) size, 0, &err) : NULL;
  double *times = g_new(double, steps);
  if (!infer) {
    fprintf(stderr, "emseg bench: %s\n", err.message);
    goto out;
  }
  printf("params %zu\nsize %d\nloss %s\n", eng_model_count_trainable(model), size,
         eng_loss_name(loss));
  for (int i = 0; i <= steps; i++) {
    gint64 t0 = g_get_monotonic_time();
    EngStepResult r;
    if (eng_trainer_step(tr, x, t, m, (uint64_t) i, &r, &err) != ENG_OK) {
      fprintf(stderr, "emseg bench: %s\n", err.message);
      goto out;
    }
    if (i > 0) /* the first step pages the arenas in */
      times[i - 1] = (double) (g_get_monotonic_time() - t0) / 1e6;
  }
  double train_s = median(times, steps);
  if (profile) {
    /* One more step with per-op timing, kept out of the medians above. */
    EngStepResult r;
    char prof[1024];
    eng_graph_set_profiling(eng_trainer_graph(tr), 1);
    eng_trainer_step(tr, x, t, m, 99, &r, &err);
    eng_graph_profile_format(eng_trainer_graph(tr), prof, sizeof prof);
    eng_graph_set_profiling(eng_trainer_graph(tr), 0);
    fputs(prof, stdout);
  }
  for (int i = 0; i <= steps; i++) {
    gint64 t0 = g_get_monotonic_time();
    if (eng_predict(infer, x, ENG_MODE_INFER, 1, 0, prob, NULL, &err) != ENG_OK) {
      fprintf(stderr, "emseg bench: %s\n", err.message);
      goto out;
    }
    if (i > 0)
      times[i - 1] = (double) (g_get_monotonic_time() - t0) / 1e6;
  }
  double infer_s = median(times, steps);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  /* Forward + backward convolutions: backward does two GEMMs of the forward's size. */
  double flops = 2.0 * eng_graph_conv_macs(infer) * 3.0;
  printf("train_step_s_median %.4f\n", train_s);
  printf("infer_s_median %.4f\n", infer_s);
  printf("peak_rss_mb %.1f\n", (double) ru.ru_maxrss / 1024.0);
  printf("train_gflops %.1f\n", flops / train_s / 1e9);
  printf("infer_gflops %.1f\n", 2.0 * eng_graph_conv_macs(infer) / infer_s / 1e9);
  printf("graph_train_mb %.1f\ngraph_infer_mb %.1f\n", (double) eng_trainer_graph_bytes(tr) / 1048576.0,
         (double) eng_graph_bytes(infer) / 1048576.0);
  rc = 0;
out:
  g_free(times);
  eng_graph_free(infer);
  eng_trainer_free(tr);
  eng_model_free(model);
  g_free(img);
  g_free(lab);
  g_free(x);
  g_free(t);
  g_free(m);
  g_free(prob);
  return rc;
}
