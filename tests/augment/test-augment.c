/* test-augment.c — the augmentation map and resampling (eng-augment.h): identity, exact
 * flips and quarter turns, the affine map against its formula, bilinear exactness on
 * ramps, spline interpolation of the control points, reflect padding, no folds at default
 * strength, binary labels, determinism, the recipe's ranges, windows equal to crops of
 * the whole slice, and the approximate forward position of a source pixel. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "eng-augment.h"
#include "eng-synth.h"

static EngAugment *
new_aug(size_t w, size_t h)
{
  EngAugment *aug = NULL;
  EngError err = { 0 };
  g_assert_cmpint(eng_augment_create(&aug, w, h, &err), ==, ENG_OK);
  return aug;
}

static void
set(EngAugment *aug, const EngAugmentDraw *d)
{
  EngError err = { 0 };
  g_assert_cmpint(eng_augment_set(aug, d, &err), ==, ENG_OK);
}

/* An image with distinct values, labels and a mask with a few values. */
static void
fill(float *img, guint8 *lab, float *mask, size_t w, size_t h)
{
  GRand *r = g_rand_new_with_seed(17);
  for (size_t i = 0; i < w * h; i++) {
    img[i] = (float) g_rand_double_range(r, -2.0, 2.0);
    lab[i] = g_rand_boolean(r) ? 255 : 0;
    mask[i] = (float) g_rand_int_range(r, 0, 3) * 0.5f;
  }
  g_rand_free(r);
}

static void
test_identity(void)
{
  const size_t w = 64, h = 48;
  float img[64 * 48], mask[64 * 48], oi[64 * 48], om[64 * 48];
  guint8 lab[64 * 48], ol[64 * 48];
  fill(img, lab, mask, w, h);
  EngAugment *aug = new_aug(w, h);
  EngAugmentDraw d;
  eng_augment_draw_identity(&d);
  set(aug, &d);
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      g_assert_cmpfloat(eng_augment_map_x(aug)[y * w + x], ==, (float) x);
      g_assert_cmpfloat(eng_augment_map_y(aug)[y * w + x], ==, (float) y);
    }
  eng_augment_apply(aug, oi, ol, om, img, lab, mask);
  g_assert_cmpmem(oi, sizeof oi, img, sizeof img);
  g_assert_cmpmem(ol, sizeof ol, lab, sizeof lab);
  g_assert_cmpmem(om, sizeof om, mask, sizeof mask);
  /* params with every part switched off draw the identity too */
  EngAugmentParams p = { 0 };
  EngAugmentDraw z;
  eng_augment_draw(&z, &p, 5, 9);
  g_assert_cmpmem(&z, sizeof z, &d, sizeof d);
  eng_augment_destroy(aug);
}

typedef size_t (*SrcFn)(size_t x, size_t y, size_t n);
static size_t src_flip_h(size_t x, size_t y, size_t n) { return y * n + (n - 1 - x); }
static size_t src_flip_v(size_t x, size_t y, size_t n) { return (n - 1 - y) * n + x; }
static size_t src_rot90(size_t x, size_t y, size_t n) { return x * n + (n - 1 - y); }
static size_t src_rot180(size_t x, size_t y, size_t n) { return (n - 1 - y) * n + (n - 1 - x); }
static size_t src_rot270(size_t x, size_t y, size_t n) { return (n - 1 - x) * n + y; }

static void
check_exact(const EngAugmentDraw *d, SrcFn src, size_t n)
{
  float *img = g_new(float, n * n), *mask = g_new(float, n * n);
  float *oi = g_new(float, n * n), *om = g_new(float, n * n);
  guint8 *lab = g_new(guint8, n * n), *ol = g_new(guint8, n * n);
  fill(img, lab, mask, n, n);
  EngAugment *aug = new_aug(n, n);
  set(aug, d);
  eng_augment_apply(aug, oi, ol, om, img, lab, mask);
  for (size_t y = 0; y < n; y++)
    for (size_t x = 0; x < n; x++) {
      size_t s = src(x, y, n), o = y * n + x;
      if (oi[o] != img[s] || ol[o] != lab[s] || om[o] != mask[s])
        g_error("n=%zu: output (%zu, %zu) = %g/%d/%g, expected source (%zu, %zu) = %g/%d/%g",
                n, x, y, oi[o], ol[o], om[o], s % n, s / n, img[s], lab[s], mask[s]);
    }
  eng_augment_destroy(aug);
  g_free(img);
  g_free(mask);
  g_free(oi);
  g_free(om);
  g_free(lab);
  g_free(ol);
}

