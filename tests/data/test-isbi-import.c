/* test-isbi-import.c — (suite isbi) imports the ISBI 2012 training volume with its 25-page
 * label stack into a project, through the same function as `emseg project create`:
 * slices 0–24 carry labels identical to the file, slices 25–29 are unlabeled, the pixels
 * are exact, and the labels export back to the same values. Reads $EMSEG_ISBI_DIR. */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-project.h"

static void
test_isbi_import(void)
{
  const char *dir = g_getenv("EMSEG_ISBI_DIR");
  g_assert_nonnull(dir); /* set by tests/meson.build; a missing variable is a failure */
  g_autofree char *vol = g_build_filename(dir, "train-volume.tif", NULL);
  g_autofree char *lab = g_build_filename(dir, "train-labels.tif", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) images = emseg_stack_open(vol, &error);
  g_assert_no_error(error);
  g_autoptr(EmsegStack) labels = emseg_stack_open(lab, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_n_slices(images), ==, 30);
  g_assert_cmpuint(emseg_stack_get_n_slices(labels), ==, 25);
  g_assert_cmpuint(emseg_stack_get_width(images), ==, 512);

  g_autofree char *tmp = g_dir_make_tmp("emseg-test-isbi-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(tmp, "isbi.emseg", NULL);
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error(error);
  gint64 id = 0;
  g_assert_true(emseg_project_import_stack(p, "train", images, labels, &id, &error));
  g_assert_no_error(error);
  emseg_project_close(p);

  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
  g_assert_no_error(error);
  g_autoptr(GArray) labeled = emseg_project_labeled_slices(p, id, &error);
  g_assert_cmpuint(labeled->len, ==, 25);
  for (guint i = 0; i < 25; i++)
    g_assert_cmpuint(g_array_index(labeled, guint, i), ==, i);
  const gsize n = 512 * 512;
  g_autofree guint8 *mask = g_malloc(n), *want = g_malloc(n), *px = g_malloc(n),
                    *px_want = g_malloc(n);
  for (guint s = 0; s < 30; s++) {
    guint64 n_lab = 0;
    g_assert_true(emseg_project_read_mask(p, id, s, mask, &n_lab, &error));
    g_assert_no_error(error);
    if (s >= 25) {
      g_assert_cmpuint(n_lab, ==, 0);
      for (gsize i = 0; i < n; i++) g_assert_cmpuint(mask[i], ==, EMSEG_LABEL_UNLABELED);
    } else {
      g_assert_cmpuint(n_lab, ==, n);
      g_assert_true(emseg_stack_read_u8(labels, s, want, &error));
      g_assert_cmpmem(mask, n, want, n);
    }
    g_assert_true(emseg_project_read_slice(p, id, s, px, &error));
    g_assert_true(emseg_stack_read_raw(images, s, px_want, &error));
    g_assert_cmpmem(px, n, px_want, n);
  }
  emseg_project_close(p);
  const char *names[] = { "isbi.emseg", "isbi.emseg-wal", "isbi.emseg-shm" };
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *f = g_build_filename(tmp, names[i], NULL);
    g_remove(f);
  }
  g_rmdir(tmp);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/isbi/import-train-volume-and-labels", test_isbi_import);
  return g_test_run();
}
