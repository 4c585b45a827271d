/* emseg-window.c — widgets from emseg-window.ui, bindings between the sidebar controls
 * and the viewer's properties, the view actions and the one function that decides which
 * actions are enabled. Projects and strokes live in emseg-window-project.c, the engine
 * thread in emseg-window-train.c (shared struct: emseg-window-private.h). */
#include "emseg-window-private.h"

G_DEFINE_FINAL_TYPE (EmsegWindow, emseg_window, GTK_TYPE_APPLICATION_WINDOW)

void
emseg_window_set_status (EmsegWindow *self, const char *text)
{
  gtk_label_set_text (self->status_label, text);
}

const char *
emseg_window_get_status (EmsegWindow *self)
{
  return gtk_label_get_text (self->status_label);
}

void
emseg_window_show_message (EmsegWindow *self, GtkMessageType type, const char *primary,
                           const char *secondary)
{
  GtkWidget *dialog = gtk_message_dialog_new (GTK_WINDOW (self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              type, GTK_BUTTONS_CLOSE, "%s", primary);

  if (secondary != NULL)
    gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s", secondary);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_window_destroy), NULL);
  gtk_window_present (GTK_WINDOW (dialog));
}

void
emseg_window_show_error (EmsegWindow *self, const char *primary, const GError *error)
{
  emseg_window_show_message (self, GTK_MESSAGE_ERROR, primary, error->message);
  emseg_window_set_status (self, error->message);
}

const char *
emseg_window_busy_with (EmsegWindow *self)
{
  if (emseg_window_is_training (self))
    return "Training";
  if (emseg_window_is_exporting (self))
    return "An export";
  if (emseg_window_is_importing (self))
    return emseg_window_import_locks_project (self) ? "Importing a stack" : "Opening a stack";
  if (emseg_window_is_adapting (self))
    return "Adapting the model";
  if (emseg_window_is_compacting (self))
    return "Compacting the project";
  if (emseg_window_is_adopting (self))
    return "Copying the shipped model into the project";
  return NULL;
}

GApplication *
emseg_window_hold_application (EmsegWindow *self)
{
  GApplication *app = G_APPLICATION (gtk_window_get_application (GTK_WINDOW (self)));

  if (app == NULL)
    return NULL;
  g_application_hold (app);
  return g_object_ref (app);
}

void
emseg_window_release_application (GApplication *app)
{
  if (app == NULL)
    return;
  g_application_release (app);
  g_object_unref (app);
}

/* The one place that decides which actions are enabled. */
void
emseg_window_update_actions (EmsegWindow *self)
{
  gboolean have = self->volume != NULL;
  gboolean in_project = have && self->project != NULL;
  guint slice = emseg_slice_view_get_slice (self->view);
  guint n = have ? self->volume->n_slices : 0;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.undo", emseg_window_can_undo (self));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.redo", emseg_window_can_redo (self));
  /* another project or stack restarts the engine thread: not while it works for this one */
  gboolean busy = emseg_window_busy_with (self) != NULL;
  static const char *const switching[] = {
    "win.open", "win.open-folder", "win.new-project", "win.demo", "win.open-recent",
  };

  for (guint i = 0; i < G_N_ELEMENTS (switching); i++)
    gtk_widget_action_set_enabled (GTK_WIDGET (self), switching[i], !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.import-stack", self->project != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.import-model", self->project != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.use-model", self->project != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.adapt-model", in_project && self->stack_id != 0 && !busy &&
                                                                       self->best_model_id != 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.check-project", self->project != NULL && !self->checking);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.delete-model", self->project != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.compact-project", self->project != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop-work",
                                 emseg_window_is_importing (self) || emseg_window_is_adapting (self) ||
                                   self->compacting || self->checking);
  gtk_widget_set_sensitive (GTK_WIDGET (self->stack_dropdown), !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.export", in_project);
  /* enabled without a model too: the refusal says what is missing */
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.estimate-uncertainty",
                                 in_project && !emseg_window_is_estimating (self));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop-uncertainty", emseg_window_is_estimating (self));
  /* enabled before a prediction shows too: the refusal says to wait for it */
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.label-from-prediction", in_project);
  emseg_window_update_uncertainty_button (self);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.prev-slice", have && slice > 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.next-slice", have && slice + 1 < n);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.open-labels", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-in", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-out", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-fit", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-one", have);
  /* last, over what the lines above enabled: a copy writing to the open project wants no
   * other writer meanwhile */
  if (emseg_window_import_locks_project (self) || self->compacting)
    {
      static const char *const writers[] = {
        "win.undo", "win.redo", "win.import-stack", "win.open-labels", "win.import-model", "win.use-model", "win.adapt-model",
        "win.delete-model", "win.compact-project",
        "win.label-from-prediction", "win.estimate-uncertainty", "win.export", "win.check-project",
        "win.prev-slice", "win.next-slice",
      };

      for (guint i = 0; i < G_N_ELEMENTS (writers); i++)
        gtk_widget_action_set_enabled (GTK_WIDGET (self), writers[i], FALSE);
    }
}

