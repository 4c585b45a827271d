/* emseg-project-stack-images.c — a project's stored stack as an EmsegStack (app/io), so the
 * commands that read image stacks (predict, export-isbi) take a project's stack as they
 * take a TIFF: the same cache, conversions and slice checks. */
#include "emseg-project.h"

typedef struct {
  EmsegProject *project; /* owned: a read-only connection of its own */
  gint64 stack_id;
} StackImages;

static gboolean
read_stored_slice(gpointer user_data, guint index, void *out, GError **error)
{
  StackImages *si = user_data;
  return emseg_project_read_slice(si->project, si->stack_id, index, out, error);
}

static void
stack_images_free(gpointer user_data)
{
  StackImages *si = user_data;
  emseg_project_close(si->project);
  g_free(si);
}

EmsegStack *
emseg_project_open_stack_images(EmsegProject *project, gint64 stack_id, GError **error)
{
  g_auto(EmsegProjectStack) st = { 0 };
  if (!emseg_project_get_stack(project, stack_id, &st, error))
    return NULL;
  /* Its own connection, so the stack does not borrow the caller's project (which this
   * process opened, and so checked, already). */
  EmsegProject *conn =
      emseg_project_open(emseg_project_get_path(project),
                         EMSEG_PROJECT_OPEN_READ_ONLY | EMSEG_PROJECT_OPEN_SKIP_CHECK, error);
  if (conn == NULL)
    return NULL;
  StackImages *si = g_new(StackImages, 1);
  si->project = conn;
  si->stack_id = stack_id;
  g_autofree char *name = g_strdup_printf("%s, stack %" G_GINT64_FORMAT " '%s'",
                                          emseg_project_get_path(project), stack_id, st.name);
  return emseg_stack_new_from_reader(name, st.width, st.height, st.n_slices, st.type,
                                     read_stored_slice, si, stack_images_free, error);
}
