/* emseg-window-train.c — the window's side of the engine thread (app/run): training
 * runs from the panel's buttons, live curves / heatmap / progress from its events, the
 * prediction overlay of the visible slice, the MC-dropout uncertainty of the visible
 * slice on request, earlier runs reloaded from the store (and chosen for comparison),
 * and the export (dialog, prediction of every slice, TIFF writing, the closing message).
 *
 * One engine thread per open project, started with the first job and freed (joined)
 * when the project changes or the window goes away; it delivers events on the default
 * main context, coalesced, and drops those of stopped jobs. Events of jobs this window no
 * longer waits for are ignored by id. The thread writes the run's records to the store
 * itself; the window only reads them back when a project is (re)opened. */
#include "emseg-window-private.h"
#include "eng-modelfile.h"

#include <math.h>
#include <string.h>

#include "emseg-export-dialog.h"
#include "emseg-gamma.h"
#include "emseg-isbi.h"
#include "emseg-model-import.h"
#include "emseg-predict.h"
#include "emseg-shipped-model.h"
#include "emseg-stack.h"

/* ---- the overlay of the visible slice ------------------------------------------- */

/* Which model's prediction each slice of the volume holds: a new best checkpoint makes
 * them all stale, and a slice is predicted again only when it is shown. */
static GQuark
pred_model_quark (void)
{
  return g_quark_from_static_string ("emseg-window-pred-model");
}

static gint64 *
pred_models (EmsegWindow *self)
{
  gint64 *ids = g_object_get_qdata (G_OBJECT (self), pred_model_quark ());

  if (ids == NULL && self->volume != NULL)
    {
      ids = g_new0 (gint64, self->volume->n_slices);
      g_object_set_qdata_full (G_OBJECT (self), pred_model_quark (), ids, g_free);
    }
  return ids;
}

static void
forget_predictions (EmsegWindow *self)
{
  g_object_set_qdata (G_OBJECT (self), pred_model_quark (), NULL);
}

static gboolean
ensure_engine (EmsegWindow *self, GError **error);
static void
load_earlier_runs (EmsegWindow *self, gint64 current);

static void
show_prediction (EmsegWindow *self, guint slice, gint64 model_id, const float *prob)
{
  gint64 *ids;

  if (self->volume == NULL || slice >= self->volume->n_slices)
    return;
  emseg_volume_set_prediction (self->volume, slice, prob);
  ids = pred_models (self);
  ids[slice] = model_id;
  emseg_slice_view_volume_changed (self->view);
}

/* Beside the slice slider while the engine thread predicts the visible slice, since a big
 * slice (or one served between training steps) takes seconds and the overlay is otherwise
 * just missing: "Predicting slice 3…", with how far it is when the thread says. text NULL
 * hides it. */
static void
show_preview_state (EmsegWindow *self, const char *text)
{
  /* a label alone: GtkSpinner's icon is an SVG, which needs a loader (librsvg) this
   * program does not otherwise depend on */
  gtk_widget_set_visible (GTK_WIDGET (self->predict_label), text != NULL);
  if (text != NULL)
    gtk_label_set_text (self->predict_label, text);
}

void
emseg_window_train_show_preview_state (EmsegWindow *self, const char *text)
{
  show_preview_state (self, text);
}

const char *
emseg_window_get_prediction_state (EmsegWindow *self)
{
  return gtk_widget_get_visible (GTK_WIDGET (self->predict_label)) ? gtk_label_get_text (self->predict_label) : NULL;
}

/* The best model's uncertainty estimate of the slice, when the store kept one and the
 * volume holds none (a reopened project, or one dropped under the volume's budget): shown
 * again without spending the Monte-Carlo passes again. */
static void
show_stored_uncertainty (EmsegWindow *self, guint slice)
{
  g_autofree float *std = NULL;
  g_autofree char *text = NULL;
  int samples = 0;

  if (emseg_volume_uncertainty_plane (self->volume, slice) != NULL)
    return;
  std = g_new (float, emseg_volume_plane_size (self->volume));
  /* none stored is the usual case; a damaged row is replaced by the next estimate */
  if (!emseg_project_read_uncertainty (self->project, self->best_model_id, self->stack_id, slice, std, &samples,
                                       NULL))
    return;
  emseg_volume_set_uncertainty (self->volume, slice, std);
  emseg_slice_view_volume_changed (self->view);
  text = g_strdup_printf ("Slice %u: the uncertainty estimate stored with the model (%d dropout passes).",
                          slice + 1, samples);
  emseg_window_set_status (self, text);
}

/* Shows the best model's prediction of the visible slice: from the store when it was
 * kept there, else asks the engine thread (one request in flight at a time); and its
 * stored uncertainty estimate, if any. */
void
emseg_window_train_slice_changed (EmsegWindow *self)
{
  guint slice;
  gint64 *ids;
  g_autofree float *prob = NULL;
  EmsegEngineJob *job;

  if (self->project == NULL || self->volume == NULL || self->best_model_id == 0 ||
      emseg_window_import_locks_project (self) || emseg_window_is_compacting (self))
    return;
  slice = emseg_slice_view_get_slice (self->view);
  show_stored_uncertainty (self, slice);
  ids = pred_models (self);
  /* shown already (unless the volume evicted it since), or a request in flight */
  if ((ids[slice] == self->best_model_id && emseg_volume_prediction_plane (self->volume, slice) != NULL) ||
      self->preview_job != 0)
    return;
  prob = g_new (float, emseg_volume_plane_size (self->volume));
  if (emseg_project_read_prediction (self->project, self->best_model_id, self->stack_id, slice, prob, NULL))
    {
      show_prediction (self, slice, self->best_model_id, prob);
      return;
    }
  if (!ensure_engine (self, NULL))
    return;
  job = emseg_engine_job_new (EMSEG_ENGINE_JOB_PREDICT);
  job->stack_id = self->stack_id;
  job->slices = g_new (guint, 1);
  job->slices[0] = slice;
  job->n_slices = 1;
  /* while training, no name: the thread serves it from its snapshot of the best weights
   * between steps; afterwards the checkpoint by name */
  job->model = self->train_job != 0 ? NULL : g_strdup (self->best_model_name);
  self->preview_job = emseg_engine_thread_start (self->engine, job);
  self->preview_slice = slice;
  {
    g_autofree char *text = g_strdup_printf ("Predicting slice %u…", slice + 1);

    show_preview_state (self, text);
  }
}

/* ---- events ----------------------------------------------------------------------- */

/* Use Model and Delete Model: one item per checkpoint of the project, the current one
 * marked. */
static void
rebuild_model_menu (EmsegWindow *self)
{
  g_autoptr (GArray) checkpoints = self->project ? emseg_project_list_checkpoints (self->project, NULL) : NULL;

  g_menu_remove_all (self->model_menu);
  g_menu_remove_all (self->delete_model_menu);
  for (guint i = 0; checkpoints != NULL && i < checkpoints->len; i++)
    {
      const EmsegCheckpointInfo *c = &g_array_index (checkpoints, EmsegCheckpointInfo, i);
      const char *current = c->id == self->best_model_id ? " — current" : "";
      g_autofree char *label = NULL;
      g_autoptr (GMenuItem) item = NULL;

      label = c->run_id > 0 ? g_strdup_printf ("%s (run %" G_GINT64_FORMAT ", epoch %u)%s", c->name, c->run_id,
                                               c->epoch, current)
                            : g_strdup_printf ("%s (imported)%s", c->name, current);
      item = g_menu_item_new (label, NULL);
      g_menu_item_set_action_and_target_value (item, "win.use-model", g_variant_new_string (c->name));
      g_menu_append_item (self->model_menu, item);
      g_clear_object (&item);
      item = g_menu_item_new (label, NULL);
      g_menu_item_set_action_and_target_value (item, "win.delete-model", g_variant_new_string (c->name));
      g_menu_append_item (self->delete_model_menu, item);
    }
}

