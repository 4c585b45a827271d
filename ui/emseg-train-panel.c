/* emseg-train-panel.c — see the header. Widgets come from emseg-train-panel.ui; the
 * series indices of the current run are remembered so appends go to the right curves.
 *
 * Both plots are rebuilt whenever the choice of earlier runs changes: the shown earlier
 * runs' series first (dashed), then the current run's, copied back. Rebuilding costs a
 * few thousand doubles at most and keeps the plots free of a remove-series API. */
#include "emseg-train-panel.h"

#include "emseg-conv-kernel.h"

#include <math.h>
#include <string.h>

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
  GtkCheckButton *bf16_check;
  GtkEntry *val_entry;
  GtkSpinButton *border_spin;
  GtkButton *train_button;
  GtkButton *finetune_button;
  GtkButton *pause_button;
  GtkButton *resume_button;
  GtkButton *stop_button;
  GtkProgressBar *progress;
  GtkLabel *status_label;
  EmsegLossPlot *loss_plot;
  EmsegLossPlot *score_plot;
  EmsegHeatmap *heatmap;
  GtkMenuButton *runs_button;
  GtkExpander *params_expander;
  GtkBox *runs_box;

  /* owned */
  GPtrArray *earlier;        /* EarlierRun*, in the order added */

  /* state */
  EmsegTrainState state;
  guint run;                 /* runs begun so far */
  /* series of the current run, -1 before any: in loss_plot, then in score_plot */
  int step_series, train_series, val_series;
  int vrand_series, vinfo_series;
};

/* An earlier run's epoch curves, copied from an EmsegRunCurves. */
typedef struct {
  gint64 id;
  char *label;
  GArray *epoch, *train, *val, *vrand, *vinfo; /* double, one per epoch; NAN = none */
  gboolean shown;
  GtkCheckButton *check;     /* its row in the popover (owned by runs_box) */
} EarlierRun;

static void
earlier_run_free (gpointer data)
{
  EarlierRun *r = data;

  g_free (r->label);
  g_array_unref (r->epoch);
  g_array_unref (r->train);
  g_array_unref (r->val);
  g_array_unref (r->vrand);
  g_array_unref (r->vinfo);
  g_free (r);
}

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

/* The losses of the dropdown, in its order. */
static const EngLossKind losses[] = { ENG_LOSS_BCE, ENG_LOSS_DICE, ENG_LOSS_DICE_CELL };

void
emseg_train_panel_get_params (EmsegTrainPanel *self, EmsegTrainParams *params)
{
  params->loss = losses[MIN (gtk_drop_down_get_selected (self->loss_dropdown), G_N_ELEMENTS (losses) - 1)];
  params->epochs = (guint) gtk_spin_button_get_value_as_int (self->epochs_spin);
  params->learning_rate = gtk_spin_button_get_value (self->lr_spin);
  params->dropout = gtk_spin_button_get_value (self->dropout_spin);
  params->long_skip = gtk_check_button_get_active (self->long_skip_check);
  params->short_skip = gtk_check_button_get_active (self->short_skip_check);
  params->augment = gtk_check_button_get_active (self->augment_check);
  params->bf16 = gtk_check_button_get_active (self->bf16_check);
  params->val_slices = gtk_editable_get_text (GTK_EDITABLE (self->val_entry));
  params->border_weight = gtk_spin_button_get_value (self->border_spin);
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
  gtk_widget_set_sensitive (GTK_WIDGET (self->bf16_check), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->val_entry), idle);
  gtk_widget_set_sensitive (GTK_WIDGET (self->border_spin), idle);
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
emseg_train_panel_set_has_model (EmsegTrainPanel *self, gboolean has_model)
{
  /* the blue button is the likely next step: from a model, refining it is cheaper than
   * starting over */
  if (has_model)
    {
      gtk_widget_remove_css_class (GTK_WIDGET (self->train_button), "suggested-action");
      gtk_widget_add_css_class (GTK_WIDGET (self->finetune_button), "suggested-action");
    }
  else
    {
      gtk_widget_remove_css_class (GTK_WIDGET (self->finetune_button), "suggested-action");
      gtk_widget_add_css_class (GTK_WIDGET (self->train_button), "suggested-action");
    }
}

const char *
emseg_train_panel_get_status (EmsegTrainPanel *self)
{
  return gtk_label_get_text (self->status_label);
}

