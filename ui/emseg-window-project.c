/* emseg-window-project.c — the window's project side: opening and creating projects,
 * importing stacks (with optional labels), the demo project, recent projects, drag and
 * drop, and brush strokes saved to the store with the store's undo/redo.
 *
 * The store is the truth. While a stroke is dragged the viewer paints into the in-memory
 * volume (same rasterisation as the store, see emseg-edit-history.c); when it ends the
 * points go to emseg_project_apply_stroke (one transaction) and the slice's mask is read
 * back from the store, so the screen shows what is stored — also when saving failed, in
 * which case the preview disappears and a dialog says why. Undo/redo are the store's, so
 * they survive restarts; the viewer's own history is cleared after every stroke.
 *
 * File choosers are GtkFileChooserNative (GtkFileDialog is GTK 4.10). */
#include "emseg-window-private.h"

#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "emseg-labels.h"
#include "emseg-stack.h"

#define PROJECT_MIME "application/x-emseg-project"
#define RECENT_MAX 8

/* ---- opening projects ----------------------------------------------------------- */

static void
close_project (EmsegWindow *self)
{
  g_clear_pointer (&self->project, emseg_project_close);
  self->stack_id = 0;
  g_clear_pointer (&self->stack_ids, g_array_unref);
  gtk_widget_set_visible (GTK_WIDGET (self->stack_dropdown), FALSE);
}

/* TRUE (with a dialog and an error) when the engine thread works for the shown stack:
 * `what` (opening another project, showing another stack) would stop it. */
static gboolean
refuse_while_busy (EmsegWindow *self, const char *what, GError **error)
{
  const char *busy = emseg_window_busy_with (self);
  g_autoptr (GError) local = NULL;

  if (busy == NULL)
    return FALSE;
  if (emseg_window_is_importing (self))
    g_set_error (&local, G_IO_ERROR, G_IO_ERROR_BUSY,
                 "A stack is being opened (its slices are copied into its project): wait for it, or "
                 "stop it with Esc, before %s.",
                 what);
  else
    g_set_error (&local, G_IO_ERROR, G_IO_ERROR_BUSY,
                 "%s is running on the stack shown: stop it (or let it finish) before %s. "
                 "A stopped run keeps its best checkpoint.",
                 busy, what);
  emseg_window_show_error (self, "Not now", local);
  g_propagate_error (error, g_steal_pointer (&local));
  return TRUE;
}

/* Selects the shown stack in the stack chooser (not a choice: the handler ignores it). */
static void
select_shown_stack (EmsegWindow *self)
{
  for (guint i = 0; self->stack_ids != NULL && i < self->stack_ids->len; i++)
    if (g_array_index (self->stack_ids, gint64, i) == self->stack_id)
      {
        self->filling_stacks = TRUE;
        gtk_drop_down_set_selected (self->stack_dropdown, i);
        self->filling_stacks = FALSE;
      }
}

/* The stack chooser lists the project's stacks (name and size) with the shown one
 * selected; it is hidden when there is only one. stacks: the project's. */
static void
fill_stack_dropdown (EmsegWindow *self, GArray *stacks)
{
  g_autoptr (GtkStringList) names = NULL;
  gboolean same = self->stack_ids != NULL && self->stack_ids->len == stacks->len;

  /* The same stacks (a choice in the dropdown itself): only the selection moves. Replacing
   * the model from inside its own selection change would free it under GTK's feet. */
  for (guint i = 0; same && i < stacks->len; i++)
    same = g_array_index (self->stack_ids, gint64, i) == g_array_index (stacks, EmsegProjectStack, i).id;
  if (!same)
    {
      names = gtk_string_list_new (NULL);
      g_clear_pointer (&self->stack_ids, g_array_unref);
      self->stack_ids = g_array_new (FALSE, FALSE, sizeof (gint64));
      for (guint i = 0; i < stacks->len; i++)
        {
          const EmsegProjectStack *s = &g_array_index (stacks, EmsegProjectStack, i);
          g_autofree char *text = g_strdup_printf ("%s (%u×%u×%u)", s->name, s->width, s->height, s->n_slices);

          gtk_string_list_append (names, text);
          g_array_append_val (self->stack_ids, s->id);
        }
      self->filling_stacks = TRUE;
      gtk_drop_down_set_model (self->stack_dropdown, G_LIST_MODEL (names));
      self->filling_stacks = FALSE;
      gtk_widget_set_visible (GTK_WIDGET (self->stack_dropdown), self->stack_ids->len > 1);
    }
  select_shown_stack (self);
}

static void rebuild_recent_menu (EmsegWindow *self);

/* The recent manager is touched only once a project opens: creating it reads the user
 * data folder, which is not settled before then in tests (G_TEST_OPTION_ISOLATE_DIRS). */
