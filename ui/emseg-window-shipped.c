/* emseg-window-shipped.c — a project with a stack and no model of its own gets the shipped
 * ISBI 2012 model (emseg-shipped-model.h) as its checkpoint "shipped-isbi2012" when it is
 * opened: the overlay, Export and the uncertainty estimate use it, Fine-tune starts from it,
 * and the project keeps the weights its predictions came from even if a later emseg ships
 * others.
 *
 * Why a worker: the copy reads and checks a 24 MB file and writes 49 MB of float32 weights
 * into the project, 0.33–0.45 s on this project's machine and more on a slow or network
 * disk, which froze the window on opening. The worker has its own connection (SQLite waits
 * for the other writer, up to the store's busy timeout, when a stroke is saved meanwhile);
 * the window stays usable, and what needs the model (training, Use Model, imports,
 * switching projects) says it is busy until the copy is in. The application is held, so
 * closing the window lets the copy finish. */
#include "emseg-window-private.h"

#include "emseg-model-import.h"
#include "emseg-shipped-model.h"

#define COPYING_STATUS "Copying the shipped ISBI 2012 model into this project (once)…"

struct _EmsegAdoptJob {
  char *project_path;
  char *model_path;
  gboolean say_ready; /* the project has no runs: the Train panel then says what it shows */
  char *status_before; /* the status line before "Copying…", shown again after it */
  GWeakRef window;
  GApplication *app;  /* held until the worker is done */
};

static void
adopt_job_free (EmsegAdoptJob *job)
{
  g_free (job->project_path);
  g_free (job->model_path);
  g_free (job->status_before);
  g_weak_ref_clear (&job->window);
  emseg_window_release_application (job->app);
  g_free (job);
}

static void
adopt_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  EmsegAdoptJob *job = data;
  GError *error = NULL;
  g_autoptr (EmsegProject) project = emseg_project_open (job->project_path, EMSEG_PROJECT_OPEN_DEFAULT, &error);

  if (project == NULL ||
      !emseg_project_import_model_file (project, job->model_path, EMSEG_SHIPPED_MODEL_NAME, NULL, NULL, NULL, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
adopt_done (GObject *source, GAsyncResult *result, gpointer data)
{
  EmsegAdoptJob *job = g_task_get_task_data (G_TASK (result));
  g_autoptr (EmsegWindow) self = g_weak_ref_get (&job->window);
  g_autoptr (GError) error = NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  /* a project change lets go of the job (emseg_window_train_project_changed): its result
   * was for the previous project, whose next opening finds the checkpoint anyway (the job
   * lives until this returns, so no later job has its address) */
  if (self == NULL || self->adopt_job != job)
    return;
  self->adopt_job = NULL;
  emseg_window_update_actions (self);
  if (!ok)
    {
      g_autofree char *text = g_strdup_printf ("Could not copy the shipped model into this project: %s",
                                               error->message);

      emseg_window_train_show_preview_state (self, NULL);
      emseg_window_set_status (self, text);
      return;
    }
  if (g_strcmp0 (emseg_window_get_status (self), COPYING_STATUS) == 0)
    emseg_window_set_status (self, job->status_before);
  emseg_window_train_model_changed (self); /* it is the current model now: the overlay asks for it */
  if (job->say_ready)
    emseg_train_panel_set_status (self->train_panel,
                                  "Ready: the overlay shows the shipped ISBI 2012 model. Images from another "
                                  "microscope: try Adapt Model to This Stack (main menu) first, no labels needed. "
                                  "Fine-tune adapts it to the labelled slices; Train starts a new model.");
}

void
emseg_window_adopt_shipped_model (EmsegWindow *self, gboolean say_ready)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GTask) task = NULL;
  g_autofree char *model_path = emseg_shipped_model_path (&error);
  EmsegAdoptJob *job;

  /* without a shipped model installed nothing changes: Train makes the first model */
  if (model_path == NULL)
    return;
  job = g_new0 (EmsegAdoptJob, 1);
  job->project_path = g_strdup (emseg_project_get_path (self->project));
  job->model_path = g_steal_pointer (&model_path);
  job->say_ready = say_ready;
  g_weak_ref_init (&job->window, self);
  job->app = emseg_window_hold_application (self);
  task = g_task_new (NULL, NULL, adopt_done, NULL);
  g_task_set_task_data (task, job, (GDestroyNotify) adopt_job_free);
  self->adopt_job = job;
  emseg_window_update_actions (self);
  emseg_window_train_show_preview_state (self, "Copying the shipped model into the project…");
  job->status_before = g_strdup (emseg_window_get_status (self));
  emseg_window_set_status (self, COPYING_STATUS);
  g_task_run_in_thread (task, adopt_thread);
}

gboolean
emseg_window_is_adopting (EmsegWindow *self)
{
  return self->adopt_job != NULL;
}
