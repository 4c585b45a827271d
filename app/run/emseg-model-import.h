/* emseg-model-import.h — a model file into a project as a checkpoint: what `emseg project
 * import-model`, the workbench's Import Model… and its adoption of the shipped model share;
 * and the project check's test that a stored checkpoint still loads.
 *
 * The file is read and deserialized first (checksum, spec, weights), so a project never
 * holds bytes this build cannot run; its metadata (the export exponent, the training
 * scores) becomes the checkpoint's scores. Errors name the file (G_IO_ERROR_INVALID_DATA
 * for one that is not a model; the store's errors otherwise).
 *
 * Ownership: *spec (eng_spec_format text) is the caller's (g_free); project and path are
 * borrowed. */
#pragma once

#include <glib.h>

#include "emseg-project.h"

/* Stores the model at path as checkpoint `name` (replacing one of that name). id, spec and
 * n_params (each may be NULL) receive the checkpoint's id, the model's spec text and its
 * trainable parameter count. */
gboolean emseg_project_import_model_file(EmsegProject *project, const char *path,
                                         const char *name, gint64 *id, char **spec,
                                         gsize *n_params, GError **error);

/* An EmsegProjectCheckModel for emseg_project_check_contents: the checkpoint's bytes load
 * as a model this build runs (spec, weights), beyond their stored checksum. user_data is
 * unused. */
gboolean emseg_check_model_loads(GBytes *weights, gpointer user_data, GError **error);
