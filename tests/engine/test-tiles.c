/* test-tiles.c — engine/core/eng-tiles: the tiling plan (cores partition the axis, windows
 * inside it and on the decimation grid) and tiled prediction against whole-plane
 * prediction. The receptive field of a small random network is measured first (how far
 * an input change reaches the output); with a margin at least that wide every pixel's
 * window holds its whole receptive field, so tiled and whole-plane results must agree to
 * rounding. A margin narrower than it must show differences (the test can fail both ways).
 * Planes of sizes that are no multiple of the network's are predicted as their mirror
 * image padded out, cropped. Suite 'engine'. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "eng-model.h"
#include "eng-tiles.h"
#include "eng-train.h"

#define SPEC "base_width=8,main_block=simple,down=1,up=1,across=1,dropout=0.2"

static void
test_plan(void)
{
  const size_t m = 8;
  for (size_t len = m; len <= 40 * m; len += m)
    for (size_t win = 2 * m; win <= 12 * m; win += m)
      for (size_t margin = 0; 2 * margin < win; margin += m) {
        EngTile t[64];
        size_t n = eng_tiles_plan(len, win, margin, t, G_N_ELEMENTS(t));
        g_assert_cmpuint(n, >=, 1);
        g_assert_cmpuint(n, <=, G_N_ELEMENTS(t));
        size_t covered = 0;
        for (size_t k = 0; k < n; k++) {
          size_t w = win < len ? win : len;
          g_assert_cmpuint(t[k].core0, ==, covered); /* cores partition [0, len) in order */
          g_assert_cmpuint(t[k].core1, >, t[k].core0);
          covered = t[k].core1;
          g_assert_cmpuint(t[k].start % m, ==, 0);
          g_assert_cmpuint(t[k].start + w, <=, len);
          g_assert_cmpuint(t[k].start, <=, t[k].core0);
          g_assert_cmpuint(t[k].core1, <=, t[k].start + w);
          /* a core edge has margin pixels of context in its window, or the window reaches
           * the plane's edge there (then it sees all the whole plane does) */
          g_assert_true(t[k].core0 - t[k].start >= margin || t[k].start == 0);
          g_assert_true(t[k].start + w - t[k].core1 >= margin || t[k].start + w == len);
        }
        g_assert_cmpuint(covered, ==, len);
      }
  g_assert_cmpuint(eng_tiles_plan(64, 32, 16, NULL, 0), ==, 0); /* no core left */
}

static EngModel *
random_model(void)
{
  EngSpec spec;
  EngError err;
  eng_spec_default(&spec);
  g_assert_cmpint(eng_spec_parse(&spec, SPEC, &err), ==, ENG_OK);
  EngModel *m = eng_model_new(&spec, 11, &err);
  g_assert_nonnull(m);
  return m;
}

static void
fill_image(float *img, size_t n)
{
  guint32 s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    img[i] = (float) ((s >> 8) & 0xffff) / 65535.0f * 2.0f - 1.0f;
  }
}

/* The receptive-field radius: the largest distance (in x or y) from an input pixel at
 * the centre at which the output changes when that pixel does. */
static size_t
measure_radius(EngModel *m, size_t side)
{
  EngError err;
  EngGraph *g = eng_graph_new(m, 1, side, side, 0, &err);
  g_assert_nonnull(g);
  g_autofree float *img = g_new(float, side * side), *a = g_new(float, side * side),
                   *b = g_new(float, side * side);
  fill_image(img, side * side);
  /* on the logits: probabilities of a random network saturate and would hide changes */
  g_assert_cmpint(eng_graph_forward(g, img, ENG_MODE_INFER, 0), ==, ENG_OK);
  memcpy(a, eng_graph_logits(g), side * side * sizeof(float));
  img[(side / 2) * side + side / 2] += 5.0f;
  g_assert_cmpint(eng_graph_forward(g, img, ENG_MODE_INFER, 0), ==, ENG_OK);
  memcpy(b, eng_graph_logits(g), side * side * sizeof(float));
  size_t r = 0;
  for (size_t y = 0; y < side; y++)
    for (size_t x = 0; x < side; x++)
      if (a[y * side + x] != b[y * side + x]) {
        size_t dy = y > side / 2 ? y - side / 2 : side / 2 - y;
        size_t dx = x > side / 2 ? x - side / 2 : side / 2 - x;
        r = MAX(r, MAX(dx, dy));
      }
  eng_graph_free(g);
  return r;
}

