/* emseg-heatmap.c — see the header. Update magnitudes span orders of magnitude across
 * layers (the paper's point: without skips the early layers barely move), hence the log
 * scale; the range is taken over all finite positive values each draw. */
#include "emseg-heatmap.h"

#include <math.h>

#include "emseg-plot-util.h"

struct _EmsegHeatmap {
  GtkWidget parent_instance;

  /* owned */
  GPtrArray *names;  /* char*, n_layers */
  GArray *values;    /* float, (n_epochs, n_layers) */

  /* layout of the last draw, for hover */
  double cx0, cy0, cx1, cy1;  /* cell area */
  gboolean have_layout;
  double lmin, lmax;          /* log10 range of the colour scale */

  gboolean hovering;
  double hover_x, hover_y;
};

G_DEFINE_FINAL_TYPE (EmsegHeatmap, emseg_heatmap, GTK_TYPE_WIDGET)

GtkWidget *
emseg_heatmap_new (void)
{
  return g_object_new (EMSEG_TYPE_HEATMAP, NULL);
}

void
emseg_heatmap_set_layers (EmsegHeatmap *self, const char *const *names, guint n_layers)
{
  g_ptr_array_set_size (self->names, 0);
  for (guint i = 0; i < n_layers; i++)
    g_ptr_array_add (self->names, g_strdup (names[i]));
  g_array_set_size (self->values, 0);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
emseg_heatmap_get_n_layers (EmsegHeatmap *self)
{
  return self->names->len;
}

void
emseg_heatmap_append_epoch (EmsegHeatmap *self, const float *values)
{
  g_return_if_fail (self->names->len > 0);
  g_array_append_vals (self->values, values, self->names->len);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
emseg_heatmap_set_data (EmsegHeatmap *self, const float *values, guint n_epochs)
{
  g_return_if_fail (self->names->len > 0 || n_epochs == 0);
  g_array_set_size (self->values, 0);
  g_array_append_vals (self->values, values, (guint) (n_epochs * self->names->len));
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

guint
emseg_heatmap_get_n_epochs (EmsegHeatmap *self)
{
  return self->names->len ? self->values->len / self->names->len : 0;
}

static gboolean
cell_at (EmsegHeatmap *self, double x, double y, guint *epoch, guint *layer)
{
  guint ne = emseg_heatmap_get_n_epochs (self);
  guint nl = self->names->len;

  if (!self->have_layout || ne == 0 || nl == 0)
    return FALSE;
  if (x < self->cx0 || x >= self->cx1 || y < self->cy0 || y >= self->cy1)
    return FALSE;
  *epoch = MIN ((guint) ((x - self->cx0) / (self->cx1 - self->cx0) * ne), ne - 1);
  *layer = MIN ((guint) ((y - self->cy0) / (self->cy1 - self->cy0) * nl), nl - 1);
  return TRUE;
}

char *
emseg_heatmap_hover_text (EmsegHeatmap *self, double x, double y)
{
  guint e, l;

  if (!cell_at (self, x, y, &e, &l))
    return NULL;
  return g_strdup_printf ("layer %s · epoch %u: %.3g", (const char *) g_ptr_array_index (self->names, l),
                          e + 1, g_array_index (self->values, float, (gsize) e * self->names->len + l));
}

void
emseg_heatmap_draw (EmsegHeatmap *self, cairo_t *cr, int width, int height)
{
  guint nl = self->names->len;
  guint ne = emseg_heatmap_get_n_epochs (self);
  double lmin = INFINITY, lmax = -INFINITY;
  double bar_x0, bar_x1, first, step, cw, ch, tw, th;
  char buf[64];
  int label_every;

  cairo_save (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);

  for (guint i = 0; i < self->values->len; i++)
    {
      float v = g_array_index (self->values, float, i);

      if (v > 0 && isfinite (v))
        {
          lmin = MIN (lmin, log10 (v));
          lmax = MAX (lmax, log10 (v));
        }
    }
  if (!isfinite (lmin))
    lmin = -6, lmax = -2;
  if (lmax - lmin < 1e-6)
    lmin -= 0.5, lmax += 0.5;
  self->lmin = lmin;
  self->lmax = lmax;

  /* layout: layer names left (as wide as the longest, up to a third of the widget),
   * cells, colour bar right, epoch axis below */
  self->cx0 = 60;
  for (guint l = 0; l < nl; l++)
    {
      double name_w, name_h;

      emseg_plot_text_size (cr, g_ptr_array_index (self->names, l), &name_w, &name_h);
      self->cx0 = MAX (self->cx0, name_w + 8);
    }
  self->cx0 = MIN (self->cx0, MAX (60.0, width / 3.0));
  self->cy0 = 8;
  bar_x1 = width - 54;
  bar_x0 = bar_x1 - 12;
  self->cx1 = MAX (bar_x0 - 10, self->cx0 + 10);
  self->cy1 = MAX (height - 36, self->cy0 + 10);
  self->have_layout = TRUE;
  cw = ne ? (self->cx1 - self->cx0) / ne : 0;
  ch = nl ? (self->cy1 - self->cy0) / nl : 0;

  cairo_set_source_rgb (cr, 0.93, 0.93, 0.93);
  cairo_rectangle (cr, self->cx0, self->cy0, self->cx1 - self->cx0, self->cy1 - self->cy0);
  cairo_fill (cr);
  for (guint e = 0; e < ne; e++)
    for (guint l = 0; l < nl; l++)
      {
        float v = g_array_index (self->values, float, (gsize) e * nl + l);
        double rgb[3] = { 0.6, 0.6, 0.6 };

        if (v > 0 && isfinite (v))
          emseg_plot_viridis ((log10 (v) - lmin) / (lmax - lmin), rgb);
        cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
        /* cells overlap by a fraction of a pixel so no hairline seams show */
        cairo_rectangle (cr, self->cx0 + e * cw, self->cy0 + l * ch, cw + 0.5, ch + 0.5);
        cairo_fill (cr);
      }

  /* layer names, thinned to what fits */
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  label_every = nl ? MAX (1, (int) ceil (14.0 / MAX (ch, 1e-3))) : 1;
  for (guint l = 0; l < nl; l += (guint) label_every)
    emseg_plot_text (cr, self->cx0 - 4, self->cy0 + (l + 0.5) * ch, 1.0, 0.5,
                     g_ptr_array_index (self->names, l));
  if (nl == 0)
    emseg_plot_text (cr, (self->cx0 + self->cx1) / 2, (self->cy0 + self->cy1) / 2, 0.5, 0.5,
                     "no layer statistics yet");

  /* epoch axis */
  if (ne > 0)
    {
      emseg_plot_nice_ticks (1, ne, MAX (2, (int) ((self->cx1 - self->cx0) / 50)), &first, &step);
      step = MAX (step, 1);
      for (double t = MAX (first, 1); t <= ne + 1e-9; t += step)
        {
          g_snprintf (buf, sizeof buf, "%g", t);
          emseg_plot_text (cr, self->cx0 + (t - 0.5) * cw, self->cy1 + 3, 0.5, 0.0, buf);
        }
    }
  emseg_plot_text (cr, (self->cx0 + self->cx1) / 2, height - 2, 0.5, 1.0, "epoch");

  /* colour bar with ticks at integer powers of ten (or the ends when the range is narrow) */
  for (int py = (int) self->cy0; py < (int) self->cy1; py++)
    {
      double rgb[3];

      emseg_plot_viridis (1.0 - (py - self->cy0) / (self->cy1 - self->cy0), rgb);
      cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
      cairo_rectangle (cr, bar_x0, py, bar_x1 - bar_x0, 1);
      cairo_fill (cr);
    }
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  emseg_plot_nice_ticks (lmin, lmax, 5, &first, &step);
  step = MAX (step, lmax - lmin < 1 ? step : 1.0);
  for (double t = first; t <= lmax + 1e-9; t += step)
    {
      double y = self->cy1 - (t - lmin) / (lmax - lmin) * (self->cy1 - self->cy0);

      g_snprintf (buf, sizeof buf, "%.1e", pow (10.0, t));
      emseg_plot_text (cr, bar_x1 + 3, y, 0.0, 0.5, buf);
    }

  if (self->hovering)
    {
      g_autofree char *text = emseg_heatmap_hover_text (self, self->hover_x, self->hover_y);

      if (text != NULL)
        {
          double bx, by;

          emseg_plot_text_size (cr, text, &tw, &th);
          bx = CLAMP (self->hover_x + 10, 0, MAX (0, width - tw - 8));
          by = CLAMP (self->hover_y - th - 10, 0, MAX (0, height - th - 6));
          cairo_set_source_rgba (cr, 1, 1, 0.85, 0.95);
          cairo_rectangle (cr, bx, by, tw + 6, th + 4);
          cairo_fill (cr);
          cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
          emseg_plot_text (cr, bx + 3, by + 2, 0, 0, text);
        }
    }
  cairo_restore (cr);
}

static void
emseg_heatmap_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  int w = gtk_widget_get_width (widget);
  int h = gtk_widget_get_height (widget);
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));

  emseg_heatmap_draw (EMSEG_HEATMAP (widget), cr, w, h);
  cairo_destroy (cr);
}

