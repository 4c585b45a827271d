/* emseg-train-panel.c — see the header. Widgets come from emseg-train-panel.ui; the
 * series indices of the current run are remembered so appends go to the right curves. */
#include "emseg-train-panel.h"

#include <math.h>

struct _EmsegTrainPanel {
  GtkBox parent_instance;

  /* template widgets */
  GtkDropDown *loss_dropdown;
  GtkDropDown *model_dropdown;
  GtkSpinButton *epochs_spin;
  GtkSpinButton *lr_spin;
  GtkSpinButton *dropout_spin;
  GtkCheckButton *long_skip_check;
  GtkCheckButton *short_skip_check;
  GtkCheckButton *augment_check;
  GtkButton *train_button;
  GtkButton *finetune_button;
  GtkButton *pause_button;
  GtkButton *resume_button;
  GtkButton *stop_button;
  GtkProgressBar *progress;
  GtkLabel *status_label;
  EmsegLossPlot *loss_plot;
  EmsegHeatmap *heatmap;

  /* state */
  EmsegTrainState state;
  guint run;                 /* runs begun so far */
  int step_series, train_series, val_series; /* of the current run, -1 before any */
};

G_DEFINE_FINAL_TYPE (EmsegTrainPanel, emseg_train_panel, GTK_TYPE_BOX)

enum {
  SIGNAL_TRAIN,
  SIGNAL_PAUSE,
  SIGNAL_RESUME,
  SIGNAL_STOP,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* The model sizes of the dropdown, as eng_spec_parse overrides of Table 1. Tiny is the
 * training smoke test's network: seconds per epoch on the demo stack. */
static const char *const model_specs[] = {
  "base_width=8,down=1/1,across=1",
  "base_width=16,down=2/2/2,across=2",
  "",
};

void
emseg_train_panel_get_params (EmsegTrainPanel *self, EmsegTrainParams *params)
{
  params->dice = gtk_drop_down_get_selected (self->loss_dropdown) == 1;
  params->epochs = (guint) gtk_spin_button_get_value_as_int (self->epochs_spin);
  params->learning_rate = gtk_spin_button_get_value (self->lr_spin);
  params->dropout = gtk_spin_button_get_value (self->dropout_spin);
  params->long_skip = gtk_check_button_get_active (self->long_skip_check);
  params->short_skip = gtk_check_button_get_active (self->short_skip_check);
  params->augment = gtk_check_button_get_active (self->augment_check);
  params->spec = model_specs[MIN (gtk_drop_down_get_selected (self->model_dropdown), G_N_ELEMENTS (model_specs) - 1)];
}

void
emseg_train_panel_set_epochs (EmsegTrainPanel *self, guint epochs)
{
  gtk_spin_button_set_value (self->epochs_spin, epochs);
}

void
emseg_train_panel_set_dropout (EmsegTrainPanel *self, double dropout)
{
  gtk_spin_button_set_value (self->dropout_spin, dropout);
}

void
emseg_train_panel_set_state (EmsegTrainPanel *self, EmsegTrainState state)
{
  gboolean idle = state == EMSEG_TRAIN_IDLE;

  self->state = state;
  gtk_widget_set_sensitive (GTK_WIDGET (self->train_button), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->finetune_button), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->pause_button), state == EMSEG_TRAIN_RUNNING);
  gtk_widget_set_sensitive (GTK_WIDGET (self->resume_button), state == EMSEG_TRAIN_PAUSED);
  gtk_widget_set_sensitive (GTK_WIDGET (self->stop_button), !idle);
  /* hyperparameters are fixed while a run uses them */
  gtk_widget_set_sensitive (GTK_WIDGET (self->loss_dropdown), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->model_dropdown), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->epochs_spin), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->lr_spin), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->dropout_spin), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->long_skip_check), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->short_skip_check), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->augment_check), idle);
}

EmsegTrainState
emseg_train_panel_get_state (EmsegTrainPanel *self)
{
  return self->state;
}