static double
max_difference(EngModel *m, size_t h, size_t w, size_t win, size_t margin, int tta)
{
  EngError err;
  EngGraph *whole = eng_graph_new(m, 1, h, w, 0, &err);
  EngGraph *tile = eng_graph_new(m, 1, win, win, 0, &err);
  g_assert_nonnull(whole);
  g_assert_nonnull(tile);
  g_autofree float *img = g_new(float, h * w), *a = g_new(float, h * w), *b = g_new(float, h * w);
  fill_image(img, h * w);
  g_assert_cmpint(tta ? eng_predict_tta(whole, img, ENG_MODE_INFER, 1, 0, a, NULL, &err)
                      : eng_predict(whole, img, ENG_MODE_INFER, 1, 0, a, NULL, &err), ==, ENG_OK);
  g_assert_cmpint(eng_predict_tiled(tile, img, h, w, margin, tta, ENG_MODE_INFER, 1, 0, b, NULL,
                                    &err), ==, ENG_OK);
  double worst = 0;
  for (size_t i = 0; i < h * w; i++)
    worst = fmax(worst, fabs((double) a[i] - b[i]));
  eng_graph_free(whole);
  eng_graph_free(tile);
  return worst;
}

static void
test_tiled_matches_whole(void)
{
  EngModel *m = random_model();
  int mult = eng_spec_size_multiple(eng_model_spec(m));
  size_t r = measure_radius(m, 128);
  g_assert_cmpuint(r, >, 0);
  g_assert_cmpuint(r, <, 48);
  size_t margin = (r + mult - 1) / mult * mult; /* on the decimation grid */
  size_t win = 2 * margin + 4 * mult;
  /* 5 x 3 windows, the last of each axis pushed back against the edge */
  size_t h = 3 * (win - 2 * margin) + 2 * mult, w = 5 * (win - 2 * margin) - mult;
  double full = max_difference(m, h, w, win, margin, FALSE);
  /* TTA on a square plane: 8 transforms there as in the square windows */
  double turned = max_difference(m, h, h, win, margin, TRUE);
  double narrow = max_difference(m, h, w, win, margin - mult, FALSE);
  g_test_message("receptive-field radius %zu px; %zu x %zu plane in %zu^2 windows: margin %zu "
                 "max |dp| %.3g (TTA %.3g), margin %zu: %.3g", r, h, w, win, margin, full,
                 turned, margin - mult, narrow);
  g_assert_cmpfloat(full, <, 1e-5);
  g_assert_cmpfloat(turned, <, 1e-5);
  g_assert_cmpfloat(narrow, >, 1e-4); /* context cut short shows */
  eng_model_free(m);
}

/* MC dropout through windows: a standard deviation for every pixel, probabilities in
 * [0, 1]; a margin with no core is refused. */
static void
test_tiled_mc_and_errors(void)
{
  EngModel *m = random_model();
  EngError err;
  EngGraph *g = eng_graph_new(m, 1, 48, 48, 0, &err);
  const size_t h = 96, w = 80;
  g_autofree float *img = g_new(float, h * w), *p = g_new(float, h * w), *s = g_new(float, h * w);
  fill_image(img, h * w);
  g_assert_cmpint(eng_predict_tiled(g, img, h, w, 8, FALSE, ENG_MODE_MC, 4, 3, p, s, &err), ==,
                  ENG_OK);
  size_t spread = 0;
  for (size_t i = 0; i < h * w; i++) {
    g_assert_true(p[i] >= 0.0f && p[i] <= 1.0f);
    g_assert_true(s[i] >= 0.0f && isfinite(s[i]));
    spread += s[i] > 0.0f;
  }
  g_assert_cmpuint(spread, >, h * w / 2);
  g_assert_cmpint(eng_predict_tiled(g, img, h, w, 24, FALSE, ENG_MODE_INFER, 1, 0, p, NULL,
                                    &err), ==, ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "margin of 24"));
  eng_graph_free(g);
  eng_model_free(m);
}

/* The mirror image of a (h, w) plane out to (ph, pw), written independently of eng-tiles:
 * row / column indices reflect at the last one (… h-2, h-1, h-2 …) and again at 0. */
static void
mirror_out(const float *img, size_t h, size_t w, float *out, size_t ph, size_t pw)
{
  for (size_t y = 0; y < ph; y++)
    for (size_t x = 0; x < pw; x++) {
      long sy = h == 1 ? 0 : (long) y, sx = w == 1 ? 0 : (long) x; /* one row: all of it */
      while (sy < 0 || sy >= (long) h)
        sy = sy < 0 ? -sy : 2 * ((long) h - 1) - sy;
      while (sx < 0 || sx >= (long) w)
        sx = sx < 0 ? -sx : 2 * ((long) w - 1) - sx;
      out[y * pw + x] = img[sy * (long) w + sx];
    }
}

/* A plane of any size: its sides not multiples of the network's (8 here), or shorter than
 * the graph, it is predicted exactly as its mirror image padded out to multiples (at least
 * the graph's size), cropped — through windows (90 x 75 in 48² windows: 96 x 80 with every
 * window on the decimation grid) and in one piece (20 x 13 in a 48² graph), with TTA and
 * MC dropout (the same seeds reach the same windows). */