static void
motion_cb (GtkEventControllerMotion *motion, double x, double y, EmsegHeatmap *self)
{
  self->hovering = TRUE;
  self->hover_x = x;
  self->hover_y = y;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
leave_cb (GtkEventControllerMotion *motion, EmsegHeatmap *self)
{
  self->hovering = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
emseg_heatmap_measure (GtkWidget *widget, GtkOrientation orientation, int for_size, int *minimum,
                       int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = orientation == GTK_ORIENTATION_HORIZONTAL ? 200 : 120;
  *natural = orientation == GTK_ORIENTATION_HORIZONTAL ? 320 : 220;
}

static void
emseg_heatmap_finalize (GObject *object)
{
  EmsegHeatmap *self = EMSEG_HEATMAP (object);

  g_ptr_array_unref (self->names);
  g_array_unref (self->values);
  G_OBJECT_CLASS (emseg_heatmap_parent_class)->finalize (object);
}

static void
emseg_heatmap_class_init (EmsegHeatmapClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = emseg_heatmap_finalize;
  GTK_WIDGET_CLASS (klass)->snapshot = emseg_heatmap_snapshot;
  GTK_WIDGET_CLASS (klass)->measure = emseg_heatmap_measure;
  gtk_widget_class_set_css_name (GTK_WIDGET_CLASS (klass), "heatmap");
}

static void
emseg_heatmap_init (EmsegHeatmap *self)
{
  GtkEventController *motion = gtk_event_controller_motion_new ();

  self->names = g_ptr_array_new_with_free_func (g_free);
  self->values = g_array_new (FALSE, FALSE, sizeof (float));
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);
}
