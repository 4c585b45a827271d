/* test-evaluate-cli.c — `emseg evaluate` end to end on small TIFF stacks written here:
 * the printed scores equal the library's, --slices and --json work, and bad input ends
 * with exit code 1 or 2 and a reason on stderr. The binary is found next to the tests
 * (G_TEST_BUILDDIR/../app/cli/emseg). */
#include <glib.h>
#include <glib/gstdio.h>
#include <sys/wait.h>
#include <string.h>

#include "emseg-stack.h"
#include "eng-metrics.h"

enum { Z = 3, H = 24, W = 20 };

typedef struct {
  char *dir, *gt, *pred, *pred8, *small;
  guint8 labels[Z * H * W];
  float prob[Z * H * W];
} Fixture;

/* Three slices of a 4 x 4 grid of cells with 2-pixel walls; the prediction leaves a gap
 * in one wall of slice 1 and adds a spurious wall in slice 2. */
static void
fixture_setup(Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  f->dir = g_dir_make_tmp("emseg-evaluate-XXXXXX", &error);
  g_assert_no_error(error);
  for (int z = 0; z < Z; z++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int wall = (x % 5) >= 3 || (y % 6) >= 4;
        int i = (z * H + y) * W + x;
        f->labels[i] = wall ? 0 : 255;
        int pw = wall;
        if (z == 1 && x == 3 && y == 2)
          pw = 0;
        if (z == 2 && y == 1 && x < 3)
          pw = 1;
        f->prob[i] = pw ? 0.1f : 0.9f;
      }
  f->gt = g_build_filename(f->dir, "gt.tif", NULL);
  f->pred = g_build_filename(f->dir, "pred.tif", NULL);
  f->pred8 = g_build_filename(f->dir, "pred8.tif", NULL);
  f->small = g_build_filename(f->dir, "small.tif", NULL);
  g_assert_true(emseg_tiff_write_u8_stack(f->gt, f->labels, W, H, Z, &error));
  g_assert_true(emseg_tiff_write_float_stack(f->pred, f->prob, W, H, Z, &error));
  guint8 p8[Z * H * W];
  for (int i = 0; i < Z * H * W; i++)
    p8[i] = f->prob[i] > 0.5f ? 255 : 0;
  g_assert_true(emseg_tiff_write_u8_stack(f->pred8, p8, W, H, Z, &error));
  g_assert_true(emseg_tiff_write_u8_stack(f->small, f->labels, W, H - 1, 1, &error));
  g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
  char *files[] = { f->gt, f->pred, f->pred8, f->small };
  for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
    g_unlink(files[i]);
    g_free(files[i]);
  }
  g_rmdir(f->dir);
  g_free(f->dir);
}

/* Runs emseg with the given arguments; returns the exit status, fills out/err. */
static int
run_emseg(const char *const *args, char **out, char **err)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(argv, g_test_build_filename(G_TEST_BUILT, "..", "app", "cli", "emseg", NULL));
  g_ptr_array_add(argv, g_strdup("evaluate"));
  for (size_t i = 0; args[i]; i++)
    g_ptr_array_add(argv, g_strdup(args[i]));
  g_ptr_array_add(argv, NULL);
  int status = -1;
  GError *error = NULL;
  gboolean ok = g_spawn_sync(NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                             out, err, &status, &error);
  g_assert_no_error(error);
  g_assert_true(ok);
  g_ptr_array_free(argv, TRUE);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return -1;
}

static EngMetricsResult
library_scores(const Fixture *f, size_t first, size_t count)
{
  EngMetricsResult r;
  EngError err = { 0 };
  g_assert_cmpint(eng_metrics_evaluate(f->prob + first * H * W, f->labels + first * H * W,
                                       count, H, W, &r, &err),
                  ==, ENG_OK);
  return r;
}

static void
assert_lines(const char *out, const EngMetricsResult *r)
{
  g_autofree char *want = g_strdup_printf("vrand %.6f\nvinfo %.6f\npixel_error %.6f\n",
                                          r->vrand, r->vinfo, r->pixel_error);
  g_assert_cmpstr(out, ==, want);
}

