/* emseg-loss-plot.c — see the header. The data range is recomputed per draw (a few
 * thousand points at most), which keeps appends O(1) and the code free of stale caches.
 * Non-finite values (a diverged loss) are skipped, not plotted as spikes to infinity. */
#include "emseg-loss-plot.h"

#include <math.h>

#include "emseg-plot-util.h"

typedef struct {
  char *name;
  GdkRGBA color;
  double smoothing;
  gboolean dashed;
  GArray *x, *y;  /* double, same length */
} Series;

struct _EmsegLossPlot {
  GtkWidget parent_instance;

  /* owned */
  GPtrArray *series; /* Series* */
  char *x_label, *y_label;
  gboolean legend_bottom;

  /* layout of the last draw, for hover lookups */
  double px0, py0, px1, py1;      /* plot area in widget space */
  double xmin, xmax, ymin, ymax;  /* data range mapped onto it */
  gboolean have_layout;

  gboolean hovering;
  double hover_x, hover_y;
};

G_DEFINE_FINAL_TYPE (EmsegLossPlot, emseg_loss_plot, GTK_TYPE_WIDGET)

static void
series_free (gpointer data)
{
  Series *s = data;

  g_free (s->name);
  g_array_unref (s->x);
  g_array_unref (s->y);
  g_free (s);
}

GtkWidget *
emseg_loss_plot_new (void)
{
  return g_object_new (EMSEG_TYPE_LOSS_PLOT, NULL);
}

