/* emseg-slice-view.c — see emseg-slice-view.h for the coordinate spaces.
 *
 * Drawing: the slice is sampled (every `step`-th pixel when zoomed out, so the work is
 * bounded by the widget size, not the slice size) into Cairo RGB24 tiles of TILE × TILE
 * samples, converted only when they come into view and kept until the slice, the step,
 * the display window or the overlays change; Cairo then scales them with
 * CAIRO_FILTER_NEAREST. GTK 4.8 has no gtk_snapshot_append_scaled_texture, and linear
 * filtering would blur the pixels an annotator needs to see.
 *
 * Why tiles: a pan moves the view, not the content. With one cached surface of the
 * visible rectangle, every pan step converted the whole view again (about 10 ms per frame
 * at 1:1 in a 674×822 view, growing with the view's area); with tiles a pan step converts
 * only the tiles it uncovers, usually none. Tiles further than one tile from the view are
 * dropped after each draw, so the cache stays near the visible area's size. */
#include "emseg-slice-view.h"

#include <math.h>

#define ZOOM_MIN (1.0 / 64.0)
#define ZOOM_MAX 64.0
#define ZOOM_STEP 1.25

struct _EmsegSliceView {
  GtkWidget parent_instance;

  /* owned */
  EmsegVolume *volume;          /* NULL = nothing to show */
  EmsegEditHistory *history;    /* follows volume */
  GHashTable *tiles;            /* TILE_KEY (tx, ty) → cairo_surface_t* RGB24 tile */
  char *pointer_text;

  /* view: image point at widget (0,0), and widget pixels per image pixel */
  double origin_x, origin_y;
  double scale;
  gboolean fit_pending;         /* fit on the next allocation (new volume) */
  guint slice;

  /* display */
  double brightness;            /* added after the window, in [-1, 1] of the display range */
  double contrast;              /* slope around mid-grey */
  gboolean labels_visible, prediction_visible, uncertainty_visible;
  double labels_opacity, prediction_opacity, uncertainty_opacity;

  /* tools */
  EmsegTool tool;
  guint8 brush_label;
  double brush_radius;          /* image pixels */

  /* interaction state */
  gboolean pointer_inside;
  double pointer_x, pointer_y;  /* widget space */
  gboolean dragging_paint, dragging_pan;
  double stroke_x, stroke_y;    /* last point of the stroke being painted, image space */
  double stroke_radius;         /* its brush radius (fixed when it began) */
  double drag_origin_x, drag_origin_y; /* origin at drag begin, for panning */
  double drag_start_x, drag_start_y;   /* widget space */

  /* what the tiles show: valid while the content is unchanged */
  gboolean cache_valid;
  guint cache_slice;
  int cache_step;               /* image pixels per tile pixel */

  /* diagnostics */
  gint64 last_draw_us;          /* how long the last snapshot took */
  guint last_draw_tiles;        /* tiles it had to convert */
};

/* Tile side in samples: 256 KB per RGB24 tile, a few dozen in view at most. */
#define TILE 256
#define TILE_KEY(tx, ty) GSIZE_TO_POINTER (((gsize) (tx) << 16) | (gsize) (ty))

G_DEFINE_FINAL_TYPE (EmsegSliceView, emseg_slice_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_SLICE,
  PROP_N_SLICES,
  PROP_ZOOM,
  PROP_BRIGHTNESS,
  PROP_CONTRAST,
  PROP_LABELS_VISIBLE,
  PROP_LABELS_OPACITY,
  PROP_PREDICTION_VISIBLE,
  PROP_PREDICTION_OPACITY,
  PROP_UNCERTAINTY_VISIBLE,
  PROP_UNCERTAINTY_OPACITY,
  PROP_TOOL,
  PROP_BRUSH_LABEL,
  PROP_BRUSH_RADIUS,
  PROP_POINTER_TEXT,
  PROP_CAN_UNDO,
  PROP_CAN_REDO,
  N_PROPS
};

