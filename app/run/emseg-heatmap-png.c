/* emseg-heatmap-png.c — Figure 3 / Figure 4 style PNGs with Cairo (see emseg-heatmap-png.h). */
#include "emseg-heatmap-png.h"

#include <errno.h>
#include <math.h>
#include <unistd.h>

#include <cairo.h>
#include <glib/gstdio.h>

G_DEFINE_QUARK(emseg-heatmap-error-quark, emseg_heatmap_error)

/* Viridis-like ramp (perceptually ordered, readable in grey and by most colour-blind
 * readers): five stops interpolated linearly. t in [0, 1]. */
static void
ramp(double t, double rgb[3])
{
  static const double stops[5][3] = {
    { 0.267, 0.005, 0.329 }, { 0.231, 0.322, 0.545 }, { 0.128, 0.567, 0.551 },
    { 0.369, 0.789, 0.383 }, { 0.993, 0.906, 0.144 },
  };
  t = CLAMP(t, 0.0, 1.0) * 4.0;
  int i = MIN((int) t, 3);
  double f = t - i;
  for (int c = 0; c < 3; c++)
    rgb[c] = stops[i][c] * (1 - f) + stops[i + 1][c] * f;
}

static gboolean
finish_png(cairo_surface_t *surface, const char *path, GError **error)
{
  g_autofree char *tmp = g_strdup_printf("%s.tmp-%d", path, (int) getpid());
  cairo_surface_flush(surface);
  cairo_status_t st = cairo_surface_write_to_png(surface, tmp);
  cairo_surface_destroy(surface);
  if (st != CAIRO_STATUS_SUCCESS) {
    g_unlink(tmp);
    g_set_error(error, EMSEG_HEATMAP_ERROR, EMSEG_HEATMAP_ERROR_IO, "cannot write %s: %s",
                path, cairo_status_to_string(st));
    return FALSE;
  }
  if (g_rename(tmp, path) != 0) {
    int e = errno;
    g_unlink(tmp);
    g_set_error(error, EMSEG_HEATMAP_ERROR, EMSEG_HEATMAP_ERROR_IO, "cannot rename %s to %s: %s",
                tmp, path, g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

static void
text_at(cairo_t *cr, double x, double y, const char *s, double align_x, double align_y)
{
  cairo_text_extents_t ext;
  cairo_text_extents(cr, s, &ext);
  cairo_move_to(cr, x - ext.width * align_x - ext.x_bearing,
                y - ext.height * align_y - ext.y_bearing);
  cairo_show_text(cr, s);
}

gboolean
emseg_heatmap_write_png(const char *path, const char *title, const double *values,
                        guint n_epochs, guint n_layers, const char *const *layer_names,
                        guint first_epoch, GError **error)
{
  if (n_epochs == 0 || n_layers == 0 || n_epochs > 10000 || n_layers > 10000) {
    g_set_error(error, EMSEG_HEATMAP_ERROR, EMSEG_HEATMAP_ERROR_INVALID,
                "heatmap of %u epochs × %u layers: need 1..10000 of each", n_epochs, n_layers);
    return FALSE;
  }
  double lo = INFINITY, hi = -INFINITY;
  for (gsize i = 0; i < (gsize) n_epochs * n_layers; i++)
    if (isfinite(values[i]) && values[i] > 0) {
      lo = MIN(lo, log10(values[i]));
      hi = MAX(hi, log10(values[i]));
    }
  if (!isfinite(lo)) { /* nothing moved: an all-grey map with a nominal scale */
    lo = -8;
    hi = -7;
  }
  lo = floor(lo);
  hi = MAX(ceil(hi), lo + 1);

  double cw = CLAMP(900.0 / n_layers, 1.0, 14.0), ch = CLAMP(420.0 / n_epochs, 2.0, 28.0);
  double mx = 70, my = 50, plot_w = cw * n_layers, plot_h = ch * n_epochs;
  double bar_h = MAX(plot_h, 120.0); /* the colour bar stays readable for short runs */
  int width = (int) ceil(mx + plot_w + 110), height = (int) ceil(my + MAX(plot_h, bar_h) + 60);
  cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);

  cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
  for (guint e = 0; e < n_epochs; e++)
    for (guint l = 0; l < n_layers; l++) {
      double v = values[(gsize) e * n_layers + l], rgb[3] = { 0.75, 0.75, 0.75 };
      if (isfinite(v) && v > 0)
        ramp((log10(v) - lo) / (hi - lo), rgb);
      cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
      cairo_rectangle(cr, mx + l * cw, my + e * ch, ceil(cw), ceil(ch));
      cairo_fill(cr);
    }
  cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, mx - 0.5, my - 0.5, plot_w + 1, plot_h + 1);
  cairo_stroke(cr);

  char buf[128];
  text_at(cr, mx, 22, title ? title : "mean |update| per layer", 0, 0.5);
  /* epochs: ticks at the first, last and a few between */
  guint step = MAX(1u, n_epochs / 8);
  for (guint e = 0; e < n_epochs; e += step) {
    g_snprintf(buf, sizeof buf, "%u", first_epoch + e);
    text_at(cr, mx - 6, my + (e + 0.5) * ch, buf, 1, 0.5);
  }
  if ((n_epochs - 1) % step > step / 2) { /* the last epoch, unless it would overlap a tick */
    g_snprintf(buf, sizeof buf, "%u", first_epoch + n_epochs - 1);
    text_at(cr, mx - 6, my + (n_epochs - 0.5) * ch, buf, 1, 0.5);
  }
  cairo_save(cr);
  cairo_translate(cr, 16, my + plot_h / 2);
  cairo_rotate(cr, -G_PI / 2);
  text_at(cr, 0, 0, "epoch", 0.5, 0.5);
  cairo_restore(cr);
  g_snprintf(buf, sizeof buf, "layers, input → output (%u)", n_layers);
  text_at(cr, mx + plot_w / 2, my + plot_h + 30, buf, 0.5, 0.5);
  if (layer_names) {
    cairo_set_font_size(cr, 10);
    text_at(cr, mx, my + plot_h + 12, layer_names[0], 0, 0.5);
    text_at(cr, mx + plot_w, my + plot_h + 46, layer_names[n_layers - 1], 1, 0.5);
    cairo_set_font_size(cr, 12);
  }

  /* colour bar with a tick per decade */
  double bx = mx + plot_w + 24, bw = 16, bh = bar_h;
  for (int y = 0; y < (int) bh; y++) {
    double rgb[3];
    ramp(1.0 - y / bh, rgb);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_rectangle(cr, bx, my + y, bw, 1);
    cairo_fill(cr);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_rectangle(cr, bx - 0.5, my - 0.5, bw + 1, bh + 1);
  cairo_stroke(cr);
  int decades = (int) (hi - lo);
  int dstep = MAX(1, decades / 6);
  for (int d = 0; d <= decades; d += dstep) {
    double y = my + bh * (1.0 - (double) d / decades);
    g_snprintf(buf, sizeof buf, "1e%d", (int) lo + d);
    cairo_move_to(cr, bx + bw, y);
    cairo_line_to(cr, bx + bw + 4, y);
    cairo_stroke(cr);
    text_at(cr, bx + bw + 7, y, buf, 0, 0.5);
  }
  cairo_destroy(cr);
  if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
    g_set_error(error, EMSEG_HEATMAP_ERROR, EMSEG_HEATMAP_ERROR_IO, "cannot draw %s: %s", path,
                cairo_status_to_string(cairo_surface_status(surface)));
    cairo_surface_destroy(surface);
    return FALSE;
  }
  return finish_png(surface, path, error);
}

/* A "nice" tick spacing (1, 2 or 5 × 10^k) giving about `target` ticks over span. */
static double
nice_step(double span, int target)
{
  double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

gboolean
emseg_curves_write_png(const char *path, const char *title, const char *y_label,
                       const EmsegCurve *curves, guint n_curves, GError **error)
{
  double lo = INFINITY, hi = -INFINITY;
  for (guint c = 0; c < n_curves; c++) {
    for (guint i = 0; i < curves[c].n; i++)
      if (isfinite(curves[c].values[i])) {
        lo = MIN(lo, curves[c].values[i]);
        hi = MAX(hi, curves[c].values[i]);
      }
  }
  if (!isfinite(lo)) {
    g_set_error(error, EMSEG_HEATMAP_ERROR, EMSEG_HEATMAP_ERROR_INVALID,
                "%s: no finite values to plot", path);
    return FALSE;
  }
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  double pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const int width = 760, height = 480;
  const double mx = 70, my = 40, pw = 470, ph = 380;
  cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  /* The x axis spans the epochs of all curves (resumed runs start after epoch 1). */
  double x_lo = G_MAXDOUBLE, x_hi = 0;
  for (guint c = 0; c < n_curves; c++) {
    double first = curves[c].first_epoch;
    x_lo = MIN(x_lo, first);
    x_hi = MAX(x_hi, first + MAX(curves[c].n, 1u) - 1);
  }
  if (x_hi < x_lo + 1)
    x_hi = x_lo + 1;
#define PX(e) (mx + ((e) - x_lo) / (x_hi - x_lo) * pw)
#define PY(v) (my + ph - ((v) - lo) / (hi - lo) * ph)
  char buf[64];
  cairo_set_line_width(cr, 1);
  double ys = nice_step(hi - lo, 6);
  for (double v = ceil(lo / ys) * ys; v <= hi; v += ys) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, mx, PY(v));
    cairo_line_to(cr, mx + pw, PY(v));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    g_snprintf(buf, sizeof buf, "%.3g", fabs(v) < ys * 1e-6 ? 0.0 : v);
    text_at(cr, mx - 6, PY(v), buf, 1, 0.5);
  }
  double xs = MAX(1.0, nice_step(x_hi - x_lo, 8));
  for (double e = x_lo; e <= x_hi; e += xs) {
    g_snprintf(buf, sizeof buf, "%g", e);
    text_at(cr, PX(e), my + ph + 14, buf, 0.5, 0.5);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_rectangle(cr, mx - 0.5, my - 0.5, pw + 1, ph + 1);
  cairo_stroke(cr);
  text_at(cr, mx, 20, title ? title : "learning curves", 0, 0.5);
  text_at(cr, mx + pw / 2, my + ph + 34, "epoch", 0.5, 0.5);
  cairo_save(cr);
  cairo_translate(cr, 16, my + ph / 2);
  cairo_rotate(cr, -G_PI / 2);
  text_at(cr, 0, 0, y_label ? y_label : "loss", 0.5, 0.5);
  cairo_restore(cr);

  cairo_set_line_width(cr, 2);
  for (guint c = 0; c < n_curves; c++) {
    const EmsegCurve *cv = &curves[c];
    double dash[] = { 6, 4 };
    cairo_set_dash(cr, dash, cv->dashed ? 2 : 0, 0);
    cairo_set_source_rgb(cr, cv->rgb[0], cv->rgb[1], cv->rgb[2]);
    gboolean pen = FALSE;
    double first = cv->first_epoch;
    for (guint i = 0; i < cv->n; i++) {
      double v = cv->values[i];
      if (!isfinite(v)) {
        pen = FALSE;
        continue;
      }
      if (pen)
        cairo_line_to(cr, PX(first + i), PY(v));
      else
        cairo_move_to(cr, PX(first + i), PY(v));
      pen = TRUE;
      if (cv->n == 1)
        cairo_rel_line_to(cr, 0.01, 0);
    }
    cairo_stroke(cr);
    /* legend */
    double ly = my + 10 + c * 20;
    cairo_move_to(cr, mx + pw + 14, ly);
    cairo_line_to(cr, mx + pw + 44, ly);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, mx + pw + 50, ly, cv->label ? cv->label : "", 0, 0.5);
  }
#undef PX
#undef PY
  cairo_destroy(cr);
  return finish_png(surface, path, error);
}
