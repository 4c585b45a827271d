/* test-cli-augment.c — `emseg augment-preview` end to end: the PNG files appear with the
 * slice's size, the same seed writes the same bytes, and bad usage or a missing stack
 * give exit codes 2 and 1 with the reason on stderr. The emseg binary's path is the first
 * non-option argument (meson passes it). */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include "emseg-test-util.h"

static const char *emseg_bin;

static int
run_out(const char *const *args, char **out_text, char **err_out)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(argv, g_strdup(emseg_bin));
  g_ptr_array_add(argv, g_strdup("augment-preview"));
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add(argv, g_strdup(*a));
  g_ptr_array_add(argv, NULL);
  int wait_status = 0;
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  gboolean ok = g_spawn_sync(NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                             &out, err_out, &wait_status, &error);
  if (out_text)
    *out_text = out;
  else
    g_free(out);
  g_assert_no_error(error);
  g_assert_true(ok);
  g_ptr_array_free(argv, TRUE);
  g_assert_true(WIFEXITED(wait_status));
  return WEXITSTATUS(wait_status);
}

static int
run(const char *const *args, char **err_out)
{
  return run_out(args, NULL, err_out);
}

/* Width and height from a PNG's IHDR chunk. */
static void
png_size(const char *path, guint32 *w, guint32 *h)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_get_contents(path, &data, &len, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(len, >, 24);
  g_assert_cmpmem(data, 8, "\x89PNG\r\n\x1a\n", 8);
  g_assert_cmpmem(data + 12, 4, "IHDR", 4);
  const guint8 *u = (const guint8 *) data;
  *w = (guint32) u[16] << 24 | (guint32) u[17] << 16 | (guint32) u[18] << 8 | u[19];
  *h = (guint32) u[20] << 24 | (guint32) u[21] << 16 | (guint32) u[22] << 8 | u[23];
}

static void
test_synthetic(void)
{
  g_autofree char *tmp = g_dir_make_tmp("emseg-aug-XXXXXX", NULL);
  g_autofree char *d1 = g_build_filename(tmp, "a", NULL);
  g_autofree char *d2 = g_build_filename(tmp, "b", NULL);
  const char *args1[] = { "--count", "2", "--seed", "3", "--out", d1, NULL };
  const char *args2[] = { "--count", "2", "--seed", "3", "--out", d2, NULL };
  g_assert_cmpint(run(args1, NULL), ==, 0);
  g_assert_cmpint(run(args2, NULL), ==, 0);
  const char *names[] = { "original-image.png", "original-labels.png", "sample-000-image.png",
                          "sample-000-labels.png", "sample-001-overlay.png", NULL };
  for (const char **n = names; *n; n++) {
    g_autofree char *p1 = g_build_filename(d1, *n, NULL);
    g_autofree char *p2 = g_build_filename(d2, *n, NULL);
    guint32 w, h;
    png_size(p1, &w, &h);
    g_assert_cmpuint(w, ==, 512);
    g_assert_cmpuint(h, ==, 512);
    g_autofree char *c1 = NULL, *c2 = NULL;
    gsize l1, l2;
    g_assert_true(g_file_get_contents(p1, &c1, &l1, NULL));
    g_assert_true(g_file_get_contents(p2, &c2, &l2, NULL));
    g_assert_cmpmem(c1, l1, c2, l2);
  }
  /* the augmented sample is not the original */
  g_autofree char *o = g_build_filename(d1, "original-image.png", NULL);
  g_autofree char *s = g_build_filename(d1, "sample-000-image.png", NULL);
  g_autofree char *co = NULL, *cs = NULL;
  gsize lo, ls;
  g_assert_true(g_file_get_contents(o, &co, &lo, NULL));
  g_assert_true(g_file_get_contents(s, &cs, &ls, NULL));
  g_assert_false(lo == ls && memcmp(co, cs, lo) == 0);
  emseg_test_remove_tree(tmp);
}

/* --rotate / --shear / --elastic-sigma as emseg train takes them: at 0 every sample is at
 * most a flip; out of range exits 2 naming the options. */
static void
test_strengths(void)
{
  g_autofree char *tmp = g_dir_make_tmp("emseg-aug-XXXXXX", NULL);
  g_autofree char *out = NULL, *err = NULL;
  const char *none[] = { "--count", "3", "--rotate", "0", "--shear", "0", "--elastic-sigma", "0",
                         "--out", tmp, NULL };
  g_assert_cmpint(run_out(none, &out, NULL), ==, 0);
  guint samples = 0;
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  for (char **l = lines; *l; l++)
    if (g_str_has_prefix(*l, "sample-")) {
      samples++;
      g_assert_nonnull(strstr(*l, "rotation +0.0°, shear +0.000 rad, elastic max 0.0 px"));
    }
  g_assert_cmpuint(samples, ==, 3);
  g_clear_pointer(&out, g_free);
  const char *some[] = { "--count", "1", "--rotate", "10", "--out", tmp, NULL };
  g_assert_cmpint(run_out(some, &out, NULL), ==, 0);
  g_assert_null(strstr(out, "rotation +0.0°"));
  const char *bad[] = { "--shear", "2", "--out", tmp, NULL };
  g_assert_cmpint(run(bad, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--shear in 0-1.5 radians"));
  emseg_test_remove_tree(tmp);
}

static void
test_errors(void)
{
  g_autofree char *err = NULL;
  const char *no_out[] = { "--count", "2", NULL };
  g_assert_cmpint(run(no_out, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--out"));
  g_clear_pointer(&err, g_free);
  g_autofree char *tmp = g_dir_make_tmp("emseg-aug-XXXXXX", NULL);
  g_autofree char *missing = g_build_filename(tmp, "missing.tif", NULL);
  const char *bad[] = { "--images", missing, "--out", tmp, NULL };
  g_assert_cmpint(run(bad, &err), ==, 1);
  g_assert_nonnull(strstr(err, "missing.tif"));
  emseg_test_remove_tree(tmp);
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test dir strings, which
   * fails the ASan build, and nothing here touches the user's directories. */
  g_test_init(&argc, &argv, NULL);
  for (int i = 1; i < argc; i++)
    if (argv[i][0] != '-')
      emseg_bin = argv[i];
  if (!emseg_bin) {
    g_printerr("usage: test-cli-augment [--tap] PATH-TO-EMSEG\n");
    return 1;
  }
  g_test_add_func("/cli-augment/synthetic", test_synthetic);
  g_test_add_func("/cli-augment/errors", test_errors);
  g_test_add_func("/cli-augment/strengths", test_strengths);
  return g_test_run();
}