static void
test_exact_flips_rotations(void)
{
  for (size_t n = 31; n <= 32; n++) { /* odd and even: centre on a pixel and between */
    EngAugmentDraw d;
    eng_augment_draw_identity(&d);
    d.flip_h = 1;
    check_exact(&d, src_flip_h, n);
    eng_augment_draw_identity(&d);
    d.flip_v = 1;
    check_exact(&d, src_flip_v, n);
    eng_augment_draw_identity(&d);
    d.angle = (float) (G_PI / 2);
    check_exact(&d, src_rot90, n);
    d.angle = (float) G_PI;
    check_exact(&d, src_rot180, n);
    d.angle = (float) (-G_PI / 2);
    check_exact(&d, src_rot270, n);
    /* both flips = half turn */
    eng_augment_draw_identity(&d);
    d.flip_h = d.flip_v = 1;
    check_exact(&d, src_rot180, n);
  }
}

static void
test_affine_formula(void)
{
  /* Map against the header's formula, and bilinear sampling of a ramp (exact for a
   * linear function wherever no reflection is involved). */
  const size_t w = 90, h = 70;
  EngAugment *aug = new_aug(w, h);
  EngAugmentDraw d;
  eng_augment_draw_identity(&d);
  d.angle = 0.3f;
  d.shear = -0.2f;
  d.flip_h = 1;
  set(aug, &d);
  float *img = g_new(float, w * h), *out = g_new(float, w * h);
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++)
      img[y * w + x] = 0.5f * (float) x - 0.25f * (float) y + 3.0f;
  eng_augment_apply(aug, out, NULL, NULL, img, NULL, NULL);
  double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
  size_t inside = 0;
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      double px = x - cx, py = y - cy;
      double ux = px - sin(d.shear) * py, uy = cos(d.shear) * py;       /* S */
      double sx = cx + cos(d.angle) * ux - sin(d.angle) * uy;           /* R */
      double sy = cy + sin(d.angle) * ux + cos(d.angle) * uy;
      sx = (w - 1) - sx;
      g_assert_cmpfloat_with_epsilon(eng_augment_map_x(aug)[y * w + x], sx, 1e-3);
      g_assert_cmpfloat_with_epsilon(eng_augment_map_y(aug)[y * w + x], sy, 1e-3);
      if (sx >= 0 && sx <= w - 1 && sy >= 0 && sy <= h - 1) {
        g_assert_cmpfloat_with_epsilon(out[y * w + x], 0.5 * sx - 0.25 * sy + 3.0, 1e-3);
        inside++;
      }
    }
  g_assert_cmpuint(inside, >, w * h / 2);
  g_free(img);
  g_free(out);
  eng_augment_destroy(aug);
}

static void
test_spline_and_reflect(void)
{
  const size_t n = 101; /* knots of a 3×3 grid at 0, 50, 100 */
  EngAugment *aug = new_aug(n, n);
  EngAugmentDraw d;
  eng_augment_draw_identity(&d);
  d.grid = 3;
  for (int i = 0; i < 9; i++) {
    d.disp_x[i] = (float) (i * 1.5 - 4.0);
    d.disp_y[i] = (float) ((i * 7) % 5 - 2.0);
  }
  set(aug, &d);
  for (int j = 0; j < 3; j++)
    for (int i = 0; i < 3; i++) {
      size_t x = (size_t) i * 50, y = (size_t) j * 50;
      g_assert_cmpfloat_with_epsilon(eng_augment_map_x(aug)[y * n + x],
                                     x + d.disp_x[j * 3 + i], 1e-4);
      g_assert_cmpfloat_with_epsilon(eng_augment_map_y(aug)[y * n + x],
                                     y + d.disp_y[j * 3 + i], 1e-4);
    }
  /* constant displacements: the spline is that constant, a pure translation; shifting by
   * 3 px reads 3 px beyond the right border, reflected about the border's half-sample */
  for (int i = 0; i < 9; i++) {
    d.disp_x[i] = 3.0f;
    d.disp_y[i] = -2.0f;
  }
  float *img = g_new(float, n * n), *out = g_new(float, n * n);
  for (size_t i = 0; i < n * n; i++)
    img[i] = (float) i;
  set(aug, &d);
  eng_augment_apply(aug, out, NULL, NULL, img, NULL, NULL);
  for (size_t y = 0; y < n; y++)
    for (size_t x = 0; x < n; x++) {
      long sx = (long) x + 3, sy = (long) y - 2;
      if (sx >= (long) n)
        sx = 2 * (long) n - 1 - sx;
      if (sy < 0)
        sy = -1 - sy;
      g_assert_cmpfloat(out[y * n + x], ==, img[sy * (long) n + sx]);
    }
  g_free(img);
  g_free(out);
  eng_augment_destroy(aug);
}