static void
add_recent (EmsegWindow *self, const char *path)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autofree char *uri = g_file_get_uri (file);
  GtkRecentData data = {
    .display_name = NULL,
    .description = NULL,
    .mime_type = (char *) PROJECT_MIME,
    .app_name = (char *) "emseg",
    .app_exec = (char *) "emseg-workbench %f",
    .groups = NULL,
    .is_private = FALSE,
  };

  GtkRecentManager *manager = gtk_recent_manager_get_default ();

  if (!g_object_get_data (G_OBJECT (self), "emseg-recent-connected"))
    {
      g_signal_connect_object (manager, "changed", G_CALLBACK (rebuild_recent_menu), self, G_CONNECT_SWAPPED);
      g_object_set_data (G_OBJECT (self), "emseg-recent-connected", GINT_TO_POINTER (1));
    }
  gtk_recent_manager_add_full (manager, uri, &data);
  rebuild_recent_menu (self);
}

/* Shows stack `stack_id` of the open project (0: the first one, if any). */
static gboolean
show_stack (EmsegWindow *self, gint64 stack_id, GError **error)
{
  g_autoptr (EmsegVolume) v = NULL;
  g_autofree char *base = g_path_get_basename (emseg_project_get_path (self->project));
  g_autofree char *title = NULL;

  g_autoptr (GArray) stacks = emseg_project_list_stacks (self->project, error);

  if (stacks == NULL)
    return FALSE;
  if (stack_id == 0 && stacks->len > 0)
    stack_id = g_array_index (stacks, EmsegProjectStack, 0).id;
  if (stack_id != 0)
    {
      v = emseg_volume_new_from_project (self->project, stack_id, error);
      if (v == NULL)
        return FALSE;
    }
  self->stack_id = stack_id;
  fill_stack_dropdown (self, stacks);
  title = g_strdup_printf ("%s — emseg", base);
  emseg_window_show_volume (self, v, title);
  if (v == NULL)
    emseg_window_set_status (self, "The project has no stack yet: import one (Project ▸ Import Stack…).");
  emseg_window_train_project_changed (self);
  emseg_window_update_actions (self);
  return TRUE;
}

