/* emseg-shipped-model.c — finds the shipped model file (see the header for the order). */
#include "emseg-shipped-model.h"

#include <gio/gio.h>

char *
emseg_shipped_model_path(GError **error)
{
  /* $EMSEG_MODELS_DIR, when set, is the only place looked at. */
  const char *env = g_getenv("EMSEG_MODELS_DIR");
  const char *dirs[] = { env ? env : EMSEG_MODELS_DIR, env ? NULL : EMSEG_SOURCE_MODELS_DIR };
  g_autoptr(GString) looked = g_string_new(NULL);

  for (gsize i = 0; i < G_N_ELEMENTS(dirs) && dirs[i] != NULL; i++) {
    g_autofree char *candidate = g_build_filename(dirs[i], EMSEG_SHIPPED_MODEL_FILE, NULL);
    if (g_file_test(candidate, G_FILE_TEST_IS_REGULAR))
      return g_steal_pointer(&candidate);
    g_string_append_printf(looked, "%s%s", looked->len ? ", " : "", dirs[i]);
  }
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
              "the shipped model %s is not installed (looked in %s%s)", EMSEG_SHIPPED_MODEL_FILE,
              looked->str, env ? ", as $EMSEG_MODELS_DIR says" : "");
  return NULL;
}