void
emseg_window_train_models_listed (EmsegWindow *self)
{
  rebuild_model_menu (self);
}

static void
set_best_model (EmsegWindow *self, gint64 id, const char *name)
{
  self->best_model_id = id;
  g_free (self->best_model_name);
  self->best_model_name = g_strdup (name);
  rebuild_model_menu (self);
  emseg_train_panel_set_has_model (self->train_panel, id != 0);
}

/* The panel's dropout becomes that of a model the project now starts from (spec: its
 * eng_spec_format text): Fine-tune overrides the model's rate with the panel's, and the
 * panel's default (0.2) would have fine-tuned the shipped model (trained at 0.1) at
 * another rate than it was trained with. */
static void
show_model_dropout (EmsegWindow *self, const char *spec)
{
  EngSpec parsed;
  EngError err;

  eng_spec_default (&parsed);
  if (spec != NULL && eng_spec_parse (&parsed, spec, &err) == ENG_OK)
    emseg_train_panel_set_dropout (self->train_panel, parsed.dropout);
}

static void
heatmap_column (EmsegWindow *self, const EmsegEngineEvent *ev)
{
  EmsegHeatmap *heatmap = emseg_train_panel_get_heatmap (self->train_panel);
  g_autofree float *values = g_new (float, MAX (ev->n_layers, 1));

  if (emseg_heatmap_get_n_layers (heatmap) != ev->n_layers)
    emseg_heatmap_set_layers (heatmap, (const char *const *) ev->layer_names, ev->n_layers);
  for (guint l = 0; l < ev->n_layers; l++)
    values[l] = (float) ev->mean_abs_update[l];
  emseg_heatmap_append_epoch (heatmap, values);
}

static void
training_event (EmsegWindow *self, const EmsegEngineEvent *ev)
{
  EmsegTrainPanel *panel = self->train_panel;
  g_autofree char *text = NULL;

  switch (ev->kind)
    {
    case EMSEG_ENGINE_EVENT_STARTED:
      self->run_checkpoints = 0;
      self->start_val_loss = NAN;
      text = g_strdup_printf ("Run %" G_GINT64_FORMAT " started.", ev->run_id);
      emseg_train_panel_set_status (panel, text);
      break;
    case EMSEG_ENGINE_EVENT_STEP:
      {
        double n_steps = MAX (ev->n_steps, 1u);
        double pos = (ev->epoch - 1) + ev->step / n_steps;
        double fraction = ev->n_epochs ? pos / ev->n_epochs : 0.0;
        double elapsed = (g_get_monotonic_time () - self->train_started_us) / (double) G_USEC_PER_SEC;
        double left = fraction > 0.01 ? elapsed * (1.0 - fraction) / fraction : -1.0;

        /* steps of a burst arrive coalesced to the latest: count from the event */
        self->steps_done = (guint64) (ev->epoch - 1) * ev->n_steps + ev->step;
        self->n_epochs = ev->n_epochs;
        emseg_train_panel_add_step (panel, pos, ev->loss);
        emseg_train_panel_set_progress (panel, fraction, ev->epoch, ev->n_epochs, self->steps_done, left);
      }
      break;
    case EMSEG_ENGINE_EVENT_EPOCH:
      if (ev->epoch == 0)
        {
          /* a fine-tune's starting weights, validated first: the point the curves start from */
          self->start_val_loss = ev->metrics.val_loss;
          emseg_train_panel_add_epoch (panel, 0, NAN, ev->metrics.val_loss, NULL);
          emseg_train_panel_add_scores (panel, 0, ev->metrics.v_rand, ev->metrics.v_info);
          text = isfinite (ev->metrics.v_rand)
                   ? g_strdup_printf ("Starting model: validation loss %.4f, V_rand %.4f, V_info %.4f; "
                                      "an epoch must beat it to replace it",
                                      ev->metrics.val_loss, ev->metrics.v_rand, ev->metrics.v_info)
                   : g_strdup_printf ("Starting model: validation loss %.4f; an epoch must beat it to "
                                      "replace it", ev->metrics.val_loss);
          emseg_train_panel_set_status (panel, text);
          break;
        }
      emseg_train_panel_add_epoch (panel, ev->epoch, ev->metrics.train_loss, ev->metrics.val_loss, NULL);
      emseg_train_panel_add_scores (panel, ev->epoch, ev->metrics.v_rand, ev->metrics.v_info);
      emseg_train_panel_set_progress (panel, ev->n_epochs ? (double) ev->epoch / ev->n_epochs : 0.0,
                                      ev->epoch, ev->n_epochs, self->steps_done, ev->eta_seconds);
      text = isfinite (ev->metrics.v_rand)
               ? g_strdup_printf ("Epoch %u: train %.4f, validation %.4f, V_rand %.4f, V_info %.4f",
                                  ev->epoch, ev->metrics.train_loss, ev->metrics.val_loss,
                                  ev->metrics.v_rand, ev->metrics.v_info)
               : isfinite (ev->metrics.val_loss)
               /* the workbench scores every epoch: no V_rand means an incomplete slice */
               ? g_strdup_printf ("Epoch %u: train loss %.4f, validation loss %.4f (V_rand and "
                                  "V_info need a fully labelled validation slice)",
                                  ev->epoch, ev->metrics.train_loss, ev->metrics.val_loss)
               : g_strdup_printf ("Epoch %u: train loss %.4f", ev->epoch, ev->metrics.train_loss);
      emseg_train_panel_set_status (panel, text);
      break;
    case EMSEG_ENGINE_EVENT_LAYER_STATS:
      heatmap_column (self, ev);
      break;
    case EMSEG_ENGINE_EVENT_CHECKPOINT:
      self->run_checkpoints++;
      set_best_model (self, ev->model_id, ev->model_name);
      /* the estimates described the replaced weights */
      if (self->volume != NULL)
        {
          emseg_volume_clear_uncertainty (self->volume);
          emseg_slice_view_volume_changed (self->view);
        }
      if (isfinite (ev->export_gamma))
        text = g_strdup_printf ("New best model at epoch %u (%s, export γ %g): refreshing the overlay.",
                                ev->epoch, ev->model_name, ev->export_gamma);
      else
        text = g_strdup_printf ("New best model at epoch %u (%s): refreshing the overlay.", ev->epoch,
                                ev->model_name);
      emseg_window_set_status (self, text);
      emseg_window_train_slice_changed (self);
      break;
    case EMSEG_ENGINE_EVENT_PAUSED:
      emseg_train_panel_set_state (panel, EMSEG_TRAIN_PAUSED);
      emseg_train_panel_set_status (panel, "Paused between two steps.");
      break;
    case EMSEG_ENGINE_EVENT_RESUMED:
      emseg_train_panel_set_state (panel, EMSEG_TRAIN_RUNNING);
      emseg_train_panel_set_status (panel, "Resumed.");
      break;
    case EMSEG_ENGINE_EVENT_ERROR:
      text = g_strdup_printf ("Training failed: %s", ev->message ? ev->message : "unknown error");
      emseg_train_panel_set_status (panel, text);
      emseg_window_set_status (self, text);
      break;
    case EMSEG_ENGINE_EVENT_FINISHED:
      self->train_job = 0;
      emseg_train_panel_set_state (panel, EMSEG_TRAIN_IDLE);
      if (ev->status != EMSEG_ENGINE_STATUS_FAILED)
        {
          text = self->run_checkpoints == 0 && isfinite (self->start_val_loss)
                   ? g_strdup_printf ("Run %" G_GINT64_FORMAT " %s: no epoch beat the starting model "
                                      "(validation loss %.4f), which stays the current model.",
                                      ev->run_id, emseg_engine_status_name (ev->status),
                                      self->start_val_loss)
                   : g_strdup_printf ("Run %" G_GINT64_FORMAT " %s.", ev->run_id,
                                      emseg_engine_status_name (ev->status));
          emseg_train_panel_set_status (panel, text);
        }
      else /* the bar said "starting…" or the last step; the status line says why */
        emseg_train_panel_set_progress_text (panel, 0.0, "failed");
      emseg_window_update_actions (self);
      break;
    case EMSEG_ENGINE_EVENT_PREDICTION:
    case EMSEG_ENGINE_EVENT_EVALUATION:
    case EMSEG_ENGINE_EVENT_PROGRESS:
      break;
    }
}