enum {
  SIGNAL_STROKE_FINISHED,
  SIGNAL_HISTORY_CHANGED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

/* ---- coordinate spaces ---------------------------------------------------------- */

void
emseg_slice_view_widget_to_image (EmsegSliceView *self, double wx, double wy, double *ix,
                                  double *iy)
{
  *ix = self->origin_x + wx / self->scale;
  *iy = self->origin_y + wy / self->scale;
}

void
emseg_slice_view_image_to_widget (EmsegSliceView *self, double ix, double iy, double *wx,
                                  double *wy)
{
  *wx = (ix - self->origin_x) * self->scale;
  *wy = (iy - self->origin_y) * self->scale;
}

/* The content changed (pixels, overlays, display window): every tile is stale. */
static void
invalidate (EmsegSliceView *self)
{
  self->cache_valid = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* Pixels of image rectangle [x0, x1) × [y0, y1) changed (a brush segment, an undo):
 * only the tiles over it are converted again. */
static void
invalidate_rect (EmsegSliceView *self, double x0, double y0, double x1, double y1)
{
  long span = (long) TILE * MAX (self->cache_step, 1);
  long tx0 = (long) floor (MAX (x0, 0.0)) / span, ty0 = (long) floor (MAX (y0, 0.0)) / span;
  long tx1 = (long) ceil (MAX (x1, 0.0)) / span, ty1 = (long) ceil (MAX (y1, 0.0)) / span;

  for (long ty = ty0; ty <= ty1; ty++)
    for (long tx = tx0; tx <= tx1; tx++)
      g_hash_table_remove (self->tiles, TILE_KEY (tx, ty));
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* The segment the current stroke's brush paints from (ax, ay) to (bx, by). */
static void
invalidate_segment (EmsegSliceView *self, double ax, double ay, double bx, double by)
{
  double r = self->stroke_radius + 1.0;

  invalidate_rect (self, MIN (ax, bx) - r, MIN (ay, by) - r, MAX (ax, bx) + r, MAX (ay, by) + r);
}

/* Only the view moved (pan, zoom): the tiles stay; the draw picks the ones in view. */
static void
view_moved (EmsegSliceView *self)
{
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* Keeps the view's centre over the image, so the slice can never be panned away. */
static void
clamp_origin (EmsegSliceView *self)
{
  double w = gtk_widget_get_width (GTK_WIDGET (self));
  double h = gtk_widget_get_height (GTK_WIDGET (self));
  double cx, cy;

  if (self->volume == NULL)
    return;
  cx = self->origin_x + w / (2 * self->scale);
  cy = self->origin_y + h / (2 * self->scale);
  cx = CLAMP (cx, 0.0, (double) self->volume->width);
  cy = CLAMP (cy, 0.0, (double) self->volume->height);
  self->origin_x = cx - w / (2 * self->scale);
  self->origin_y = cy - h / (2 * self->scale);
}

/* ---- rendering ------------------------------------------------------------------ */

/* A perceptual-ish ramp (dark purple → orange → pale yellow, like magma) for the
 * membrane probability 1 - P(cell); stops at 0, .25, .5, .75, 1. */
static void
colormap (double t, double rgb[3])
{
  static const double stops[5][3] = {
    { 0.00, 0.00, 0.02 }, { 0.32, 0.07, 0.47 }, { 0.72, 0.21, 0.47 },
    { 0.99, 0.53, 0.38 }, { 0.99, 0.99, 0.75 },
  };
  double u;
  int k;

  t = CLAMP (t, 0.0, 1.0) * 4.0;
  k = MIN ((int) t, 3);
  u = t - k;
  for (int c = 0; c < 3; c++)
    rgb[c] = stops[k][c] * (1 - u) + stops[k + 1][c] * u;
}

/* The MC standard deviation of P(cell) at which the uncertainty overlay reaches its full
 * opacity. A fixed scale, not the slice's maximum, so that slices and models compare: a
 * pixel whose samples spread by 0.2 is one the model cannot decide on. */
#define UNCERTAINTY_FULL 0.2

/* Converts samples (x0 + rx*step, y0 + ry*step), rx < cw, ry < ch, into a new tile. */
static cairo_surface_t *
render_tile (EmsegSliceView *self, long x0, long y0, int step, int cw, int ch)
{
  EmsegVolume *v = self->volume;
  const float *img = emseg_volume_image_plane (v, self->slice);
  const guint8 *lab = emseg_volume_labels (v, self->slice);
  const float *pred = emseg_volume_prediction_plane (v, self->slice);
  double range = (double) v->image_max - v->image_min;
  /* display = clamp((s - min)/range - 0.5) * contrast + 0.5 + brightness), as one a*s+b */
  double a = self->contrast / range;
  double b = -a * v->image_min - 0.5 * self->contrast + 0.5 + self->brightness;
  double lab_alpha = self->labels_visible ? self->labels_opacity : 0.0;
  double pred_alpha = (self->prediction_visible && pred != NULL) ? self->prediction_opacity : 0.0;
  const float *unc = emseg_volume_uncertainty_plane (v, self->slice);
  double unc_alpha = (self->uncertainty_visible && unc != NULL) ? self->uncertainty_opacity : 0.0;
  cairo_surface_t *tile = cairo_image_surface_create (CAIRO_FORMAT_RGB24, cw, ch);
  guint8 *data;
  int stride;

  cairo_surface_flush (tile);
  data = cairo_image_surface_get_data (tile);
  stride = cairo_image_surface_get_stride (tile);

  for (int ry = 0; ry < ch; ry++)
    {
      guint32 *row = (guint32 *) (gpointer) (data + (gsize) ry * stride);
      gsize iy = (gsize) (y0 + (long) ry * step);

      for (int rx = 0; rx < cw; rx++)
        {
          gsize i = iy * v->width + (gsize) (x0 + (long) rx * step);
          double g = a * img[i] + b;
          double r, gr, bl;

          g = isfinite (g) ? CLAMP (g, 0.0, 1.0) : 0.0;
          r = gr = bl = g;
          if (pred_alpha > 0)
            {
              double c[3];

              colormap (1.0 - pred[i], c);
              r = r * (1 - pred_alpha) + c[0] * pred_alpha;
              gr = gr * (1 - pred_alpha) + c[1] * pred_alpha;
              bl = bl * (1 - pred_alpha) + c[2] * pred_alpha;
            }
          if (unc_alpha > 0 && unc[i] > 0)
            {
              /* cyan, as opaque as the samples disagree: confident pixels stay untouched */
              double t = unc_alpha * MIN (unc[i] / UNCERTAINTY_FULL, 1.0);

              r = r * (1 - t);
              gr = gr * (1 - t) + 0.9 * t;
              bl = bl * (1 - t) + 1.0 * t;
            }
          if (lab_alpha > 0 && lab[i] != EMSEG_LABEL_UNLABELED)
            {
              /* membrane red, cell green; other values (imported masks) yellow */
              double cr = 1.0, cg = 0.85, cb = 0.1;

              if (lab[i] == EMSEG_LABEL_MEMBRANE)
                cr = 0.95, cg = 0.15, cb = 0.15;
              else if (lab[i] == EMSEG_LABEL_CELL)
                cr = 0.15, cg = 0.8, cb = 0.3;
              r = r * (1 - lab_alpha) + cr * lab_alpha;
              gr = gr * (1 - lab_alpha) + cg * lab_alpha;
              bl = bl * (1 - lab_alpha) + cb * lab_alpha;
            }
          row[rx] = ((guint32) lrint (r * 255) << 16) | ((guint32) lrint (gr * 255) << 8) |
                    (guint32) lrint (bl * 255);
        }
    }
  cairo_surface_mark_dirty (tile);
  return tile;
}

/* Drops the tiles further than one tile from [tx0, tx1] × [ty0, ty1]. */
static void
drop_far_tiles (EmsegSliceView *self, long tx0, long ty0, long tx1, long ty1)
{
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, self->tiles);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      long tx = (long) (GPOINTER_TO_SIZE (key) >> 16), ty = (long) (GPOINTER_TO_SIZE (key) & 0xffff);

      if (tx < tx0 - 1 || tx > tx1 + 1 || ty < ty0 - 1 || ty > ty1 + 1)
        g_hash_table_iter_remove (&iter);
    }
}

static void
emseg_slice_view_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (widget);
  double w = gtk_widget_get_width (widget);
  double h = gtk_widget_get_height (widget);
  GdkRGBA bg = { 0.12, 0.12, 0.13, 1.0 };
  EmsegVolume *v = self->volume;
  double ix0, iy0, ix1, iy1;
  long x0, y0, x1, y1, span, tx0, ty0, tx1, ty1;
  int step;
  cairo_t *cr;
  gint64 start = g_get_monotonic_time ();

  gtk_snapshot_append_color (snapshot, &bg, &GRAPHENE_RECT_INIT (0, 0, w, h));
  self->last_draw_tiles = 0;
  if (v == NULL || w <= 0 || h <= 0)
    return;

  /* Visible image rectangle, in whole pixels, clamped to the slice. */
  emseg_slice_view_widget_to_image (self, 0, 0, &ix0, &iy0);
  emseg_slice_view_widget_to_image (self, w, h, &ix1, &iy1);
  x0 = MAX (0L, (long) floor (ix0));
  y0 = MAX (0L, (long) floor (iy0));
  x1 = MIN ((long) v->width, (long) ceil (ix1));
  y1 = MIN ((long) v->height, (long) ceil (iy1));
  if (x1 <= x0 || y1 <= y0)
    return;

  /* Zoomed out, sample every step-th pixel: about one sample per device pixel. */
  step = MAX (1, (int) floor (1.0 / (self->scale * gtk_widget_get_scale_factor (widget))));
  span = (long) TILE * step;
  if (!self->cache_valid || self->cache_slice != self->slice || self->cache_step != step)
    {
      g_hash_table_remove_all (self->tiles);
      self->cache_valid = TRUE;
      self->cache_slice = self->slice;
      self->cache_step = step;
    }

  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, w, h));
  cairo_save (cr);
  /* Each tile fills a rectangle whose edges are rounded to whole widget pixels, the
   * shared edge of two neighbours from the same image coordinate, so they meet exactly:
   * antialiased or unrounded edges leave faint lines or one-pixel gaps between tiles. */
  cairo_set_antialias (cr, CAIRO_ANTIALIAS_NONE);
  tx0 = x0 / span;
  ty0 = y0 / span;
  tx1 = (x1 - 1) / span;
  ty1 = (y1 - 1) / span;
  for (long ty = ty0; ty <= ty1; ty++)
    for (long tx = tx0; tx <= tx1; tx++)
      {
        /* the tile's extent in samples; the last ones are cut by the slice's edge */
        double ew = MIN ((double) TILE, (double) ((long) v->width - tx * span) / step);
        double eh = MIN ((double) TILE, (double) ((long) v->height - ty * span) / step);
        cairo_surface_t *tile = g_hash_table_lookup (self->tiles, TILE_KEY (tx, ty));

        if (tile == NULL)
          {
            tile = render_tile (self, tx * span, ty * span, step, (int) ceil (ew), (int) ceil (eh));
            g_hash_table_insert (self->tiles, TILE_KEY (tx, ty), tile);
            self->last_draw_tiles++;
          }
        double l = round (((double) (tx * span) - self->origin_x) * self->scale);
        double t = round (((double) (ty * span) - self->origin_y) * self->scale);
        double r = round (((double) (tx * span) + ew * step - self->origin_x) * self->scale);
        double b = round (((double) (ty * span) + eh * step - self->origin_y) * self->scale);

        cairo_save (cr);
        cairo_rectangle (cr, l, t, r - l, b - t); /* the path is fixed before the transform */
        cairo_scale (cr, self->scale, self->scale);
        cairo_translate (cr, (double) (tx * span) - self->origin_x, (double) (ty * span) - self->origin_y);
        cairo_scale (cr, step, step);
        cairo_set_source_surface (cr, tile, 0, 0);
        cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
        cairo_fill (cr);
        cairo_restore (cr);
      }
  cairo_restore (cr);
  drop_far_tiles (self, tx0, ty0, tx1, ty1);

  /* Brush outline under the pointer, in widget space so it stays one pixel thick. */
  if (self->pointer_inside && self->tool != EMSEG_TOOL_PAN)
    {
      cairo_set_line_width (cr, 1.0);
      cairo_arc (cr, self->pointer_x, self->pointer_y,
                 MAX (self->brush_radius * self->scale, 2.0), 0, 2 * G_PI);
      cairo_set_source_rgba (cr, 0, 0, 0, 0.8);
      cairo_stroke_preserve (cr);
      cairo_set_dash (cr, (double[]){ 3.0 }, 1, 0);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.9);
      cairo_stroke (cr);
    }
  cairo_destroy (cr);
  self->last_draw_us = g_get_monotonic_time () - start;
}