static void
update_slice_label (EmsegWindow *self)
{
  g_autofree char *text = NULL;
  guint n = self->volume ? self->volume->n_slices : 0;

  text = g_strdup_printf ("%u / %u", n ? emseg_slice_view_get_slice (self->view) + 1 : 0, n);
  gtk_label_set_text (self->slice_label, text);
  emseg_window_update_actions (self);
}

static void
view_zoom_cb (EmsegWindow *self)
{
  g_autofree char *text = g_strdup_printf ("%.0f%%", 100.0 * emseg_slice_view_get_zoom (self->view));

  gtk_label_set_text (self->zoom_label, text);
}

static void
view_pointer_cb (EmsegWindow *self)
{
  gtk_label_set_text (self->pointer_label, emseg_slice_view_get_pointer_text (self->view));
}

static void
stroke_finished_cb (EmsegSliceView *view, guint slice, guint x0, guint y0, guint x1, guint y1,
                    EmsegWindow *self)
{
  g_autofree char *text = NULL;

  if (self->project != NULL)
    {
      emseg_window_stroke_finished (self, slice);
      return;
    }
  self->strokes_unsaved++;
  text = g_strdup_printf ("Slice %u changed (%u×%u px region). %u stroke(s) kept in memory: "
                          "no project is open.",
                          slice + 1, x1 - x0, y1 - y0, self->strokes_unsaved);
  emseg_window_set_status (self, text);
}

static void
slice_changed_cb (EmsegWindow *self)
{
  update_slice_label (self);
  emseg_window_train_slice_changed (self);
}

void
emseg_window_update_uncertainty_button (EmsegWindow *self)
{
  g_autofree char *text = NULL;

  if (emseg_window_is_estimating (self))
    {
      text = self->uncertainty_fraction >= 0.0
               ? g_strdup_printf ("Stop estimate (%.0f %%)", 100.0 * self->uncertainty_fraction)
               : g_strdup ("Stop estimate");
      gtk_actionable_set_action_name (GTK_ACTIONABLE (self->uncertainty_button), "win.stop-uncertainty");
      gtk_widget_set_tooltip_text (GTK_WIDGET (self->uncertainty_button),
                                   "Stop the running estimate (the slice keeps what it showed before)");
    }
  else
    {
      text = g_strdup_printf ("Estimate uncertainty (%d samples)", (int) gtk_adjustment_get_value (self->mc_samples_adj));
      gtk_actionable_set_action_name (GTK_ACTIONABLE (self->uncertainty_button), "win.estimate-uncertainty");
      gtk_widget_set_tooltip_text (GTK_WIDGET (self->uncertainty_button),
                                   "Predict the visible slice several times with dropout on and show how much the "
                                   "passes disagree (needs a model trained with dropout > 0; Ctrl+U)");
    }
  gtk_button_set_label (self->uncertainty_button, text);
}

static void
mc_samples_changed_cb (EmsegWindow *self)
{
  emseg_window_update_uncertainty_button (self);
}

/* ---- tools ---------------------------------------------------------------------- */

