/* emseg-window-import.c — copying a stack's slices into a project on a worker thread, with
 * progress in the status line: a 40-slice 4096² stack takes some 16 s to read and compress,
 * which on the main thread froze the window for as long. Two cases:
 *
 * - Opening a bare stack file: the copy goes into a fresh project (the worker has its only
 *   connection), the open project stays usable meanwhile, and the new one opens at the end.
 * - Import Stack… into the open project: the worker writes to the same file, and SQLite
 *   takes one writer at a time, so for the length of the copy the window's content is
 *   insensitive, the actions that write are off and the engine thread is let go (it saves
 *   predictions); the new stack is shown at the end.
 *
 * Switching projects waits meanwhile (emseg_window_busy_with). Esc stops a copy after the
 * slice it is on; nothing of it is kept (a fresh project's file is removed, an import into
 * the open project is rolled back). Closing the window stops it too and joins the worker, so
 * no SQLite work outlives the window. The job is shared by reference count between the
 * worker, the progress callbacks it posts and the window. */
#include "emseg-window-private.h"

#include <glib/gstdio.h>

struct _EmsegImportJob {
  char *stack_path;    /* the stack file */
  char *labels_path;   /* its labels, or NULL */
  char *name;          /* the stack's name in the project */
  char *project_path;  /* the fresh project, or the open one */
  gboolean into_open;  /* into the project the window has open */
  gint64 stack_id;     /* the new stack, when ok */
  GCancellable *cancel;
  GWeakRef window;     /* NULL once the window is gone */
  gint64 drawn_us;     /* the worker's last progress post */
  gboolean ok;         /* worker result, read after the join */
  GError *error;
};

static void
job_clear (gpointer data)
{
  EmsegImportJob *job = data;

  g_free (job->stack_path);
  g_free (job->labels_path);
  g_free (job->name);
  g_free (job->project_path);
  g_clear_object (&job->cancel);
  g_weak_ref_clear (&job->window);
  g_clear_error (&job->error);
}

static void
job_unref (EmsegImportJob *job)
{
  g_atomic_rc_box_release_full (job, job_clear);
}

typedef struct {
  EmsegImportJob *job; /* a reference */
  guint done, total;
} ImportProgress;

static void
progress_free (ImportProgress *p)
{
  job_unref (p->job);
  g_free (p);
}

static gboolean
show_progress (gpointer data)
{
  ImportProgress *p = data;
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&p->job->window);

  if (self != NULL && self->import_job == p->job)
    {
      g_autofree char *base = g_path_get_basename (p->job->stack_path);
      g_autofree char *text = g_strdup_printf ("%s %s: slice %u of %u copied into %s project… (Esc stops)",
                                               p->job->into_open ? "Importing" : "Opening", base, p->done, p->total,
                                               p->job->into_open ? "the" : "its");
      emseg_window_set_status (self, text);
    }
  return G_SOURCE_REMOVE;
}

/* worker thread, after each slice: posts the count (emseg_window_progress_due) */
static gboolean
import_progress_cb (guint done, guint total, gpointer user_data)
{
  EmsegImportJob *job = user_data;

  if (emseg_window_progress_due (&job->drawn_us, done == total))
    {
      ImportProgress *p = g_new (ImportProgress, 1);

      *p = (ImportProgress) { g_atomic_rc_box_acquire (job), done, total };
      /* an idle, not g_main_context_invoke: that runs the function right here, on this
       * thread, whenever the main thread is not iterating the default context */
      g_idle_add_full (G_PRIORITY_DEFAULT, show_progress, p, (GDestroyNotify) progress_free);
    }
  return !g_cancellable_is_cancelled (job->cancel);
}

static gboolean import_finished (gpointer data);

static void
remove_project (EmsegImportJob *job)
{
  emseg_project_remove_files (job->project_path);
}

static gpointer
import_thread (gpointer data)
{
  EmsegImportJob *job = data;
  g_autoptr (EmsegStack) images = emseg_stack_open (job->stack_path, &job->error);
  g_autoptr (EmsegStack) labels = NULL;
  EmsegProject *project = NULL;

  if (images != NULL && job->labels_path != NULL)
    labels = emseg_stack_open (job->labels_path, &job->error);
  /* the open project was checked when the window opened it */
  if (images != NULL && (job->labels_path == NULL || labels != NULL))
    project = emseg_project_open (job->project_path,
                                  job->into_open ? EMSEG_PROJECT_OPEN_SKIP_CHECK : EMSEG_PROJECT_OPEN_CREATE,
                                  &job->error);
  job->ok = project != NULL && emseg_project_import_stack_full (project, job->name, images, labels, &job->stack_id,
                                                                import_progress_cb, job, &job->error);
  g_clear_pointer (&project, emseg_project_close);
  /* nothing half-made stays behind (an import into the open project was rolled back) */
  if (!job->ok && !job->into_open)
    remove_project (job);
  g_idle_add_full (G_PRIORITY_DEFAULT, import_finished, g_atomic_rc_box_acquire (job), (GDestroyNotify) job_unref);
  job_unref (job); /* the worker's reference */
  return NULL;
}