void
emseg_train_panel_set_status (EmsegTrainPanel *self, const char *text)
{
  gtk_label_set_text (self->status_label, text);
}

void
emseg_train_panel_reset (EmsegTrainPanel *self)
{
  emseg_loss_plot_clear (self->loss_plot);
  emseg_heatmap_set_layers (self->heatmap, NULL, 0);
  self->step_series = self->train_series = self->val_series = -1;
  self->run = 0;
  gtk_progress_bar_set_fraction (self->progress, 0.0);
  gtk_progress_bar_set_text (self->progress, "idle");
}

void
emseg_train_panel_begin_run (EmsegTrainPanel *self, const char *const *layer_names, guint n_layers)
{
  static const GdkRGBA step_color = { 0.55, 0.55, 0.55, 1.0 };
  static const GdkRGBA train_color = { 0.12, 0.47, 0.71, 1.0 };
  static const GdkRGBA val_color = { 0.89, 0.40, 0.05, 1.0 };

  /* The finished run's train curve stays, renamed and dashed, for comparison; its noisy
   * step curve and the older comparisons are dropped to keep the plot legible. */
  if (self->train_series >= 0 && emseg_loss_plot_get_n_points (self->loss_plot, (guint) self->train_series) > 0)
    {
      static const GdkRGBA old_color = { 0.12, 0.47, 0.71, 0.45 };
      const double *px, *py;
      gsize n = emseg_loss_plot_get_points (self->loss_plot, (guint) self->train_series, &px, &py);
      g_autofree double *x = g_memdup2 (px, n * sizeof (double));
      g_autofree double *y = g_memdup2 (py, n * sizeof (double));
      g_autofree char *name = g_strdup_printf ("run %u train", self->run);
      guint s;

      emseg_loss_plot_clear (self->loss_plot);
      s = emseg_loss_plot_add_series (self->loss_plot, name, &old_color, 0.0, TRUE);
      emseg_loss_plot_set_points (self->loss_plot, s, x, y, n);
    }
  else
    emseg_loss_plot_clear (self->loss_plot);

  self->run++;
  self->step_series = (int) emseg_loss_plot_add_series (self->loss_plot, "step loss (smoothed)", &step_color, 0.9, FALSE);
  self->train_series = (int) emseg_loss_plot_add_series (self->loss_plot, "train loss", &train_color, 0.0, FALSE);
  self->val_series = (int) emseg_loss_plot_add_series (self->loss_plot, "validation loss", &val_color, 0.0, FALSE);
  emseg_heatmap_set_layers (self->heatmap, layer_names, n_layers);
  gtk_progress_bar_set_fraction (self->progress, 0.0);
  gtk_progress_bar_set_text (self->progress, "starting…");
}

void
emseg_train_panel_add_step (EmsegTrainPanel *self, double epoch_pos, double loss)
{
  g_return_if_fail (self->step_series >= 0);
  emseg_loss_plot_append (self->loss_plot, (guint) self->step_series, epoch_pos, loss);
}

void
emseg_train_panel_add_epoch (EmsegTrainPanel *self, guint epoch, double train_loss,
                             double val_loss, const float *layer_updates)
{
  g_return_if_fail (self->train_series >= 0);
  emseg_loss_plot_append (self->loss_plot, (guint) self->train_series, epoch, train_loss);
  if (isfinite (val_loss))
    emseg_loss_plot_append (self->loss_plot, (guint) self->val_series, epoch, val_loss);
  if (layer_updates != NULL && emseg_heatmap_get_n_layers (self->heatmap) > 0)
    emseg_heatmap_append_epoch (self->heatmap, layer_updates);
}

