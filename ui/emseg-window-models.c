/* emseg-window-models.c — the project's disk space: Delete Model (main menu; a checkpoint
 * and the predictions stored for it leave the project, after a question) and Compact
 * Project… (the file rewritten without the free pages deleted and replaced data leave, as
 * `emseg project compact` does).
 *
 * Why both: every workbench run stores a checkpoint of about 49 MB (float32 weights), so a
 * project fine-tuned twenty times holds a gigabyte of models nobody uses. Deleting one frees
 * its pages inside the file, where the next checkpoint reuses them; only compacting gives
 * them back to the disk. Compacting copies everything the project still holds (4.6 s for
 * 336 MB of 4096² slices here), so it runs on a worker thread with its own connection;
 * the window is locked meanwhile (a stroke written while VACUUM holds the write lock would
 * wait and could fail), Esc stops it while VACUUM copies the rows (it rolls back; about the
 * first half of the time, measured on that project: the copy back into the file cannot be
 * stopped), and the application is held so closing the window lets it finish rather than
 * cutting it off. */
#include "emseg-window-private.h"

/* ---- Delete Model ---------------------------------------------------------------- */

/* FALSE with the reason unless a project is open and nothing works on it: a run, an
 * export, an adaptation or an estimate may read a model by name, and each one writes. */
static gboolean
project_idle (EmsegWindow *self, GError **error)
{
  const char *busy = emseg_window_busy_with (self);

  if (self->project == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Open a project first");
      return FALSE;
    }
  if (busy != NULL || emseg_window_is_estimating (self))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "%s is running: stop it (or let it finish) first",
                   busy != NULL ? busy : "An uncertainty estimate");
      return FALSE;
    }
  return TRUE;
}

gboolean
emseg_window_delete_model (EmsegWindow *self, const char *name, GError **error)
{
  gboolean was_current = self->best_model_name != NULL && g_str_equal (self->best_model_name, name);
  g_auto (EmsegCheckpointInfo) current = { 0 };
  guint planes = 0;
  guint64 free_bytes = 0;
  g_autofree char *text = NULL;

  if (!project_idle (self, error))
    return FALSE;
  if (!emseg_project_delete_checkpoint (self->project, name, &planes, error) ||
      !emseg_project_current_checkpoint (self->project, &current, NULL, error))
    return FALSE;
  emseg_project_free_bytes (self->project, &free_bytes, NULL); /* 0 if unknown: only said */
  if (was_current || current.name == NULL)
    emseg_window_train_model_changed (self); /* the overlay shows the new current model */
  else
    emseg_window_train_models_listed (self);
  text = g_strdup_printf ("Deleted %s (and %u stored prediction plane%s). %s%s. %.1f MB are free inside the project; "
                          "Compact Project gives them back to the disk.",
                          name, planes, planes == 1 ? "" : "s", current.name != NULL ? "Current model: " : "",
                          current.name != NULL ? current.name : "No model left (Fine-tune starts from the shipped one)",
                          free_bytes / 1e6);
  emseg_window_set_status (self, text);
  emseg_train_panel_set_status (self->train_panel, text);
  return TRUE;
}

static void
delete_question_response_cb (GtkDialog *dialog, int response, EmsegWindow *self)
{
  g_autofree char *name = g_strdup (g_object_get_data (G_OBJECT (dialog), "model"));
  g_autoptr (GError) error = NULL;

  gtk_window_destroy (GTK_WINDOW (dialog));
  if (response == GTK_RESPONSE_ACCEPT && !emseg_window_delete_model (self, name, &error))
    emseg_window_show_error (self, "Cannot delete the model", error);
}

/* Asks before deleting: nothing brings a deleted checkpoint back. */
static void
action_delete_model (GtkWidget *widget, const char *action, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  const char *name = g_variant_get_string (param, NULL);
  g_autoptr (GArray) cps = self->project != NULL ? emseg_project_list_checkpoints (self->project, NULL) : NULL;
  gboolean current = self->best_model_name != NULL && g_str_equal (self->best_model_name, name);
  const EmsegCheckpointInfo *info = cps != NULL ? emseg_checkpoint_find (cps, name) : NULL;
  gsize bytes = info != NULL ? info->weights_len : 0;
  GtkWidget *dialog;

  dialog = gtk_message_dialog_new (GTK_WINDOW (self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "Delete model %s?", name);
  gtk_message_dialog_format_secondary_text (
    GTK_MESSAGE_DIALOG (dialog),
    "Its weights (%.0f MB) and the predictions stored for it leave the project; the curves of the run that "
    "made it stay. This cannot be undone.%s",
    bytes / 1e6,
    current ? " It is the current model: the overlay, Fine-tune and Export move to the latest model left." : "");
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), "_Cancel", GTK_RESPONSE_CANCEL, "_Delete", GTK_RESPONSE_ACCEPT, NULL);
  gtk_widget_add_css_class (gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog), GTK_RESPONSE_ACCEPT),
                            "destructive-action");
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_CANCEL);
  g_object_set_data_full (G_OBJECT (dialog), "model", g_strdup (name), g_free);
  g_signal_connect (dialog, "response", G_CALLBACK (delete_question_response_cb), self);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* ---- Compact Project -------------------------------------------------------------- */

typedef struct {
  char *path;
  guint64 before, after;
  atomic_int cancel;  /* raised by Esc (emseg_window_stop_compacting) */
  GWeakRef window;
  GApplication *app;  /* held until the worker is done */
  gint64 started_us;
  guint tick_id;      /* the status line's seconds, removed in compact_done */
} CompactJob;

static void
compact_job_free (CompactJob *job)
{
  g_free (job->path);
  g_weak_ref_clear (&job->window);
  emseg_window_release_application (job->app);
  g_free (job);
}

