/* test-metrics-isbi.c — engine/metrics on the real ISBI 2012 training labels (suite
 * 'isbi'; reads $EMSEG_ISBI_DIR/train-labels.tif, 25 labelled slices of 512 x 512).
 *
 * The labels scored against themselves must give exactly 1 (V_rand, V_info, Rand index)
 * and 0 pixel error; a blurred copy (3 x 3 box on the 0/1 map, so boundaries become soft
 * ramps) must stay a good but imperfect segmentation: 0.9 < score < 1. The figures and the
 * time taken are printed for the report. */
#include <glib.h>

#include "emseg-stack.h"
#include "eng-metrics.h"

typedef struct {
  guint n, h, w;
  guint8 *labels;
  float *prob;
} Isbi;

static void
load(Isbi *d)
{
  const char *dir = g_getenv("EMSEG_ISBI_DIR");
  if (!dir)
    g_error("EMSEG_ISBI_DIR is not set (meson's test_env sets it to ../shared/isbi2012)");
  g_autofree char *path = g_build_filename(dir, "train-labels.tif", NULL);
  GError *error = NULL;
  EmsegStack *s = emseg_stack_open(path, &error);
  g_assert_no_error(error);
  d->n = emseg_stack_get_n_slices(s);
  d->h = emseg_stack_get_height(s);
  d->w = emseg_stack_get_width(s);
  g_assert_cmpuint(d->n, ==, 25);
  gsize px = (gsize) d->h * d->w;
  d->labels = g_new(guint8, d->n * px);
  d->prob = g_new(float, d->n * px);
  for (guint z = 0; z < d->n; z++) {
    g_assert_true(emseg_stack_read_u8(s, z, d->labels + z * px, &error));
    g_assert_no_error(error);
  }
  emseg_stack_free(s);
}

static EngMetricsResult
score(const Isbi *d, const char *what)
{
  EngMetricsResult r;
  EngError err = { 0 };
  gint64 t0 = g_get_monotonic_time();
  EngStatus st = eng_metrics_evaluate(d->prob, d->labels, d->n, d->h, d->w, &r, &err);
  double s = (double) (g_get_monotonic_time() - t0) / 1e6;
  if (st != ENG_OK)
    g_error("%s: %s", what, err.message);
  g_test_message("%s: vrand %.6f (th %.1f, split %.4f merge %.4f) vinfo %.6f pixel_error "
                 "%.6f rand_index %.6f in %.2f s",
                 what, r.vrand, r.rows[r.vrand_at].threshold, r.rows[r.vrand_at].rand_split,
                 r.rows[r.vrand_at].rand_merge, r.vinfo, r.pixel_error, r.rand_index, s);
  return r;
}

static void
test_isbi_labels(void)
{
  Isbi d;
  load(&d);
  gsize px = (gsize) d.h * d.w;
  for (gsize i = 0; i < d.n * px; i++)
    d.prob[i] = d.labels[i] ? 1.0f : 0.0f;
  EngMetricsResult r = score(&d, "labels vs themselves");
  g_assert_cmpfloat(r.vrand, ==, 1.0);
  g_assert_cmpfloat(r.vinfo, ==, 1.0);
  g_assert_cmpfloat(r.rand_index, ==, 1.0);
  g_assert_cmpfloat(r.pixel_error, ==, 0.0);

  for (guint z = 0; z < d.n; z++)
    for (guint y = 0; y < d.h; y++)
      for (guint x = 0; x < d.w; x++) {
        float s = 0;
        int k = 0;
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int yy = (int) y + dy, xx = (int) x + dx;
            if (yy < 0 || xx < 0 || yy >= (int) d.h || xx >= (int) d.w)
              continue;
            s += d.labels[z * px + (gsize) yy * d.w + (gsize) xx] ? 1.0f : 0.0f;
            k++;
          }
        d.prob[z * px + (gsize) y * d.w + x] = s / (float) k;
      }
  r = score(&d, "blurred labels");
  g_assert_cmpfloat(r.vrand, >, 0.9);
  g_assert_cmpfloat(r.vrand, <, 1.0);
  g_assert_cmpfloat(r.vinfo, >, 0.9);
  g_assert_cmpfloat(r.vinfo, <, 1.0);
  g_assert_cmpfloat(r.pixel_error, >, 0.0);
  g_free(d.labels);
  g_free(d.prob);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/metrics-isbi/labels", test_isbi_labels);
  return g_test_run();
}