static void
test_tiled_any_size(void)
{
  EngModel *m = random_model();
  EngError err;
  EngGraph *g = eng_graph_new(m, 1, 48, 48, 0, &err);
  g_assert_nonnull(g);
  const struct {
    size_t h, w, ph, pw;
    int tta, samples;
  } cases[] = {
    { 90, 75, 96, 80, FALSE, 1 },
    { 90, 75, 96, 80, TRUE, 1 },
    { 90, 75, 96, 80, FALSE, 3 },
    { 20, 13, 48, 48, FALSE, 1 },
    { 1, 50, 48, 56, TRUE, 2 },
  };
  for (guint k = 0; k < G_N_ELEMENTS(cases); k++) {
    size_t h = cases[k].h, w = cases[k].w, ph = cases[k].ph, pw = cases[k].pw;
    g_autofree float *img = g_new(float, h * w), *pad = g_new(float, ph * pw);
    g_autofree float *a = g_new(float, h * w), *sa = g_new(float, h * w);
    g_autofree float *b = g_new(float, ph * pw), *sb = g_new(float, ph * pw);
    fill_image(img, h * w);
    mirror_out(img, h, w, pad, ph, pw);
    EngMode mode = cases[k].samples > 1 ? ENG_MODE_MC : ENG_MODE_INFER;
    g_assert_cmpint(eng_predict_tiled(g, img, h, w, 8, cases[k].tta, mode, cases[k].samples, 5,
                                      a, sa, &err), ==, ENG_OK);
    g_assert_cmpint(eng_predict_tiled(g, pad, ph, pw, 8, cases[k].tta, mode, cases[k].samples,
                                      5, b, sb, &err), ==, ENG_OK);
    for (size_t y = 0; y < h; y++) {
      g_assert_cmpmem(a + y * w, w * sizeof(float), b + y * pw, w * sizeof(float));
      g_assert_cmpmem(sa + y * w, w * sizeof(float), sb + y * pw, w * sizeof(float));
    }
    g_assert_cmpuint(eng_predict_tiled_passes(g, h, w, 8, cases[k].tta, cases[k].samples), ==,
                     eng_predict_tiled_passes(g, ph, pw, 8, cases[k].tta, cases[k].samples));
  }
  eng_graph_free(g);
  eng_model_free(m);
}

static void
count_pass(void *data)
{
  (*(size_t *) data)++;
}

/* The forward hook sees every pass, and eng_predict_tiled_passes says how many there are:
 * one window or several, plain, MC and TTA (8 transforms in square windows, 4 otherwise). */
static void
test_tiled_passes(void)
{
  EngModel *m = random_model();
  EngError err;
  EngGraph *sq = eng_graph_new(m, 1, 48, 48, 0, &err), *wide = eng_graph_new(m, 1, 48, 64, 0, &err);
  g_assert_nonnull(sq);
  g_assert_nonnull(wide);
  const size_t h = 96, w = 80;
  g_autofree float *img = g_new(float, h * w), *p = g_new(float, h * w), *s = g_new(float, h * w);
  fill_image(img, h * w);
  const struct {
    EngGraph *g;
    size_t h, w;
    int tta, samples;
    size_t expect;
  } cases[] = {
    { sq, 48, 48, FALSE, 1, 1 },         /* the graph's own size: one window */
    { sq, h, w, FALSE, 1, 3 * 3 },       /* 48² windows, margin 8: 3 on each axis */
    { sq, h, w, FALSE, 4, 3 * 3 * 4 },
    { sq, h, w, TRUE, 1, 3 * 3 * 8 },
    { sq, 48, 48, TRUE, 2, 8 * 2 },
    { wide, 48, 64, TRUE, 1, 4 },        /* non-square: no transposing transforms */
  };
  for (guint k = 0; k < G_N_ELEMENTS(cases); k++) {
    size_t seen = 0;
    eng_graph_set_forward_hook(cases[k].g, count_pass, &seen);
    EngMode mode = cases[k].samples > 1 ? ENG_MODE_MC : ENG_MODE_INFER;
    g_assert_cmpint(eng_predict_tiled(cases[k].g, img, cases[k].h, cases[k].w, 8, cases[k].tta,
                                      mode, cases[k].samples, 1, p, s, &err), ==, ENG_OK);
    g_assert_cmpuint(seen, ==, cases[k].expect);
    g_assert_cmpuint(eng_predict_tiled_passes(cases[k].g, cases[k].h, cases[k].w, 8,
                                              cases[k].tta, cases[k].samples), ==, seen);
    eng_graph_set_forward_hook(cases[k].g, NULL, NULL);
  }
  g_assert_cmpuint(eng_predict_tiled_passes(sq, 40, 40, 8, FALSE, 1), ==, 1); /* padded */
  eng_graph_free(sq);
  eng_graph_free(wide);
  eng_model_free(m);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/tiles/plan", test_plan);
  g_test_add_func("/tiles/tiled-matches-whole", test_tiled_matches_whole);
  g_test_add_func("/tiles/mc-and-errors", test_tiled_mc_and_errors);
  g_test_add_func("/tiles/any-size", test_tiled_any_size);
  g_test_add_func("/tiles/passes", test_tiled_passes);
  return g_test_run();
}
