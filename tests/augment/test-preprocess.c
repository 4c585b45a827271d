/* test-preprocess.c — per-slice standardization (eng-preprocess.h) for 8-bit, 16-bit and
 * float input: zero mean, unit variance, constant slices, bad samples. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "eng-preprocess.h"

#define W 37
#define H 23

static void
check_standard(const float *out, size_t n)
{
  double s = 0.0, ss = 0.0;
  for (size_t i = 0; i < n; i++)
    s += out[i];
  double mean = s / (double) n;
  for (size_t i = 0; i < n; i++)
    ss += (out[i] - mean) * (out[i] - mean);
  g_assert_cmpfloat_with_epsilon(mean, 0.0, 1e-5);
  g_assert_cmpfloat_with_epsilon(ss / (double) n, 1.0, 1e-4);
}

static void
test_types(void)
{
  guint8 u8[W * H];
  guint16 u16[W * H];
  float f32[W * H], out[W * H], ref[W * H];
  GRand *r = g_rand_new_with_seed(3);
  for (size_t i = 0; i < W * H; i++) {
    u8[i] = (guint8) g_rand_int_range(r, 0, 256);
    u16[i] = (guint16) (60000 + u8[i]); /* large offset: a one-pass variance would fail */
    f32[i] = -3.5f + 0.25f * u8[i];
  }
  g_rand_free(r);
  EngStandardizeInfo info;
  EngError err = { 0 };
  g_assert_cmpint(eng_standardize(ref, u8, ENG_PIXEL_U8, W, H, &info, &err), ==, ENG_OK);
  check_standard(ref, W * H);
  g_assert_false(info.constant);
  /* the same slice in other types and affine scalings gives the same result */
  g_assert_cmpint(eng_standardize(out, u16, ENG_PIXEL_U16, W, H, &info, &err), ==, ENG_OK);
  for (size_t i = 0; i < W * H; i++)
    g_assert_cmpfloat_with_epsilon(out[i], ref[i], 1e-4);
  g_assert_cmpint(eng_standardize(out, f32, ENG_PIXEL_F32, W, H, &info, &err), ==, ENG_OK);
  for (size_t i = 0; i < W * H; i++)
    g_assert_cmpfloat_with_epsilon(out[i], ref[i], 1e-4);
  /* in place for floats */
  g_assert_cmpint(eng_standardize(f32, f32, ENG_PIXEL_F32, W, H, NULL, &err), ==, ENG_OK);
  g_assert_cmpmem(f32, sizeof f32, out, sizeof out);
  /* known figures: values 0 and 2 in equal numbers -> mean 1, std 1 -> -1, +1 */
  guint8 two[4] = { 0, 2, 2, 0 };
  float o4[4];
  g_assert_cmpint(eng_standardize(o4, two, ENG_PIXEL_U8, 2, 2, &info, &err), ==, ENG_OK);
  g_assert_cmpfloat(info.mean, ==, 1.0);
  g_assert_cmpfloat(info.std, ==, 1.0);
  g_assert_cmpfloat(o4[0], ==, -1.0f);
  g_assert_cmpfloat(o4[1], ==, 1.0f);
}

static void
test_constant(void)
{
  guint16 c[W * H];
  float out[W * H];
  for (size_t i = 0; i < W * H; i++)
    c[i] = 1234;
  EngStandardizeInfo info;
  g_assert_cmpint(eng_standardize(out, c, ENG_PIXEL_U16, W, H, &info, NULL), ==, ENG_OK);
  g_assert_true(info.constant);
  g_assert_cmpfloat(info.std, ==, 1.0);
  for (size_t i = 0; i < W * H; i++)
    g_assert_cmpfloat(out[i], ==, 0.0f);
  /* float noise at the rounding level of a large value is still "constant" */
  float f[W * H];
  for (size_t i = 0; i < W * H; i++)
    f[i] = 1e6f + (i % 2 ? 0.0625f : 0.0f);
  g_assert_cmpint(eng_standardize(out, f, ENG_PIXEL_F32, W, H, &info, NULL), ==, ENG_OK);
  g_assert_true(info.constant);
  for (size_t i = 0; i < W * H; i++)
    g_assert_true(isfinite(out[i]) && out[i] == 0.0f);
}

static void
test_errors(void)
{
  float f[W * H] = { 0 }, out[W * H];
  f[5 * W + 7] = NAN;
  EngError err = { 0 };
  g_assert_cmpint(eng_standardize(out, f, ENG_PIXEL_F32, W, H, NULL, &err), ==,
                  ENG_ERR_NUMERIC);
  g_assert_nonnull(strstr(err.message, "x=7, y=5"));
  g_assert_cmpint(eng_standardize(out, f, ENG_PIXEL_F32, 0, H, NULL, &err), ==,
                  ENG_ERR_INVALID);
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test dir strings, which
   * fails the ASan build, and nothing here touches the user's directories. */
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/preprocess/types", test_types);
  g_test_add_func("/preprocess/constant", test_constant);
  g_test_add_func("/preprocess/errors", test_errors);
  return g_test_run();
}