static void
test_no_folds(void)
{
  /* Jacobian determinant of the map, by central differences, over 40 default draws on a
   * full-size slice. */
  const size_t n = 512;
  EngAugment *aug = new_aug(n, n);
  EngAugmentParams p;
  eng_augment_params_init(&p);
  double min_det = 1e9, max_det = 0.0;
  for (guint64 s = 0; s < 40; s++) {
    EngAugmentDraw d;
    eng_augment_draw(&d, &p, 2024, s);
    set(aug, &d);
    const float *mx = eng_augment_map_x(aug), *my = eng_augment_map_y(aug);
    for (size_t y = 1; y + 1 < n; y += 3)
      for (size_t x = 1; x + 1 < n; x += 3) {
        size_t o = y * n + x;
        double a = 0.5 * (mx[o + 1] - mx[o - 1]), b = 0.5 * (mx[o + n] - mx[o - n]);
        double c = 0.5 * (my[o + 1] - my[o - 1]), e = 0.5 * (my[o + n] - my[o - n]);
        double det = a * e - b * c;
        if (d.flip_h != d.flip_v)
          det = -det; /* one mirror reverses orientation by design, not a fold */
        min_det = MIN(min_det, det);
        max_det = MAX(max_det, det);
      }
  }
  g_test_message("Jacobian determinant over 40 draws: %.3f .. %.3f", min_det, max_det);
  g_assert_cmpfloat(min_det, >, 0.5);
  g_assert_cmpfloat(max_det, <, 1.6);
  eng_augment_destroy(aug);
}

static void
test_labels_binary_and_determinism(void)
{
  const size_t n = 256;
  guint8 *raw = g_new(guint8, n * n), *lab = g_new(guint8, n * n);
  EngSynthParams sp;
  eng_synth_params_init(&sp, 3);
  EngError err = { 0 };
  g_assert_cmpint(eng_synth_slice(raw, lab, &sp, 0, n, n, &err), ==, ENG_OK);
  float *img = g_new(float, n * n), *mask = g_new(float, n * n);
  for (size_t i = 0; i < n * n; i++) {
    img[i] = raw[i] / 255.0f;
    mask[i] = (i / n) < n / 4 ? 0.0f : 1.0f; /* top quarter unlabeled */
  }
  float *o1 = g_new(float, n * n), *o2 = g_new(float, n * n), *o3 = g_new(float, n * n);
  float *m1 = g_new(float, n * n);
  guint8 *l1 = g_new(guint8, n * n), *l2 = g_new(guint8, n * n), *l3 = g_new(guint8, n * n);
  EngAugment *aug = new_aug(n, n);
  EngAugmentParams p;
  eng_augment_params_init(&p);
  g_assert_cmpint(eng_augment_sample(aug, o1, l1, m1, img, lab, mask, &p, 77, 4, &err), ==, ENG_OK);
  g_assert_cmpint(eng_augment_sample(aug, o2, l2, NULL, img, lab, NULL, &p, 77, 4, &err), ==, ENG_OK);
  g_assert_cmpint(eng_augment_sample(aug, o3, l3, NULL, img, lab, NULL, &p, 78, 4, &err), ==, ENG_OK);
  g_assert_cmpmem(o1, n * n * sizeof(float), o2, n * n * sizeof(float));
  g_assert_cmpmem(l1, n * n, l2, n * n);
  size_t differ = 0, membrane = 0, masked = 0;
  for (size_t i = 0; i < n * n; i++) {
    g_assert_true(l1[i] == 0 || l1[i] == 255);
    g_assert_true(m1[i] == 0.0f || m1[i] == 1.0f);
    g_assert_true(o1[i] >= 0.0f && o1[i] <= 1.0f); /* bilinear stays within the input range */
    differ += l1[i] != l3[i];
    membrane += l1[i] == 0;
    masked += m1[i] == 0.0f;
  }
  g_test_message("labels differing between seeds 77 and 78: %zu of %zu", differ, n * n);
  g_assert_cmpuint(differ, >, n * n / 20);
  g_assert_cmpuint(membrane, >, n * n / 20); /* labels were moved, not wiped */
  g_assert_cmpuint(masked, >, n * n / 20);
  g_assert_cmpuint(masked, <, n * n / 2);
  /* a different sample index of the same seed differs too */
  EngAugmentDraw a, b;
  eng_augment_draw(&a, &p, 77, 4);
  eng_augment_draw(&b, &p, 77, 5);
  g_assert_false(memcmp(&a, &b, sizeof a) == 0);
  eng_augment_destroy(aug);
  g_free(raw); g_free(lab); g_free(img); g_free(mask);
  g_free(o1); g_free(o2); g_free(o3); g_free(m1); g_free(l1); g_free(l2); g_free(l3);
}