void
emseg_loss_plot_set_axis_labels (EmsegLossPlot *self, const char *x_label, const char *y_label)
{
  g_free (self->x_label);
  g_free (self->y_label);
  self->x_label = g_strdup (x_label);
  self->y_label = g_strdup (y_label);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
emseg_loss_plot_set_legend_bottom (EmsegLossPlot *self, gboolean bottom)
{
  self->legend_bottom = bottom;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
emseg_loss_plot_add_series (EmsegLossPlot *self, const char *name, const GdkRGBA *color,
                            double smoothing, gboolean dashed)
{
  Series *s = g_new0 (Series, 1);

  s->name = g_strdup (name);
  s->color = *color;
  s->smoothing = CLAMP (smoothing, 0.0, 0.999);
  s->dashed = dashed;
  s->x = g_array_new (FALSE, FALSE, sizeof (double));
  s->y = g_array_new (FALSE, FALSE, sizeof (double));
  g_ptr_array_add (self->series, s);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return self->series->len - 1;
}

guint
emseg_loss_plot_get_n_series (EmsegLossPlot *self)
{
  return self->series->len;
}

void
emseg_loss_plot_append (EmsegLossPlot *self, guint series, double x, double y)
{
  Series *s;

  g_return_if_fail (series < self->series->len);
  s = g_ptr_array_index (self->series, series);
  g_array_append_val (s->x, x);
  g_array_append_val (s->y, y);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
emseg_loss_plot_set_points (EmsegLossPlot *self, guint series, const double *x, const double *y,
                            gsize n)
{
  Series *s;

  g_return_if_fail (series < self->series->len);
  s = g_ptr_array_index (self->series, series);
  g_array_set_size (s->x, 0);
  g_array_set_size (s->y, 0);
  g_array_append_vals (s->x, x, n);
  g_array_append_vals (s->y, y, n);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

gsize
emseg_loss_plot_get_n_points (EmsegLossPlot *self, guint series)
{
  g_return_val_if_fail (series < self->series->len, 0);
  return ((Series *) g_ptr_array_index (self->series, series))->x->len;
}

gsize
emseg_loss_plot_get_points (EmsegLossPlot *self, guint series, const double **x, const double **y)
{
  Series *s;

  g_return_val_if_fail (series < self->series->len, 0);
  s = g_ptr_array_index (self->series, series);
  *x = (const double *) (gpointer) s->x->data;
  *y = (const double *) (gpointer) s->y->data;
  return s->x->len;
}

void
emseg_loss_plot_clear (EmsegLossPlot *self)
{
  g_ptr_array_set_size (self->series, 0);
  self->hovering = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static double
map_x (EmsegLossPlot *self, double x)
{
  return self->px0 + (x - self->xmin) / (self->xmax - self->xmin) * (self->px1 - self->px0);
}

static double
map_y (EmsegLossPlot *self, double y)
{
  return self->py1 - (y - self->ymin) / (self->ymax - self->ymin) * (self->py1 - self->py0);
}

static void
compute_range (EmsegLossPlot *self)
{
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;

  for (guint k = 0; k < self->series->len; k++)
    {
      Series *s = g_ptr_array_index (self->series, k);

      for (guint i = 0; i < s->x->len; i++)
        {
          double x = g_array_index (s->x, double, i);
          double y = g_array_index (s->y, double, i);

          if (!isfinite (x) || !isfinite (y))
            continue;
          xmin = MIN (xmin, x);
          xmax = MAX (xmax, x);
          ymin = MIN (ymin, y);
          ymax = MAX (ymax, y);
        }
    }
  if (!isfinite (xmin))
    xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax - xmin < 1e-12)
    xmax = xmin + 1;
  if (ymax - ymin < 1e-12)
    ymin -= 0.5, ymax += 0.5;
  /* a little headroom so the curve does not run along the frame */
  self->xmin = xmin;
  self->xmax = xmax;
  self->ymin = ymin - 0.05 * (ymax - ymin);
  self->ymax = ymax + 0.05 * (ymax - ymin);
}

static void
draw_series (EmsegLossPlot *self, cairo_t *cr, Series *s)
{
  double ema = NAN;
  gboolean pen_down = FALSE;

  cairo_save (cr);
  cairo_rectangle (cr, self->px0, self->py0, self->px1 - self->px0, self->py1 - self->py0);
  cairo_clip (cr);
  if (s->dashed)
    cairo_set_dash (cr, (double[]){ 5.0, 3.0 }, 2, 0);

  /* raw values; faint when a smoothed line goes on top */
  cairo_set_line_width (cr, s->smoothing > 0 ? 1.0 : 2.0);
  cairo_set_source_rgba (cr, s->color.red, s->color.green, s->color.blue,
                         s->smoothing > 0 ? 0.3 * s->color.alpha : s->color.alpha);
  for (guint i = 0; i < s->x->len; i++)
    {
      double x = g_array_index (s->x, double, i), y = g_array_index (s->y, double, i);

      if (!isfinite (x) || !isfinite (y))
        {
          pen_down = FALSE;
          continue;
        }
      if (pen_down)
        cairo_line_to (cr, map_x (self, x), map_y (self, y));
      else
        cairo_move_to (cr, map_x (self, x), map_y (self, y));
      pen_down = TRUE;
    }
  cairo_stroke (cr);
  if (s->x->len == 1 || s->smoothing == 0)
    for (guint i = 0; i < s->x->len && s->x->len <= 200; i++)
      {
        double x = g_array_index (s->x, double, i), y = g_array_index (s->y, double, i);

        if (!isfinite (x) || !isfinite (y))
          continue;
        cairo_arc (cr, map_x (self, x), map_y (self, y), 2.5, 0, 2 * G_PI);
        cairo_fill (cr);
      }

  if (s->smoothing > 0)
    {
      pen_down = FALSE;
      cairo_set_line_width (cr, 2.0);
      cairo_set_source_rgba (cr, s->color.red, s->color.green, s->color.blue, s->color.alpha);
      for (guint i = 0; i < s->x->len; i++)
        {
          double x = g_array_index (s->x, double, i), y = g_array_index (s->y, double, i);

          if (!isfinite (x) || !isfinite (y))
            continue;
          ema = isnan (ema) ? y : s->smoothing * ema + (1 - s->smoothing) * y;
          if (pen_down)
            cairo_line_to (cr, map_x (self, x), map_y (self, ema));
          else
            cairo_move_to (cr, map_x (self, x), map_y (self, ema));
          pen_down = TRUE;
        }
      cairo_stroke (cr);
    }
  cairo_restore (cr);
}

/* Nearest finite point (in widget distance) within 24 px of (wx, wy). */
static gboolean
find_nearest (EmsegLossPlot *self, double wx, double wy, guint *series, guint *index)
{
  double best = 24.0 * 24.0;
  gboolean found = FALSE;

  if (!self->have_layout)
    return FALSE;
  for (guint k = 0; k < self->series->len; k++)
    {
      Series *s = g_ptr_array_index (self->series, k);

      for (guint i = 0; i < s->x->len; i++)
        {
          double x = g_array_index (s->x, double, i), y = g_array_index (s->y, double, i);
          double dx, dy;

          if (!isfinite (x) || !isfinite (y))
            continue;
          dx = map_x (self, x) - wx;
          dy = map_y (self, y) - wy;
          if (dx * dx + dy * dy < best)
            {
              best = dx * dx + dy * dy;
              *series = k;
              *index = i;
              found = TRUE;
            }
        }
    }
  return found;
}

char *
emseg_loss_plot_hover_text (EmsegLossPlot *self, double x, double y)
{
  guint k, i;
  Series *s;

  if (!find_nearest (self, x, y, &k, &i))
    return NULL;
  s = g_ptr_array_index (self->series, k);
  return g_strdup_printf ("%s · %s %g: %.4g", s->name, self->x_label ? self->x_label : "x",
                          g_array_index (s->x, double, i), g_array_index (s->y, double, i));
}

void
emseg_loss_plot_draw (EmsegLossPlot *self, cairo_t *cr, int width, int height)
{
  double first, step, tw, th;
  double legend_y;
  char buf[64];

  cairo_save (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);

  compute_range (self);
  self->px0 = 56;
  self->py0 = 10;
  self->px1 = MAX (width - 12, self->px0 + 10);
  self->py1 = MAX (height - 40, self->py0 + 10);
  self->have_layout = TRUE;

  /* grid and ticks */
  cairo_set_line_width (cr, 1.0);
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  emseg_plot_nice_ticks (self->xmin, self->xmax, MAX (2, (int) ((self->px1 - self->px0) / 70)), &first, &step);
  for (double t = first; t <= self->xmax + step * 1e-6; t += step)
    {
      double x = round (map_x (self, t)) + 0.5;

      cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
      cairo_move_to (cr, x, self->py0);
      cairo_line_to (cr, x, self->py1);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
      g_snprintf (buf, sizeof buf, "%g", fabs (t) < step * 1e-6 ? 0.0 : t);
      emseg_plot_text (cr, x, self->py1 + 3, 0.5, 0.0, buf);
    }
  emseg_plot_nice_ticks (self->ymin, self->ymax, MAX (2, (int) ((self->py1 - self->py0) / 28)), &first, &step);
  for (double t = first; t <= self->ymax + step * 1e-6; t += step)
    {
      double y = round (map_y (self, t)) + 0.5;

      cairo_set_source_rgb (cr, 0.9, 0.9, 0.9);
      cairo_move_to (cr, self->px0, y);
      cairo_line_to (cr, self->px1, y);
      cairo_stroke (cr);
      cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
      g_snprintf (buf, sizeof buf, "%.3g", fabs (t) < step * 1e-6 ? 0.0 : t);
      emseg_plot_text (cr, self->px0 - 4, y, 1.0, 0.5, buf);
    }

  /* frame and axis labels */
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_rectangle (cr, self->px0 + 0.5, self->py0 + 0.5, self->px1 - self->px0 - 1, self->py1 - self->py0 - 1);
  cairo_stroke (cr);
  if (self->x_label)
    emseg_plot_text (cr, (self->px0 + self->px1) / 2, height - 2, 0.5, 1.0, self->x_label);
  if (self->y_label)
    {
      cairo_save (cr);
      cairo_translate (cr, 2, (self->py0 + self->py1) / 2);
      cairo_rotate (cr, -G_PI / 2);
      emseg_plot_text (cr, 0, 0, 0.5, 0.0, self->y_label);
      cairo_restore (cr);
    }

  for (guint k = 0; k < self->series->len; k++)
    draw_series (self, cr, g_ptr_array_index (self->series, k));

  /* legend, top or bottom right inside the frame */
  legend_y = self->py0 + 6;
  if (self->legend_bottom && self->series->len > 0)
    {
      /* every entry is one line of the same font */
      emseg_plot_text_size (cr, "Ag", &tw, &th);
      legend_y = MAX (self->py1 - 4 - (th + 2) * self->series->len, self->py0 + 2);
    }
  for (guint k = 0; k < self->series->len; k++)
    {
      Series *s = g_ptr_array_index (self->series, k);

      emseg_plot_text_size (cr, s->name, &tw, &th);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.85);
      cairo_rectangle (cr, self->px1 - tw - 36, legend_y - 1, tw + 32, th + 2);
      cairo_fill (cr);
      cairo_set_source_rgba (cr, s->color.red, s->color.green, s->color.blue, s->color.alpha);
      cairo_set_line_width (cr, 2.0);
      if (s->dashed)
        cairo_set_dash (cr, (double[]){ 5.0, 3.0 }, 2, 0);
      cairo_move_to (cr, self->px1 - tw - 32, legend_y + th / 2);
      cairo_line_to (cr, self->px1 - tw - 12, legend_y + th / 2);
      cairo_stroke (cr);
      cairo_set_dash (cr, NULL, 0, 0);
      cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
      emseg_plot_text (cr, self->px1 - 6, legend_y, 1.0, 0.0, s->name);
      legend_y += th + 2;
    }

  /* hover marker and value */
  if (self->hovering)
    {
      guint k, i;

      if (find_nearest (self, self->hover_x, self->hover_y, &k, &i))
        {
          Series *s = g_ptr_array_index (self->series, k);
          g_autofree char *text = emseg_loss_plot_hover_text (self, self->hover_x, self->hover_y);
          double mx = map_x (self, g_array_index (s->x, double, i));
          double my = map_y (self, g_array_index (s->y, double, i));
          double bx, by;

          cairo_set_source_rgb (cr, 0, 0, 0);
          /* a fresh path: text drawing leaves a current point the arc would join */
          cairo_new_path (cr);
          cairo_arc (cr, mx, my, 4, 0, 2 * G_PI);
          cairo_stroke (cr);
          emseg_plot_text_size (cr, text, &tw, &th);
          bx = CLAMP (mx + 8, self->px0, MAX (self->px0, self->px1 - tw - 8));
          by = CLAMP (my - th - 8, self->py0, self->py1 - th - 4);
          cairo_set_source_rgba (cr, 1, 1, 0.85, 0.95);
          cairo_rectangle (cr, bx, by, tw + 6, th + 4);
          cairo_fill_preserve (cr);
          cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
          cairo_set_line_width (cr, 1);
          cairo_stroke (cr);
          emseg_plot_text (cr, bx + 3, by + 2, 0, 0, text);
        }
    }
  cairo_restore (cr);
}

static void
emseg_loss_plot_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  int w = gtk_widget_get_width (widget);
  int h = gtk_widget_get_height (widget);
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));

  emseg_loss_plot_draw (EMSEG_LOSS_PLOT (widget), cr, w, h);
  cairo_destroy (cr);
}