void
emseg_train_panel_reset (EmsegTrainPanel *self)
{
  emseg_train_panel_clear_earlier_runs (self);
  emseg_loss_plot_clear (self->loss_plot);
  emseg_loss_plot_clear (self->score_plot);
  emseg_heatmap_set_layers (self->heatmap, NULL, 0);
  self->step_series = self->train_series = self->val_series = -1;
  self->vrand_series = self->vinfo_series = -1;
  self->run = 0;
  gtk_progress_bar_set_fraction (self->progress, 0.0);
  gtk_progress_bar_set_text (self->progress, "idle");
}

/* ---- series of both plots --------------------------------------------------------- */

static const GdkRGBA step_color = { 0.55, 0.55, 0.55, 1.0 };
static const GdkRGBA train_color = { 0.12, 0.47, 0.71, 1.0 };
static const GdkRGBA val_color = { 0.89, 0.40, 0.05, 1.0 };
static const GdkRGBA vrand_color = { 0.17, 0.63, 0.17, 1.0 };
static const GdkRGBA vinfo_color = { 0.58, 0.40, 0.74, 1.0 };

/* Earlier runs cycle through these; a run's validation / V_info curve is its colour,
 * fainter. */
static const GdkRGBA earlier_colors[] = {
  { 0.84, 0.15, 0.16, 1.0 }, { 0.55, 0.34, 0.29, 1.0 }, { 0.40, 0.40, 0.40, 1.0 },
  { 0.09, 0.75, 0.81, 1.0 }, { 0.74, 0.74, 0.13, 1.0 }, { 0.89, 0.47, 0.76, 1.0 },
};

/* Points of one series (copied), to put back after a rebuild. */
typedef struct {
  double *x, *y;
  gsize n;
} Saved;

static void
save_series (EmsegLossPlot *plot, int series, Saved *out)
{
  const double *x, *y;

  memset (out, 0, sizeof *out);
  if (series < 0)
    return;
  out->n = emseg_loss_plot_get_points (plot, (guint) series, &x, &y);
  out->x = g_memdup2 (x, out->n * sizeof (double));
  out->y = g_memdup2 (y, out->n * sizeof (double));
}

/* Adds one of the current run's series, with saved's points (freed) if given. */
static int
restore_series (EmsegLossPlot *plot, Saved *saved, const char *name, const GdkRGBA *color, double smoothing)
{
  guint s = emseg_loss_plot_add_series (plot, name, color, smoothing, FALSE);

  if (saved != NULL)
    {
      emseg_loss_plot_set_points (plot, s, saved->x, saved->y, saved->n);
      g_free (saved->x);
      g_free (saved->y);
    }
  return (int) s;
}

/* The current run's five series, after the earlier runs' ones: empty for a new run, or
 * saved[5] (step, train, val, V_rand, V_info) put back after a rebuild. */
static void
add_current_series (EmsegTrainPanel *self, Saved *saved)
{
  self->step_series = restore_series (self->loss_plot, saved ? &saved[0] : NULL, "step loss (smoothed)", &step_color, 0.9);
  self->train_series = restore_series (self->loss_plot, saved ? &saved[1] : NULL, "train loss", &train_color, 0.0);
  self->val_series = restore_series (self->loss_plot, saved ? &saved[2] : NULL, "validation loss", &val_color, 0.0);
  self->vrand_series = restore_series (self->score_plot, saved ? &saved[3] : NULL, "V_rand", &vrand_color, 0.0);
  self->vinfo_series = restore_series (self->score_plot, saved ? &saved[4] : NULL, "V_info", &vinfo_color, 0.0);
}

static gboolean
any_finite (GArray *values)
{
  for (guint i = 0; i < values->len; i++)
    if (isfinite (g_array_index (values, double, i)))
      return TRUE;
  return FALSE;
}

static void
add_earlier_series (EmsegLossPlot *plot, const EarlierRun *r, GArray *values, const char *what,
                    const GdkRGBA *color)
{
  g_autofree char *name = NULL;
  guint s;

  if (!any_finite (values))
    return;
  name = g_strdup_printf ("run %" G_GINT64_FORMAT " %s", r->id, what);
  s = emseg_loss_plot_add_series (plot, name, color, 0.0, TRUE);
  emseg_loss_plot_set_points (plot, s, (const double *) (gpointer) r->epoch->data,
                              (const double *) (gpointer) values->data, values->len);
}

