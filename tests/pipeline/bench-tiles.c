/* bench-tiles.c — how far tiled prediction (eng_predict_tiled) moves a trained model's
 * results from whole-slice prediction, and what it costs: prints figures, asserts nothing.
 * The Table 1 network's receptive field is wider than a 512² slice, so no margin makes
 * windows exact; this measures how much the far context matters in practice.
 *
 *   bench-tiles MODEL IMAGES LABELS FIRST LAST [WINDOW [MARGIN...]]
 *
 * Slices FIRST..LAST of IMAGES are predicted whole and in WINDOW² windows (default 256)
 * with each MARGIN (default 32 64 96); for each: largest and mean |Δp| against whole
 * slices, V_rand / V_info at the model's export γ (emseg evaluate's metric) and seconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "emseg-gamma.h"
#include "emseg-predict.h"
#include "emseg-stack.h"
#include "eng-metrics.h"
#include "eng-modelfile.h"
#include "eng-tiles.h"
#include "eng-train.h"

static void
score(const char *what, const float *prob, const float *ref, const guint8 *gt, guint n,
      guint h, guint w, double gamma, double seconds)
{
  gsize count = (gsize) n * h * w;
  double worst = 0, sum = 0;
  for (gsize i = 0; ref && i < count; i++) {
    double d = fabs((double) prob[i] - ref[i]);
    worst = fmax(worst, d);
    sum += d;
  }
  g_autofree float *p = g_memdup2(prob, count * sizeof(float));
  emseg_gamma_apply(p, count, gamma);
  EngMetricsResult r;
  EngError err;
  if (eng_metrics_evaluate(p, gt, n, h, w, &r, &err) != ENG_OK) {
    fprintf(stderr, "bench-tiles: %s\n", err.message);
    exit(1);
  }
  printf("%-28s max |dp| %.4f  mean |dp| %.2e  V_rand %.4f  V_info %.4f  %.2f s\n", what, worst,
         ref ? sum / count : 0.0, r.vrand, r.vinfo, seconds);
}

int
main(int argc, char **argv)
{
  if (argc < 6) {
    fprintf(stderr, "usage: bench-tiles MODEL IMAGES LABELS FIRST LAST [WINDOW [MARGIN...]]\n");
    return 2;
  }
  g_autoptr(GError) error = NULL;
  EngModel *model = NULL;
  char *meta = NULL;
  EngError err;
  if (eng_model_load(argv[1], &model, &meta, &err) != ENG_OK) {
    fprintf(stderr, "bench-tiles: %s\n", err.message);
    return 1;
  }
  double gamma = emseg_gamma_from_meta(meta);
  g_autoptr(EmsegStack) images = emseg_stack_open(argv[2], &error);
  g_autoptr(EmsegStack) labels = images ? emseg_stack_open(argv[3], &error) : NULL;
  if (!labels) {
    fprintf(stderr, "bench-tiles: %s\n", error->message);
    return 1;
  }
  guint first = (guint) atoi(argv[4]), last = (guint) atoi(argv[5]), n = last - first + 1;
  guint h = emseg_stack_get_height(images), w = emseg_stack_get_width(images);
  size_t win = argc > 6 ? (size_t) atoi(argv[6]) : 256;
  gsize plane = (gsize) h * w;
  g_autofree float *img = g_new(float, plane * n), *whole = g_new(float, plane * n),
                   *tiled = g_new(float, plane * n);
  g_autofree guint8 *gt = g_new(guint8, plane * n);
  for (guint k = 0; k < n; k++)
    if (!emseg_read_standardized(images, first + k, img + k * plane, &error) ||
        !emseg_stack_read_u8(labels, first + k, gt + k * plane, &error)) {
      fprintf(stderr, "bench-tiles: %s\n", error->message);
      return 1;
    }
  printf("model %s (export gamma %g), slices %u-%u of %ux%u, windows %zu^2\n", argv[1], gamma,
         first, last, w, h, win);
  EngGraph *g = eng_graph_new(model, 1, h, w, 0, &err);
  gint64 t0 = g_get_monotonic_time();
  for (guint k = 0; k < n; k++)
    eng_predict(g, img + k * plane, ENG_MODE_INFER, 1, 0, whole + k * plane, NULL, &err);
  score("whole slices", whole, NULL, gt, n, h, w, gamma,
        (g_get_monotonic_time() - t0) / 1e6);
  eng_graph_free(g);
  g = eng_graph_new(model, 1, win, win, 0, &err);
  const char *defaults[] = { "32", "64", "96" };
  int n_margins = argc > 7 ? argc - 7 : 3;
  for (int i = 0; i < n_margins; i++) {
    size_t margin = (size_t) atoi(argc > 7 ? argv[7 + i] : defaults[i]);
    t0 = g_get_monotonic_time();
    for (guint k = 0; k < n; k++)
      if (eng_predict_tiled(g, img + k * plane, h, w, margin, FALSE, ENG_MODE_INFER, 1, 0,
                            tiled + k * plane, NULL, &err) != ENG_OK) {
        fprintf(stderr, "bench-tiles: %s\n", err.message);
        return 1;
      }
    char what[64];
    g_snprintf(what, sizeof what, "windows, margin %zu", margin);
    score(what, tiled, whole, gt, n, h, w, gamma, (g_get_monotonic_time() - t0) / 1e6);
  }
  eng_graph_free(g);
  eng_model_free(model);
  free(meta);
  return 0;
}