static void
motion_cb (GtkEventControllerMotion *motion, double x, double y, EmsegLossPlot *self)
{
  self->hovering = TRUE;
  self->hover_x = x;
  self->hover_y = y;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
leave_cb (GtkEventControllerMotion *motion, EmsegLossPlot *self)
{
  self->hovering = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
emseg_loss_plot_measure (GtkWidget *widget, GtkOrientation orientation, int for_size, int *minimum,
                         int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = orientation == GTK_ORIENTATION_HORIZONTAL ? 160 : 120;
  *natural = orientation == GTK_ORIENTATION_HORIZONTAL ? 320 : 200;
}

static void
emseg_loss_plot_finalize (GObject *object)
{
  EmsegLossPlot *self = EMSEG_LOSS_PLOT (object);

  g_ptr_array_unref (self->series);
  g_free (self->x_label);
  g_free (self->y_label);
  G_OBJECT_CLASS (emseg_loss_plot_parent_class)->finalize (object);
}

static void
emseg_loss_plot_class_init (EmsegLossPlotClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = emseg_loss_plot_finalize;
  GTK_WIDGET_CLASS (klass)->snapshot = emseg_loss_plot_snapshot;
  GTK_WIDGET_CLASS (klass)->measure = emseg_loss_plot_measure;
  gtk_widget_class_set_css_name (GTK_WIDGET_CLASS (klass), "lossplot");
}

static void
emseg_loss_plot_init (EmsegLossPlot *self)
{
  GtkEventController *motion = gtk_event_controller_motion_new ();

  self->series = g_ptr_array_new_with_free_func (series_free);
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);
}
