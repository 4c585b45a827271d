/* emseg-plot-util.c — ticks, text and colours for the Cairo plots. Text uses a fixed
 * "Sans 9" so plots look the same under Xvfb in tests as on a desktop. */
#include "emseg-plot-util.h"

#include <math.h>
#include <pango/pangocairo.h>

void
emseg_plot_nice_ticks (double lo, double hi, int max_ticks, double *first, double *step)
{
  double span = hi - lo;
  double raw, mag, f;

  if (!(span > 0) || !isfinite (span))
    span = fabs (lo) > 0 ? fabs (lo) : 1.0;
  raw = span / MAX (max_ticks, 1);
  mag = pow (10.0, floor (log10 (raw)));
  f = raw / mag;
  *step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  *first = ceil (lo / *step - 1e-9) * *step;
}

static PangoLayout *
make_layout (cairo_t *cr, const char *text)
{
  PangoLayout *layout = pango_cairo_create_layout (cr);
  PangoFontDescription *font = pango_font_description_from_string ("Sans 9");

  pango_layout_set_font_description (layout, font);
  pango_font_description_free (font);
  pango_layout_set_text (layout, text, -1);
  return layout;
}

void
emseg_plot_text_size (cairo_t *cr, const char *text, double *width, double *height)
{
  PangoLayout *layout = make_layout (cr, text);
  int w, h;

  pango_layout_get_pixel_size (layout, &w, &h);
  *width = w;
  *height = h;
  g_object_unref (layout);
}

void
emseg_plot_text (cairo_t *cr, double x, double y, double xalign, double yalign, const char *text)
{
  PangoLayout *layout = make_layout (cr, text);
  int w, h;

  pango_layout_get_pixel_size (layout, &w, &h);
  cairo_move_to (cr, round (x - xalign * w), round (y - yalign * h));
  pango_cairo_show_layout (cr, layout);
  g_object_unref (layout);
}

void
emseg_plot_viridis (double t, double rgb[3])
{
  static const double stops[5][3] = {
    { 0.267, 0.005, 0.329 }, { 0.229, 0.322, 0.546 }, { 0.128, 0.567, 0.551 },
    { 0.369, 0.789, 0.383 }, { 0.993, 0.906, 0.144 },
  };
  double u;
  int k;

  t = isfinite (t) ? CLAMP (t, 0.0, 1.0) * 4.0 : 0.0;
  k = MIN ((int) t, 3);
  u = t - k;
  for (int c = 0; c < 3; c++)
    rgb[c] = stops[k][c] * (1 - u) + stops[k + 1][c] * u;
}
