/* emseg-window.c — widgets from emseg-window.ui, bindings between the sidebar controls
 * and the viewer's properties, window actions and their enabled state, drag-and-drop
 * and the file chooser (GtkFileChooserNative: GtkFileDialog is GTK 4.10).
 *
 * Saving strokes: the viewer emits "stroke-finished" for every stroke, undo and redo;
 * the handler here is where the slice's mask goes to the project store (one transaction
 * per stroke). The store (app/store) has no API yet, so the handler only counts strokes
 * and says in the status line that they are kept in memory. */
#include "emseg-window.h"

#include "emseg-heatmap.h"
#include "emseg-loss-plot.h"
#include "emseg-stack.h"

struct _EmsegWindow {
  GtkApplicationWindow parent_instance;

  /* template widgets */
  EmsegSliceView *view;
  GtkAdjustment *slice_adj;
  GtkAdjustment *brightness_adj;
  GtkAdjustment *contrast_adj;
  GtkAdjustment *brush_adj;
  GtkAdjustment *labels_opacity_adj;
  GtkAdjustment *prediction_opacity_adj;
  GtkLabel *slice_label;
  GtkLabel *zoom_label;
  GtkLabel *pointer_label;
  GtkLabel *status_label;
  GtkToggleButton *pan_toggle;
  GtkToggleButton *brush_toggle;
  GtkToggleButton *eraser_toggle;
  GtkDropDown *label_dropdown;
  GtkCheckButton *labels_check;
  GtkCheckButton *prediction_check;
  GtkStack *side_stack;
  EmsegTrainPanel *train_panel;

  /* owned */
  EmsegVolume *volume;
  GtkFileChooserNative *chooser; /* while a chooser is open */

  guint strokes_unsaved;         /* strokes not yet in a project store */
};

G_DEFINE_FINAL_TYPE (EmsegWindow, emseg_window, GTK_TYPE_APPLICATION_WINDOW)

static void
set_status (EmsegWindow *self, const char *text)
{
  gtk_label_set_text (self->status_label, text);
}

const char *
emseg_window_get_status (EmsegWindow *self)
{
  return gtk_label_get_text (self->status_label);
}

static void
show_error (EmsegWindow *self, const char *primary, const GError *error)
{
  GtkWidget *dialog = gtk_message_dialog_new (GTK_WINDOW (self), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", primary);

  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s", error->message);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_window_destroy), NULL);
  gtk_window_present (GTK_WINDOW (dialog));
  set_status (self, error->message);
}

/* The one place that decides which actions are enabled. */
static void
update_actions (EmsegWindow *self)
{
  gboolean have = self->volume != NULL;
  guint slice = emseg_slice_view_get_slice (self->view);
  guint n = have ? self->volume->n_slices : 0;
  gboolean can_undo, can_redo;

  g_object_get (self->view, "can-undo", &can_undo, "can-redo", &can_redo, NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.undo", can_undo);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.redo", can_redo);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.prev-slice", have && slice > 0);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.next-slice", have && slice + 1 < n);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.open-labels", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-in", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-out", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-fit", have);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-one", have);
}

static void
update_slice_label (EmsegWindow *self)
{
  g_autofree char *text = NULL;
  guint n = self->volume ? self->volume->n_slices : 0;

  text = g_strdup_printf ("%u / %u", n ? emseg_slice_view_get_slice (self->view) + 1 : 0, n);
  gtk_label_set_text (self->slice_label, text);
  update_actions (self);
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

  self->strokes_unsaved++;
  text = g_strdup_printf ("Slice %u changed (%u×%u px region). %u stroke(s) kept in memory: "
                          "the project store is not connected yet.",
                          slice + 1, x1 - x0, y1 - y0, self->strokes_unsaved);
  set_status (self, text);
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

/* ---- opening -------------------------------------------------------------------- */

void
emseg_window_set_volume (EmsegWindow *self, EmsegVolume *volume, const char *title)
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
      set_status (self, text);
    }
  update_slice_label (self);
}