static void export_event (EmsegWindow *self, const EmsegEngineEvent *ev);
static void uncertainty_event (EmsegWindow *self, const EmsegEngineEvent *ev);

static void
engine_event_cb (const EmsegEngineEvent *ev, gpointer data)
{
  EmsegWindow *self = data;
  gint64 start = g_get_monotonic_time ();

  if (ev->job != 0 && ev->job == self->train_job)
    training_event (self, ev);
  else if (ev->job != 0 && ev->job == self->export_job)
    export_event (self, ev);
  else if (ev->job != 0 && ev->job == self->uncertainty_job)
    uncertainty_event (self, ev);
  else if (ev->job != 0 && ev->job == self->adapt_job)
    emseg_window_adapt_event (self, ev);
  else if (ev->job != 0 && ev->job == self->preview_job)
    {
      if (ev->kind == EMSEG_ENGINE_EVENT_PREDICTION && ev->prob != NULL && self->volume != NULL &&
          ev->width == self->volume->width && ev->height == self->volume->height)
        show_prediction (self, ev->slice, ev->model_id, ev->prob);
      else if (ev->kind == EMSEG_ENGINE_EVENT_PROGRESS)
        {
          g_autofree char *text = g_strdup_printf ("Predicting slice %u: %.0f %%", self->preview_slice + 1,
                                                   100.0 * ev->fraction);

          show_preview_state (self, text);
        }
      else if (ev->kind == EMSEG_ENGINE_EVENT_FINISHED)
        {
          self->preview_job = 0;
          show_preview_state (self, NULL);
          /* the user may have moved on, or a better model arrived meanwhile */
          emseg_window_train_slice_changed (self);
        }
    }
  /* G_MESSAGES_DEBUG=emseg-workbench shows what the main loop spends on each event */
  g_debug ("engine event %s of job %" G_GUINT64_FORMAT ": %.2f ms on the main loop",
           emseg_engine_event_kind_name (ev->kind), ev->job,
           (g_get_monotonic_time () - start) / 1000.0);
}

static gboolean
ensure_engine (EmsegWindow *self, GError **error)
{
  if (self->engine != NULL)
    return TRUE;
  if (self->project == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "No project is open: open or create one first");
      return FALSE;
    }
  /* user_data is the window, borrowed: the thread is freed (joined, pending dispatches
   * made no-ops) in emseg_window_train_dispose before the window goes. */
  self->engine = emseg_engine_thread_new (emseg_project_get_path (self->project), g_main_context_default (),
                                          engine_event_cb, self, NULL, error);
  return self->engine != NULL;
}

/* Stores the model file at path in the project as checkpoint `name` (replacing one of that
 * name), its metadata as the checkpoint's scores, and makes it the model the overlay,
 * Fine-tune and Export use. */
static gboolean
import_model_file (EmsegWindow *self, const char *path, const char *name, GError **error)
{
  g_autofree char *spec = NULL;
  gint64 id = 0;

  if (!emseg_project_import_model_file (self->project, path, name, &id, &spec, NULL, error))
    return FALSE;
  set_best_model (self, id, name);
  show_model_dropout (self, spec);
  return TRUE;
}

/* The model shipped with emseg (emseg-shipped-model.h), imported into the project as a
 * checkpoint so that the engine thread predicts with it and fine-tunes it like any other;
 * its metadata (the export exponent γ its training chose) become the checkpoint's scores,
 * and it is the overlay's model until a run of the project beats it. */
static gboolean
import_shipped_model (EmsegWindow *self, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *path = emseg_shipped_model_path (&local);

  if (path == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "This project has no model yet and %s: use Train first",
                   local->message);
      return FALSE;
    }
  return import_model_file (self, path, EMSEG_SHIPPED_MODEL_NAME, error);
}

/* The checkpoint name for a model file: its name without .emsegmodel, with -2, -3, … when
 * the project has one of that name already (an import never replaces a checkpoint). */
static char *
unused_model_name (EmsegWindow *self, const char *path, GError **error)
{
  g_autoptr (GArray) models = emseg_project_list_checkpoints (self->project, error);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *stem = g_str_has_suffix (base, ".emsegmodel")
                            ? g_strndup (base, strlen (base) - strlen (".emsegmodel"))
                            : g_strdup (base);
  char *name;

  if (models == NULL)
    return NULL;
  name = g_strdup (stem);
  for (guint k = 2; emseg_checkpoint_find (models, name) != NULL; k++)
    {
      g_free (name);
      name = g_strdup_printf ("%s-%u", stem, k);
    }
  return name;
}

gboolean
emseg_window_import_model (EmsegWindow *self, const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *name = NULL;
  g_autofree char *text = NULL;
  const char *busy = emseg_window_busy_with (self);

  if (self->project == NULL)
    g_set_error_literal (&local, G_IO_ERROR, G_IO_ERROR_FAILED, "No project is open: open or create one first");
  else if (busy != NULL)
    g_set_error (&local, G_IO_ERROR, G_IO_ERROR_BUSY,
                 "%s is running: stop it (or let it finish) before importing a model", busy);
  else if ((name = unused_model_name (self, path, &local)) != NULL)
    import_model_file (self, path, name, &local);
  if (local != NULL)
    {
      emseg_window_show_error (self, "Could not import the model", local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  /* what the overlay showed came from the previous model */
  forget_predictions (self);
  if (self->volume != NULL)
    {
      emseg_volume_clear_uncertainty (self->volume);
      emseg_slice_view_volume_changed (self->view);
    }
  emseg_window_train_slice_changed (self);
  text = g_strdup_printf ("Model '%s' imported: the overlay, Fine-tune and Export use it now.", name);
  emseg_window_set_status (self, text);
  emseg_window_update_actions (self);
  return TRUE;
}

/* ---- training --------------------------------------------------------------------- */

/* "validating on slice 7" / "validating on slices 3, 21–25" (ascending, distinct; numbered
 * from 1, as the viewer shows them). */
static char *
format_slices (const guint *slices, guint n)
{
  GString *s = g_string_new (n == 1 ? "validating on slice " : "validating on slices ");

  for (guint i = 0; i < n;)
    {
      guint j = i;

      while (j + 1 < n && slices[j + 1] == slices[j] + 1)
        j++;
      g_string_append_printf (s, "%s%u", i ? ", " : "", slices[i] + 1);
      if (j > i)
        g_string_append_printf (s, "%s%u", j == i + 1 ? ", " : "–", slices[j] + 1);
      i = j + 1;
    }
  return g_string_free (s, FALSE);
}

/* The validation slices of a run from the panel's text: empty = automatic, "none", or an
 * emseg_parse_slices list numbered from 1 as in the viewer (the CLI's lists count from 0),
 * which must name labelled slices (labeled: ascending) and leave one to train on.
 * Automatic takes the last fifth of the labelled slices (at least one) when three or more
 * are labelled: of ISBI 2012's 25, slices 20–24 counted from 0, the split the shipped model
 * was chosen on; one slice alone gives a noisy best-weights choice. *out: g_new, NULL when
 * there is no validation. */
static gboolean
choose_val_slices (const GArray *labeled, guint n_slices, const char *text, guint **out, guint *n_out,
                   GError **error)
{
  g_autofree char *typed = g_strstrip (g_strdup (text != NULL ? text : ""));
  g_autofree guint *val = NULL;
  guint n = 0;

  *out = NULL;
  *n_out = 0;
  if (g_ascii_strcasecmp (typed, "none") == 0)
    return TRUE;
  if (*typed == '\0')
    {
      if (labeled->len < 3)
        return TRUE;
      n = MAX (labeled->len / 5, 1u);
      val = g_new (guint, n);
      for (guint i = 0; i < n; i++)
        val[i] = g_array_index (labeled, guint, labeled->len - n + i);
    }
  else
    {
      g_autoptr (GError) parse_error = NULL;

      /* parsed without an upper bound ("all" would be every guint), checked below in the
       * viewer's numbering */
      if (g_ascii_strcasecmp (typed, "all") != 0)
        val = emseg_parse_slices (typed, G_MAXUINT, &n, &parse_error);
      else
        g_set_error_literal (&parse_error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                             "validating on every slice leaves none to train on");
      if (val != NULL && (val[0] == 0 || val[n - 1] > n_slices))
        {
          if (val[0] == 0)
            g_set_error_literal (&parse_error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                 "slices are numbered from 1 here, as in the viewer");
          else
            g_set_error (&parse_error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                         "slice %u is past the last slice (this stack has %u, numbered 1 to %u)",
                         val[n - 1], n_slices, n_slices);
          g_clear_pointer (&val, g_free);
        }
      if (val == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "Validation slices \"%s\": %s (or leave the field empty for the last fifth "
                       "of the labelled slices, \"none\" for no validation)", typed, parse_error->message);
          return FALSE;
        }
      for (guint i = 0; i < n; i++)
        {
          gboolean found = FALSE;

          val[i]--; /* into the store's numbering */
          for (guint k = 0; k < labeled->len && !found; k++)
            found = g_array_index (labeled, guint, k) == val[i];
          if (!found)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "Validation slice %u has no labels: validation needs labelled slices "
                           "(this stack has %u, slices %u to %u have some)", val[i] + 1, labeled->len,
                           g_array_index (labeled, guint, 0) + 1,
                           g_array_index (labeled, guint, labeled->len - 1) + 1);
              return FALSE;
            }
        }
      if (n >= labeled->len)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "Validation slices \"%s\" take all %u labelled slices: leave at least one to "
                       "train on", typed, labeled->len);
          return FALSE;
        }
    }
  *out = g_steal_pointer (&val);
  *n_out = n;
  return TRUE;
}

