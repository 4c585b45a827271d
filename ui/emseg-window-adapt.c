/* emseg-window-adapt.c — "Adapt Model to This Stack": the current model's BN statistics
 * recomputed over the shown stack's images on the engine thread (ADAPT_BN), stored as a new
 * checkpoint that becomes the current model. No labels needed; what it buys on another
 * microscope's images is measured in data/models/README.md ("Adapting to a stack"), and
 * Use Model goes back when it does not help. */
#include "emseg-window-private.h"

#include <string.h>

#define ADAPTED_INFIX "-adapted-to-"

/* "<model>-adapted-to-<stack>", the model's name without an earlier such suffix, so
 * adapting an adapted model again replaces it instead of growing the name. */
static char *
adapted_name (const char *model, const char *stack)
{
  const char *infix = strstr (model, ADAPTED_INFIX);
  g_autofree char *base = infix != NULL ? g_strndup (model, infix - model) : g_strdup (model);

  return g_strconcat (base, ADAPTED_INFIX, stack, NULL);
}

gboolean
emseg_window_adapt_model (EmsegWindow *self, GError **error)
{
  g_auto (EmsegProjectStack) st = { 0 };
  const char *busy = emseg_window_busy_with (self);
  EmsegEngineJob *job;
  g_autofree char *text = NULL;

  if (self->project == NULL || self->stack_id == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Open a project with a stack first");
      return FALSE;
    }
  if (busy != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "%s is running: stop it (or let it finish) first", busy);
      return FALSE;
    }
  if (self->best_model_name == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "No model in this project to adapt: import one or train one first");
      return FALSE;
    }
  if (!emseg_project_get_stack (self->project, self->stack_id, &st, error) ||
      !emseg_window_train_ensure_engine (self, error))
    return FALSE;
  job = emseg_engine_job_new (EMSEG_ENGINE_JOB_ADAPT_BN);
  job->name = adapted_name (self->best_model_name, st.name);
  job->model = g_strdup (self->best_model_name);
  job->stack_id = self->stack_id;
  g_free (self->adapt_from);
  self->adapt_from = g_strdup (self->best_model_name);
  self->adapt_job = emseg_engine_thread_start (self->engine, job);
  text = g_strdup_printf ("Adapting %s to %s: recomputing its batch-norm statistics over the stack's %u "
                          "slices (no labels needed; Esc stops)…",
                          self->adapt_from, st.name, st.n_slices);
  emseg_window_set_status (self, text);
  emseg_window_update_actions (self);
  return TRUE;
}

gboolean
emseg_window_is_adapting (EmsegWindow *self)
{
  return self->adapt_job != 0;
}

void
emseg_window_stop_adapting (EmsegWindow *self)
{
  if (self->adapt_job != 0 && self->engine != NULL)
    emseg_engine_thread_stop (self->engine, self->adapt_job);
}

void
emseg_window_adapt_event (EmsegWindow *self, const EmsegEngineEvent *ev)
{
  g_autofree char *text = NULL;

  switch (ev->kind)
    {
    case EMSEG_ENGINE_EVENT_PROGRESS:
      text = g_strdup_printf ("Adapting %s to this stack: %.0f %% of its tiles (Esc stops)…", self->adapt_from,
                              100.0 * ev->fraction);
      emseg_window_set_status (self, text);
      break;
    case EMSEG_ENGINE_EVENT_CHECKPOINT:
      /* the newest checkpoint is the current model (the store forgets an earlier choice) */
      emseg_window_train_model_changed (self);
      text = g_strdup_printf ("Adapted to this stack (%u slices): %s is the current model. Use Model goes back "
                              "to %s.",
                              ev->n_slices, ev->model_name, self->adapt_from);
      emseg_window_set_status (self, text);
      emseg_train_panel_set_status (self->train_panel, text);
      break;
    case EMSEG_ENGINE_EVENT_ERROR:
      {
        g_autoptr (GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                                                ev->message ? ev->message : "the adaptation failed");
        emseg_window_show_error (self, "Could not adapt the model", error);
      }
      break;
    case EMSEG_ENGINE_EVENT_FINISHED:
      self->adapt_job = 0;
      if (ev->status == EMSEG_ENGINE_STATUS_CANCELLED)
        emseg_window_set_status (self, "Adapting the model stopped; nothing was stored.");
      emseg_window_update_actions (self);
      break;
    default:
      break;
    }
}

static void
action_adapt_model (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  g_autoptr (GError) error = NULL;

  if (!emseg_window_adapt_model (self, &error))
    emseg_window_show_error (self, "Cannot adapt the model", error);
}

void
emseg_window_adapt_class_init (GtkWidgetClass *wc)
{
  gtk_widget_class_install_action (wc, "win.adapt-model", NULL, action_adapt_model);
}
