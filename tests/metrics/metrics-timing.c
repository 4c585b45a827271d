/* metrics-timing.c — prints how long eng_metrics_evaluate takes on a 30 x 512 x 512 stack
 * with all 11 thresholds (the issue asks for < 2 s). A program, not a test: shared
 * machines make times noisy, so it reports figures and asserts nothing about speed.
 *
 * The stack is synthetic but realistic for the metric's cost: Voronoi cells with 2-3 pixel
 * membranes (about the ISBI density: ~200 cells per slice) and a blurred, noisy
 * probability map, so every threshold produces many small components to thin.
 * Usage: metrics-timing [repeats]   (EMSEG_THREADS sets the pool size). */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "eng-metrics.h"
#include "eng-parallel.h"

enum { Z = 30, H = 512, W = 512, CELLS = 200 };

static void
make_stack(uint8_t *gt, float *prob)
{
  GRand *rng = g_rand_new_with_seed(2012);
  int *owner = g_new(int, H * W);
  float *tmp = g_new(float, H * W);
  double sx[CELLS], sy[CELLS];
  for (int z = 0; z < Z; z++) {
    for (int c = 0; c < CELLS; c++) {
      sx[c] = g_rand_double_range(rng, 0, W);
      sy[c] = g_rand_double_range(rng, 0, H);
    }
    /* Nearest seed on a coarse 8-pixel grid of candidates keeps set-up fast. */
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c < CELLS; c++) {
          double d = (sx[c] - x) * (sx[c] - x) + (sy[c] - y) * (sy[c] - y);
          if (d < bd) {
            bd = d;
            best = c;
          }
        }
        owner[y * W + x] = best;
      }
    uint8_t *g = gt + (size_t) z * H * W;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int o = owner[y * W + x], cell = 1;
        if (x + 1 < W && owner[y * W + x + 1] != o)
          cell = 0;
        if (y + 1 < H && owner[(y + 1) * W + x] != o)
          cell = 0;
        if (x > 0 && owner[y * W + x - 1] != o)
          cell = 0;
        g[y * W + x] = cell ? 255 : 0;
      }
    /* 3x3 box blur of the label plus noise, clamped to [0, 1]. */
    float *p = prob + (size_t) z * H * W;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        float s = 0;
        int k = 0;
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int yy = y + dy, xx = x + dx;
            if (yy < 0 || xx < 0 || yy >= H || xx >= W)
              continue;
            s += g[yy * W + xx] ? 1.0f : 0.0f;
            k++;
          }
        tmp[y * W + x] = s / (float) k;
      }
    for (int i = 0; i < H * W; i++) {
      float v = tmp[i] + (float) g_rand_double_range(rng, -0.25, 0.25);
      p[i] = v < 0 ? 0.0f : v > 1 ? 1.0f : v;
    }
  }
  g_free(owner);
  g_free(tmp);
  g_rand_free(rng);
}

int
main(int argc, char **argv)
{
  int repeats = argc > 1 ? atoi(argv[1]) : 3;
  if (repeats < 1)
    repeats = 1;
  uint8_t *gt = g_new(uint8_t, (size_t) Z * H * W);
  float *prob = g_new(float, (size_t) Z * H * W);
  make_stack(gt, prob);

  double best = INFINITY;
  EngMetricsResult r;
  for (int i = 0; i < repeats; i++) {
    EngError err = { 0 };
    gint64 t0 = g_get_monotonic_time();
    EngStatus st = eng_metrics_evaluate(prob, gt, Z, H, W, &r, &err);
    double s = (double) (g_get_monotonic_time() - t0) / 1e6;
    if (st != ENG_OK) {
      fprintf(stderr, "metrics-timing: %s\n", err.message);
      return 1;
    }
    printf("run %d: %.3f s\n", i + 1, s);
    if (s < best)
      best = s;
  }
  printf("metrics: %d x %d x %d, %d thresholds, %d threads: best %.3f s of %d runs\n", Z,
         H, W, ENG_METRICS_N_THRESHOLDS, eng_parallel_threads(), best, repeats);
  printf("vrand %.6f (th %.1f)  vinfo %.6f (th %.1f)  pixel_error %.6f  rand_index %.6f\n",
         r.vrand, r.rows[r.vrand_at].threshold, r.vinfo, r.rows[r.vinfo_at].threshold,
         r.pixel_error, r.rand_index);
  g_free(gt);
  g_free(prob);
  return 0;
}