gboolean
emseg_window_start_training (EmsegWindow *self, gboolean fine_tune, const char *spec_override,
                             GError **error)
{
  EmsegTrainParams params;
  g_autoptr (EmsegEngineJob) job = NULL;
  g_autoptr (GArray) labeled = NULL;
  g_autofree char *val_text = NULL;
  g_autofree char *status = NULL;
  g_autofree char *no_val = NULL;
  EngError err;

  if (self->train_job != 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY, "A training run is already going");
      return FALSE;
    }
  if (emseg_window_import_locks_project (self))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           "A stack is being imported into this project: train when it is done");
      return FALSE;
    }
  if (emseg_window_is_adapting (self))
    {
      /* a fine-tune queued now would start from the model before its adaptation */
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           "The model is being adapted to this stack: train when that is done (seconds)");
      return FALSE;
    }
  if (emseg_window_is_adopting (self))
    {
      /* a fine-tune would copy the shipped model in a second time, beside the worker */
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           "The shipped model is being copied into this project: train when that is done (a second)");
      return FALSE;
    }
  if (self->project == NULL || self->stack_id == 0 || self->volume == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "Nothing to train on: open a project with a stack first");
      return FALSE;
    }
  /* With no model of its own yet, a project fine-tunes the shipped ISBI 2012 model. */
  if (fine_tune && self->best_model_name == NULL && !import_shipped_model (self, error))
    return FALSE;
  labeled = emseg_project_labeled_slices (self->project, self->stack_id, error);
  if (labeled == NULL)
    return FALSE;
  if (labeled->len == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "No slice of this stack has labels: paint membrane and cell first, or "
                           "import a label stack");
      return FALSE;
    }
  if (!ensure_engine (self, error))
    return FALSE;

  emseg_train_panel_get_params (self->train_panel, &params);
  job = emseg_engine_job_new (fine_tune ? EMSEG_ENGINE_JOB_FINE_TUNE : EMSEG_ENGINE_JOB_TRAIN);
  job->name = g_strdup (fine_tune ? "fine-tune (workbench)" : "train (workbench)");
  job->stack_id = self->stack_id;
  if (!fine_tune)
    {
      const char *spec = spec_override != NULL ? spec_override : params.spec;

      eng_spec_default (&job->training.spec);
      if (spec != NULL && *spec != '\0' && eng_spec_parse (&job->training.spec, spec, &err) != ENG_OK)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "Model size \"%s\": %s", spec,
                       err.message);
          return FALSE;
        }
      job->training.spec.long_skip = params.long_skip;
      job->training.spec.short_skip = params.short_skip;
    }
  else
    job->model = g_strdup (self->best_model_name);
  job->training.loss = params.loss;
  job->training.epochs = MAX (params.epochs, 1u);
  job->training.lr = params.learning_rate;
  job->training.dropout = (float) params.dropout;
  self->train_dropout = params.dropout;
  job->training.augment = params.augment;
  job->training.conv_bf16 = params.bf16;
  job->training.border_w0 = (float) params.border_weight; /* σ: the config's default */
  if (!choose_val_slices (labeled, self->volume->n_slices, params.val_slices, &job->val_slices,
                          &job->n_val, error))
    return FALSE;
  val_text = job->n_val ? format_slices (job->val_slices, job->n_val) : NULL;

  /* every run so far becomes an earlier run, the latest drawn for comparison */
  load_earlier_runs (self, 0);
  emseg_train_panel_begin_run (self->train_panel, NULL, 0);
  emseg_train_panel_set_state (self->train_panel, EMSEG_TRAIN_RUNNING);
  /* a fine-tune scores its starting weights before the first step (validate_init): on big
   * validation sets that takes a while, and "starting…" would look like a hang */
  if (fine_tune && job->training.validate_init && job->n_val > 0)
    emseg_train_panel_set_progress_text (self->train_panel, 0.0, "validating the starting model…");
  /* without validation nothing tells a worse fine-tune from a better one but the eye */
  no_val = fine_tune ? g_strdup_printf ("no validation (the last weights are kept; Use Model ▸ %s goes back)",
                                        self->best_model_name)
                     : g_strdup ("no validation (the last weights are kept)");
  /* the engine thread trains big slices, and slices whose sides are no multiple of the
   * network's decimation, on crops and validates them in windows (emseg_training_fit_window) */
  status = g_strdup_printf ("%s: starting on %u labelled slices, %s%s", fine_tune ? "Fine-tuning" : "Training",
                            labeled->len - job->n_val, val_text ? val_text : no_val,
                            emseg_training_needs_crops (&job->training.spec, self->volume->height, self->volume->width)
                              ? "; slices of this size train on crops and validate on windows (1024² or less, sides multiples of the network's decimation)"
                              : "");
  emseg_train_panel_set_status (self->train_panel, status);
  self->train_started_us = g_get_monotonic_time ();
  self->steps_done = 0;
  self->train_job = emseg_engine_thread_start (self->engine, g_steal_pointer (&job));
  emseg_window_update_actions (self);
  /* a fine-tune's starting model (just imported, perhaps) shows on the overlay meanwhile */
  emseg_window_train_slice_changed (self);
  return TRUE;
}

gboolean
emseg_window_is_training (EmsegWindow *self)
{
  return self->train_job != 0;
}

const char *
emseg_window_get_best_model (EmsegWindow *self)
{
  return self->best_model_name;
}

static void
train_requested_cb (EmsegTrainPanel *panel, gboolean fine_tune, EmsegWindow *self)
{
  g_autoptr (GError) error = NULL;

  if (!emseg_window_start_training (self, fine_tune, NULL, &error))
    {
      emseg_train_panel_set_status (panel, error->message);
      emseg_window_show_error (self, fine_tune ? "Could not fine-tune" : "Could not train", error);
    }
}