static void
test_recipe_ranges(void)
{
  EngAugmentParams p;
  eng_augment_params_init(&p);
  int fh = 0, fv = 0, n = 4000;
  double amax = 0.0, smax = 0.0, ss = 0.0;
  for (int s = 0; s < n; s++) {
    EngAugmentDraw d;
    eng_augment_draw(&d, &p, 1, (guint64) s);
    fh += d.flip_h;
    fv += d.flip_v;
    amax = MAX(amax, fabs(d.angle));
    smax = MAX(smax, fabs(d.shear));
    g_assert_cmpint(d.grid, ==, 3);
    for (int i = 0; i < 9; i++)
      ss += d.disp_x[i] * d.disp_x[i] + d.disp_y[i] * d.disp_y[i];
  }
  double sigma = sqrt(ss / (n * 18.0));
  g_test_message("flips %d/%d of %d, max |angle| %.2f deg, max |shear| %.3f, sigma %.2f px",
                 fh, fv, n, amax * 180 / G_PI, smax, sigma);
  g_assert_cmpint(fh, >, n * 45 / 100);
  g_assert_cmpint(fh, <, n * 55 / 100);
  g_assert_cmpint(fv, >, n * 45 / 100);
  g_assert_cmpint(fv, <, n * 55 / 100);
  g_assert_cmpfloat(amax, <=, 25.0 * G_PI / 180 + 1e-6);
  g_assert_cmpfloat(amax, >, 24.0 * G_PI / 180);
  g_assert_cmpfloat(smax, <=, 0.41 + 1e-6);
  g_assert_cmpfloat(smax, >, 0.40);
  g_assert_cmpfloat_with_epsilon(sigma, 10.0, 0.3);
}

/* A windowed workspace gives exactly the crop of the whole slice's map and outputs, for
 * draws of the recipe (elastic, flips, shear) and windows at edges and inside. */
static void
test_window_equals_crop(void)
{
  const size_t W = 77, H = 53, WW = 24, WH = 17;
  float *img = g_new(float, W * H), *mask = g_new(float, W * H);
  guint8 *lab = g_new(guint8, W * H);
  fill(img, lab, mask, W, H);
  float *full_img = g_new(float, W * H), *full_mask = g_new(float, W * H);
  guint8 *full_lab = g_new(guint8, W * H);
  float *win_img = g_new(float, WW * WH), *win_mask = g_new(float, WW * WH);
  guint8 *win_lab = g_new(guint8, WW * WH);
  EngAugment *whole = new_aug(W, H), *win = NULL;
  EngError err = { 0 };
  g_assert_cmpint(eng_augment_create_window(&win, W, H, WW, WH, &err), ==, ENG_OK);
  EngAugmentParams p;
  eng_augment_params_init(&p);
  const size_t at[][2] = { { 0, 0 }, { W - WW, H - WH }, { 31, 7 }, { 5, H - WH } };
  for (guint64 sample = 0; sample < 6; sample++) {
    EngAugmentDraw d;
    eng_augment_draw(&d, &p, 99, sample);
    set(whole, &d);
    eng_augment_apply(whole, full_img, full_lab, full_mask, img, lab, mask);
    for (size_t k = 0; k < G_N_ELEMENTS(at); k++) {
      size_t x0 = at[k][0], y0 = at[k][1];
      g_assert_cmpint(eng_augment_set_window(win, &d, x0, y0, &err), ==, ENG_OK);
      eng_augment_apply(win, win_img, win_lab, win_mask, img, lab, mask);
      for (size_t y = 0; y < WH; y++) {
        size_t o = (y0 + y) * W + x0;
        g_assert_cmpmem(eng_augment_map_x(win) + y * WW, WW * sizeof(float),
                        eng_augment_map_x(whole) + o, WW * sizeof(float));
        g_assert_cmpmem(eng_augment_map_y(win) + y * WW, WW * sizeof(float),
                        eng_augment_map_y(whole) + o, WW * sizeof(float));
        g_assert_cmpmem(win_img + y * WW, WW * sizeof(float), full_img + o, WW * sizeof(float));
        g_assert_cmpmem(win_mask + y * WW, WW * sizeof(float), full_mask + o,
                        WW * sizeof(float));
        g_assert_cmpmem(win_lab + y * WW, WW, full_lab + o, WW);
      }
    }
  }
  /* a window must lie in the slice, and fit it */
  EngAugmentDraw d;
  eng_augment_draw_identity(&d);
  g_assert_cmpint(eng_augment_set_window(win, &d, W - WW + 1, 0, &err), ==, ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "leaves"));
  EngAugment *bad = NULL;
  g_assert_cmpint(eng_augment_create_window(&bad, W, H, W + 1, H, &err), ==, ENG_ERR_INVALID);
  g_assert_null(bad);
  eng_augment_destroy(whole);
  eng_augment_destroy(win);
  g_free(img), g_free(mask), g_free(lab);
  g_free(full_img), g_free(full_mask), g_free(full_lab);
  g_free(win_img), g_free(win_mask), g_free(win_lab);
}