/* main thread, once the worker is done: open the project, or say why not */
static gboolean
import_finished (gpointer data)
{
  EmsegImportJob *job = data;
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&job->window);

  if (self == NULL || self->import_job != job)
    return G_SOURCE_REMOVE;
  g_thread_join (self->import_thread); /* it has returned already */
  self->import_thread = NULL;
  self->import_job = NULL;
  if (job->into_open)
    gtk_widget_set_sensitive (gtk_window_get_child (GTK_WINDOW (self)), TRUE);
  emseg_window_update_actions (self);
  if (job->ok && self->close_confirmed && !job->into_open)
    remove_project (job); /* finished while the window was being closed: "nothing kept" */
  else if (job->ok && job->into_open)
    {
      g_autofree char *text = g_strdup_printf ("Imported %s%s%s into %s.", job->stack_path,
                                               job->labels_path ? " with labels " : "",
                                               job->labels_path ? job->labels_path : "", job->project_path);

      if (emseg_window_show_stack (self, job->stack_id, NULL))
        emseg_window_set_status (self, text);
    }
  else if (job->ok)
    emseg_window_open_project (self, job->project_path, FALSE, NULL);
  else if (g_error_matches (job->error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_autofree char *base = g_path_get_basename (job->stack_path);
      g_autofree char *text = job->into_open
                                ? g_strdup_printf ("Stopped importing %s: the project stays as it was.", base)
                                : g_strdup_printf ("Stopped opening %s: nothing of it was kept.", base);

      emseg_window_set_status (self, text);
    }
  else
    {
      emseg_window_show_error (self, job->into_open ? "Could not import the stack" : "Could not open the stack",
                               job->error);
      /* a window started on this stack shows the demo rather than nothing */
      if (self->project == NULL && self->volume == NULL)
        emseg_window_open_demo (self, NULL);
    }
  job_unref (job); /* the window's reference */
  return G_SOURCE_REMOVE;
}

/* Starts the worker; labels may be NULL; into_open: project_path is the open project. */
static gboolean
start_import (EmsegWindow *self, const char *stack_path, const char *labels_path, const char *name,
              const char *project_path, gboolean into_open, GError **error)
{
  EmsegImportJob *job;
  g_autofree char *base = g_path_get_basename (stack_path);
  g_autofree char *text = g_strdup_printf ("%s %s: copying its slices into %s project… (Esc stops)",
                                           into_open ? "Importing" : "Opening", base, into_open ? "the" : "a");

  if (self->import_job != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "Another stack is being copied: wait for it, then open %s",
                   stack_path);
      return FALSE;
    }
  job = g_atomic_rc_box_new0 (EmsegImportJob);
  job->stack_path = g_strdup (stack_path);
  job->labels_path = g_strdup (labels_path);
  job->name = g_strdup (name);
  job->project_path = g_strdup (project_path);
  job->into_open = into_open;
  job->cancel = g_cancellable_new ();
  g_weak_ref_init (&job->window, self);
  self->import_job = job; /* the window's reference; the worker takes its own */
  if (into_open)
    {
      /* one writer at a time: the engine thread (it stores predictions) goes, and nothing
       * on screen can write until the copy ends */
      emseg_window_train_release_engine (self);
      gtk_widget_set_sensitive (gtk_window_get_child (GTK_WINDOW (self)), FALSE);
    }
  self->import_thread = g_thread_new ("emseg-import", import_thread, g_atomic_rc_box_acquire (job));
  emseg_window_set_status (self, text);
  emseg_window_update_actions (self);
  return TRUE;
}

gboolean
emseg_window_import_new_project (EmsegWindow *self, const char *stack_path, const char *name,
                                 const char *project_path, GError **error)
{
  return start_import (self, stack_path, NULL, name, project_path, FALSE, error);
}

gboolean
emseg_window_import_into_open (EmsegWindow *self, const char *stack_path, const char *labels_path,
                               const char *name, GError **error)
{
  if (emseg_window_is_estimating (self))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           "An uncertainty estimate is running: stop it (or let it finish) before importing a stack");
      return FALSE;
    }
  return start_import (self, stack_path, labels_path, name, emseg_project_get_path (self->project), TRUE, error);
}

gboolean
emseg_window_import_locks_project (EmsegWindow *self)
{
  return self->import_job != NULL && self->import_job->into_open;
}

gboolean
emseg_window_is_importing (EmsegWindow *self)
{
  return self->import_job != NULL;
}

void
emseg_window_stop_import (EmsegWindow *self)
{
  /* the worker stops after the slice it copies, removes the file and reports back */
  if (self->import_job != NULL)
    g_cancellable_cancel (self->import_job->cancel);
}

void
emseg_window_import_dispose (EmsegWindow *self)
{
  if (self->import_job == NULL)
    return;
  g_cancellable_cancel (self->import_job->cancel);
  g_thread_join (self->import_thread); /* stops after the slice it copies */
  self->import_thread = NULL;
  /* a fresh project whose copy ended just before the cancel was never opened: it goes too,
   * as the close question said (opening the stack again starts over) */
  if (self->import_job->ok && !self->import_job->into_open)
    remove_project (self->import_job);
  job_unref (g_steal_pointer (&self->import_job));
}