static void
tool_toggled_cb (GtkToggleButton *button, EmsegWindow *self)
{
  if (!gtk_toggle_button_get_active (button))
    return;
  if (button == self->brush_toggle)
    emseg_slice_view_set_tool (self->view, EMSEG_TOOL_BRUSH);
  else if (button == self->eraser_toggle)
    emseg_slice_view_set_tool (self->view, EMSEG_TOOL_ERASER);
  else
    emseg_slice_view_set_tool (self->view, EMSEG_TOOL_PAN);
}

static void
view_tool_cb (EmsegWindow *self)
{
  guint tool;

  g_object_get (self->view, "tool", &tool, NULL);
  gtk_toggle_button_set_active (tool == EMSEG_TOOL_BRUSH ? self->brush_toggle
                                : tool == EMSEG_TOOL_ERASER ? self->eraser_toggle
                                                             : self->pan_toggle, TRUE);
}

static void
label_selected_cb (EmsegWindow *self)
{
  static const EmsegLabel labels[] = { EMSEG_LABEL_MEMBRANE, EMSEG_LABEL_CELL, EMSEG_LABEL_UNLABELED };
  guint i = gtk_drop_down_get_selected (self->label_dropdown);

  if (i < G_N_ELEMENTS (labels))
    emseg_slice_view_set_brush_label (self->view, labels[i]);
}

/* ---- showing a volume ----------------------------------------------------------- */

void
emseg_window_show_volume (EmsegWindow *self, EmsegVolume *volume, const char *title)
{
  if (volume != NULL)
    emseg_volume_ref (volume);
  g_clear_pointer (&self->volume, emseg_volume_unref);
  self->volume = volume;
  emseg_slice_view_set_volume (self->view, volume);
  gtk_adjustment_set_upper (self->slice_adj, volume ? volume->n_slices - 1 : 0);
  gtk_adjustment_set_value (self->slice_adj, 0);
  gtk_window_set_title (GTK_WINDOW (self), title ? title : "emseg");
  self->strokes_unsaved = 0;
  if (volume != NULL)
    {
      g_autofree char *text = g_strdup_printf ("%u × %u × %u slices, values %g … %g",
                                               volume->width, volume->height, volume->n_slices,
                                               volume->image_min, volume->image_max);
      emseg_window_set_status (self, text);
    }
  update_slice_label (self);
}

/* ---- actions -------------------------------------------------------------------- */

static void
action_view (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  guint slice = emseg_slice_view_get_slice (self->view);

  if (g_str_equal (name, "win.undo"))
    emseg_window_undo_redo (self, TRUE);
  else if (g_str_equal (name, "win.redo"))
    emseg_window_undo_redo (self, FALSE);
  else if (g_str_equal (name, "win.zoom-in"))
    emseg_slice_view_zoom_in (self->view);
  else if (g_str_equal (name, "win.zoom-out"))
    emseg_slice_view_zoom_out (self->view);
  else if (g_str_equal (name, "win.zoom-fit"))
    emseg_slice_view_zoom_fit (self->view);
  else if (g_str_equal (name, "win.zoom-one"))
    emseg_slice_view_zoom_one (self->view);
  else if (g_str_equal (name, "win.next-slice"))
    emseg_slice_view_set_slice (self->view, slice + 1);
  else if (g_str_equal (name, "win.prev-slice") && slice > 0)
    emseg_slice_view_set_slice (self->view, slice - 1);
}

/* ---- GObject -------------------------------------------------------------------- */

EmsegSliceView *
emseg_window_get_view (EmsegWindow *self)
{
  return self->view;
}

EmsegTrainPanel *
emseg_window_get_train_panel (EmsegWindow *self)
{
  return self->train_panel;
}

void
emseg_window_show_page (EmsegWindow *self, const char *name)
{
  gtk_stack_set_visible_child_name (self->side_stack, name);
}

/* Esc: stops whichever stoppable background work runs — a stack copy into a project, an
 * adaptation or a compaction (they never run together: each counts as busy), and a project
 * check, which may run beside any of them. */
static void
action_stop_work (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);

  if (emseg_window_is_importing (self))
    emseg_window_stop_import (self);
  else if (emseg_window_is_compacting (self))
    emseg_window_stop_compacting (self);
  else
    emseg_window_stop_adapting (self);
  emseg_window_stop_checking (self);
}