gboolean
emseg_window_show_stack (EmsegWindow *self, gint64 stack_id, GError **error)
{
  g_autoptr (GError) local = NULL;

  if (stack_id == self->stack_id)
    return TRUE;
  if (refuse_while_busy (self, "showing another stack", error))
    return FALSE;
  if (self->project == NULL)
    g_set_error (&local, G_IO_ERROR, G_IO_ERROR_FAILED, "No project is open");
  if (local == NULL && show_stack (self, stack_id, &local))
    {
      guint i = gtk_drop_down_get_selected (self->stack_dropdown);
      g_autoptr (GtkStringObject) item = g_list_model_get_item (gtk_drop_down_get_model (self->stack_dropdown), i);
      g_autofree char *text = g_strdup_printf ("Showing stack %s.", item != NULL ? gtk_string_object_get_string (item) : "");

      emseg_window_set_status (self, text);
      return TRUE;
    }
  emseg_window_show_error (self, "Could not show the stack", local);
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

GtkWidget *
emseg_window_get_stack_chooser (EmsegWindow *self)
{
  return GTK_WIDGET (self->stack_dropdown);
}

/* A stack chosen in the dropdown; a refusal puts the selection back on the shown one. */
static void
stack_selected_cb (EmsegWindow *self)
{
  guint i = gtk_drop_down_get_selected (self->stack_dropdown);

  if (self->filling_stacks || self->stack_ids == NULL || i >= self->stack_ids->len)
    return;
  if (!emseg_window_show_stack (self, g_array_index (self->stack_ids, gint64, i), NULL))
    select_shown_stack (self);
}

gboolean
emseg_window_open_project (EmsegWindow *self, const char *path, gboolean create, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (EmsegProject) project = NULL;

  if (refuse_while_busy (self, "opening another project", error))
    return FALSE;
  if (create && g_file_test (path, G_FILE_TEST_EXISTS))
    {
      /* The chooser asked before replacing; a stale WAL beside it would be replayed. */
      int saved = emseg_project_remove_files (path);

      if (saved != 0)
        g_set_error (&local, G_IO_ERROR, g_io_error_from_errno (saved), "Could not replace %s: %s", path,
                     g_strerror (saved));
    }
  if (local == NULL)
    project = emseg_project_open (path, create ? EMSEG_PROJECT_OPEN_CREATE : EMSEG_PROJECT_OPEN_DEFAULT, &local);
  if (project == NULL)
    {
      emseg_window_show_error (self, create ? "Could not create the project" : "Could not open the project", local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  /* the engine thread of the previous project goes first: it holds its own connection */
  close_project (self);
  self->project = g_steal_pointer (&project);
  emseg_window_train_project_changed (self);
  add_recent (self, path);
  if (!show_stack (self, 0, &local))
    {
      emseg_window_show_error (self, "Could not read the project's stack", local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return TRUE;
}

static char *
stack_name (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);
  char *dot = strrchr (base, '.');

  if (dot != NULL && dot != base)
    *dot = '\0';
  return g_steal_pointer (&base);
}

static gboolean
import_into (EmsegProject *project, const char *images, const char *labels, gint64 *stack_id,
             GError **error)
{
  g_autoptr (EmsegStack) img = emseg_stack_open (images, error);
  g_autoptr (EmsegStack) lab = NULL;
  g_autofree char *name = stack_name (images);

  if (img == NULL)
    return FALSE;
  if (labels != NULL && (lab = emseg_stack_open (labels, error)) == NULL)
    return FALSE;
  return emseg_project_import_stack (project, name, img, lab, stack_id, error);
}

gboolean
emseg_window_import_stack (EmsegWindow *self, const char *images, const char *labels,
                           GError **error)
{
  g_autoptr (GError) local = NULL;

  if (refuse_while_busy (self, "importing another stack", error))
    return FALSE;
  if (self->project == NULL)
    g_set_error (&local, G_IO_ERROR, G_IO_ERROR_FAILED,
                 "No project is open: create or open one before importing %s", images);
  else
    {
      /* copied on a worker (big stacks take many seconds); the stack shows when it ends */
      g_autofree char *name = stack_name (images);

      if (emseg_window_import_into_open (self, images, labels, name, &local))
        return TRUE;
    }
  emseg_window_show_error (self, "Could not import the stack", local);
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

static gboolean
is_project_file (const char *path)
{
  static const char magic[16] = "SQLite format 3";
  char head[16] = { 0 };
  FILE *f;
  gboolean sqlite;

  if (g_str_has_suffix (path, ".emseg"))
    return TRUE;
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) || (f = g_fopen (path, "rb")) == NULL)
    return FALSE;
  sqlite = fread (head, 1, sizeof head, f) == sizeof head && memcmp (head, magic, sizeof magic) == 0;
  fclose (f);
  return sqlite;
}

/* The project a bare stack opens in: one per absolute stack path, so reopening the same
 * stack finds its strokes and runs again. */
static char *
project_for_stack (const char *path)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autofree char *abs = g_file_get_path (file);
  g_autofree char *hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, abs, -1);
  g_autofree char *name = stack_name (abs);
  g_autofree char *file_name = NULL;

  hash[8] = '\0';
  file_name = g_strdup_printf ("%s-%s.emseg", name, hash);
  return g_build_filename (g_get_user_data_dir (), "emseg", "projects", file_name, NULL);
}

gboolean
emseg_window_open_path (EmsegWindow *self, const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *project_path = NULL;
  g_autofree char *dir = NULL;
  gboolean existed;

  if (refuse_while_busy (self, "opening another project", error))
    return FALSE;
  if (is_project_file (path))
    return emseg_window_open_project (self, path, FALSE, error);

  project_path = project_for_stack (path);
  existed = g_file_test (project_path, G_FILE_TEST_EXISTS);
  dir = g_path_get_dirname (project_path);
  g_mkdir_with_parents (dir, 0755);
  if (existed)
    {
      g_autoptr (EmsegProject) p = emseg_project_open (project_path, EMSEG_PROJECT_OPEN_DEFAULT, NULL);
      g_autoptr (GArray) stacks = p ? emseg_project_list_stacks (p, NULL) : NULL;

      /* an interrupted first import left an empty project: import again */
      existed = stacks != NULL && stacks->len > 0;
    }
  if (existed)
    return emseg_window_open_project (self, project_path, FALSE, error);

  /* Import into a fresh project first (on a worker: big stacks take many seconds), then
   * open it, so a stack that fails to read leaves no half-made project behind and the
   * current one stays open meanwhile. */
  {
    g_autofree char *name = stack_name (path);

    if (!emseg_window_import_new_project (self, path, name, project_path, &local))
      {
        emseg_window_show_error (self, "Could not open the stack", local);
        g_propagate_error (error, g_steal_pointer (&local));
        return FALSE;
      }
  }
  return TRUE;
}

char *
emseg_window_demo_project_path (void)
{
  return g_build_filename (g_get_user_data_dir (), "emseg", "demo.emseg", NULL);
}

/* Writes the generated demo stack as TIFFs (image float, labels for the labelled slices)
 * so it is imported exactly as a user's files would be. */
static gboolean
create_demo (const char *path, GError **error)
{
  /* 256² × 12 renders in well under a second on two cores; the last third is left
   * unlabelled so there is something to correct. */
  const guint n_labelled = 8;
  g_autoptr (EmsegVolume) v = emseg_volume_new_synthetic (256, 256, 12, 2016, n_labelled, error);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *tmp = NULL;
  g_autofree char *img = NULL;
  g_autofree char *lab = NULL;
  g_autoptr (EmsegProject) project = NULL;
  gboolean ok;

  if (v == NULL)
    return FALSE;
  g_mkdir_with_parents (dir, 0755);
  tmp = g_dir_make_tmp ("emseg-demo-XXXXXX", error);
  if (tmp == NULL)
    return FALSE;
  img = g_build_filename (tmp, "demo-images.tif", NULL);
  lab = g_build_filename (tmp, "demo-labels.tif", NULL);
  ok = emseg_tiff_write_float_stack (img, v->image, v->width, v->height, v->n_slices, error) &&
       emseg_tiff_write_u8_stack (lab, v->labels, v->width, v->height, n_labelled, error);
  if (ok)
    {
      project = emseg_project_open (path, EMSEG_PROJECT_OPEN_CREATE, error);
      ok = project != NULL && import_into (project, img, lab, NULL, error) &&
           emseg_project_set_meta (project, "name", "Demo project (generated EM-like stack)", error);
    }
  g_unlink (img);
  g_unlink (lab);
  g_rmdir (tmp);
  if (!ok)
    {
      g_clear_pointer (&project, emseg_project_close);
      emseg_project_remove_files (path);
    }
  return ok;
}

gboolean
emseg_window_open_demo (EmsegWindow *self, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *path = emseg_window_demo_project_path ();

  if (!g_file_test (path, G_FILE_TEST_EXISTS) && !create_demo (path, &local))
    {
      emseg_window_show_error (self, "Could not create the demo project", local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return emseg_window_open_project (self, path, FALSE, error);
}

void
emseg_window_set_volume (EmsegWindow *self, EmsegVolume *volume, const char *title)
{
  if (refuse_while_busy (self, "showing another stack", NULL))
    return;
  close_project (self);
  emseg_window_train_project_changed (self);
  emseg_window_show_volume (self, volume, title);
}

EmsegProject *
emseg_window_get_project (EmsegWindow *self)
{
  return self->project;
}

gint64
emseg_window_get_stack_id (EmsegWindow *self)
{
  return self->stack_id;
}

/* ---- strokes, undo, redo -------------------------------------------------------- */

/* The viewer redraws only when the stored mask differs from the one on screen: after a
 * stroke they agree (the stroke painted both the same way), and a redraw would convert
 * every tile in view again. */
static void
reload_slice_mask (EmsegWindow *self, guint slice)
{
  g_autoptr (GError) error = NULL;
  gboolean changed = TRUE;

  if (!emseg_volume_reload_mask (self->volume, self->project, self->stack_id, slice, &changed, &error))
    emseg_window_show_error (self, "Could not read the mask back from the project", error);
  if (changed)
    emseg_slice_view_volume_changed (self->view);
}

void
emseg_window_stroke_finished (EmsegWindow *self, guint slice)
{
  EmsegEditHistory *history = emseg_slice_view_get_history (self->view);
  g_autoptr (GError) error = NULL;
  guint n = 0;
  const float *xy = emseg_edit_history_last_points (history, &n);
  guint label, tool;
  double radius;
  gint64 id = 0;
  g_autofree char *text = NULL;

  g_object_get (self->view, "brush-label", &label, "tool", &tool, "brush-radius", &radius, NULL);
  if (tool == EMSEG_TOOL_ERASER)
    label = EMSEG_LABEL_UNLABELED;
  if (xy == NULL || n == 0)
    return;
  if (!emseg_project_apply_stroke (self->project, self->stack_id, slice, (EmsegLabel) label,
                                   MAX (radius, 0.5), xy, n, &id, &error))
    emseg_window_show_error (self, "The stroke could not be saved and was taken back", error);
  else
    {
      text = g_strdup_printf ("Slice %u: stroke saved to the project (%u points).", slice + 1, n);
      emseg_window_set_status (self, text);
    }
  emseg_edit_history_clear (history);
  reload_slice_mask (self, slice);
  emseg_window_update_actions (self);
}

gboolean
emseg_window_undo_redo (EmsegWindow *self, gboolean undo)
{
  g_autoptr (GError) error = NULL;
  gboolean did = FALSE;
  guint slice = 0, n_slices = 0;
  gboolean ok;

  if (self->project == NULL || self->stack_id == 0)
    return undo ? emseg_slice_view_undo (self->view) : emseg_slice_view_redo (self->view);
  ok = undo ? emseg_project_undo (self->project, self->stack_id, &did, &slice, &n_slices, &error)
            : emseg_project_redo (self->project, self->stack_id, &did, &slice, &n_slices, &error);
  if (!ok)
    {
      emseg_window_show_error (self, undo ? "Could not undo" : "Could not redo", error);
      return FALSE;
    }
  if (did && n_slices > 1)
    {
      /* a label import: every slice it touched changes back at once */
      g_autofree char *text = g_strdup_printf ("%s the label import on slices %u–%u.",
                                               undo ? "Undone" : "Redone", slice + 1, slice + n_slices);

      for (guint z = slice; z < slice + n_slices; z++)
        reload_slice_mask (self, z);
      emseg_window_set_status (self, text);
    }
  else if (did)
    {
      g_autofree char *text = g_strdup_printf ("%s on slice %u.", undo ? "Undone" : "Redone", slice + 1);

      /* show where it happened: the stroke may be on another slice */
      emseg_slice_view_set_slice (self->view, slice);
      reload_slice_mask (self, slice);
      emseg_window_set_status (self, text);
    }
  emseg_window_update_actions (self);
  return did;
}

gboolean
emseg_window_can_undo (EmsegWindow *self)
{
  gboolean can = FALSE;

  if (self->project != NULL && self->stack_id != 0)
    return emseg_project_can_undo (self->project, self->stack_id);
  g_object_get (self->view, "can-undo", &can, NULL);
  return can;
}

gboolean
emseg_window_can_redo (EmsegWindow *self)
{
  gboolean can = FALSE;

  if (self->project != NULL && self->stack_id != 0)
    return emseg_project_can_redo (self->project, self->stack_id);
  g_object_get (self->view, "can-redo", &can, NULL);
  return can;
}

/* ---- labels for the shown stack ------------------------------------------------- */

/* The question a label file that looks like object ids raises (emseg_labels_look_like_ids):
 * Read as Object Ids imports it again with emseg_labels_read_ids. */
static void
ids_question_response_cb (GtkDialog *dialog, int response, EmsegWindow *self)
{
  g_autofree char *path = g_strdup (g_object_get_data (G_OBJECT (dialog), "path"));
  GtkSpinButton *spin = g_object_get_data (G_OBJECT (dialog), "membrane-px");
  guint membrane_px = (guint) gtk_spin_button_get_value_as_int (spin);

  gtk_window_destroy (GTK_WINDOW (dialog));
  if (response == GTK_RESPONSE_ACCEPT && self->volume != NULL)
    emseg_window_import_label_ids (self, path, membrane_px, NULL);
}

static void
ask_about_ids (EmsegWindow *self, const char *path, guint slice)
{
  g_autofree char *base = g_path_get_basename (path);
  GtkWidget *dialog = gtk_message_dialog_new (GTK_WINDOW (self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                              "%s looks like object ids", base);

  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog),
                                            "Slice %u holds many different values, as files with one value per cell do "
                                            "(SNEMI3D's and CREMI's ground truth), not labels (0 = membrane, 255 = cell). "
                                            "Read it as objects: membrane where two objects touch, id 0 as membrane, cell "
                                            "elsewhere? (emseg labels-from-ids writes the same as a label file.)",
                                            slice + 1);
  {
    /* the width depends on the pixel size; the default matches ISBI 2012's 4 nm pixels */
    GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
    GtkWidget *spin = gtk_spin_button_new_with_range (1, EMSEG_LABELS_MAX_MEMBRANE_PX, 1);

    gtk_spin_button_set_value (GTK_SPIN_BUTTON (spin), EMSEG_LABELS_DEFAULT_MEMBRANE_PX);
    gtk_box_append (GTK_BOX (row), gtk_label_new ("Membrane pixels on each side of a contact:"));
    gtk_box_append (GTK_BOX (row), spin);
    gtk_box_append (GTK_BOX (row), gtk_label_new ("(3 as in ISBI 2012's labels)"));
    gtk_box_append (GTK_BOX (gtk_message_dialog_get_message_area (GTK_MESSAGE_DIALOG (dialog))), row);
    g_object_set_data (G_OBJECT (dialog), "membrane-px", spin);
  }
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), "_Cancel", GTK_RESPONSE_CANCEL, "_Read as Object Ids",
                          GTK_RESPONSE_ACCEPT, NULL);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_ACCEPT);
  g_object_set_data_full (G_OBJECT (dialog), "path", g_strdup (path), g_free);
  g_signal_connect (dialog, "response", G_CALLBACK (ids_question_response_cb), self);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* Labels as emseg_labels_read reads them (0 / 255 with 128 unlabeled, or a 0/1 mask), as the
 * store's import does, or (ids_membrane_px > 0) as object ids. In a project the whole
 * import is one step of the undo history and one transaction. */