static void
pause_requested_cb (EmsegWindow *self)
{
  if (self->engine != NULL && self->train_job != 0)
    emseg_engine_thread_pause (self->engine);
}

static void
resume_requested_cb (EmsegWindow *self)
{
  if (self->engine != NULL && self->train_job != 0)
    emseg_engine_thread_resume (self->engine);
}

static void
stop_requested_cb (EmsegWindow *self)
{
  if (self->engine != NULL && self->train_job != 0)
    {
      emseg_engine_thread_stop (self->engine, self->train_job);
      emseg_train_panel_set_status (self->train_panel, "Stopping after the current step…");
    }
}

/* ---- earlier runs from the store ---------------------------------------------------- */

static char *
run_label (const EmsegRun *run, guint n_epochs)
{
  return g_strdup_printf ("run %" G_GINT64_FORMAT " · %s · %u epoch%s · %s", run->id,
                          run->name ? run->name : "unnamed", n_epochs, n_epochs == 1 ? "" : "s",
                          run->status ? run->status : "running");
}

/* Offers every run of the project with epochs, except `current` (0: none), for
 * comparison in the panel; the most recent one is drawn, the others are a tick away. */
static void
load_earlier_runs (EmsegWindow *self, gint64 current)
{
  g_autoptr (GArray) runs = NULL;
  guint n_added;

  emseg_train_panel_clear_earlier_runs (self->train_panel);
  if (self->project == NULL)
    return;
  runs = emseg_project_list_runs (self->project, NULL);
  for (guint r = 0; runs != NULL && r < runs->len; r++)
    {
      const EmsegRun *run = &g_array_index (runs, EmsegRun, r);
      g_autoptr (GArray) metrics = NULL;
      g_autofree double *values = NULL;
      g_autofree char *label = NULL;
      EmsegRunCurves curves = { 0 };
      guint n;

      if (run->id == current)
        continue;
      metrics = emseg_project_get_epoch_metrics (self->project, run->id, NULL);
      if (metrics == NULL || metrics->len == 0)
        continue;
      n = metrics->len;
      values = g_new (double, 5 * (gsize) n);
      for (guint e = 0; e < n; e++)
        {
          const EmsegEpochMetrics *m = &g_array_index (metrics, EmsegEpochMetrics, e);

          values[e] = m->epoch;
          values[n + e] = m->train_loss;
          values[2 * n + e] = m->val_loss;
          values[3 * n + e] = m->v_rand;
          values[4 * n + e] = m->v_info;
        }
      label = run_label (run, n);
      curves.id = run->id;
      curves.label = label;
      curves.n_epochs = n;
      curves.epoch = values;
      curves.train_loss = values + n;
      curves.val_loss = values + 2 * n;
      curves.v_rand = values + 3 * n;
      curves.v_info = values + 4 * n;
      emseg_train_panel_add_earlier_run (self->train_panel, &curves, FALSE);
    }
  n_added = emseg_train_panel_get_n_earlier_runs (self->train_panel);
  if (n_added > 0)
    emseg_train_panel_set_earlier_run_shown (self->train_panel, n_added - 1, TRUE);
}

/* A reopened project shows its latest run as the current one (curves, scores, heatmap)
 * and offers the others for comparison; its current model becomes the overlay's. Returns
 * how many runs it holds. */
static guint
reload_runs (EmsegWindow *self)
{
  g_autoptr (GArray) runs = NULL;
  g_auto (EmsegCheckpointInfo) current = { 0 };
  g_autoptr (GArray) metrics = NULL;
  g_autoptr (GArray) stats = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  const EmsegRun *run = NULL;
  guint n_layers = 0;

  if (self->project == NULL)
    return 0;
  runs = emseg_project_list_runs (self->project, NULL);
  emseg_train_panel_set_progress_text (self->train_panel, 0.0, "idle");
  for (guint r = runs != NULL ? runs->len : 0; r-- > 0 && run == NULL;)
    {
      g_clear_pointer (&metrics, g_array_unref);
      metrics = emseg_project_get_epoch_metrics (self->project, g_array_index (runs, EmsegRun, r).id, NULL);
      if (metrics != NULL && metrics->len > 0)
        run = &g_array_index (runs, EmsegRun, r);
    }
  load_earlier_runs (self, run != NULL ? run->id : 0);
  if (run != NULL)
    {
      stats = emseg_project_get_layer_stats (self->project, run->id, NULL);
      /* layer names from the first epoch's rows, in layer order */
      for (guint i = 0; stats != NULL && i < stats->len; i++)
        {
          const EmsegLayerStat *st = &g_array_index (stats, EmsegLayerStat, i);

          if (st->epoch != g_array_index (stats, EmsegLayerStat, 0).epoch)
            break;
          g_ptr_array_add (names, st->layer);
          n_layers++;
        }
      emseg_train_panel_begin_run (self->train_panel, (const char *const *) names->pdata, n_layers);
      for (guint e = 0; e < metrics->len; e++)
        {
          const EmsegEpochMetrics *m = &g_array_index (metrics, EmsegEpochMetrics, e);
          g_autofree float *updates = n_layers ? g_new0 (float, n_layers) : NULL;
          guint found = 0;

          for (guint i = 0; updates != NULL && stats != NULL && i < stats->len; i++)
            {
              const EmsegLayerStat *st = &g_array_index (stats, EmsegLayerStat, i);

              if (st->epoch == m->epoch && st->layer_index < n_layers)
                {
                  updates[st->layer_index] = (float) st->mean_abs_update;
                  found++;
                }
            }
          emseg_train_panel_add_epoch (self->train_panel, m->epoch, m->train_loss, m->val_loss,
                                       found ? updates : NULL);
          emseg_train_panel_add_scores (self->train_panel, m->epoch, m->v_rand, m->v_info);
        }
      {
        g_autofree char *text = g_strdup_printf ("run %" G_GINT64_FORMAT " (%s): %u epoch(s)", run->id,
                                                 run->status, metrics->len);
        emseg_train_panel_set_progress_text (self->train_panel, 1.0, text);
      }
    }
  if (runs != NULL && runs->len > 0)
    {
      g_autofree char *text = g_strdup_printf ("%u earlier run(s) of this project loaded from the store.", runs->len);
      emseg_train_panel_set_status (self->train_panel, text);
    }
  /* the model chosen in Use Model (or with emseg project use-model), else the latest */
  if (emseg_project_current_checkpoint (self->project, &current, NULL, NULL) && current.name != NULL)
    {
      set_best_model (self, current.id, current.name);
      show_model_dropout (self, current.spec);
    }
  return runs != NULL ? runs->len : 0;
}

void
emseg_window_train_release_engine (EmsegWindow *self)
{
  g_return_if_fail (self->train_job == 0 && self->export_job == 0 && self->uncertainty_job == 0 &&
                    self->adapt_job == 0);
  /* joins the thread; a preview in flight is asked for again when the slice is shown */
  g_clear_pointer (&self->engine, emseg_engine_thread_free);
  self->preview_job = 0;
  show_preview_state (self, NULL);
}

void
emseg_window_train_project_changed (EmsegWindow *self)
{
  guint n_runs;

  /* joins the thread: it was working for the previous project */
  g_clear_pointer (&self->engine, emseg_engine_thread_free);
  self->adopt_job = NULL; /* a copy of the shipped model still in work was for the previous one */
  self->train_job = self->preview_job = self->export_job = self->uncertainty_job = self->adapt_job = 0;
  show_preview_state (self, NULL);
  g_clear_pointer (&self->export_prob, g_free);
  if (self->export_dialog != NULL)
    emseg_export_dialog_set_busy (EMSEG_EXPORT_DIALOG (self->export_dialog), FALSE);
  set_best_model (self, 0, NULL);
  forget_predictions (self);
  emseg_train_panel_reset (self->train_panel);
  emseg_train_panel_set_state (self->train_panel, EMSEG_TRAIN_IDLE);
  emseg_train_panel_set_status (self->train_panel,
                                self->project ? "Ready: Train starts a new model on the labelled slices."
                                              : "Open a project to train.");
  n_runs = reload_runs (self); /* says how many runs it loaded, if any */
  if (self->project != NULL && self->stack_id != 0 && self->best_model_id == 0)
    emseg_window_adopt_shipped_model (self, n_runs == 0);
  emseg_window_train_slice_changed (self);
}