void
emseg_train_panel_set_progress (EmsegTrainPanel *self, double fraction, guint epoch,
                                guint n_epochs, guint64 step, double seconds_left)
{
  g_autofree char *eta = NULL;
  g_autofree char *text = NULL;

  if (seconds_left >= 0)
    eta = g_strdup_printf (" · %u:%02u left", (guint) (seconds_left / 60), (guint) fmod (seconds_left, 60));
  text = g_strdup_printf ("epoch %u/%u · step %" G_GUINT64_FORMAT "%s", epoch, n_epochs, step,
                          eta ? eta : "");
  gtk_progress_bar_set_fraction (self->progress, CLAMP (fraction, 0.0, 1.0));
  gtk_progress_bar_set_text (self->progress, text);
}

void
emseg_train_panel_set_progress_text (EmsegTrainPanel *self, double fraction, const char *text)
{
  gtk_progress_bar_set_fraction (self->progress, CLAMP (fraction, 0.0, 1.0));
  gtk_progress_bar_set_text (self->progress, text);
}

EmsegLossPlot *
emseg_train_panel_get_loss_plot (EmsegTrainPanel *self)
{
  return self->loss_plot;
}

EmsegHeatmap *
emseg_train_panel_get_heatmap (EmsegTrainPanel *self)
{
  return self->heatmap;
}

static void
train_clicked (EmsegTrainPanel *self)
{
  g_signal_emit (self, signals[SIGNAL_TRAIN], 0, FALSE);
}

static void
finetune_clicked (EmsegTrainPanel *self)
{
  g_signal_emit (self, signals[SIGNAL_TRAIN], 0, TRUE);
}

static void
pause_clicked (EmsegTrainPanel *self)
{
  g_signal_emit (self, signals[SIGNAL_PAUSE], 0);
}

static void
resume_clicked (EmsegTrainPanel *self)
{
  g_signal_emit (self, signals[SIGNAL_RESUME], 0);
}

static void
stop_clicked (EmsegTrainPanel *self)
{
  g_signal_emit (self, signals[SIGNAL_STOP], 0);
}

static void
emseg_train_panel_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), EMSEG_TYPE_TRAIN_PANEL);
  G_OBJECT_CLASS (emseg_train_panel_parent_class)->dispose (object);
}

static void
emseg_train_panel_class_init (EmsegTrainPanelClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  G_OBJECT_CLASS (klass)->dispose = emseg_train_panel_dispose;

  signals[SIGNAL_TRAIN] = g_signal_new ("train-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                        0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_BOOLEAN);
  signals[SIGNAL_PAUSE] = g_signal_new ("pause-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                        0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[SIGNAL_RESUME] = g_signal_new ("resume-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[SIGNAL_STOP] = g_signal_new ("stop-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                       0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  g_type_ensure (EMSEG_TYPE_LOSS_PLOT);
  g_type_ensure (EMSEG_TYPE_HEATMAP);
  gtk_widget_class_set_template_from_resource (widget_class, "/org/emseg/Workbench/emseg-train-panel.ui");
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, loss_dropdown);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, model_dropdown);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, epochs_spin);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, lr_spin);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, dropout_spin);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, long_skip_check);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, short_skip_check);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, augment_check);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, train_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, finetune_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, pause_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, resume_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, stop_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, progress);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, status_label);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, loss_plot);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, heatmap);
  gtk_widget_class_bind_template_callback (widget_class, train_clicked);
  gtk_widget_class_bind_template_callback (widget_class, finetune_clicked);
  gtk_widget_class_bind_template_callback (widget_class, pause_clicked);
  gtk_widget_class_bind_template_callback (widget_class, resume_clicked);
  gtk_widget_class_bind_template_callback (widget_class, stop_clicked);
}

static void
emseg_train_panel_init (EmsegTrainPanel *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->step_series = self->train_series = self->val_series = -1;
  emseg_loss_plot_set_axis_labels (self->loss_plot, "epoch", "loss");
  emseg_train_panel_set_state (self, EMSEG_TRAIN_IDLE);
}

GtkWidget *
emseg_train_panel_new (void)
{
  return g_object_new (EMSEG_TYPE_TRAIN_PANEL, NULL);
}