double
emseg_slice_view_get_last_draw_ms (EmsegSliceView *self, guint *tiles_converted)
{
  if (tiles_converted != NULL)
    *tiles_converted = self->last_draw_tiles;
  return self->last_draw_us / 1000.0;
}

/* ---- view changes --------------------------------------------------------------- */

void
emseg_slice_view_zoom_at (EmsegSliceView *self, double zoom, double wx, double wy)
{
  double ix, iy;

  zoom = CLAMP (zoom, ZOOM_MIN, ZOOM_MAX);
  if (zoom == self->scale)
    return;
  emseg_slice_view_widget_to_image (self, wx, wy, &ix, &iy);
  self->scale = zoom;
  self->origin_x = ix - wx / zoom;
  self->origin_y = iy - wy / zoom;
  self->fit_pending = FALSE;
  clamp_origin (self);
  view_moved (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

static void
zoom_centre (EmsegSliceView *self, double zoom)
{
  emseg_slice_view_zoom_at (self, zoom, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
                            gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
}

void
emseg_slice_view_zoom_in (EmsegSliceView *self)
{
  zoom_centre (self, self->scale * ZOOM_STEP);
}

void
emseg_slice_view_zoom_out (EmsegSliceView *self)
{
  zoom_centre (self, self->scale / ZOOM_STEP);
}

void
emseg_slice_view_zoom_fit (EmsegSliceView *self)
{
  double w = gtk_widget_get_width (GTK_WIDGET (self));
  double h = gtk_widget_get_height (GTK_WIDGET (self));

  if (self->volume == NULL)
    return;
  if (w <= 0 || h <= 0)
    {
      self->fit_pending = TRUE;
      return;
    }
  self->scale = CLAMP (MIN (w / self->volume->width, h / self->volume->height), ZOOM_MIN, ZOOM_MAX);
  self->origin_x = self->volume->width / 2.0 - w / (2 * self->scale);
  self->origin_y = self->volume->height / 2.0 - h / (2 * self->scale);
  self->fit_pending = FALSE;
  view_moved (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

void
emseg_slice_view_zoom_one (EmsegSliceView *self)
{
  zoom_centre (self, 1.0);
}

void
emseg_slice_view_pan (EmsegSliceView *self, double dx, double dy)
{
  self->origin_x -= dx / self->scale;
  self->origin_y -= dy / self->scale;
  clamp_origin (self);
  view_moved (self);
}

double
emseg_slice_view_get_zoom (EmsegSliceView *self)
{
  return self->scale;
}

static void
update_pointer_text (EmsegSliceView *self)
{
  EmsegVolume *v = self->volume;
  g_autofree char *text = NULL;
  double ix, iy;

  if (v != NULL && self->pointer_inside)
    {
      emseg_slice_view_widget_to_image (self, self->pointer_x, self->pointer_y, &ix, &iy);
      if (ix >= 0 && iy >= 0 && ix < v->width && iy < v->height)
        {
          gsize i = (gsize) iy * v->width + (gsize) ix;
          const float *pred = emseg_volume_prediction_plane (v, self->slice);
          const float *unc = emseg_volume_uncertainty_plane (v, self->slice);
          g_autofree char *ptext = pred != NULL ? g_strdup_printf ("  P(cell) %.3f", pred[i]) : g_strdup ("");
          g_autofree char *utext = unc != NULL ? g_strdup_printf ("  σ %.3f", unc[i]) : g_strdup ("");

          text = g_strdup_printf ("x %u  y %u  value %g  %s%s%s", (guint) ix, (guint) iy,
                                  emseg_volume_image_plane (v, self->slice)[i],
                                  emseg_label_to_string (emseg_volume_labels (v, self->slice)[i]),
                                  ptext, utext);
        }
    }
  if (g_strcmp0 (text, self->pointer_text) == 0)
    return;
  g_free (self->pointer_text);
  self->pointer_text = g_steal_pointer (&text);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_POINTER_TEXT]);
}

void
emseg_slice_view_set_slice (EmsegSliceView *self, guint slice)
{
  if (self->volume == NULL)
    return;
  slice = MIN (slice, self->volume->n_slices - 1);
  if (slice == self->slice)
    return;
  if (self->history != NULL && emseg_edit_history_in_stroke (self->history))
    return; /* a stroke belongs to one slice; finish it first */
  self->slice = slice;
  invalidate (self);
  update_pointer_text (self);
  /* paging on finds the next slice read already (project volumes read slices when shown) */
  emseg_volume_prefetch (self->volume, slice + 1);
  if (slice > 0)
    emseg_volume_prefetch (self->volume, slice - 1);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SLICE]);
}

guint
emseg_slice_view_get_slice (EmsegSliceView *self)
{
  return self->slice;
}

void
emseg_slice_view_set_volume (EmsegSliceView *self, EmsegVolume *volume)
{
  if (volume == self->volume)
    return;
  g_clear_pointer (&self->history, emseg_edit_history_free);
  g_clear_pointer (&self->volume, emseg_volume_unref);
  if (volume != NULL)
    {
      self->volume = emseg_volume_ref (volume);
      self->history = emseg_edit_history_new (volume);
    }
  self->slice = 0;
  self->dragging_paint = self->dragging_pan = FALSE;
  emseg_slice_view_zoom_fit (self);
  invalidate (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_SLICES]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SLICE]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_UNDO]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_REDO]);
}