static void
compact_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  CompactJob *job = data;
  GError *error = NULL;
  g_autoptr (EmsegProject) project = emseg_project_open (job->path, EMSEG_PROJECT_OPEN_DEFAULT, &error);

  if (project == NULL || !emseg_project_compact (project, &job->cancel, &job->before, &job->after, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* Once a second while compacting: VACUUM says nothing of how far it is, so the status line
 * counts the seconds, which shows it is alive. */
static gboolean
compact_tick (gpointer data)
{
  CompactJob *job = data;
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&job->window);
  g_autofree char *text = NULL;

  if (self != NULL)
    {
      text = g_strdup_printf ("Compacting the project: %.0f s so far (Esc stops it while it copies)…",
                              (g_get_monotonic_time () - job->started_us) / 1e6);
      emseg_window_set_status (self, text);
    }
  return G_SOURCE_CONTINUE;
}

static void
compact_done (GObject *source, GAsyncResult *result, gpointer data)
{
  CompactJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&job->window);
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  g_clear_handle_id (&job->tick_id, g_source_remove);
  if (self == NULL)
    return;
  self->compacting = FALSE;
  self->compact_cancel = NULL;
  gtk_widget_set_sensitive (gtk_window_get_child (GTK_WINDOW (self)), TRUE);
  emseg_window_update_actions (self);
  emseg_window_train_slice_changed (self); /* predictions asked for meanwhile were not */
  if (g_error_matches (error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED))
    {
      emseg_window_set_status (self, "Compacting stopped; the project is as it was.");
      return;
    }
  if (!ok)
    {
      emseg_window_show_error (self, "Could not compact the project", error);
      return;
    }
  text = g_strdup_printf ("Project compacted: %.1f MB → %.1f MB.", job->before / 1e6, job->after / 1e6);
  emseg_window_set_status (self, text);
}

gboolean
emseg_window_compact_project (EmsegWindow *self, GError **error)
{
  g_autoptr (GTask) task = NULL;
  CompactJob *job;

  if (!project_idle (self, error))
    return FALSE;
  /* the engine thread's connection would be a second writer; it starts again on demand */
  emseg_window_train_release_engine (self);
  job = g_new0 (CompactJob, 1);
  job->path = g_strdup (emseg_project_get_path (self->project));
  g_weak_ref_init (&job->window, self);
  job->app = emseg_window_hold_application (self);
  atomic_init (&job->cancel, 0);
  job->started_us = g_get_monotonic_time ();
  job->tick_id = g_timeout_add_seconds (1, compact_tick, job);
  task = g_task_new (NULL, NULL, compact_done, NULL);
  g_task_set_task_data (task, job, (GDestroyNotify) compact_job_free);
  self->compacting = TRUE;
  self->compact_cancel = &job->cancel;
  gtk_widget_set_sensitive (gtk_window_get_child (GTK_WINDOW (self)), FALSE);
  emseg_window_update_actions (self);
  emseg_window_set_status (self, "Compacting the project (Esc stops it while it copies)…");
  g_task_run_in_thread (task, compact_thread);
  return TRUE;
}

gboolean
emseg_window_is_compacting (EmsegWindow *self)
{
  return self->compacting;
}

void
emseg_window_stop_compacting (EmsegWindow *self)
{
  if (self->compact_cancel != NULL)
    atomic_store (self->compact_cancel, 1);
}

static void
compact_question_response_cb (GtkDialog *dialog, int response, EmsegWindow *self)
{
  g_autoptr (GError) error = NULL;

  gtk_window_destroy (GTK_WINDOW (dialog));
  if (response == GTK_RESPONSE_ACCEPT && !emseg_window_compact_project (self, &error))
    emseg_window_show_error (self, "Cannot compact the project", error);
}

/* Says how much there is to gain before locking the window for it. */
static void
action_compact_project (GtkWidget *widget, const char *action, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  guint64 free_bytes = 0;
  g_autoptr (GError) error = NULL;
  GtkWidget *dialog;

  if (self->project == NULL || !emseg_project_free_bytes (self->project, &free_bytes, &error))
    {
      if (error == NULL)
        g_set_error_literal (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "Open a project first");
      emseg_window_show_error (self, "Cannot compact the project", error);
      return;
    }
  if (free_bytes == 0)
    {
      g_autofree char *where = g_strdup_printf ("%s has no free space inside: new checkpoints have reused what "
                                                "deleted ones left.",
                                                emseg_project_get_path (self->project));

      emseg_window_show_message (self, GTK_MESSAGE_INFO, "Nothing to compact", where);
      return;
    }
  dialog = gtk_message_dialog_new (GTK_WINDOW (self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "Compact the project?");
  gtk_message_dialog_format_secondary_text (
    GTK_MESSAGE_DIALOG (dialog),
    "%.1f MB inside %s are free (deleted or replaced models and predictions). Compacting rewrites the file "
    "without them; it needs free disk space about the size of what the project still holds, and the window "
    "is locked until it ends.",
    free_bytes / 1e6, emseg_project_get_path (self->project));
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), "_Cancel", GTK_RESPONSE_CANCEL, "C_ompact", GTK_RESPONSE_ACCEPT,
                          NULL);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_ACCEPT);
  g_signal_connect (dialog, "response", G_CALLBACK (compact_question_response_cb), self);
  gtk_window_present (GTK_WINDOW (dialog));
}

void
emseg_window_models_class_init (GtkWidgetClass *wc)
{
  gtk_widget_class_install_action (wc, "win.delete-model", "s", action_delete_model);
  gtk_widget_class_install_action (wc, "win.compact-project", NULL, action_compact_project);
}
