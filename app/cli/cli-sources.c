/* cli-sources.c — where predict and export-isbi take their images and model from: a stack
 * file (--images) and a model file (--model), or a project (--project P [--stack ID]) with
 * its current checkpoint (or --checkpoint NAME), the model the workbench shows, unless
 * --model names a file; with no model named and none in the project, the shipped ISBI 2012
 * model (emseg-shipped-model.h), as in the workbench. One set of rules and messages for both
 * commands. */
#include <stdio.h>
#include <stdlib.h>

#include "cli-commands.h"
#include "emseg-predict.h"
#include "emseg-project.h"
#include "emseg-shipped-model.h"
#include "eng-modelfile.h"

int
emseg_cli_check_sources(const char *cmd, const CliSources *src)
{
  if ((src->images_path == NULL) == (src->project_path == NULL)) {
    fprintf(stderr, "emseg %s: give the images as --images STACK or --project PROJECT "
                    "(one of them)\n", cmd);
    return 2;
  }
  if (src->project_path == NULL && (src->stack_id != 0 || src->checkpoint != NULL)) {
    fprintf(stderr, "emseg %s: --stack and --checkpoint need --project\n", cmd);
    return 2;
  }
  if (src->model_path != NULL && src->checkpoint != NULL) {
    fprintf(stderr, "emseg %s: --model and --checkpoint both name the model: give one\n", cmd);
    return 2;
  }
  return 0;
}

gboolean
emseg_cli_pick_stack(EmsegProject *project, gint64 *stack_id, int *rc, GError **error)
{
  if (*stack_id != 0)
    return TRUE;
  g_autoptr(GArray) stacks = emseg_project_list_stacks(project, error);
  if (stacks == NULL)
    return FALSE;
  if (stacks->len == 1) {
    *stack_id = g_array_index(stacks, EmsegProjectStack, 0).id;
    return TRUE;
  }
  g_autoptr(GString) ids = g_string_new(NULL);
  for (guint i = 0; i < stacks->len; i++) {
    const EmsegProjectStack *st = &g_array_index(stacks, EmsegProjectStack, i);
    g_string_append_printf(ids, "%s%" G_GINT64_FORMAT " '%s'", i ? ", " : "", st->id, st->name);
  }
  if (stacks->len == 0)
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND, "%s has no stacks",
                emseg_project_get_path(project));
  else
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
                "%s has %u stacks (%s): choose one with --stack ID",
                emseg_project_get_path(project), stacks->len, ids->str);
  *rc = stacks->len ? 2 : 1;
  return FALSE;
}

/* The project's checkpoint `name`, or its current model (emseg_project_current_checkpoint:
 * the one chosen in the workbench, else the latest) when name is NULL; NULL without an error
 * when name is NULL and the project holds no model. */
static EngModel *
project_model(EmsegProject *project, const char *name, char **meta, char **described,
              GError **error)
{
  g_auto(EmsegCheckpointInfo) current = { 0 };
  gboolean chosen = FALSE;
  if (name == NULL) {
    if (!emseg_project_current_checkpoint(project, &current, &chosen, error) ||
        current.name == NULL)
      return NULL;
    name = current.name;
  }
  g_auto(EmsegCheckpointInfo) info = { 0 };
  g_autoptr(GBytes) bytes = emseg_project_load_checkpoint(project, name, &info, error);
  if (bytes == NULL)
    return NULL;
  gsize len = 0;
  const guint8 *data = g_bytes_get_data(bytes, &len);
  EngModel *model = NULL;
  EngError err;
  if (eng_model_deserialize(data, len, &model, meta, &err) != ENG_OK) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: checkpoint '%s': %s", emseg_project_get_path(project), name, err.message);
    return NULL;
  }
  *described = g_strdup_printf("'%s'%s", name,
                               current.name == NULL ? ""
                               : chosen             ? " (its current model, as chosen)"
                                                    : " (its latest)");
  return model;
}

int
emseg_cli_open_sources(const char *cmd, const CliSources *src, gboolean want_model,
                       EmsegStack **images, EngModel **model, char **meta)
{
  *images = NULL;
  if (model != NULL)
    *model = NULL;
  if (meta != NULL)
    *meta = NULL;
  g_autoptr(GError) error = NULL;
  int rc = 1;
  if (src->images_path != NULL) {
    *images = emseg_stack_open(src->images_path, &error);
    if (*images == NULL)
      goto fail;
    if (emseg_stack_get_warning(*images) != NULL)
      fprintf(stderr, "emseg %s: %s: %s\n", cmd, src->images_path,
              emseg_stack_get_warning(*images));
  } else {
    g_autoptr(EmsegProject) project =
        emseg_project_open(src->project_path, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
    gint64 stack_id = src->stack_id;
    if (project == NULL || !emseg_cli_pick_stack(project, &stack_id, &rc, &error))
      goto fail;
    *images = emseg_project_open_stack_images(project, stack_id, &error);
    if (*images == NULL)
      goto fail;
    if (want_model && src->model_path == NULL) {
      g_autofree char *described = NULL;
      *model = project_model(project, src->checkpoint, meta, &described, &error);
      if (*model == NULL && error != NULL)
        goto fail;
      if (*model != NULL)
        fprintf(stderr, "%s: %s, with the project's model %s\n", cmd,
                emseg_stack_get_path(*images), described);
    }
  }
  if (want_model && *model == NULL) {
    /* no --model, and no project model: the shipped one, the default for prediction */
    g_autofree char *shipped = NULL;
    const char *path = src->model_path;
    if (path == NULL) {
      shipped = emseg_shipped_model_path(&error);
      if (shipped == NULL) {
        fprintf(stderr, "emseg %s: no --model given%s, and %s\n", cmd,
                src->project_path ? " and the project holds none" : "", error->message);
        g_clear_pointer(images, emseg_stack_free);
        return 2;
      }
      fprintf(stderr, "%s: no --model%s: the shipped ISBI 2012 model (%s)\n", cmd,
              src->project_path ? " and none in the project" : "", shipped);
      path = shipped;
    }
    EngError err;
    if (eng_model_load(path, model, meta, &err) != ENG_OK) {
      fprintf(stderr, "emseg %s: %s\n", cmd, err.message); /* it names the file */
      g_clear_pointer(images, emseg_stack_free);
      return 1;
    }
  }
  if (want_model && src->adapt_bn) {
    guint n = 0, n_tiles = 0;
    g_autofree guint *all = emseg_parse_slices(NULL, emseg_stack_get_n_slices(*images), &n,
                                               &error);
    if (all == NULL || !emseg_calibrate_bn_on_stack(*model, *images, all, n,
                                                    EMSEG_ADAPT_BN_TILES, NULL, NULL, NULL,
                                                    &n_tiles, &error)) {
      eng_model_free(*model);
      *model = NULL;
      goto fail;
    }
    fprintf(stderr, "%s: BN statistics recomputed over %u tiles of the %u slices (--adapt-bn)\n",
            cmd, n_tiles, n);
  }
  return 0;
fail:
  fprintf(stderr, "emseg %s: %s\n", cmd, error->message);
  g_clear_pointer(images, emseg_stack_free);
  return rc;
}