static gboolean
import_labels (EmsegWindow *self, const char *path, guint ids_membrane_px, GError **out_error)
{
  gboolean as_ids = ids_membrane_px > 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegStack) stack = emseg_stack_open (path, &error);
  EmsegVolume *v = self->volume;
  gsize plane = emseg_volume_plane_size (v);
  g_autofree guint8 *pages = NULL;
  guint n = 0, changed = 0, bad_slice = 0;

  if (stack != NULL && (emseg_stack_get_width (stack) != v->width || emseg_stack_get_height (stack) != v->height ||
                        emseg_stack_get_n_slices (stack) > v->n_slices))
    g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "Labels %s are %u×%u×%u but the images are %u×%u×%u (labels may have fewer slices, not more)",
                 path, emseg_stack_get_width (stack), emseg_stack_get_height (stack),
                 emseg_stack_get_n_slices (stack), v->width, v->height, v->n_slices);
  if (error == NULL)
    {
      n = emseg_stack_get_n_slices (stack);
      pages = g_try_malloc (plane * n);
      if (pages == NULL)
        g_set_error (&error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                     "Labels %s: not enough memory for %u slices of %u×%u", path, n, v->width, v->height);
    }
  for (guint z = 0; error == NULL && z < n; z++)
    {
      guint8 *page = pages + (gsize) z * plane;

      if (as_ids ? !emseg_labels_read_ids (stack, z, ids_membrane_px, FALSE, page, &error) : !emseg_labels_read (stack, z, page, &error))
        bad_slice = z;
    }
  if (error == NULL && self->project != NULL)
    {
      if (emseg_project_replace_masks (self->project, self->stack_id, 0, n, pages, &changed, &error))
        for (guint z = 0; error == NULL && z < n; z++)
          emseg_volume_reload_mask (v, self->project, self->stack_id, z, NULL, &error);
    }
  else if (error == NULL)
    {
      for (guint z = 0; z < n; z++)
        memcpy (emseg_volume_label_plane (v, z), pages + (gsize) z * plane, plane);
      changed = n;
    }
  emseg_slice_view_volume_changed (self->view);
  emseg_window_update_actions (self);
  if (error != NULL)
    {
      /* a file of object ids is no broken label file: ask, rather than only refuse */
      if (!as_ids && pages != NULL && emseg_labels_look_like_ids (stack, bad_slice))
        {
          ask_about_ids (self, path, bad_slice);
          emseg_window_set_status (self, error->message);
        }
      else
        emseg_window_show_error (self, "Could not import the labels", error);
      g_propagate_error (out_error, g_steal_pointer (&error));
      return FALSE;
    }
  {
    g_autofree char *text = self->project != NULL
                                ? g_strdup_printf ("Labels imported%s: %u of %u slices changed (Ctrl+Z takes the import back).",
                                                   as_ids ? " from object ids" : "", changed, n)
                                : g_strdup_printf ("Labels imported%s for %u slices.", as_ids ? " from object ids" : "", n);
    emseg_window_set_status (self, text);
  }
  return TRUE;
}

