/* emseg-export-dialog.c — see the header. The file name follows the kind unless the user
 * typed one; the model list is the project's checkpoints. */
#include "emseg-export-dialog.h"

#include <string.h>

struct _EmsegExportDialog {
  GtkWindow parent_instance;

  /* template widgets */
  GtkGrid *inputs;
  GtkDropDown *kind_dropdown;
  GtkDropDown *model_dropdown;
  GtkSpinButton *mc_spin;
  GtkCheckButton *tta_check;
  GtkCheckButton *bf16_check;
  GtkSpinButton *gamma_spin;
  GtkEntry *path_entry;
  GtkButton *export_button;
  GtkProgressBar *progress;

  /* owned */
  char **models;                 /* NULL-terminated, newest last */
  double *gammas;                /* (n models) each one's stored export exponent, 1 if none */
  char *dir;                     /* default folder of the output */
  GtkFileChooserNative *chooser; /* while open */
};

G_DEFINE_FINAL_TYPE (EmsegExportDialog, emseg_export_dialog, GTK_TYPE_WINDOW)

enum { SIGNAL_EXPORT, N_SIGNALS };
static guint signals[N_SIGNALS];

static const char *const default_names[] = { "isbi-submission.tif", "labels.tif", "probabilities.tif" };

static void
kind_changed_cb (EmsegExportDialog *self)
{
  guint kind = gtk_drop_down_get_selected (self->kind_dropdown);
  g_autofree char *path = NULL;
  gboolean needs_model = kind != EMSEG_EXPORT_LABELS;

  if (kind >= G_N_ELEMENTS (default_names))
    return;
  path = g_build_filename (self->dir, default_names[kind], NULL);
  gtk_editable_set_text (GTK_EDITABLE (self->path_entry), path);
  gtk_widget_set_sensitive (GTK_WIDGET (self->model_dropdown), needs_model);
  gtk_widget_set_sensitive (GTK_WIDGET (self->mc_spin), needs_model);
  gtk_widget_set_sensitive (GTK_WIDGET (self->tta_check), needs_model);
  gtk_widget_set_sensitive (GTK_WIDGET (self->bf16_check), needs_model);
  gtk_widget_set_sensitive (GTK_WIDGET (self->gamma_spin), kind == EMSEG_EXPORT_ISBI);
}

/* A checkpoint whose training run chose an export exponent on fully labelled validation
 * slices brings it along; the user can still change it before exporting. */
static void
model_changed_cb (EmsegExportDialog *self)
{
  guint m = gtk_drop_down_get_selected (self->model_dropdown);

  if (self->models != NULL && m < g_strv_length (self->models))
    gtk_spin_button_set_value (self->gamma_spin, self->gammas[m]);
}

static void
export_clicked (EmsegExportDialog *self)
{
  guint kind = gtk_drop_down_get_selected (self->kind_dropdown);
  guint m = gtk_drop_down_get_selected (self->model_dropdown);
  const char *model = (self->models != NULL && m < g_strv_length (self->models)) ? self->models[m] : NULL;
  const char *path = gtk_editable_get_text (GTK_EDITABLE (self->path_entry));

  g_signal_emit (self, signals[SIGNAL_EXPORT], 0, (gint) kind, model,
                 gtk_spin_button_get_value_as_int (self->mc_spin),
                 gtk_check_button_get_active (self->tta_check),
                 gtk_check_button_get_active (self->bf16_check),
                 gtk_spin_button_get_value (self->gamma_spin), path);
}

static void
close_clicked (EmsegExportDialog *self)
{
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
chooser_response_cb (GtkNativeDialog *dialog, int response, EmsegExportDialog *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);

      if (path != NULL)
        gtk_editable_set_text (GTK_EDITABLE (self->path_entry), path);
    }
  g_clear_object (&self->chooser);
}