EmsegVolume *
emseg_slice_view_get_volume (EmsegSliceView *self)
{
  return self->volume;
}

EmsegEditHistory *
emseg_slice_view_get_history (EmsegSliceView *self)
{
  return self->history;
}

void
emseg_slice_view_volume_changed (EmsegSliceView *self)
{
  invalidate (self);
  update_pointer_text (self);
}

const char *
emseg_slice_view_get_pointer_text (EmsegSliceView *self)
{
  return self->pointer_text != NULL ? self->pointer_text : "";
}

void
emseg_slice_view_set_tool (EmsegSliceView *self, EmsegTool tool)
{
  g_object_set (self, "tool", (guint) tool, NULL);
}

void
emseg_slice_view_set_brush_label (EmsegSliceView *self, EmsegLabel label)
{
  g_object_set (self, "brush-label", (guint) label, NULL);
}

void
emseg_slice_view_set_brush_radius (EmsegSliceView *self, double radius)
{
  g_object_set (self, "brush-radius", radius, NULL);
}

double
emseg_slice_view_get_brush_radius (EmsegSliceView *self)
{
  return self->brush_radius;
}

/* ---- painting and history ------------------------------------------------------- */

static void
notify_history (EmsegSliceView *self)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_UNDO]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAN_REDO]);
  g_signal_emit (self, signals[SIGNAL_HISTORY_CHANGED], 0);
}