gboolean
emseg_window_open_path (EmsegWindow *self, const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new_from_stack (path, NULL, &local);
  g_autofree char *base = NULL;
  g_autofree char *title = NULL;

  if (v == NULL)
    {
      show_error (self, "Could not open the stack", local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  base = g_path_get_basename (path);
  title = g_strdup_printf ("%s — emseg", base);
  emseg_window_set_volume (self, v, title);
  return TRUE;
}

gboolean
emseg_window_open_demo (EmsegWindow *self, GError **error)
{
  g_autoptr (GError) local = NULL;
  /* 256² × 12 renders in well under a second on two cores; the last third is left
   * unlabelled so there is something to correct. */
  g_autoptr (EmsegVolume) v = emseg_volume_new_synthetic (256, 256, 12, 2016, 8, &local);

  if (v == NULL)
    {
      show_error (self, "Could not create the demo project", local);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  emseg_window_set_volume (self, v, "Demo project — emseg");
  return TRUE;
}

static void
import_labels (EmsegWindow *self, const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegStack) stack = emseg_stack_open (path, &error);
  EmsegVolume *v = self->volume;

  if (stack != NULL &&
      (emseg_stack_get_width (stack) != v->width || emseg_stack_get_height (stack) != v->height ||
       emseg_stack_get_n_slices (stack) != v->n_slices))
    g_set_error (&error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "Labels %s are %u×%u×%u but the images are %u×%u×%u", path,
                 emseg_stack_get_width (stack), emseg_stack_get_height (stack),
                 emseg_stack_get_n_slices (stack), v->width, v->height, v->n_slices);
  for (guint z = 0; error == NULL && z < v->n_slices; z++)
    emseg_stack_read_u8 (stack, z, emseg_volume_label_plane (v, z), &error);
  if (error != NULL)
    {
      show_error (self, "Could not import the labels", error);
      return;
    }
  /* Imported masks replace the strokes' "before" values, so the history no longer fits. */
  emseg_slice_view_set_volume (self->view, NULL);
  emseg_slice_view_set_volume (self->view, v);
  set_status (self, "Labels imported.");
}

static void
chooser_response_cb (GtkNativeDialog *dialog, int response, EmsegWindow *self)
{
  gboolean labels = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (dialog), "labels"));

  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);

      if (path != NULL && labels)
        import_labels (self, path);
      else if (path != NULL)
        emseg_window_open_path (self, path, NULL);
    }
  g_clear_object (&self->chooser);
}

static void
run_chooser (EmsegWindow *self, gboolean labels, GtkFileChooserAction action)
{
  g_autoptr (GtkFileFilter) filter = gtk_file_filter_new ();

  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (labels ? "Import Labels Stack" : "Open Stack",
                                               GTK_WINDOW (self), action, "_Open", "_Cancel");
  g_object_set_data (G_OBJECT (self->chooser), "labels", GINT_TO_POINTER (labels));
  if (action == GTK_FILE_CHOOSER_ACTION_OPEN)
    {
      gtk_file_filter_set_name (filter, "TIFF stacks and PNG slices");
      gtk_file_filter_add_suffix (filter, "tif");
      gtk_file_filter_add_suffix (filter, "tiff");
      gtk_file_filter_add_suffix (filter, "png");
      gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), filter);
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

/* ---- actions -------------------------------------------------------------------- */

static void
action_open (GtkWidget *widget, const char *name, GVariant *param)
{
  run_chooser (EMSEG_WINDOW (widget), FALSE, GTK_FILE_CHOOSER_ACTION_OPEN);
}

static void
action_open_folder (GtkWidget *widget, const char *name, GVariant *param)
{
  run_chooser (EMSEG_WINDOW (widget), FALSE, GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER);
}

