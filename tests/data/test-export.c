/* test-export.c — ISBI submission export (app/io/emseg-isbi.c): what it writes reads back
 * as the challenge expects, and every rule it enforces (shape, finite, [0, 1]) refuses with
 * a message naming slice and pixel, leaving no file behind. */
#include <math.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-isbi.h"
#include "emseg-test-util.h"

#define W 24
#define H 16
#define N 4

static char *scratch;

static char *
scratch_path(const char *name)
{
  return g_build_filename(scratch, name, NULL);
}

/* An input stack written by our own writer: uint8 ramps. */
static EmsegStack *
make_images(const char *name, guint n)
{
  g_autofree guint8 *px = g_new(guint8, W * H * n);
  for (gsize i = 0; i < (gsize)W * H * n; i++) px[i] = (guint8)(i % 256);
  g_autofree char *path = scratch_path(name);
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(path, px, W, H, n, &error));
  EmsegStack *s = emseg_stack_open(path, &error);
  g_assert_no_error(error);
  return s;
}

typedef struct {
  guint bad_slice;   /* slice that gets bad_value at pixel (5, 3); G_MAXUINT for none */
  float bad_value;
  guint calls;
} Fake;

/* A stand-in for the network: P(cell) = image / 255, plus an optional poisoned pixel. */
static gboolean
fake_predict(gpointer user_data, guint index, const float *image, guint width, guint height,
             float *prob_out, GError **error)
{
  Fake *f = user_data;
  f->calls++;
  for (gsize i = 0; i < (gsize)width * height; i++) prob_out[i] = image[i] / 255.f;
  if (index == f->bad_slice)
    prob_out[3 * width + 5] = f->bad_value;
  return TRUE;
}

static void
test_export_round_trip(void)
{
  g_autoptr(EmsegStack) images = make_images("in.tif", N);
  g_autofree char *out = scratch_path("submission.tif");
  Fake f = { G_MAXUINT, 0, 0 };
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_isbi_export(images, fake_predict, &f, NULL, NULL, out, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(f.calls, ==, N);

  g_autoptr(EmsegStack) back = emseg_stack_open(out, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_n_slices(back), ==, N);
  g_assert_cmpuint(emseg_stack_get_width(back), ==, W);
  g_assert_cmpint(emseg_stack_get_sample_type(back), ==, EMSEG_SAMPLE_F32);
  float img[W * H], prob[W * H];
  for (guint s = 0; s < N; s++) {
    g_assert_true(emseg_stack_read_float(images, s, img, &error));
    g_assert_true(emseg_stack_read_float(back, s, prob, &error));
    for (gsize i = 0; i < W * H; i++)
      g_assert_cmpfloat(prob[i], ==, img[i] / 255.f);
  }

  /* Re-exporting that file as probabilities gives the same bytes' worth of values. */
  g_autofree char *again = scratch_path("again.tif");
  g_assert_true(emseg_isbi_export_from_probabilities(images, back, 1.0, again, &error));
  g_assert_no_error(error);
}

static void
test_export_refuses_bad_values(void)
{
  g_autoptr(EmsegStack) images = make_images("in2.tif", N);
  const float bad[] = { NAN, INFINITY, -0.01f, 1.5f };
  const char *words[] = { "NaN", "infinite", "out of range", "out of range" };
  for (guint k = 0; k < G_N_ELEMENTS(bad); k++) {
    g_autofree char *out = scratch_path("refused.tif");
    Fake f = { 2, bad[k], 0 };
    g_autoptr(GError) error = NULL;
    g_assert_false(emseg_isbi_export(images, fake_predict, &f, NULL, NULL, out, &error));
    g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "slice 2"));
    g_assert_nonnull(strstr(error->message, "(x 5, y 3)"));
    g_assert_nonnull(strstr(error->message, words[k]));
    g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
  }
  /* The edges 0 and 1 are legal. */
  float edge[2] = { 0.f, 1.f };
  g_assert_true(emseg_isbi_validate_slice(edge, 2, 1, "edge", 0, NULL));
}

static void
test_export_refuses_bad_shape(void)
{
  g_autoptr(EmsegStack) images = make_images("in3.tif", N);
  g_autoptr(GError) error = NULL;
  /* One slice short. */
  g_autofree float *p = g_new0(float, W * H * (N - 1));
  g_autofree char *pp = scratch_path("short-prob.tif");
  g_assert_true(emseg_tiff_write_float_stack(pp, p, W, H, N - 1, &error));
  g_autoptr(EmsegStack) prob = emseg_stack_open(pp, &error);
  g_autofree char *out = scratch_path("no.tif");
  g_assert_false(emseg_isbi_export_from_probabilities(images, prob, 1.0, out, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH);
  g_assert_nonnull(strstr(error->message, "expected 4 slices of 24 x 16"));
  g_assert_nonnull(strstr(error->message, "found 3 slices of 24 x 16"));
  g_assert_false(g_file_test(out, G_FILE_TEST_EXISTS));
  g_clear_error(&error);

  /* Integer "probabilities" are refused too. */
  g_autoptr(EmsegStack) ints = make_images("ints.tif", N);
  g_assert_false(emseg_isbi_export_from_probabilities(images, ints, 1.0, out, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_UNSUPPORTED);
  g_assert_nonnull(strstr(error->message, "uint8"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  scratch = g_dir_make_tmp("emseg-test-export-XXXXXX", NULL);
  g_assert_nonnull(scratch);
  g_test_add_func("/export/round-trip", test_export_round_trip);
  g_test_add_func("/export/refuses-bad-values", test_export_refuses_bad_values);
  g_test_add_func("/export/refuses-bad-shape", test_export_refuses_bad_shape);
  int rc = g_test_run();
  emseg_test_remove_tree(scratch);
  g_free(scratch);
  return rc;
}