/* ---- MC-dropout uncertainty of the visible slice ----------------------------------- */

/* The dropout rate of the weights a PREDICT job would use: the running run's (its
 * snapshot), else the named checkpoint's spec as stored. */
static gboolean
model_dropout (EmsegWindow *self, double *dropout, GError **error)
{
  g_autoptr (GArray) checkpoints = NULL;
  EngSpec spec;
  EngError err;

  if (self->train_job != 0)
    {
      *dropout = self->train_dropout;
      return TRUE;
    }
  checkpoints = emseg_project_list_checkpoints (self->project, error);
  if (checkpoints == NULL)
    return FALSE;
  for (guint i = 0; i < checkpoints->len; i++)
    {
      const EmsegCheckpointInfo *c = &g_array_index (checkpoints, EmsegCheckpointInfo, i);

      if (g_strcmp0 (c->name, self->best_model_name) != 0)
        continue;
      eng_spec_default (&spec);
      if (c->spec == NULL || eng_spec_parse (&spec, c->spec, &err) != ENG_OK)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Checkpoint \"%s\" has an unreadable spec: %s",
                       c->name, c->spec ? err.message : "none stored");
          return FALSE;
        }
      *dropout = spec.dropout;
      return TRUE;
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Checkpoint \"%s\" is not in the project any more",
               self->best_model_name);
  return FALSE;
}

gboolean
emseg_window_estimate_uncertainty (EmsegWindow *self, int n_samples, GError **error)
{
  EmsegEngineJob *job;
  double dropout = 0.0;

  if (self->uncertainty_job != 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY, "An uncertainty estimate is already running");
      return FALSE;
    }
  if (self->project == NULL || self->volume == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Nothing to estimate: open a project with a stack");
      return FALSE;
    }
  if (n_samples < 2)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "An uncertainty estimate needs at least 2 Monte-Carlo samples, got %d", n_samples);
      return FALSE;
    }
  if (self->best_model_name == NULL && self->train_job == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "No model in this project yet: train one (with dropout > 0) first");
      return FALSE;
    }
  if (!model_dropout (self, &dropout, error))
    return FALSE;
  if (!(dropout > 0.0))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "The model \"%s\" was trained without dropout (dropout = 0), so all its Monte-Carlo "
                   "passes agree and there is no uncertainty to show. Train or fine-tune with dropout "
                   "> 0 (the Train panel's Dropout, 0.2 in the paper) and estimate again.",
                   self->train_job != 0 ? "of the running training" : self->best_model_name);
      return FALSE;
    }
  if (!ensure_engine (self, error))
    return FALSE;
  job = emseg_engine_job_new (EMSEG_ENGINE_JOB_PREDICT);
  job->name = g_strdup ("uncertainty (workbench)");
  job->stack_id = self->stack_id;
  job->slices = g_new (guint, 1);
  job->slices[0] = emseg_slice_view_get_slice (self->view);
  job->n_slices = 1;
  job->mc_samples = n_samples;
  /* as for the overlay: while training, the thread's snapshot of the best weights */
  job->model = self->train_job != 0 ? NULL : g_strdup (self->best_model_name);
  self->uncertainty_slice = job->slices[0];
  self->uncertainty_samples = n_samples;
  self->uncertainty_fraction = -1.0;
  self->uncertainty_job = emseg_engine_thread_start (self->engine, job);
  {
    g_autofree char *text = g_strdup_printf ("Estimating the uncertainty of slice %u from %d dropout passes…",
                                             self->uncertainty_slice + 1, n_samples);
    emseg_window_set_status (self, text);
  }
  emseg_window_update_actions (self);
  return TRUE;
}

gboolean
emseg_window_is_estimating (EmsegWindow *self)
{
  return self->uncertainty_job != 0;
}

void
emseg_window_stop_uncertainty (EmsegWindow *self)
{
  if (self->uncertainty_job == 0 || self->engine == NULL)
    return;
  emseg_engine_thread_stop (self->engine, self->uncertainty_job);
  emseg_window_set_status (self, "Stopping the uncertainty estimate…");
}

static void
uncertainty_event (EmsegWindow *self, const EmsegEngineEvent *ev)
{
  g_autofree char *text = NULL;

  switch (ev->kind)
    {
    case EMSEG_ENGINE_EVENT_PREDICTION:
      if (self->volume != NULL && ev->std != NULL && ev->slice < self->volume->n_slices &&
          ev->width == self->volume->width && ev->height == self->volume->height)
        {
          gsize n = (gsize) ev->width * ev->height;
          double sum = 0.0, max = 0.0;

          for (gsize i = 0; i < n; i++)
            {
              sum += ev->std[i];
              max = MAX (max, ev->std[i]);
            }
          emseg_volume_set_uncertainty (self->volume, ev->slice, ev->std);
          emseg_slice_view_volume_changed (self->view);
          if (!gtk_check_button_get_active (self->uncertainty_check))
            gtk_check_button_set_active (self->uncertainty_check, TRUE);
          text = g_strdup_printf ("Uncertainty of slice %u from %d dropout passes: mean σ %.4f, max σ %.4f "
                                  "(cyan overlay).", ev->slice + 1, self->uncertainty_samples, sum / n, max);
          emseg_window_set_status (self, text);
        }
      break;
    case EMSEG_ENGINE_EVENT_ERROR:
      {
        g_autoptr (GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                                                ev->message ? ev->message : "the prediction failed");
        emseg_window_show_error (self, "Could not estimate the uncertainty", error);
      }
      break;
    case EMSEG_ENGINE_EVENT_PROGRESS:
      self->uncertainty_fraction = ev->fraction;
      text = g_strdup_printf ("Estimating the uncertainty of slice %u from %d dropout passes… %.0f %%",
                              ev->slice + 1, self->uncertainty_samples, 100.0 * ev->fraction);
      emseg_window_set_status (self, text);
      emseg_window_update_uncertainty_button (self);
      break;
    case EMSEG_ENGINE_EVENT_FINISHED:
      self->uncertainty_job = 0;
      if (ev->status == EMSEG_ENGINE_STATUS_CANCELLED)
        {
          text = g_strdup_printf ("Uncertainty estimate of slice %u stopped.", self->uncertainty_slice + 1);
          emseg_window_set_status (self, text);
        }
      emseg_window_update_actions (self);
      break;
    default:
      break;
    }
}

static void
action_estimate_uncertainty (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  g_autoptr (GError) error = NULL;

  if (!emseg_window_estimate_uncertainty (self, (int) gtk_adjustment_get_value (self->mc_samples_adj), &error))
    emseg_window_show_error (self, "Cannot estimate the uncertainty", error);
}

static void
action_stop_uncertainty (GtkWidget *widget, const char *name, GVariant *param)
{
  emseg_window_stop_uncertainty (EMSEG_WINDOW (widget));
}

/* ---- the current model --------------------------------------------------------------- */