/* Both plots from scratch: the shown earlier runs, then the current run (if begun). */
static void
rebuild_plots (EmsegTrainPanel *self)
{
  Saved saved[5];
  gboolean current = self->train_series >= 0;

  save_series (self->loss_plot, self->step_series, &saved[0]);
  save_series (self->loss_plot, self->train_series, &saved[1]);
  save_series (self->loss_plot, self->val_series, &saved[2]);
  save_series (self->score_plot, self->vrand_series, &saved[3]);
  save_series (self->score_plot, self->vinfo_series, &saved[4]);
  emseg_loss_plot_clear (self->loss_plot);
  emseg_loss_plot_clear (self->score_plot);

  for (guint i = 0; i < self->earlier->len; i++)
    {
      const EarlierRun *r = g_ptr_array_index (self->earlier, i);
      GdkRGBA color = earlier_colors[i % G_N_ELEMENTS (earlier_colors)];
      GdkRGBA faint = color;

      if (!r->shown)
        continue;
      faint.alpha = 0.5;
      add_earlier_series (self->loss_plot, r, r->train, "train", &color);
      add_earlier_series (self->loss_plot, r, r->val, "validation", &faint);
      add_earlier_series (self->score_plot, r, r->vrand, "V_rand", &color);
      add_earlier_series (self->score_plot, r, r->vinfo, "V_info", &faint);
    }
  if (current)
    add_current_series (self, saved);
}

void
emseg_train_panel_begin_run (EmsegTrainPanel *self, const char *const *layer_names, guint n_layers)
{
  /* Curves coming (a run starting, or a reopened one) fold the hyperparameters away: the
   * curves, scores and heatmap need the height; one click unfolds them. */
  gtk_expander_set_expanded (self->params_expander, FALSE);
  /* the previous run's curves go; earlier runs stay as chosen in the popover */
  self->step_series = self->train_series = self->val_series = -1;
  self->vrand_series = self->vinfo_series = -1;
  rebuild_plots (self);
  self->run++;
  add_current_series (self, NULL);
  emseg_heatmap_set_layers (self->heatmap, layer_names, n_layers);
  gtk_progress_bar_set_fraction (self->progress, 0.0);
  gtk_progress_bar_set_text (self->progress, "starting…");
}

void
emseg_train_panel_add_scores (EmsegTrainPanel *self, guint epoch, double v_rand, double v_info)
{
  g_return_if_fail (self->vrand_series >= 0);
  if (isfinite (v_rand))
    emseg_loss_plot_append (self->score_plot, (guint) self->vrand_series, epoch, v_rand);
  if (isfinite (v_info))
    emseg_loss_plot_append (self->score_plot, (guint) self->vinfo_series, epoch, v_info);
}

/* ---- earlier runs ------------------------------------------------------------------ */

static void
update_runs_button (EmsegTrainPanel *self)
{
  guint shown = 0;
  g_autofree char *text = NULL;

  for (guint i = 0; i < self->earlier->len; i++)
    shown += ((EarlierRun *) g_ptr_array_index (self->earlier, i))->shown;
  text = self->earlier->len == 0 ? g_strdup ("Earlier runs")
                                 : g_strdup_printf ("Earlier runs (%u of %u)", shown, self->earlier->len);
  gtk_menu_button_set_label (self->runs_button, text);
}

static void
run_check_toggled (GtkCheckButton *check, EmsegTrainPanel *self)
{
  for (guint i = 0; i < self->earlier->len; i++)
    {
      EarlierRun *r = g_ptr_array_index (self->earlier, i);

      if (r->check == check)
        emseg_train_panel_set_earlier_run_shown (self, i, gtk_check_button_get_active (check));
    }
}

static void
clear_runs_box (EmsegTrainPanel *self)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->runs_box))) != NULL)
    gtk_box_remove (self->runs_box, child);
}

static void
show_no_runs_hint (EmsegTrainPanel *self)
{
  GtkWidget *hint = gtk_label_new ("No earlier runs in this project yet.");

  gtk_widget_add_css_class (hint, "dim-label");
  gtk_box_append (self->runs_box, hint);
}

void
emseg_train_panel_clear_earlier_runs (EmsegTrainPanel *self)
{
  g_ptr_array_set_size (self->earlier, 0);
  clear_runs_box (self);
  show_no_runs_hint (self);
  update_runs_button (self);
  rebuild_plots (self);
}

static GArray *
copy_values (const double *values, guint n)
{
  GArray *a = g_array_sized_new (FALSE, FALSE, sizeof (double), n);

  for (guint i = 0; i < n; i++)
    {
      double v = values != NULL ? values[i] : NAN;
      g_array_append_val (a, v);
    }
  return a;
}