static void
action_open_labels (GtkWidget *widget, const char *name, GVariant *param)
{
  run_chooser (EMSEG_WINDOW (widget), TRUE, GTK_FILE_CHOOSER_ACTION_OPEN);
}

static void
action_demo (GtkWidget *widget, const char *name, GVariant *param)
{
  emseg_window_open_demo (EMSEG_WINDOW (widget), NULL);
}

static void
action_view (GtkWidget *widget, const char *name, GVariant *param)
{
  EmsegWindow *self = EMSEG_WINDOW (widget);
  guint slice = emseg_slice_view_get_slice (self->view);

  if (g_str_equal (name, "win.undo"))
    emseg_slice_view_undo (self->view);
  else if (g_str_equal (name, "win.redo"))
    emseg_slice_view_redo (self->view);
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

static void
train_requested_cb (EmsegTrainPanel *panel, gboolean fine_tune, EmsegWindow *self)
{
  emseg_train_panel_set_status (panel, fine_tune
      ? "Fine-tuning needs the training engine thread (issue 5), which is not built yet."
      : "Training needs the training engine thread (issue 5), which is not built yet.");
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

static void
emseg_window_dispose (GObject *object)
{
  EmsegWindow *self = EMSEG_WINDOW (object);

  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
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
  gtk_widget_class_bind_template_child (wc, EmsegWindow, slice_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, zoom_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, pointer_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, status_label);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, pan_toggle);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, brush_toggle);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, eraser_toggle);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, label_dropdown);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, labels_check);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, prediction_check);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, side_stack);
  gtk_widget_class_bind_template_child (wc, EmsegWindow, train_panel);

  gtk_widget_class_install_action (wc, "win.open", NULL, action_open);
  gtk_widget_class_install_action (wc, "win.open-folder", NULL, action_open_folder);
  gtk_widget_class_install_action (wc, "win.open-labels", NULL, action_open_labels);
  gtk_widget_class_install_action (wc, "win.demo", NULL, action_demo);
  for (guint i = 0; i < G_N_ELEMENTS (view_actions); i++)
    gtk_widget_class_install_action (wc, view_actions[i], NULL, action_view);
}

static void
emseg_window_init (EmsegWindow *self)
{
  GtkDropTarget *drop;
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

  g_signal_connect_swapped (self->view, "notify::slice", G_CALLBACK (update_slice_label), self);
  g_signal_connect_swapped (self->view, "notify::zoom", G_CALLBACK (view_zoom_cb), self);
  g_signal_connect_swapped (self->view, "notify::pointer-text", G_CALLBACK (view_pointer_cb), self);
  g_signal_connect_swapped (self->view, "notify::tool", G_CALLBACK (view_tool_cb), self);
  g_signal_connect_swapped (self->view, "history-changed", G_CALLBACK (update_actions), self);
  g_signal_connect (self->view, "stroke-finished", G_CALLBACK (stroke_finished_cb), self);
  g_signal_connect (self->pan_toggle, "toggled", G_CALLBACK (tool_toggled_cb), self);
  g_signal_connect (self->brush_toggle, "toggled", G_CALLBACK (tool_toggled_cb), self);
  g_signal_connect (self->eraser_toggle, "toggled", G_CALLBACK (tool_toggled_cb), self);
  g_signal_connect_swapped (self->label_dropdown, "notify::selected", G_CALLBACK (label_selected_cb), self);
  g_signal_connect (self->train_panel, "train-requested", G_CALLBACK (train_requested_cb), self);

  drop = gtk_drop_target_new (GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (drop_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));

  emseg_train_panel_set_status (self->train_panel,
      "Not connected: the training engine thread (issue 5) will feed these curves.");
  view_zoom_cb (self);
  update_slice_label (self);
}

EmsegWindow *
emseg_window_new (GtkApplication *app)
{
  return g_object_new (EMSEG_TYPE_WINDOW, "application", app, NULL);
}