static guint8
paint_label (EmsegSliceView *self)
{
  return self->tool == EMSEG_TOOL_ERASER ? EMSEG_LABEL_UNLABELED : self->brush_label;
}

/* Extends the stroke; converts again only the tiles under the new segment. */
static gboolean
stroke_to (EmsegSliceView *self, double ix, double iy)
{
  gboolean changed = emseg_edit_history_stroke_to (self->history, ix, iy);

  if (changed)
    invalidate_segment (self, self->stroke_x, self->stroke_y, ix, iy);
  self->stroke_x = ix;
  self->stroke_y = iy;
  return changed;
}

static void
stroke_begin (EmsegSliceView *self, double ix, double iy, gboolean straight)
{
  double lx, ly;
  gboolean from_last = straight && emseg_edit_history_last_point (self->history, self->slice, &lx, &ly);

  emseg_edit_history_begin_stroke (self->history, self->slice, paint_label (self),
                                   self->brush_radius, from_last ? lx : ix, from_last ? ly : iy);
  self->stroke_radius = self->brush_radius;
  self->stroke_x = from_last ? lx : ix;
  self->stroke_y = from_last ? ly : iy;
  invalidate_segment (self, self->stroke_x, self->stroke_y, self->stroke_x, self->stroke_y);
  if (from_last)
    stroke_to (self, ix, iy);
  self->dragging_paint = TRUE;
}

static void
stroke_end (EmsegSliceView *self)
{
  EmsegStrokeInfo info;

  self->dragging_paint = FALSE;
  if (emseg_edit_history_end_stroke (self->history, &info))
    g_signal_emit (self, signals[SIGNAL_STROKE_FINISHED], 0, info.slice, info.x0, info.y0,
                   info.x1, info.y1);
  notify_history (self);
  update_pointer_text (self);
}

void
emseg_slice_view_paint_stroke (EmsegSliceView *self, const double *xs, const double *ys, guint n)
{
  g_return_if_fail (self->volume != NULL && n > 0);
  if (self->tool == EMSEG_TOOL_PAN)
    return;
  stroke_begin (self, xs[0], ys[0], FALSE);
  for (guint k = 1; k < n; k++)
    stroke_to (self, xs[k], ys[k]);
  stroke_end (self);
}

static gboolean
apply_history (EmsegSliceView *self, gboolean undo)
{
  EmsegStrokeInfo info;
  gboolean done;

  if (self->history == NULL)
    return FALSE;
  done = undo ? emseg_edit_history_undo (self->history, &info)
              : emseg_edit_history_redo (self->history, &info);
  if (!done)
    return FALSE;
  /* Show where the change happened: undo may concern another slice. */
  emseg_slice_view_set_slice (self, info.slice);
  invalidate_rect (self, info.x0, info.y0, info.x1, info.y1);
  g_signal_emit (self, signals[SIGNAL_STROKE_FINISHED], 0, info.slice, info.x0, info.y0,
                 info.x1, info.y1);
  notify_history (self);
  update_pointer_text (self);
  return TRUE;
}

gboolean
emseg_slice_view_undo (EmsegSliceView *self)
{
  return apply_history (self, TRUE);
}