gboolean
emseg_window_import_labels (EmsegWindow *self, const char *path, GError **error)
{
  return import_labels (self, path, 0, error);
}

gboolean
emseg_window_import_label_ids (EmsegWindow *self, const char *path, guint membrane_px, GError **error)
{
  g_return_val_if_fail (membrane_px >= 1 && membrane_px <= EMSEG_LABELS_MAX_MEMBRANE_PX, FALSE);
  return import_labels (self, path, membrane_px, error);
}

/* ---- choosers ------------------------------------------------------------------- */

typedef enum {
  CHOOSE_OPEN,          /* project, stack or PNG folder */
  CHOOSE_OPEN_FOLDER,
  CHOOSE_NEW_PROJECT,
  CHOOSE_IMPORT_IMAGES,
  CHOOSE_IMPORT_LABELS, /* optional second step of an import */
  CHOOSE_LABELS,        /* labels for the shown stack */
  CHOOSE_MODEL,         /* a model file, into the project */
} ChooseKind;

static void run_chooser (EmsegWindow *self, ChooseKind kind);

static void
chooser_response_cb (GtkNativeDialog *dialog, int response, EmsegWindow *self)
{
  ChooseKind kind = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (dialog), "kind"));
  g_autofree char *path = NULL;

  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));

      path = g_file_get_path (file);
    }
  g_clear_object (&self->chooser);

  switch (kind)
    {
    case CHOOSE_OPEN:
    case CHOOSE_OPEN_FOLDER:
      if (path != NULL)
        emseg_window_open_path (self, path, NULL);
      break;
    case CHOOSE_NEW_PROJECT:
      if (path != NULL)
        {
          g_autofree char *full = g_str_has_suffix (path, ".emseg") ? g_strdup (path)
                                                                     : g_strconcat (path, ".emseg", NULL);
          emseg_window_open_project (self, full, TRUE, NULL);
        }
      break;
    case CHOOSE_IMPORT_IMAGES:
      if (path != NULL)
        {
          g_free (self->pending_images);
          self->pending_images = g_steal_pointer (&path);
          /* labels are optional: Cancel in the next chooser imports the images alone */
          run_chooser (self, CHOOSE_IMPORT_LABELS);
        }
      break;
    case CHOOSE_IMPORT_LABELS:
      {
        g_autofree char *images = g_steal_pointer (&self->pending_images);

        if (images != NULL)
          emseg_window_import_stack (self, images, path, NULL);
      }
      break;
    case CHOOSE_LABELS:
      if (path != NULL && self->volume != NULL)
        emseg_window_import_labels (self, path, NULL);
      break;
    case CHOOSE_MODEL:
      if (path != NULL)
        emseg_window_import_model (self, path, NULL);
      break;
    }
}