static void
test_plain(Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *args[] = { "--labels", f->gt, "--pred", f->pred, NULL };
  g_assert_cmpint(run_emseg(args, &out, &err), ==, 0);
  EngMetricsResult r = library_scores(f, 0, Z);
  g_test_message("emseg evaluate: %s", out);
  assert_lines(out, &r);
  g_assert_cmpfloat(r.vrand, <, 1.0); /* the defects are seen */

  /* An 8-bit prediction is read as value / 255: the same binary map scores the same. */
  g_autofree char *out8 = NULL, *err8 = NULL;
  const char *args8[] = { "--labels", f->gt, "--pred", f->pred8, NULL };
  g_assert_cmpint(run_emseg(args8, &out8, &err8), ==, 0);
  g_assert_cmpstr(out8, ==, out);
  g_assert_cmpstr(err, ==, ""); /* 0/255 labels: nothing to say */

  /* 128 (emseg's "unlabeled") in the ground truth is scored as cell, and said */
  guint8 gt[Z * H * W];
  memcpy(gt, f->labels, sizeof gt);
  gt[7] = gt[8] = 128;
  g_autofree char *gt128 = g_build_filename(f->dir, "gt128.tif", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(gt128, gt, W, H, Z, &error));
  g_autofree char *o3 = NULL, *e3 = NULL;
  const char *args3[] = { "--labels", gt128, "--pred", f->pred, NULL };
  g_assert_cmpint(run_emseg(args3, &o3, &e3), ==, 0);
  g_assert_nonnull(strstr(e3, "gt128.tif: 2 pixels are 128"));
  g_unlink(gt128);
}

static void
test_slices_json(Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *args[] = { "--labels", f->gt, "--pred", f->pred, "--slices", "1-2", NULL };
  g_assert_cmpint(run_emseg(args, &out, &err), ==, 0);
  EngMetricsResult r = library_scores(f, 1, 2);
  assert_lines(out, &r);

  g_autofree char *js = NULL, *jerr = NULL;
  const char *jargs[] = { "--labels", f->gt,     "--pred", f->pred,
                          "--json",   "--slices", "0",     NULL };
  g_assert_cmpint(run_emseg(jargs, &js, &jerr), ==, 0);
  g_assert_nonnull(strstr(js, "\"slices\": [0, 0]"));
  g_assert_nonnull(strstr(js, "\"thresholds\": ["));
  g_assert_nonnull(strstr(js, "\"rand_split\""));
  g_assert_nonnull(strstr(js, "\"info_merge\""));
  /* slice 0 is defect-free: V_rand 1 */
  g_assert_nonnull(strstr(js, "\"vrand\": 1,"));
}

static void
expect_failure(const char *const *args, int code, const char *needle)
{
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(run_emseg(args, &out, &err), ==, code);
  g_test_message("stderr: %s", err);
  g_assert_cmpstr(out, ==, "");
  if (!strstr(err, needle))
    g_error("stderr '%s' does not mention '%s'", err, needle);
}

static void
test_errors(Fixture *f, gconstpointer data)
{
  const char *none[] = { NULL };
  expect_failure(none, 2, "required");
  const char *bad_range[] = { "--labels", f->gt, "--pred", f->pred, "--slices", "2-1", NULL };
  expect_failure(bad_range, 2, "A-B");
  const char *out_of_range[] = { "--labels", f->gt, "--pred", f->pred, "--slices", "1-7",
                                 NULL };
  expect_failure(out_of_range, 1, "out of range");
  const char *mismatch[] = { "--labels", f->small, "--pred", f->pred, NULL };
  expect_failure(mismatch, 1, "size mismatch");
  const char *missing[] = { "--labels", f->gt, "--pred", "/nonexistent/p.tif", NULL };
  expect_failure(missing, 1, "prediction");
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test directory strings, which
   * fails the ASan build; the files live in a g_dir_make_tmp() directory removed after
   * each test instead. */
  g_test_init(&argc, &argv, NULL);
  g_test_add("/evaluate-cli/plain", Fixture, NULL, fixture_setup, test_plain,
             fixture_teardown);
  g_test_add("/evaluate-cli/slices-json", Fixture, NULL, fixture_setup, test_slices_json,
             fixture_teardown);
  g_test_add("/evaluate-cli/errors", Fixture, NULL, fixture_setup, test_errors,
             fixture_teardown);
  return g_test_run();
}
