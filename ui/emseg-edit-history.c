/* emseg-edit-history.c — round brush along a polyline and a sparse before/after undo log.
 *
 * The brush covers pixel (x, y) when its centre (x + 0.5, y + 0.5) lies within the radius
 * of a segment of the stroke, with points rounded to float — exactly the project store's
 * rasterisation (emseg_project_apply_stroke), so what the viewer paints while dragging is
 * what the store records, pixel for pixel, when the stroke is handed over.
 *
 * Each stroke stores (pixel index, old value) once per changed pixel; a per-stroke bit
 * set remembers which pixels were already logged so overlapping discs do not log twice.
 * The bit set costs width*height/8 bytes while a stroke is in progress (2 MiB for a
 * 4096×4096 slice) and is freed when the stroke ends. */
#include "emseg-edit-history.h"

#include <math.h>
#include <string.h>

typedef struct {
  guint32 index;
  guint8 old;
} Change;

typedef struct {
  EmsegStrokeInfo info;
  GArray *changes; /* Change, owned */
  GArray *points;  /* float x, y pairs as painted, owned */
  double last_x, last_y;
} Stroke;

struct _EmsegEditHistory {
  /* owned */
  EmsegVolume *volume;
  GPtrArray *undo;   /* Stroke*, oldest first */
  GPtrArray *redo;   /* Stroke*, most recently undone last */
  Stroke *current;   /* stroke in progress or NULL */
  guint8 *touched;   /* bit per pixel of the current stroke's slice */
  /* the end of the last finished stroke, kept across _clear for shift-click lines */
  gboolean have_last;
  guint last_slice;
  double last_x, last_y;
};

static void
stroke_free (gpointer data)
{
  Stroke *s = data;

  g_array_unref (s->changes);
  g_array_unref (s->points);
  g_free (s);
}

EmsegEditHistory *
emseg_edit_history_new (EmsegVolume *volume)
{
  EmsegEditHistory *h = g_new0 (EmsegEditHistory, 1);

  h->volume = emseg_volume_ref (volume);
  h->undo = g_ptr_array_new_with_free_func (stroke_free);
  h->redo = g_ptr_array_new_with_free_func (stroke_free);
  return h;
}

void
emseg_edit_history_free (EmsegEditHistory *history)
{
  if (history == NULL)
    return;
  g_clear_pointer (&history->current, stroke_free);
  g_free (history->touched);
  g_ptr_array_unref (history->undo);
  g_ptr_array_unref (history->redo);
  emseg_volume_unref (history->volume);
  g_free (history);
}

/* Distance from (px, py) to the segment a-b, squared: the store's formula, term for term. */
static double
dist2_to_segment (double px, double py, double ax, double ay, double bx, double by)
{
  double dx = bx - ax, dy = by - ay;
  double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  double cx, cy;

  t = CLAMP (t, 0.0, 1.0);
  cx = ax + t * dx - px;
  cy = ay + t * dy - py;
  return cx * cx + cy * cy;
}

static gboolean
stamp_segment (EmsegEditHistory *h, double ax, double ay, double bx, double by)
{
  Stroke *s = h->current;
  EmsegVolume *v = h->volume;
  guint8 *plane = emseg_volume_label_plane (v, s->info.slice);
  double r = s->info.radius;
  long xa = (long) floor (MIN (ax, bx) - r);
  long xb = (long) ceil (MAX (ax, bx) + r);
  long ya = (long) floor (MIN (ay, by) - r);
  long yb = (long) ceil (MAX (ay, by) + r);
  gboolean changed = FALSE;

  ya = MAX (ya, 0);
  xa = MAX (xa, 0);
  yb = MIN (yb, (long) v->height - 1);
  xb = MIN (xb, (long) v->width - 1);
  for (long y = ya; y <= yb; y++)
    for (long x = xa; x <= xb; x++)
      {
        gsize i = (gsize) y * v->width + (gsize) x;

        if (dist2_to_segment (x + 0.5, y + 0.5, ax, ay, bx, by) > r * r)
          continue;
        if (plane[i] == s->info.label)
          continue;
        if (!(h->touched[i / 8] & (1u << (i % 8))))
          {
            Change c = { (guint32) i, plane[i] };

            h->touched[i / 8] |= (guint8) (1u << (i % 8));
            g_array_append_val (s->changes, c);
          }
        plane[i] = s->info.label;
        s->info.x0 = MIN (s->info.x0, (guint) x);
        s->info.y0 = MIN (s->info.y0, (guint) y);
        s->info.x1 = MAX (s->info.x1, (guint) x + 1);
        s->info.y1 = MAX (s->info.y1, (guint) y + 1);
        changed = TRUE;
      }
  return changed;
}

static void
add_point (Stroke *s, double x, double y)
{
  float p[2] = { (float) x, (float) y };

  g_array_append_vals (s->points, p, 2);
  /* the store sees float points: paint through the same rounded values */
  s->last_x = p[0];
  s->last_y = p[1];
}