static void
run_chooser (EmsegWindow *self, ChooseKind kind)
{
  static const struct {
    const char *title, *accept;
    GtkFileChooserAction action;
  } kinds[] = {
    [CHOOSE_OPEN] = { "Open Project or Stack", "_Open", GTK_FILE_CHOOSER_ACTION_OPEN },
    [CHOOSE_OPEN_FOLDER] = { "Open Folder of PNG Slices", "_Open", GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER },
    [CHOOSE_NEW_PROJECT] = { "New Project", "_Create", GTK_FILE_CHOOSER_ACTION_SAVE },
    [CHOOSE_IMPORT_IMAGES] = { "Import Stack: Images", "_Next", GTK_FILE_CHOOSER_ACTION_OPEN },
    [CHOOSE_IMPORT_LABELS] = { "Import Stack: Labels (optional — Cancel for none)", "_Import", GTK_FILE_CHOOSER_ACTION_OPEN },
    [CHOOSE_LABELS] = { "Import Labels for This Stack", "_Import", GTK_FILE_CHOOSER_ACTION_OPEN },
    [CHOOSE_MODEL] = { "Import Model", "_Import", GTK_FILE_CHOOSER_ACTION_OPEN },
  };
  GtkFileChooser *chooser;

  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (kinds[kind].title, GTK_WINDOW (self), kinds[kind].action,
                                               kinds[kind].accept, "_Cancel");
  chooser = GTK_FILE_CHOOSER (self->chooser);
  g_object_set_data (G_OBJECT (self->chooser), "kind", GINT_TO_POINTER (kind));
  if (kind == CHOOSE_NEW_PROJECT)
    gtk_file_chooser_set_current_name (chooser, "untitled.emseg");
  if (kind == CHOOSE_MODEL)
    {
      g_autoptr (GtkFileFilter) models = gtk_file_filter_new ();

      gtk_file_filter_set_name (models, "emseg models");
      gtk_file_filter_add_suffix (models, "emsegmodel");
      gtk_file_chooser_add_filter (chooser, models);
    }
  else if (kinds[kind].action == GTK_FILE_CHOOSER_ACTION_OPEN)
    {
      g_autoptr (GtkFileFilter) stacks = gtk_file_filter_new ();

      if (kind == CHOOSE_OPEN)
        {
          g_autoptr (GtkFileFilter) all = gtk_file_filter_new ();
          g_autoptr (GtkFileFilter) projects = gtk_file_filter_new ();

          gtk_file_filter_set_name (all, "Projects and stacks");
          gtk_file_filter_add_suffix (all, "emseg");
          gtk_file_filter_add_suffix (all, "tif");
          gtk_file_filter_add_suffix (all, "tiff");
          gtk_file_filter_add_suffix (all, "png");
          gtk_file_chooser_add_filter (chooser, all);
          gtk_file_filter_set_name (projects, "emseg projects");
          gtk_file_filter_add_suffix (projects, "emseg");
          gtk_file_chooser_add_filter (chooser, projects);
        }
      gtk_file_filter_set_name (stacks, "TIFF stacks and PNG slices");
      gtk_file_filter_add_suffix (stacks, "tif");
      gtk_file_filter_add_suffix (stacks, "tiff");
      gtk_file_filter_add_suffix (stacks, "png");
      gtk_file_chooser_add_filter (chooser, stacks);
    }
  g_signal_connect (self->chooser, "response", G_CALLBACK (chooser_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static gboolean
drop_cb (GtkDropTarget *target, const GValue *value, double x, double y, EmsegWindow *self)
{
  GSList *files;
  g_autofree char *path = NULL;

  if (!G_VALUE_HOLDS (value, GDK_TYPE_FILE_LIST))
    return FALSE;
  files = g_value_get_boxed (value);
  if (files == NULL)
    return FALSE;
  path = g_file_get_path (files->data);
  return path != NULL && emseg_window_open_path (self, path, NULL);
}

/* ---- recent projects ------------------------------------------------------------ */

typedef struct {
  gint64 modified; /* unix time */
  GtkRecentInfo *info;
} RecentEntry;

static int
recent_newer_first (const void *a, const void *b)
{
  const RecentEntry *ea = a, *eb = b;

  return (ea->modified < eb->modified) - (ea->modified > eb->modified);
}

static void
rebuild_recent_menu (EmsegWindow *self)
{
  GList *items = gtk_recent_manager_get_items (gtk_recent_manager_get_default ());
  g_autoptr (GArray) entries = g_array_new (FALSE, FALSE, sizeof (RecentEntry));
  guint n = 0;

  g_menu_remove_all (self->recent_menu);
  for (GList *l = items; l != NULL; l = l->next)
    {
      RecentEntry e = { g_date_time_to_unix (gtk_recent_info_get_modified (l->data)), l->data };

      g_array_append_val (entries, e);
    }
  qsort (entries->data, entries->len, sizeof (RecentEntry), recent_newer_first);
  for (guint i = 0; i < entries->len && n < RECENT_MAX; i++)
    {
      GtkRecentInfo *info = g_array_index (entries, RecentEntry, i).info;
      const char *uri = gtk_recent_info_get_uri (info);
      g_autofree char *path = g_filename_from_uri (uri, NULL, NULL);
      g_autofree char *label = NULL;
      g_autoptr (GMenuItem) item = NULL;

      if (path == NULL || !g_str_has_suffix (path, ".emseg") || !gtk_recent_info_exists (info))
        continue;
      label = g_path_get_basename (path);
      item = g_menu_item_new (label, NULL);
      g_menu_item_set_action_and_target_value (item, "win.open-recent", g_variant_new_string (path));
      g_menu_append_item (self->recent_menu, item);
      n++;
    }
  g_list_free_full (items, (GDestroyNotify) gtk_recent_info_unref);
}

/* ---- actions -------------------------------------------------------------------- */

static void
action_choose (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);

  if (g_str_equal (name, "win.open"))
    run_chooser (self, CHOOSE_OPEN);
  else if (g_str_equal (name, "win.open-folder"))
    run_chooser (self, CHOOSE_OPEN_FOLDER);
  else if (g_str_equal (name, "win.new-project"))
    run_chooser (self, CHOOSE_NEW_PROJECT);
  else if (g_str_equal (name, "win.import-stack"))
    run_chooser (self, CHOOSE_IMPORT_IMAGES);
  else if (g_str_equal (name, "win.open-labels"))
    run_chooser (self, CHOOSE_LABELS);
  else if (g_str_equal (name, "win.import-model"))
    run_chooser (self, CHOOSE_MODEL);
}

static void
action_demo (GtkWidget *widget, const char *name, GVariant *param)
{
  emseg_window_open_demo (EMSEG_WINDOW (widget), NULL);
}

static void
action_open_recent (GtkWidget *widget, const char *name, GVariant *param)
{
  emseg_window_open_path (EMSEG_WINDOW (widget), g_variant_get_string (param, NULL), NULL);
}

void
emseg_window_project_class_init (GtkWidgetClass *wc)
{
  static const char *const choosers[] = {
    "win.open", "win.open-folder", "win.new-project", "win.import-stack", "win.open-labels",
    "win.import-model",
  };

  for (guint i = 0; i < G_N_ELEMENTS (choosers); i++)
    gtk_widget_class_install_action (wc, choosers[i], NULL, action_choose);
  gtk_widget_class_install_action (wc, "win.demo", NULL, action_demo);
  gtk_widget_class_install_action (wc, "win.open-recent", "s", action_open_recent);
}

void
emseg_window_project_init (EmsegWindow *self)
{
  GtkDropTarget *drop = gtk_drop_target_new (GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);

  g_signal_connect (drop, "drop", G_CALLBACK (drop_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));
  g_signal_connect_swapped (self->stack_dropdown, "notify::selected", G_CALLBACK (stack_selected_cb), self);
}

void
emseg_window_project_dispose (EmsegWindow *self)
{
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  g_clear_pointer (&self->pending_images, g_free);
  close_project (self);
}
