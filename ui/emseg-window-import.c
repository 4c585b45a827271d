/* emseg-window-import.c — opening a bare stack file: its slices are copied into a fresh
 * project on a worker thread, with progress in the status line, and the project opens when
 * the copy is done. A 40-slice 4096² stack takes some 16 s to copy and compress; on the main
 * thread that froze the window for as long.
 *
 * The worker has the fresh project's only connection (the file is new), so the open project
 * stays usable meanwhile; switching projects waits (emseg_window_busy_with says "An
 * import"). A failed or stopped import removes the half-made file. Closing the window stops
 * the import and joins the worker (it stops after the slice it is copying), so no SQLite
 * work outlives the window. The job is shared by reference count between the worker, the
 * progress callbacks it posts and the window. */
#include "emseg-window-private.h"

#include <glib/gstdio.h>

/* the status line is redrawn at most this often */
#define IMPORT_REDRAW_US (250 * 1000)

struct _EmsegImportJob {
  char *stack_path;    /* the stack file */
  char *name;          /* the stack's name in the project */
  char *project_path;  /* the fresh project */
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
      g_autofree char *text = g_strdup_printf ("Opening %s: slice %u of %u copied into its project… (Esc stops)", base,
                                               p->done, p->total);
      emseg_window_set_status (self, text);
    }
  return G_SOURCE_REMOVE;
}

/* worker thread, after each slice: posts the count, at most every IMPORT_REDRAW_US */
static gboolean
import_progress_cb (guint done, guint total, gpointer user_data)
{
  EmsegImportJob *job = user_data;
  gint64 now = g_get_monotonic_time ();

  if (now - job->drawn_us >= IMPORT_REDRAW_US || done == total)
    {
      ImportProgress *p = g_new (ImportProgress, 1);

      job->drawn_us = now;
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
  g_autofree char *wal = g_strconcat (job->project_path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (job->project_path, "-shm", NULL);

  g_unlink (job->project_path);
  g_unlink (wal);
  g_unlink (shm);
}

static gpointer
import_thread (gpointer data)
{
  EmsegImportJob *job = data;
  g_autoptr (EmsegStack) images = emseg_stack_open (job->stack_path, &job->error);
  EmsegProject *project = NULL;

  if (images != NULL)
    project = emseg_project_open (job->project_path, EMSEG_PROJECT_OPEN_CREATE, &job->error);
  job->ok = project != NULL && emseg_project_import_stack_full (project, job->name, images, NULL, NULL,
                                                                import_progress_cb, job, &job->error);
  g_clear_pointer (&project, emseg_project_close);
  if (!job->ok)
    remove_project (job); /* nothing half-made stays behind (the current one was not touched) */
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
  emseg_window_update_actions (self);
  if (job->ok && self->close_confirmed)
    remove_project (job); /* finished while the window was being closed: "nothing kept" */
  else if (job->ok)
    emseg_window_open_project (self, job->project_path, FALSE, NULL);
  else if (g_error_matches (job->error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_autofree char *base = g_path_get_basename (job->stack_path);
      g_autofree char *text = g_strdup_printf ("Stopped opening %s: nothing of it was kept.", base);

      emseg_window_set_status (self, text);
    }
  else
    {
      emseg_window_show_error (self, "Could not open the stack", job->error);
      /* a window started on this stack shows the demo rather than nothing */
      if (self->project == NULL && self->volume == NULL)
        emseg_window_open_demo (self, NULL);
    }
  job_unref (job); /* the window's reference */
  return G_SOURCE_REMOVE;
}

gboolean
emseg_window_import_new_project (EmsegWindow *self, const char *stack_path, const char *name,
                                 const char *project_path, GError **error)
{
  EmsegImportJob *job;
  g_autofree char *base = g_path_get_basename (stack_path);
  g_autofree char *text = g_strdup_printf ("Opening %s: copying its slices into a project… (Esc stops)", base);

  if (self->import_job != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "Another stack is being opened: wait for it, then open %s",
                   stack_path);
      return FALSE;
    }
  job = g_atomic_rc_box_new0 (EmsegImportJob);
  job->stack_path = g_strdup (stack_path);
  job->name = g_strdup (name);
  job->project_path = g_strdup (project_path);
  job->cancel = g_cancellable_new ();
  g_weak_ref_init (&job->window, self);
  self->import_job = job; /* the window's reference; the worker takes its own */
  self->import_thread = g_thread_new ("emseg-import", import_thread, g_atomic_rc_box_acquire (job));
  emseg_window_set_status (self, text);
  emseg_window_update_actions (self);
  return TRUE;
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

static void
action_stop_import (GtkWidget *widget, const char *name, GVariant *param)
{
  emseg_window_stop_import (EMSEG_WINDOW (widget));
}

void
emseg_window_import_class_init (GtkWidgetClass *wc)
{
  gtk_widget_class_install_action (wc, "win.stop-import", NULL, action_stop_import);
}

void
emseg_window_import_dispose (EmsegWindow *self)
{
  if (self->import_job == NULL)
    return;
  g_cancellable_cancel (self->import_job->cancel);
  g_thread_join (self->import_thread); /* stops after the slice it copies */
  self->import_thread = NULL;
  /* a copy that ended just before the cancel was never opened: it goes too, as the close
   * question said (opening the stack again starts over) */
  if (self->import_job->ok)
    remove_project (self->import_job);
  job_unref (g_steal_pointer (&self->import_job));
}