void
emseg_edit_history_begin_stroke (EmsegEditHistory *history, guint slice, guint8 label,
                                 double radius, double x, double y)
{
  gsize plane = emseg_volume_plane_size (history->volume);

  g_return_if_fail (slice < history->volume->n_slices);
  /* Pixel indices are stored as 32 bits to halve the log; slices beyond that are refused
   * by the viewer long before (4 G pixels would not fit a texture either). */
  g_return_if_fail (plane <= G_MAXUINT32);

  if (history->current != NULL)
    emseg_edit_history_end_stroke (history, NULL);

  history->current = g_new0 (Stroke, 1);
  history->current->changes = g_array_new (FALSE, FALSE, sizeof (Change));
  history->current->points = g_array_new (FALSE, FALSE, sizeof (float));
  history->current->info.slice = slice;
  history->current->info.label = label;
  history->current->info.radius = MAX (radius, 0.5);
  history->current->info.x0 = G_MAXUINT;
  history->current->info.y0 = G_MAXUINT;
  history->touched = g_malloc0 (plane / 8 + 1);
  add_point (history->current, x, y);
  stamp_segment (history, history->current->last_x, history->current->last_y,
                 history->current->last_x, history->current->last_y);
}

gboolean
emseg_edit_history_stroke_to (EmsegEditHistory *history, double x, double y)
{
  Stroke *s = history->current;
  double ax, ay;

  g_return_val_if_fail (s != NULL, FALSE);
  ax = s->last_x;
  ay = s->last_y;
  add_point (s, x, y);
  return stamp_segment (history, ax, ay, s->last_x, s->last_y);
}

gboolean
emseg_edit_history_end_stroke (EmsegEditHistory *history, EmsegStrokeInfo *info)
{
  Stroke *s = g_steal_pointer (&history->current);

  g_clear_pointer (&history->touched, g_free);
  if (s == NULL)
    return FALSE;
  if (s->changes->len == 0)
    {
      stroke_free (s);
      return FALSE;
    }
  history->have_last = TRUE;
  history->last_slice = s->info.slice;
  history->last_x = s->last_x;
  history->last_y = s->last_y;
  s->info.n_changed = s->changes->len;
  if (info != NULL)
    *info = s->info;
  g_ptr_array_add (history->undo, s);
  g_ptr_array_set_size (history->redo, 0);
  return TRUE;
}

gboolean
emseg_edit_history_in_stroke (const EmsegEditHistory *history)
{
  return history->current != NULL;
}

gboolean
emseg_edit_history_last_point (const EmsegEditHistory *history, guint slice, double *x,
                               double *y)
{
  if (!history->have_last || history->last_slice != slice)
    return FALSE;
  *x = history->last_x;
  *y = history->last_y;
  return TRUE;
}

const float *
emseg_edit_history_last_points (const EmsegEditHistory *history, guint *n_points)
{
  const Stroke *s;

  *n_points = 0;
  if (history->undo->len == 0)
    return NULL;
  s = g_ptr_array_index (history->undo, history->undo->len - 1);
  *n_points = s->points->len / 2;
  return (const float *) (gconstpointer) s->points->data;
}

void
emseg_edit_history_clear (EmsegEditHistory *history)
{
  g_ptr_array_set_size (history->undo, 0);
  g_ptr_array_set_size (history->redo, 0);
}

gboolean
emseg_edit_history_can_undo (const EmsegEditHistory *history)
{
  return history->undo->len > 0 && history->current == NULL;
}

gboolean
emseg_edit_history_can_redo (const EmsegEditHistory *history)
{
  return history->redo->len > 0 && history->current == NULL;
}

gboolean
emseg_edit_history_undo (EmsegEditHistory *history, EmsegStrokeInfo *info)
{
  Stroke *s;
  guint8 *plane;

  if (!emseg_edit_history_can_undo (history))
    return FALSE;
  s = g_ptr_array_steal_index (history->undo, history->undo->len - 1);
  plane = emseg_volume_label_plane (history->volume, s->info.slice);
  /* Reverse order restores the value from before the stroke even if logged twice. */
  for (guint k = s->changes->len; k-- > 0;)
    {
      const Change *c = &g_array_index (s->changes, Change, k);
      plane[c->index] = c->old;
    }
  if (info != NULL)
    *info = s->info;
  g_ptr_array_add (history->redo, s);
  return TRUE;
}

gboolean
emseg_edit_history_redo (EmsegEditHistory *history, EmsegStrokeInfo *info)
{
  Stroke *s;
  guint8 *plane;

  if (!emseg_edit_history_can_redo (history))
    return FALSE;
  s = g_ptr_array_steal_index (history->redo, history->redo->len - 1);
  plane = emseg_volume_label_plane (history->volume, s->info.slice);
  for (guint k = 0; k < s->changes->len; k++)
    plane[g_array_index (s->changes, Change, k).index] = s->info.label;
  if (info != NULL)
    *info = s->info;
  g_ptr_array_add (history->undo, s);
  return TRUE;
}
