/* emseg-test-util.c — helpers shared by the test programs (see emseg-test-util.h). */
#include "emseg-test-util.h"

#include <glib.h>
#include <glib/gstdio.h>

void
emseg_test_remove_tree(const char *path)
{
  GDir *d = g_dir_open(path, 0, NULL);
  if (d != NULL) {
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
      g_autofree char *child = g_build_filename(path, name, NULL);
      emseg_test_remove_tree(child);
    }
    g_dir_close(d);
  }
  g_remove(path);
}