gboolean
emseg_window_use_model (EmsegWindow *self, const char *name, GError **error)
{
  g_auto (EmsegCheckpointInfo) current = { 0 };
  const char *busy = emseg_window_busy_with (self);
  g_autofree char *text = NULL;

  if (self->project == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Open a project first");
      return FALSE;
    }
  if (busy != NULL)
    {
      /* a run's new checkpoints would take the overlay back; an export reads its model */
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "%s is running: stop it (or let it finish) first", busy);
      return FALSE;
    }
  if (!emseg_project_choose_checkpoint (self->project, name, error) ||
      !emseg_project_current_checkpoint (self->project, &current, NULL, error))
    return FALSE;
  emseg_window_train_model_changed (self);
  text = g_strdup_printf ("Current model: %s. The overlay, Fine-tune and Export use it until a run saves a newer one.",
                          current.name);
  emseg_window_set_status (self, text);
  emseg_train_panel_set_status (self->train_panel, text);
  return TRUE;
}

void
emseg_window_train_model_changed (EmsegWindow *self)
{
  g_auto (EmsegCheckpointInfo) current = { 0 };

  if (!emseg_project_current_checkpoint (self->project, &current, NULL, NULL))
    return;
  if (current.name == NULL)
    {
      /* the last model was deleted: nothing to show until Fine-tune brings the shipped one */
      set_best_model (self, 0, NULL);
      forget_predictions (self);
      if (self->volume != NULL)
        {
          emseg_volume_clear_predictions (self->volume);
          emseg_volume_clear_uncertainty (self->volume);
          emseg_slice_view_volume_changed (self->view);
        }
      return;
    }
  set_best_model (self, current.id, current.name);
  show_model_dropout (self, current.spec);
  if (self->volume != NULL)
    {
      /* the estimates described the other model's weights */
      emseg_volume_clear_uncertainty (self->volume);
      emseg_slice_view_volume_changed (self->view);
    }
  emseg_window_train_slice_changed (self);
}

gboolean
emseg_window_train_ensure_engine (EmsegWindow *self, GError **error)
{
  return ensure_engine (self, error);
}

static void
action_use_model (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  g_autoptr (GError) error = NULL;

  if (!emseg_window_use_model (self, g_variant_get_string (param, NULL), &error))
    emseg_window_show_error (self, "Cannot use that model", error);
}

/* ---- labels from the prediction ------------------------------------------------------ */

gboolean
emseg_window_label_from_prediction (EmsegWindow *self, GError **error)
{
  guint slice;
  const float *prob;
  gsize plane;
  guint64 filled = 0;
  guint changed = 0;
  g_autofree guint8 *mask = NULL;
  g_autofree char *text = NULL;

  if (self->project == NULL || self->volume == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Nothing to label: open a project with a stack");
      return FALSE;
    }
  slice = emseg_slice_view_get_slice (self->view);
  prob = emseg_volume_prediction_plane (self->volume, slice);
  if (prob == NULL || pred_models (self)[slice] == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                   "No prediction of slice %u is shown yet: wait until the overlay shows one%s", slice + 1,
                   self->best_model_id == 0 ? " (this project has no model: Train one first)" : "");
      return FALSE;
    }
  plane = emseg_volume_plane_size (self->volume);
  mask = g_malloc (plane);
  if (!emseg_project_read_mask (self->project, self->stack_id, slice, mask, NULL, error))
    return FALSE;
  /* painted labels stay: only what nobody labelled takes the network's word, at the
   * threshold its loss was trained for (P(cell) = 0.5) */
  for (gsize i = 0; i < plane; i++)
    if (mask[i] == EMSEG_LABEL_UNLABELED)
      {
        mask[i] = prob[i] < 0.5f ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_CELL;
        filled++;
      }
  if (filled == 0)
    {
      text = g_strdup_printf ("Slice %u is labelled everywhere already: nothing to fill.", slice + 1);
      emseg_window_set_status (self, text);
      return TRUE;
    }
  if (!emseg_project_replace_masks (self->project, self->stack_id, slice, 1, mask, &changed, error) ||
      !emseg_volume_reload_mask (self->volume, self->project, self->stack_id, slice, NULL, error))
    return FALSE;
  emseg_slice_view_volume_changed (self->view);
  emseg_window_update_actions (self);
  text = g_strdup_printf ("Slice %u: %" G_GUINT64_FORMAT " pixels labelled from the prediction. Correct them with "
                          "the brush, then Fine-tune (Ctrl+Z takes it back).",
                          slice + 1, filled);
  emseg_window_set_status (self, text);
  return TRUE;
}

static void
action_label_from_prediction (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  g_autoptr (GError) error = NULL;

  if (!emseg_window_label_from_prediction (self, &error))
    emseg_window_show_error (self, "Cannot label from the prediction", error);
}

/* ---- export ----------------------------------------------------------------------- */

static void
export_progress (EmsegWindow *self, double fraction, const char *text)
{
  if (self->export_dialog != NULL)
    emseg_export_dialog_set_progress (EMSEG_EXPORT_DIALOG (self->export_dialog), fraction, text);
  emseg_window_set_status (self, text);
}

static void
export_done (EmsegWindow *self, const GError *error)
{
  g_autofree char *text = NULL;

  self->export_job = 0;
  g_clear_pointer (&self->export_prob, g_free);
  if (self->export_dialog != NULL)
    emseg_export_dialog_set_busy (EMSEG_EXPORT_DIALOG (self->export_dialog), FALSE);
  emseg_window_update_actions (self);
  if (error != NULL)
    {
      export_progress (self, 0.0, "export failed");
      emseg_window_show_error (self, "Export failed", error);
      return;
    }
  text = g_strdup_printf ("Exported %u slices to %s.", self->volume->n_slices, self->export_path);
  export_progress (self, 1.0, text);
  emseg_window_show_message (self, GTK_MESSAGE_INFO, "Export finished", text);
}

static gboolean
write_predictions (EmsegWindow *self, GError **error)
{
  EmsegVolume *v = self->volume;
  gsize plane = emseg_volume_plane_size (v);

  if (self->export_kind == EMSEG_EXPORT_ISBI)
    {
      for (guint z = 0; z < v->n_slices; z++)
        if (!emseg_isbi_validate_slice (self->export_prob + plane * z, v->width, v->height,
                                        "the prediction", z, error))
          return FALSE;
      /* after validation: p^γ would hide a negative value */
      emseg_gamma_apply (self->export_prob, plane * v->n_slices, self->export_gamma);
    }
  else
    for (gsize i = 0; i < plane * v->n_slices; i++)
      self->export_prob[i] = 1.0f - self->export_prob[i];
  return emseg_tiff_write_float_stack (self->export_path, self->export_prob, v->width, v->height,
                                       v->n_slices, error);
}

static void
export_event (EmsegWindow *self, const EmsegEngineEvent *ev)
{
  EmsegVolume *v = self->volume;
  g_autoptr (GError) error = NULL;

  switch (ev->kind)
    {
    case EMSEG_ENGINE_EVENT_PREDICTION:
      if (self->export_prob != NULL && ev->slice < v->n_slices && ev->width == v->width && ev->height == v->height)
        {
          g_autofree char *text = NULL;

          memcpy (self->export_prob + emseg_volume_plane_size (v) * ev->slice, ev->prob,
                  emseg_volume_plane_size (v) * sizeof (float));
          self->export_received++;
          text = g_strdup_printf ("exporting: slice %u of %u predicted", self->export_received, v->n_slices);
          export_progress (self, (double) self->export_received / v->n_slices, text);
        }
      break;
    case EMSEG_ENGINE_EVENT_PROGRESS:
      {
        /* big slices (and MC / TTA passes) take long each: how far the one in work is */
        g_autofree char *text = g_strdup_printf ("exporting: predicting slice %u of %u, %.0f %%",
                                                 MIN (self->export_received + 1, v->n_slices), v->n_slices,
                                                 100.0 * ev->fraction);

        export_progress (self, (self->export_received + ev->fraction) / v->n_slices, text);
      }
      break;
    case EMSEG_ENGINE_EVENT_ERROR:
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", ev->message ? ev->message : "prediction failed");
      export_done (self, error);
      break;
    case EMSEG_ENGINE_EVENT_FINISHED:
      if (self->export_job == 0)
        break; /* the ERROR ended it already */
      if (ev->status != EMSEG_ENGINE_STATUS_FINISHED || self->export_received != v->n_slices)
        g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED,
                     "The prediction %s after %u of %u slices; nothing was written to %s",
                     emseg_engine_status_name (ev->status), self->export_received, v->n_slices,
                     self->export_path);
      else
        write_predictions (self, &error);
      export_done (self, error);
      break;
    default:
      break;
    }
}