static void
choose_clicked (EmsegExportDialog *self)
{
  g_autofree char *base = NULL;

  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new ("Export To", GTK_WINDOW (self), GTK_FILE_CHOOSER_ACTION_SAVE,
                                               "_Save", "_Cancel");
  base = g_path_get_basename (gtk_editable_get_text (GTK_EDITABLE (self->path_entry)));
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (self->chooser), base);
  g_signal_connect (self->chooser, "response", G_CALLBACK (chooser_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

void
emseg_export_dialog_set_progress (EmsegExportDialog *self, double fraction, const char *text)
{
  gtk_progress_bar_set_fraction (self->progress, CLAMP (fraction, 0.0, 1.0));
  gtk_progress_bar_set_text (self->progress, text);
}

void
emseg_export_dialog_set_busy (EmsegExportDialog *self, gboolean busy)
{
  gtk_widget_set_sensitive (GTK_WIDGET (self->inputs), !busy);
  gtk_widget_set_sensitive (GTK_WIDGET (self->export_button), !busy);
}

static void
emseg_export_dialog_dispose (GObject *object)
{
  EmsegExportDialog *self = EMSEG_EXPORT_DIALOG (object);

  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  gtk_widget_dispose_template (GTK_WIDGET (object), EMSEG_TYPE_EXPORT_DIALOG);
  G_OBJECT_CLASS (emseg_export_dialog_parent_class)->dispose (object);
}

static void
emseg_export_dialog_finalize (GObject *object)
{
  EmsegExportDialog *self = EMSEG_EXPORT_DIALOG (object);

  g_strfreev (self->models);
  g_free (self->gammas);
  g_free (self->dir);
  G_OBJECT_CLASS (emseg_export_dialog_parent_class)->finalize (object);
}

static void
emseg_export_dialog_class_init (EmsegExportDialogClass *klass)
{
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);

  G_OBJECT_CLASS (klass)->dispose = emseg_export_dialog_dispose;
  G_OBJECT_CLASS (klass)->finalize = emseg_export_dialog_finalize;
  signals[SIGNAL_EXPORT] = g_signal_new ("export-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 7, G_TYPE_INT,
                                         G_TYPE_STRING, G_TYPE_INT, G_TYPE_BOOLEAN, G_TYPE_BOOLEAN,
                                         G_TYPE_DOUBLE, G_TYPE_STRING);
  gtk_widget_class_set_template_from_resource (wc, "/org/emseg/Workbench/emseg-export-dialog.ui");
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, inputs);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, kind_dropdown);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, model_dropdown);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, mc_spin);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, tta_check);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, bf16_check);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, gamma_spin);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, path_entry);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, export_button);
  gtk_widget_class_bind_template_child (wc, EmsegExportDialog, progress);
  gtk_widget_class_bind_template_callback (wc, export_clicked);
  gtk_widget_class_bind_template_callback (wc, choose_clicked);
  gtk_widget_class_bind_template_callback (wc, close_clicked);
}

static void
emseg_export_dialog_init (EmsegExportDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

void
emseg_export_dialog_select_model (EmsegExportDialog *self, const char *name)
{
  for (guint i = 0; name != NULL && self->models[i] != NULL; i++)
    if (strcmp (self->models[i], name) == 0)
      gtk_drop_down_set_selected (self->model_dropdown, i);
}

GtkWidget *
emseg_export_dialog_new (GtkWindow *parent, const char *const *models, const double *gammas,
                         const char *default_dir)
{
  EmsegExportDialog *self = g_object_new (EMSEG_TYPE_EXPORT_DIALOG, "transient-for", parent, NULL);
  guint n = 0;
  g_autoptr (GtkStringList) list = gtk_string_list_new (NULL);

  while (models != NULL && models[n] != NULL)
    n++;
  self->models = g_new0 (char *, n + 1);
  self->gammas = g_new (double, MAX (n, 1u));
  for (guint i = 0; i < n; i++)
    {
      self->models[i] = g_strdup (models[i]);
      self->gammas[i] = gammas != NULL ? gammas[i] : 1.0;
    }
  self->dir = g_strdup (default_dir);
  for (guint i = 0; i < n; i++)
    gtk_string_list_append (list, models[i]);
  if (n == 0)
    gtk_string_list_append (list, "(no trained model yet — train first)");
  gtk_drop_down_set_model (self->model_dropdown, G_LIST_MODEL (list));
  if (n > 0)
    gtk_drop_down_set_selected (self->model_dropdown, n - 1);
  g_signal_connect_swapped (self->kind_dropdown, "notify::selected", G_CALLBACK (kind_changed_cb), self);
  g_signal_connect_swapped (self->model_dropdown, "notify::selected", G_CALLBACK (model_changed_cb), self);
  kind_changed_cb (self);
  model_changed_cb (self);
  return GTK_WIDGET (self);
}
