/* emseg-model-import.c — a model file stored in a project as a checkpoint, after checking
 * that it loads, and the same test for checkpoints already stored (see the header). */
#include "emseg-model-import.h"

#include <stdlib.h>

#include <gio/gio.h>

#include "eng-modelfile.h"

gboolean
emseg_project_import_model_file(EmsegProject *project, const char *path, const char *name,
                                gint64 *id, char **spec, gsize *n_params, GError **error)
{
  g_autofree char *bytes = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &bytes, &len, error))
    return FALSE;
  EngModel *model = NULL;
  char *meta = NULL;
  EngError err;
  if (eng_model_deserialize((const uint8_t *) bytes, len, &model, &meta, &err) != ENG_OK) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %s", path, err.message);
    return FALSE;
  }
  char text[1024];
  eng_spec_format(eng_model_spec(model), text, sizeof text);
  if (n_params != NULL)
    *n_params = eng_model_count_trainable(model);
  eng_model_free(model);
  gboolean ok =
      emseg_project_save_checkpoint(project, name, 0, 0, text, meta, bytes, len, id, error);
  free(meta);
  if (ok && spec != NULL)
    *spec = g_strdup(text);
  return ok;
}

gboolean
emseg_check_model_loads(GBytes *weights, gpointer user_data, GError **error)
{
  (void) user_data;
  gsize len = 0;
  const uint8_t *bytes = g_bytes_get_data(weights, &len);
  EngModel *model = NULL;
  EngError err;
  if (eng_model_deserialize(bytes, len, &model, NULL, &err) != ENG_OK) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "its checksum matches but it does not load as a model: %s", err.message);
    return FALSE;
  }
  eng_model_free(model);
  return TRUE;
}