static gboolean
export_labels (EmsegWindow *self, GError **error)
{
  EmsegVolume *v = self->volume;
  gsize plane = emseg_volume_plane_size (v);
  g_autofree guint8 *masks = g_try_malloc (plane * v->n_slices);

  if (masks == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "Not enough memory for the label stack");
      return FALSE;
    }
  /* from the store, not the screen: the file is what the project holds */
  for (guint z = 0; z < v->n_slices; z++)
    if (!emseg_project_read_mask (self->project, self->stack_id, z, masks + plane * z, NULL, error))
      return FALSE;
  return emseg_tiff_write_u8_stack (self->export_path, masks, v->width, v->height, v->n_slices, error);
}

gboolean
emseg_window_start_export (EmsegWindow *self, EmsegExportKind kind, const char *model,
                           int mc_samples, gboolean tta, gboolean bf16, double gamma,
                           const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  EmsegEngineJob *job;

  if (self->export_job != 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY, "An export is already running");
      return FALSE;
    }
  if (emseg_window_import_locks_project (self)) /* the export dialog is a window of its own */
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           "A stack is being imported into this project: export when it is done");
      return FALSE;
    }
  if (self->project == NULL || self->volume == NULL || path == NULL || *path == '\0')
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           path == NULL || *path == '\0' ? "Choose a file to export to"
                                                         : "Nothing to export: open a project with a stack");
      return FALSE;
    }
  if (kind == EMSEG_EXPORT_ISBI && !emseg_gamma_check (gamma, "Membrane exponent", error))
    return FALSE;
  g_free (self->export_path);
  self->export_path = g_strdup (path);
  self->export_kind = kind;
  self->export_gamma = kind == EMSEG_EXPORT_ISBI ? gamma : 1.0;
  if (kind == EMSEG_EXPORT_LABELS)
    {
      if (!export_labels (self, &local))
        {
          export_done (self, local);
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      export_done (self, NULL);
      return TRUE;
    }
  if (self->train_job != 0)
    {
      /* the engine thread serves predictions asked for during a run from its snapshot of
       * the run's best weights, not from a named checkpoint: export what was chosen */
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           "A training run is going: stop it or wait for it to finish, then export "
                           "predictions (the label stack can be exported now)");
      return FALSE;
    }
  if (model == NULL)
    model = self->best_model_name;
  if (model == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           "No trained model in this project: train one before exporting predictions");
      return FALSE;
    }
  if (!ensure_engine (self, error))
    return FALSE;
  self->export_prob = g_try_new (float, emseg_volume_plane_size (self->volume) * self->volume->n_slices);
  if (self->export_prob == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "Not enough memory for the exported stack");
      return FALSE;
    }
  self->export_received = 0;
  job = emseg_engine_job_new (EMSEG_ENGINE_JOB_PREDICT);
  job->stack_id = self->stack_id;
  job->model = g_strdup (model);
  job->mc_samples = MAX (mc_samples, 1);
  job->tta = tta;
  job->predict_bf16 = bf16;
  self->export_job = emseg_engine_thread_start (self->engine, job);
  emseg_window_update_actions (self);
  if (self->export_dialog != NULL)
    emseg_export_dialog_set_busy (EMSEG_EXPORT_DIALOG (self->export_dialog), TRUE);
  export_progress (self, 0.0, "exporting: predicting…");
  return TRUE;
}

gboolean
emseg_window_is_exporting (EmsegWindow *self)
{
  return self->export_job != 0;
}

static void
export_requested_cb (EmsegExportDialog *dialog, int kind, const char *model, int mc_samples,
                     gboolean tta, gboolean bf16, double gamma, const char *path, EmsegWindow *self)
{
  g_autoptr (GError) error = NULL;

  if (!emseg_window_start_export (self, (EmsegExportKind) kind, model, mc_samples, tta, bf16, gamma,
                                  path, &error))
    emseg_window_show_error (self, "Could not export", error);
}

static void
export_dialog_destroyed_cb (EmsegWindow *self)
{
  self->export_dialog = NULL;
}

static void
action_export (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  g_autoptr (GArray) checkpoints = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  g_autoptr (GArray) gammas = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *dir = NULL;

  if (self->export_dialog != NULL)
    {
      gtk_window_present (GTK_WINDOW (self->export_dialog));
      return;
    }
  if (self->project == NULL)
    return;
  checkpoints = emseg_project_list_checkpoints (self->project, NULL);
  for (guint i = 0; checkpoints != NULL && i < checkpoints->len; i++)
    {
      const EmsegCheckpointInfo *info = &g_array_index (checkpoints, EmsegCheckpointInfo, i);
      double gamma = emseg_gamma_from_meta (info->scores); /* 1 when the run chose none */

      g_ptr_array_add (names, info->name);
      g_array_append_val (gammas, gamma);
    }
  g_ptr_array_add (names, NULL);
  dir = g_path_get_dirname (emseg_project_get_path (self->project));
  self->export_dialog = emseg_export_dialog_new (GTK_WINDOW (self), (const char *const *) names->pdata,
                                                 (const double *) (void *) gammas->data, dir);
  emseg_export_dialog_select_model (EMSEG_EXPORT_DIALOG (self->export_dialog), self->best_model_name);
  g_signal_connect_object (self->export_dialog, "export-requested", G_CALLBACK (export_requested_cb), self, 0);
  g_signal_connect_object (self->export_dialog, "destroy", G_CALLBACK (export_dialog_destroyed_cb), self,
                           G_CONNECT_SWAPPED);
  if (self->export_job != 0)
    emseg_export_dialog_set_busy (EMSEG_EXPORT_DIALOG (self->export_dialog), TRUE);
  gtk_window_present (GTK_WINDOW (self->export_dialog));
}

/* ---- life cycle ------------------------------------------------------------------- */

void
emseg_window_train_class_init (GtkWidgetClass *wc)
{
  gtk_widget_class_install_action (wc, "win.export", NULL, action_export);
  gtk_widget_class_install_action (wc, "win.estimate-uncertainty", NULL, action_estimate_uncertainty);
  gtk_widget_class_install_action (wc, "win.stop-uncertainty", NULL, action_stop_uncertainty);
  gtk_widget_class_install_action (wc, "win.label-from-prediction", NULL, action_label_from_prediction);
  gtk_widget_class_install_action (wc, "win.use-model", "s", action_use_model);
}

void
emseg_window_train_init (EmsegWindow *self)
{
  g_signal_connect (self->train_panel, "train-requested", G_CALLBACK (train_requested_cb), self);
  g_signal_connect_swapped (self->train_panel, "pause-requested", G_CALLBACK (pause_requested_cb), self);
  g_signal_connect_swapped (self->train_panel, "resume-requested", G_CALLBACK (resume_requested_cb), self);
  g_signal_connect_swapped (self->train_panel, "stop-requested", G_CALLBACK (stop_requested_cb), self);
  emseg_train_panel_set_status (self->train_panel, "Open a project to train.");
}

void
emseg_window_train_dispose (EmsegWindow *self)
{
  g_clear_pointer (&self->engine, emseg_engine_thread_free);
  if (self->export_dialog != NULL)
    gtk_window_destroy (GTK_WINDOW (self->export_dialog));
  self->export_dialog = NULL;
  g_clear_pointer (&self->export_prob, g_free);
  g_clear_pointer (&self->export_path, g_free);
  g_clear_pointer (&self->best_model_name, g_free);
  g_clear_pointer (&self->adapt_from, g_free);
  forget_predictions (self);
}