static gboolean
close_confirmed_idle (gpointer data)
{
  gtk_window_close (GTK_WINDOW (data));
  return G_SOURCE_REMOVE;
}

static void
close_question_response_cb (GtkDialog *dialog, int response, EmsegWindow *self)
{
  gtk_window_destroy (GTK_WINDOW (dialog));
  if (response == GTK_RESPONSE_ACCEPT)
    {
      /* Not closed here: the dialog outlives this handler (its response emission holds
       * it) and, when it finally goes, detaches from its transient parent; were the
       * window already finalized, that would touch freed memory. */
      self->close_confirmed = TRUE;
      emseg_window_stop_import (self); /* at once: a copy must not finish and open meanwhile */
      g_idle_add_full (G_PRIORITY_HIGH_IDLE, close_confirmed_idle, g_object_ref (self), g_object_unref);
    }
}

/* Closing the window stops the engine thread: while it trains or exports for the user,
 * ask first (the default answer keeps it running). */
static gboolean
emseg_window_close_request (GtkWindow *window)
{
  EmsegWindow *self = EMSEG_WINDOW (window);
  const char *busy = emseg_window_busy_with (self);
  GtkWidget *dialog;

  /* compacting and the shipped model's copy finish after the window (the application is
   * held for them) */
  if (busy == NULL || self->close_confirmed || self->compacting || emseg_window_is_adopting (self))
    return GTK_WINDOW_CLASS (emseg_window_parent_class)->close_request (window);
  if (self->close_question != NULL)
    {
      gtk_window_present (GTK_WINDOW (self->close_question));
      return TRUE;
    }
  dialog = gtk_message_dialog_new (window, GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT, GTK_MESSAGE_QUESTION,
                                   GTK_BUTTONS_NONE, "%s is still running", busy);
  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s",
                                            emseg_window_is_training (self)
                                                ? "Closing the window stops the run. Its best checkpoint so far stays in the project, and Fine-tune continues from it."
                                            : emseg_window_is_exporting (self)
                                                ? "Closing the window stops the export; the file is not written."
                                            : emseg_window_is_adapting (self)
                                                ? "Closing the window stops adapting the model; nothing of it is stored."
                                            : emseg_window_import_locks_project (self)
                                                ? "Closing the window stops importing the stack; the project stays as it was."
                                                : "Closing the window stops copying the stack into its project; nothing of it is kept, and opening the stack again starts over.");
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), "_Keep Running", GTK_RESPONSE_CANCEL, "_Stop and Close",
                          GTK_RESPONSE_ACCEPT, NULL);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_CANCEL);
  g_signal_connect (dialog, "response", G_CALLBACK (close_question_response_cb), self);
  self->close_question = dialog;
  g_object_add_weak_pointer (G_OBJECT (dialog), (gpointer *) &self->close_question);
  gtk_window_present (GTK_WINDOW (dialog));
  return TRUE;
}

GtkWidget *
emseg_window_get_close_question (EmsegWindow *self)
{
  return self->close_question;
}

static void
emseg_window_dispose (GObject *object)
{
  EmsegWindow *self = EMSEG_WINDOW (object);

  if (self->close_question != NULL)
    g_object_remove_weak_pointer (G_OBJECT (self->close_question), (gpointer *) &self->close_question);
  self->close_question = NULL;
  /* the workers first: they are joined, so nothing arrives after this */
  emseg_window_import_dispose (self);
  emseg_window_train_dispose (self);
  emseg_window_project_dispose (self);
  g_clear_pointer (&self->volume, emseg_volume_unref);
  gtk_widget_dispose_template (GTK_WIDGET (object), EMSEG_TYPE_WINDOW);
  G_OBJECT_CLASS (emseg_window_parent_class)->dispose (object);
}

