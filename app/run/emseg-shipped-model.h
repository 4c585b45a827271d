/* emseg-shipped-model.h — where the model shipped with emseg (data/models/, trained on ISBI
 * 2012; data/models/README.md says how) is found: the default model for prediction in the
 * CLI and the workbench, and the starting point of a fine-tune when a project has none.
 *
 * Looked for in $EMSEG_MODELS_DIR alone when that is set (tests use it to have one or none),
 * else in the installed data folder (PREFIX/share/emseg/models), then in the source tree
 * (an uninstalled build, as tools/run.sh makes). */
#pragma once

#include <glib.h>

#define EMSEG_SHIPPED_MODEL_FILE "isbi2012-resfcn.emsegmodel"
/* The checkpoint name the workbench stores it under in a project. */
#define EMSEG_SHIPPED_MODEL_NAME "shipped-isbi2012"
/* The word `emseg train --init` and `--model` options take for it. */
#define EMSEG_SHIPPED_MODEL_WORD "shipped"

/* The shipped model's path (g_free it), or NULL with a G_IO_ERROR_NOT_FOUND naming the
 * folders looked in. */
char *emseg_shipped_model_path(GError **error);