gboolean
emseg_slice_view_redo (EmsegSliceView *self)
{
  return apply_history (self, FALSE);
}

/* ---- input ---------------------------------------------------------------------- */

static void
drag_begin_cb (GtkGestureDrag *gesture, double x, double y, EmsegSliceView *self)
{
  guint button = gtk_gesture_single_get_current_button (GTK_GESTURE_SINGLE (gesture));
  GdkModifierType state = gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (gesture));
  double ix, iy;

  if (self->volume == NULL)
    {
      gtk_gesture_set_state (GTK_GESTURE (gesture), GTK_EVENT_SEQUENCE_DENIED);
      return;
    }
  gtk_widget_grab_focus (GTK_WIDGET (self));
  self->drag_start_x = x;
  self->drag_start_y = y;
  if (button == GDK_BUTTON_PRIMARY && self->tool != EMSEG_TOOL_PAN)
    {
      emseg_slice_view_widget_to_image (self, x, y, &ix, &iy);
      stroke_begin (self, ix, iy, (state & GDK_SHIFT_MASK) != 0);
    }
  else
    {
      self->dragging_pan = TRUE;
      self->drag_origin_x = self->origin_x;
      self->drag_origin_y = self->origin_y;
    }
}

static void
drag_update_cb (GtkGestureDrag *gesture, double dx, double dy, EmsegSliceView *self)
{
  double ix, iy;

  self->pointer_x = self->drag_start_x + dx;
  self->pointer_y = self->drag_start_y + dy;
  if (self->dragging_paint)
    {
      emseg_slice_view_widget_to_image (self, self->pointer_x, self->pointer_y, &ix, &iy);
      /* the brush outline follows the pointer either way */
      stroke_to (self, ix, iy);
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
  else if (self->dragging_pan)
    {
      self->origin_x = self->drag_origin_x - dx / self->scale;
      self->origin_y = self->drag_origin_y - dy / self->scale;
      clamp_origin (self);
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
  update_pointer_text (self);
}

static void
drag_end_cb (GtkGestureDrag *gesture, double dx, double dy, EmsegSliceView *self)
{
  if (self->dragging_paint)
    stroke_end (self);
  self->dragging_pan = FALSE;
}

static void
motion_cb (GtkEventControllerMotion *motion, double x, double y, EmsegSliceView *self)
{
  self->pointer_inside = TRUE;
  self->pointer_x = x;
  self->pointer_y = y;
  update_pointer_text (self);
  if (self->tool != EMSEG_TOOL_PAN)
    gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
leave_cb (GtkEventControllerMotion *motion, EmsegSliceView *self)
{
  self->pointer_inside = FALSE;
  update_pointer_text (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static gboolean
scroll_cb (GtkEventControllerScroll *scroll, double dx, double dy, EmsegSliceView *self)
{
  GdkModifierType state = gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (scroll));

  if (self->volume == NULL || dy == 0)
    return FALSE;
  if (state & GDK_CONTROL_MASK)
    {
      if (dy > 0)
        emseg_slice_view_set_slice (self, self->slice + 1);
      else if (self->slice > 0)
        emseg_slice_view_set_slice (self, self->slice - 1);
      return TRUE;
    }
  emseg_slice_view_zoom_at (self, self->scale * pow (ZOOM_STEP, -dy),
                            self->pointer_inside ? self->pointer_x : gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
                            self->pointer_inside ? self->pointer_y : gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
  return TRUE;
}

static gboolean
key_zoom_cb (GtkWidget *widget, GVariant *args, gpointer data)
{
  int dir = g_variant_get_int32 (args);

  if (dir > 0)
    emseg_slice_view_zoom_in (EMSEG_SLICE_VIEW (widget));
  else if (dir < 0)
    emseg_slice_view_zoom_out (EMSEG_SLICE_VIEW (widget));
  else
    emseg_slice_view_zoom_one (EMSEG_SLICE_VIEW (widget));
  return TRUE;
}

static gboolean
key_brush_cb (GtkWidget *widget, GVariant *args, gpointer data)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (widget);
  double f = g_variant_get_int32 (args) > 0 ? 1.25 : 0.8;

  emseg_slice_view_set_brush_radius (self, self->brush_radius * f);
  return TRUE;
}

static gboolean
key_tool_cb (GtkWidget *widget, GVariant *args, gpointer data)
{
  emseg_slice_view_set_tool (EMSEG_SLICE_VIEW (widget), (EmsegTool) g_variant_get_int32 (args));
  return TRUE;
}

static gboolean
key_pan_cb (GtkWidget *widget, GVariant *args, gpointer data)
{
  int dx, dy;
  double step = gtk_widget_get_width (widget) / 8.0;

  g_variant_get (args, "(ii)", &dx, &dy);
  emseg_slice_view_pan (EMSEG_SLICE_VIEW (widget), -dx * step, -dy * step);
  return TRUE;
}

/* ---- GObject -------------------------------------------------------------------- */

static void
emseg_slice_view_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (widget);

  if (self->fit_pending)
    emseg_slice_view_zoom_fit (self);
  else
    clamp_origin (self);
}

static void
emseg_slice_view_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                          int *minimum, int *natural, int *minimum_baseline, int *natural_baseline)
{
  *minimum = 64;
  *natural = 512;
}

static void
emseg_slice_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (object);

  switch (prop_id)
    {
    case PROP_SLICE: g_value_set_uint (value, self->slice); break;
    case PROP_N_SLICES: g_value_set_uint (value, self->volume ? self->volume->n_slices : 0); break;
    case PROP_ZOOM: g_value_set_double (value, self->scale); break;
    case PROP_BRIGHTNESS: g_value_set_double (value, self->brightness); break;
    case PROP_CONTRAST: g_value_set_double (value, self->contrast); break;
    case PROP_LABELS_VISIBLE: g_value_set_boolean (value, self->labels_visible); break;
    case PROP_LABELS_OPACITY: g_value_set_double (value, self->labels_opacity); break;
    case PROP_PREDICTION_VISIBLE: g_value_set_boolean (value, self->prediction_visible); break;
    case PROP_PREDICTION_OPACITY: g_value_set_double (value, self->prediction_opacity); break;
    case PROP_UNCERTAINTY_VISIBLE: g_value_set_boolean (value, self->uncertainty_visible); break;
    case PROP_UNCERTAINTY_OPACITY: g_value_set_double (value, self->uncertainty_opacity); break;
    case PROP_TOOL: g_value_set_uint (value, self->tool); break;
    case PROP_BRUSH_LABEL: g_value_set_uint (value, self->brush_label); break;
    case PROP_BRUSH_RADIUS: g_value_set_double (value, self->brush_radius); break;
    case PROP_POINTER_TEXT: g_value_set_string (value, emseg_slice_view_get_pointer_text (self)); break;
    case PROP_CAN_UNDO:
      g_value_set_boolean (value, self->history && emseg_edit_history_can_undo (self->history));
      break;
    case PROP_CAN_REDO:
      g_value_set_boolean (value, self->history && emseg_edit_history_can_redo (self->history));
      break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

/* Sets a field and redraws only if it changed, notifying bound controls: `redraw` is
 * invalidate (what the tiles show changed) or view_moved (only the brush outline). */
#define SET_FIELD_WITH(field, val, prop, redraw)                                \
  G_STMT_START {                                                                \
    if (self->field != (val))                                                   \
      {                                                                         \
        self->field = (val);                                                    \
        redraw (self);                                                          \
        g_object_notify_by_pspec (object, properties[prop]);                    \
      }                                                                         \
  } G_STMT_END
#define SET_FIELD(field, val, prop) SET_FIELD_WITH (field, val, prop, invalidate)

static void
emseg_slice_view_set_property (GObject *object, guint prop_id, const GValue *value,
                               GParamSpec *pspec)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (object);

  switch (prop_id)
    {
    case PROP_SLICE: emseg_slice_view_set_slice (self, g_value_get_uint (value)); break;
    case PROP_ZOOM: zoom_centre (self, g_value_get_double (value)); break;
    case PROP_BRIGHTNESS: SET_FIELD (brightness, g_value_get_double (value), prop_id); break;
    case PROP_CONTRAST: SET_FIELD (contrast, g_value_get_double (value), prop_id); break;
    case PROP_LABELS_VISIBLE: SET_FIELD (labels_visible, g_value_get_boolean (value), prop_id); break;
    case PROP_LABELS_OPACITY: SET_FIELD (labels_opacity, g_value_get_double (value), prop_id); break;
    case PROP_PREDICTION_VISIBLE: SET_FIELD (prediction_visible, g_value_get_boolean (value), prop_id); break;
    case PROP_PREDICTION_OPACITY: SET_FIELD (prediction_opacity, g_value_get_double (value), prop_id); break;
    case PROP_UNCERTAINTY_VISIBLE: SET_FIELD (uncertainty_visible, g_value_get_boolean (value), prop_id); break;
    case PROP_UNCERTAINTY_OPACITY: SET_FIELD (uncertainty_opacity, g_value_get_double (value), prop_id); break;
    case PROP_TOOL: SET_FIELD_WITH (tool, (EmsegTool) g_value_get_uint (value), prop_id, view_moved); break;
    case PROP_BRUSH_LABEL: SET_FIELD_WITH (brush_label, (guint8) g_value_get_uint (value), prop_id, view_moved); break;
    case PROP_BRUSH_RADIUS: SET_FIELD_WITH (brush_radius, g_value_get_double (value), prop_id, view_moved); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
emseg_slice_view_dispose (GObject *object)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (object);

  g_clear_pointer (&self->history, emseg_edit_history_free);
  g_clear_pointer (&self->volume, emseg_volume_unref);
  g_clear_pointer (&self->tiles, g_hash_table_unref);
  G_OBJECT_CLASS (emseg_slice_view_parent_class)->dispose (object);
}

static void
emseg_slice_view_finalize (GObject *object)
{
  EmsegSliceView *self = EMSEG_SLICE_VIEW (object);

  g_free (self->pointer_text);
  G_OBJECT_CLASS (emseg_slice_view_parent_class)->finalize (object);
}

static void
emseg_slice_view_class_init (EmsegSliceViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->get_property = emseg_slice_view_get_property;
  object_class->set_property = emseg_slice_view_set_property;
  object_class->dispose = emseg_slice_view_dispose;
  object_class->finalize = emseg_slice_view_finalize;
  widget_class->snapshot = emseg_slice_view_snapshot;
  widget_class->size_allocate = emseg_slice_view_size_allocate;
  widget_class->measure = emseg_slice_view_measure;

  properties[PROP_SLICE] = g_param_spec_uint ("slice", NULL, NULL, 0, G_MAXUINT, 0, rw);
  properties[PROP_N_SLICES] = g_param_spec_uint ("n-slices", NULL, NULL, 0, G_MAXUINT, 0, ro);
  properties[PROP_ZOOM] = g_param_spec_double ("zoom", NULL, NULL, ZOOM_MIN, ZOOM_MAX, 1.0, rw);
  properties[PROP_BRIGHTNESS] = g_param_spec_double ("brightness", NULL, NULL, -1.0, 1.0, 0.0, rw);
  properties[PROP_CONTRAST] = g_param_spec_double ("contrast", NULL, NULL, 0.1, 10.0, 1.0, rw);
  properties[PROP_LABELS_VISIBLE] = g_param_spec_boolean ("labels-visible", NULL, NULL, TRUE, rw);
  properties[PROP_LABELS_OPACITY] = g_param_spec_double ("labels-opacity", NULL, NULL, 0.0, 1.0, 0.45, rw);
  properties[PROP_PREDICTION_VISIBLE] = g_param_spec_boolean ("prediction-visible", NULL, NULL, TRUE, rw);
  properties[PROP_PREDICTION_OPACITY] = g_param_spec_double ("prediction-opacity", NULL, NULL, 0.0, 1.0, 0.4, rw);
  properties[PROP_UNCERTAINTY_VISIBLE] = g_param_spec_boolean ("uncertainty-visible", NULL, NULL, TRUE, rw);
  properties[PROP_UNCERTAINTY_OPACITY] = g_param_spec_double ("uncertainty-opacity", NULL, NULL, 0.0, 1.0, 0.8, rw);
  properties[PROP_TOOL] = g_param_spec_uint ("tool", NULL, NULL, EMSEG_TOOL_PAN, EMSEG_TOOL_ERASER, EMSEG_TOOL_PAN, rw);
  properties[PROP_BRUSH_LABEL] = g_param_spec_uint ("brush-label", NULL, NULL, 0, 255, EMSEG_LABEL_MEMBRANE, rw);
  properties[PROP_BRUSH_RADIUS] = g_param_spec_double ("brush-radius", NULL, NULL, 0.5, 256.0, 3.0, rw);
  properties[PROP_POINTER_TEXT] = g_param_spec_string ("pointer-text", NULL, NULL, "", ro);
  properties[PROP_CAN_UNDO] = g_param_spec_boolean ("can-undo", NULL, NULL, FALSE, ro);
  properties[PROP_CAN_REDO] = g_param_spec_boolean ("can-redo", NULL, NULL, FALSE, ro);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SIGNAL_STROKE_FINISHED] =
    g_signal_new ("stroke-finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 5, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT);
  signals[SIGNAL_HISTORY_CHANGED] =
    g_signal_new ("history-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 0);

  gtk_widget_class_add_binding (widget_class, GDK_KEY_plus, 0, key_zoom_cb, "i", 1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_equal, 0, key_zoom_cb, "i", 1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_KP_Add, 0, key_zoom_cb, "i", 1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_minus, 0, key_zoom_cb, "i", -1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_KP_Subtract, 0, key_zoom_cb, "i", -1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_1, 0, key_zoom_cb, "i", 0);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_bracketright, 0, key_brush_cb, "i", 1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_bracketleft, 0, key_brush_cb, "i", -1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_h, 0, key_tool_cb, "i", EMSEG_TOOL_PAN);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_b, 0, key_tool_cb, "i", EMSEG_TOOL_BRUSH);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_e, 0, key_tool_cb, "i", EMSEG_TOOL_ERASER);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_Left, 0, key_pan_cb, "(ii)", -1, 0);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_Right, 0, key_pan_cb, "(ii)", 1, 0);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_Up, 0, key_pan_cb, "(ii)", 0, -1);
  gtk_widget_class_add_binding (widget_class, GDK_KEY_Down, 0, key_pan_cb, "(ii)", 0, 1);

  gtk_widget_class_set_css_name (widget_class, "sliceview");
}