/* eng_augment_locate inverts the map: for output pixels of recipe draws (with and without
 * the elastic warp) the map's source position is located back within a pixel. (On slices
 * under about 100 px the recipe's σ = 10 px warp can fold, and a source position then has
 * several places; 256 × 192 has none.) */
static void
test_locate(void)
{
  const size_t W = 256, H = 192;
  EngAugment *aug = new_aug(W, H);
  EngAugmentParams p;
  eng_augment_params_init(&p);
  double worst_affine = 0, worst_elastic = 0;
  for (guint64 sample = 0; sample < 40; sample++) {
    EngAugmentDraw d;
    eng_augment_draw(&d, &p, 5, sample);
    for (int elastic = 0; elastic < 2; elastic++) {
      EngAugmentDraw e = d;
      if (!elastic)
        e.grid = 0;
      set(aug, &e);
      for (size_t py = 3; py < H; py += 17)
        for (size_t px = 2; px < W; px += 19) {
          double sx = eng_augment_map_x(aug)[py * W + px], sy = eng_augment_map_y(aug)[py * W + px];
          double qx, qy;
          eng_augment_locate(aug, sx, sy, &qx, &qy);
          double dist = hypot(qx - (double) px, qy - (double) py);
          if (elastic)
            worst_elastic = MAX(worst_elastic, dist);
          else
            worst_affine = MAX(worst_affine, dist);
        }
    }
  }
  g_test_message("locate: worst %.2g px without the warp, %.2f px with it", worst_affine,
                 worst_elastic);
  g_assert_cmpfloat(worst_affine, <, 1e-3);
  g_assert_cmpfloat(worst_elastic, <, 1.5);
  eng_augment_destroy(aug);
}

static void
test_invalid(void)
{
  EngAugment *aug = NULL;
  EngError err = { 0 };
  g_assert_cmpint(eng_augment_create(&aug, 0, 5, &err), ==, ENG_ERR_INVALID);
  g_assert_null(aug);
  aug = new_aug(8, 8);
  EngAugmentDraw d;
  eng_augment_draw_identity(&d);
  d.grid = 1;
  g_assert_cmpint(eng_augment_set(aug, &d, &err), ==, ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "grid 1"));
  eng_augment_draw_identity(&d);
  d.angle = NAN;
  g_assert_cmpint(eng_augment_set(aug, &d, &err), ==, ENG_ERR_INVALID);
  eng_augment_destroy(aug);
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test dir strings, which
   * fails the ASan build, and nothing here touches the user's directories. */
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/augment/identity", test_identity);
  g_test_add_func("/augment/exact-flips-rotations", test_exact_flips_rotations);
  g_test_add_func("/augment/affine-formula", test_affine_formula);
  g_test_add_func("/augment/spline-and-reflect", test_spline_and_reflect);
  g_test_add_func("/augment/no-folds", test_no_folds);
  g_test_add_func("/augment/labels-binary-deterministic", test_labels_binary_and_determinism);
  g_test_add_func("/augment/recipe-ranges", test_recipe_ranges);
  g_test_add_func("/augment/invalid", test_invalid);
  g_test_add_func("/augment/window-equals-crop", test_window_equals_crop);
  g_test_add_func("/augment/locate", test_locate);
  return g_test_run();
}