void
emseg_train_panel_add_earlier_run (EmsegTrainPanel *self, const EmsegRunCurves *run, gboolean shown)
{
  EarlierRun *r = g_new0 (EarlierRun, 1);

  r->id = run->id;
  r->label = g_strdup (run->label);
  r->epoch = copy_values (run->epoch, run->n_epochs);
  r->train = copy_values (run->train_loss, run->n_epochs);
  r->val = copy_values (run->val_loss, run->n_epochs);
  r->vrand = copy_values (run->v_rand, run->n_epochs);
  r->vinfo = copy_values (run->v_info, run->n_epochs);
  r->shown = shown;
  if (self->earlier->len == 0)
    clear_runs_box (self); /* the "no runs" hint */
  r->check = GTK_CHECK_BUTTON (gtk_check_button_new_with_label (run->label));
  gtk_check_button_set_active (r->check, shown);
  g_signal_connect (r->check, "toggled", G_CALLBACK (run_check_toggled), self);
  gtk_box_append (self->runs_box, GTK_WIDGET (r->check));
  g_ptr_array_add (self->earlier, r);
  update_runs_button (self);
  if (shown)
    rebuild_plots (self);
}

guint
emseg_train_panel_get_n_earlier_runs (EmsegTrainPanel *self)
{
  return self->earlier->len;
}

void
emseg_train_panel_set_earlier_run_shown (EmsegTrainPanel *self, guint index, gboolean shown)
{
  EarlierRun *r;

  g_return_if_fail (index < self->earlier->len);
  r = g_ptr_array_index (self->earlier, index);
  if (r->shown == shown)
    return;
  r->shown = shown;
  if (gtk_check_button_get_active (r->check) != shown)
    gtk_check_button_set_active (r->check, shown); /* toggles back into here: no-op */
  update_runs_button (self);
  rebuild_plots (self);
}

gboolean
emseg_train_panel_get_earlier_run_shown (EmsegTrainPanel *self, guint index)
{
  g_return_val_if_fail (index < self->earlier->len, FALSE);
  return ((EarlierRun *) g_ptr_array_index (self->earlier, index))->shown;
}

void
emseg_train_panel_popup_earlier_runs (EmsegTrainPanel *self)
{
  gtk_menu_button_popup (self->runs_button);
}

GtkPopover *
emseg_train_panel_get_earlier_runs_popover (EmsegTrainPanel *self)
{
  return gtk_menu_button_get_popover (self->runs_button);
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
  if (isfinite (train_loss)) /* none for a fine-tune's starting weights (epoch 0) */
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

const char *
emseg_train_panel_get_progress_text (EmsegTrainPanel *self)
{
  return gtk_progress_bar_get_text (self->progress);
}

EmsegLossPlot *
emseg_train_panel_get_loss_plot (EmsegTrainPanel *self)
{
  return self->loss_plot;
}

EmsegLossPlot *
emseg_train_panel_get_score_plot (EmsegTrainPanel *self)
{
  return self->score_plot;
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
  EmsegTrainPanel *self = EMSEG_TRAIN_PANEL (object);

  gtk_widget_dispose_template (GTK_WIDGET (object), EMSEG_TYPE_TRAIN_PANEL);
  g_clear_pointer (&self->earlier, g_ptr_array_unref);
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
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, bf16_check);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, train_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, finetune_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, pause_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, resume_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, stop_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, progress);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, status_label);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, loss_plot);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, heatmap);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, score_plot);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, runs_button);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, params_expander);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, runs_box);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, val_entry);
  gtk_widget_class_bind_template_child (widget_class, EmsegTrainPanel, border_spin);
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
  self->earlier = g_ptr_array_new_with_free_func (earlier_run_free);
  self->step_series = self->train_series = self->val_series = -1;
  self->vrand_series = self->vinfo_series = -1;
  emseg_loss_plot_set_axis_labels (self->loss_plot, "epoch", "loss");
  emseg_loss_plot_set_axis_labels (self->score_plot, "epoch", "score");
  emseg_loss_plot_set_legend_bottom (self->score_plot, TRUE);
  show_no_runs_hint (self);
  /* on where the CPU has bfloat16 kernels: 1.10-1.36× faster epochs measured (README,
   * Performance), and the shipped model was trained so; elsewhere it would run in float32 */
  gtk_check_button_set_active (self->bf16_check, emseg_conv_bf16_fast ());
  emseg_train_panel_set_state (self, EMSEG_TRAIN_IDLE);
}

GtkWidget *
emseg_train_panel_new (void)
{
  return g_object_new (EMSEG_TYPE_TRAIN_PANEL, NULL);
}