static void
emseg_window_class_init (EmsegWindowClass *klass)
{
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);
  static const char *const view_actions[] = {
    "win.undo", "win.redo", "win.zoom-in", "win.zoom-out", "win.zoom-fit", "win.zoom-one",
    "win.next-slice", "win.prev-slice",
  };

  G_OBJECT_CLASS (klass)->dispose = emseg_window_dispose;
  GTK_WINDOW_CLASS (klass)->close_request = emseg_window_close_request;

  g_type_ensure (EMSEG_TYPE_SLICE_VIEW);
  g_type_ensure (EMSEG_TYPE_TRAIN_PANEL);
  gtk_widget_class_set_template_from_resource (wc, "/org/emseg/Workbench/emseg-window.ui");
  gtk_widget_class_bind_template_child (wc, EmsegWindow, view);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, slice_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, brightness_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, contrast_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, brush_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, labels_opacity_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, prediction_opacity_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, uncertainty_opacity_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, mc_samples_adj);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, uncertainty_check);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, uncertainty_button);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, slice_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, zoom_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, pointer_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, status_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, predict_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, pan_toggle);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, brush_toggle);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, eraser_toggle);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, label_dropdown);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, stack_dropdown);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, labels_check);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, prediction_check);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, side_stack);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, train_panel);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, recent_menu);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, model_menu);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, delete_model_menu);

  emseg_window_project_class_init (wc);
  emseg_window_train_class_init (wc);
  emseg_window_check_class_init (wc);
  emseg_window_models_class_init (wc);
  emseg_window_adapt_class_init (wc);
  for (guint i = 0; i < G_N_ELEMENTS (view_actions); i++)
    gtk_widget_class_install_action (wc, view_actions[i], NULL, action_view);
  gtk_widget_class_install_action (wc, "win.stop-work", NULL, action_stop_work);
}

static void
emseg_window_init (EmsegWindow *self)
{
  GBindingFlags both = G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE;

  gtk_widget_init_template (GTK_WIDGET (self));

  /* Controls ↔ viewer: the view is the source of truth (SYNC_CREATE copies its
   * defaults into the controls), changes either way stay in step. */
  g_object_bind_property (self->view, "slice", self->slice_adj, "value", both);
  g_object_bind_property (self->view, "brightness", self->brightness_adj, "value", both);
  g_object_bind_property (self->view, "contrast", self->contrast_adj, "value", both);
  g_object_bind_property (self->view, "brush-radius", self->brush_adj, "value", both);
  g_object_bind_property (self->view, "labels-opacity", self->labels_opacity_adj, "value", both);
  g_object_bind_property (self->view, "prediction-opacity", self->prediction_opacity_adj, "value", both);
  g_object_bind_property (self->view, "labels-visible", self->labels_check, "active", both);
  g_object_bind_property (self->view, "prediction-visible", self->prediction_check, "active", both);
  g_object_bind_property (self->view, "uncertainty-opacity", self->uncertainty_opacity_adj, "value", both);
  g_object_bind_property (self->view, "uncertainty-visible", self->uncertainty_check, "active", both);
  g_signal_connect_swapped (self->mc_samples_adj, "value-changed", G_CALLBACK (mc_samples_changed_cb), self);

  g_signal_connect_swapped (self->view, "notify::slice", G_CALLBACK (slice_changed_cb), self);
  g_signal_connect_swapped (self->view, "notify::zoom", G_CALLBACK (view_zoom_cb), self);
  g_signal_connect_swapped (self->view, "notify::pointer-text", G_CALLBACK (view_pointer_cb), self);
  g_signal_connect_swapped (self->view, "notify::tool", G_CALLBACK (view_tool_cb), self);
  g_signal_connect_swapped (self->view, "history-changed", G_CALLBACK (emseg_window_update_actions), self);
  g_signal_connect (self->view, "stroke-finished", G_CALLBACK (stroke_finished_cb), self);
  g_signal_connect (self->pan_toggle, "toggled", G_CALLBACK (tool_toggled_cb), self);
  g_signal_connect (self->brush_toggle, "toggled", G_CALLBACK (tool_toggled_cb), self);
  g_signal_connect (self->eraser_toggle, "toggled", G_CALLBACK (tool_toggled_cb), self);
  g_signal_connect_swapped (self->label_dropdown, "notify::selected", G_CALLBACK (label_selected_cb), self);

  emseg_window_project_init (self);
  emseg_window_train_init (self);
  view_zoom_cb (self);
  update_slice_label (self);
}

EmsegWindow *
emseg_window_new (GtkApplication *app)
{
  return g_object_new (EMSEG_TYPE_WINDOW, "application", app, NULL);
}