static void
emseg_slice_view_init (EmsegSliceView *self)
{
  GtkGesture *drag = gtk_gesture_drag_new ();
  GtkEventController *motion = gtk_event_controller_motion_new ();
  GtkEventController *scroll = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_VERTICAL);

  self->tiles = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) cairo_surface_destroy);
  self->scale = 1.0;
  self->contrast = 1.0;
  self->labels_visible = TRUE;
  self->labels_opacity = 0.45;
  self->prediction_visible = TRUE;
  self->prediction_opacity = 0.4;
  self->uncertainty_visible = TRUE;
  self->uncertainty_opacity = 0.8;
  self->tool = EMSEG_TOOL_PAN;
  self->brush_label = EMSEG_LABEL_MEMBRANE;
  self->brush_radius = 3.0;

  gtk_widget_set_focusable (GTK_WIDGET (self), TRUE);
  gtk_widget_set_overflow (GTK_WIDGET (self), GTK_OVERFLOW_HIDDEN);

  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), 0);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (drag_begin_cb), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (drag_update_cb), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (drag_end_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drag));

  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "enter", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);

  g_signal_connect (scroll, "scroll", G_CALLBACK (scroll_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), scroll);
}

GtkWidget *
emseg_slice_view_new (void)
{
  return g_object_new (EMSEG_TYPE_SLICE_VIEW, NULL);
}
