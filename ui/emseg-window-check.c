/* emseg-window-check.c — Check Project… (main menu): reads everything the open project
 * holds back, as `emseg project check` does (emseg_project_check_contents), on a worker
 * thread with its own read-only connection, so the window stays usable; progress goes to
 * the status line, the outcome to a dialog listing what is damaged; Esc stops it.
 *
 * Why a separate connection: the store's connections are not shared between threads, and a
 * read-only one sees a consistent snapshot while the window (or the engine thread) writes.
 * The job knows the window by a weak reference: closing the window while a check runs
 * leaves the check to finish and report nowhere. */
#include "emseg-window-private.h"

#include "emseg-model-import.h"

/* a damaged project may list thousands of items: the dialog shows the first ones */
#define CHECK_SHOWN_LINES 12

typedef struct {
  char *path;                    /* the project file */
  EmsegProjectCheckCounts counts;
  GPtrArray *problems;           /* owned strings */
  GWeakRef window;               /* NULL once the window is gone */
  gint64 drawn_us;               /* the worker's last progress post */
  atomic_int cancel;             /* raised by Esc (emseg_window_stop_checking) */
} CheckJob;

static void
check_job_free (CheckJob *job)
{
  g_free (job->path);
  g_ptr_array_unref (job->problems);
  g_weak_ref_clear (&job->window);
  g_free (job);
}

typedef struct {
  GTask *task; /* a reference: keeps the job (its task data) alive until shown */
  guint64 done, total;
} CheckProgress;

static void
check_progress_free (CheckProgress *p)
{
  g_object_unref (p->task);
  g_free (p);
}

static gboolean
show_progress (gpointer data)
{
  CheckProgress *p = data;
  CheckJob *job = g_task_get_task_data (p->task);
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&job->window);

  if (self != NULL && self->checking)
    {
      g_autofree char *text = g_strdup_printf ("Checking the project: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                                               " items read back (Esc stops)…",
                                               p->done, p->total);
      emseg_window_set_status (self, text);
    }
  return G_SOURCE_REMOVE;
}

/* worker thread: posts "done of total" to the main loop (emseg_window_progress_due) */
static void
check_progress_cb (guint64 done, guint64 total, gpointer user_data)
{
  GTask *task = user_data;
  CheckJob *job = g_task_get_task_data (task);
  CheckProgress *p;

  if (!emseg_window_progress_due (&job->drawn_us, done == total))
    return;
  p = g_new (CheckProgress, 1);
  *p = (CheckProgress) { g_object_ref (task), done, total };
  /* an idle, not g_main_context_invoke: that runs the function right here, on this thread,
   * whenever the main thread is not iterating the default context at that moment */
  g_idle_add_full (G_PRIORITY_DEFAULT, show_progress, p, (GDestroyNotify) check_progress_free);
}

static void
check_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  CheckJob *job = data;
  GError *error = NULL;
  /* SKIP_CHECK: a damaged file must still open so the check can say what is damaged */
  g_autoptr (EmsegProject) project =
    emseg_project_open (job->path, EMSEG_PROJECT_OPEN_READ_ONLY | EMSEG_PROJECT_OPEN_SKIP_CHECK, &error);

  if (project == NULL ||
      !emseg_project_check_contents (project, &job->counts, job->problems, emseg_check_model_loads, &job->cancel,
                                     check_progress_cb, task, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* main thread, when the worker is done: the outcome, unless the window went meanwhile */
static void
check_done (GObject *source, GAsyncResult *result, gpointer data)
{
  CheckJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&job->window);
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) text = g_string_new (NULL);
  const EmsegProjectCheckCounts *n = &job->counts;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  if (self == NULL)
    return;
  self->checking = FALSE;
  self->check_cancel = NULL;
  emseg_window_update_actions (self);
  if (g_error_matches (error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED))
    {
      emseg_window_set_status (self, "Project check stopped: nothing was changed.");
      return;
    }
  if (!ok)
    {
      emseg_window_show_error (self, "The project check could not run", error);
      return;
    }
#define S(k) (k), (k) == 1 ? "" : "s"
  g_string_printf (text,
                   "Read back %" G_GUINT64_FORMAT " slice%s, %" G_GUINT64_FORMAT " label mask%s, %" G_GUINT64_FORMAT
                   " stroke%s, %" G_GUINT64_FORMAT " model%s, %" G_GUINT64_FORMAT " prediction%s and %" G_GUINT64_FORMAT
                   " uncertainty estimate%s of %s.",
                   S (n->slices), S (n->masks), S (n->strokes), S (n->checkpoints), S (n->predictions),
                   S (n->uncertainties), job->path);
#undef S
  if (job->problems->len == 0)
    {
      emseg_window_set_status (self, "Project check: no problems found.");
      emseg_window_show_message (self, GTK_MESSAGE_INFO, "No problems found", text->str);
      return;
    }
  g_string_append_printf (text, "\n\n%u damaged:", job->problems->len);
  for (guint i = 0; i < job->problems->len && i < CHECK_SHOWN_LINES; i++)
    g_string_append_printf (text, "\n• %s", (const char *) g_ptr_array_index (job->problems, i));
  if (job->problems->len > CHECK_SHOWN_LINES)
    g_string_append_printf (text, "\n… and %u more (emseg project check lists them all)",
                            job->problems->len - CHECK_SHOWN_LINES);
  {
    g_autofree char *status = g_strdup_printf ("Project check: %u problem%s found.", job->problems->len,
                                               job->problems->len == 1 ? "" : "s");
    emseg_window_set_status (self, status);
  }
  emseg_window_show_message (self, GTK_MESSAGE_WARNING, "The project holds damaged items", text->str);
}

gboolean
emseg_window_check_project (EmsegWindow *self, GError **error)
{
  g_autoptr (GTask) task = NULL;
  CheckJob *job;

  if (self->project == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Open a project first");
      return FALSE;
    }
  if (self->checking)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY, "A project check is already running");
      return FALSE;
    }
  job = g_new0 (CheckJob, 1);
  job->path = g_strdup (emseg_project_get_path (self->project));
  job->problems = g_ptr_array_new_with_free_func (g_free);
  g_weak_ref_init (&job->window, self);
  /* no source object: the window may close before the check ends (the job's weak
   * reference says so) */
  task = g_task_new (NULL, NULL, check_done, NULL);
  g_task_set_task_data (task, job, (GDestroyNotify) check_job_free);
  atomic_init (&job->cancel, 0);
  self->checking = TRUE;
  self->check_cancel = &job->cancel;
  emseg_window_update_actions (self);
  emseg_window_set_status (self, "Checking the project (Esc stops)…");
  g_task_run_in_thread (task, check_thread);
  return TRUE;
}

gboolean
emseg_window_is_checking (EmsegWindow *self)
{
  return self->checking;
}

void
emseg_window_stop_checking (EmsegWindow *self)
{
  if (self->check_cancel != NULL)
    atomic_store (self->check_cancel, 1);
}

static void
action_check_project (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  g_autoptr (GError) error = NULL;

  if (!emseg_window_check_project (self, &error))
    emseg_window_show_error (self, "Cannot check the project", error);
}

void
emseg_window_check_class_init (GtkWidgetClass *wc)
{
  gtk_widget_class_install_action (wc, "win.check-project", NULL, action_check_project);
}
