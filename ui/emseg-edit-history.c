/* emseg-edit-history.c — disc-stamping brush and a sparse before/after undo log.
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
  double last_x, last_y;
} Stroke;

struct _EmsegEditHistory {
  /* owned */
  EmsegVolume *volume;
  GPtrArray *undo;   /* Stroke*, oldest first */
  GPtrArray *redo;   /* Stroke*, most recently undone last */
  Stroke *current;   /* stroke in progress or NULL */
  guint8 *touched;   /* bit per pixel of the current stroke's slice */
};

static void
stroke_free (gpointer data)
{
  Stroke *s = data;

  g_array_unref (s->changes);
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

static gboolean
stamp_disc (EmsegEditHistory *h, double cx, double cy)
{
  Stroke *s = h->current;
  EmsegVolume *v = h->volume;
  guint8 *plane = emseg_volume_label_plane (v, s->info.slice);
  double r = s->info.radius;
  /* Pixel (x, y) covers [x, x+1); it is inside when its centre is within r. */
  long ya = (long) floor (cy - r);
  long yb = (long) ceil (cy + r);
  long xa = (long) floor (cx - r);
  long xb = (long) ceil (cx + r);
  gboolean changed = FALSE;

  ya = MAX (ya, 0);
  xa = MAX (xa, 0);
  yb = MIN (yb, (long) v->height - 1);
  xb = MIN (xb, (long) v->width - 1);
  for (long y = ya; y <= yb; y++)
    for (long x = xa; x <= xb; x++)
      {
        double dx = x + 0.5 - cx;
        double dy = y + 0.5 - cy;
        gsize i = (gsize) y * v->width + (gsize) x;

        if (dx * dx + dy * dy > r * r)
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
  history->current->info.slice = slice;
  history->current->info.label = label;
  history->current->info.radius = MAX (radius, 0.5);
  history->current->info.x0 = G_MAXUINT;
  history->current->info.y0 = G_MAXUINT;
  history->touched = g_malloc0 (plane / 8 + 1);
  history->current->last_x = x;
  history->current->last_y = y;
  stamp_disc (history, x, y);
}

gboolean
emseg_edit_history_stroke_to (EmsegEditHistory *history, double x, double y)
{
  Stroke *s = history->current;
  double dx, dy, len, step;
  int n;
  gboolean changed = FALSE;

  g_return_val_if_fail (s != NULL, FALSE);
  dx = x - s->last_x;
  dy = y - s->last_y;
  len = sqrt (dx * dx + dy * dy);
  /* Stamps closer than a quarter radius (at most 1 px) leave no gaps between discs. */
  step = MIN (MAX (s->info.radius * 0.25, 0.25), 1.0);
  n = (int) ceil (len / step);
  for (int k = 1; k <= n; k++)
    changed |= stamp_disc (history, s->last_x + dx * k / n, s->last_y + dy * k / n);
  s->last_x = x;
  s->last_y = y;
  return changed;
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
  const Stroke *s;

  if (history->undo->len == 0)
    return FALSE;
  s = g_ptr_array_index (history->undo, history->undo->len - 1);
  if (s->info.slice != slice)
    return FALSE;
  *x = s->last_x;
  *y = s->last_y;
  return TRUE;
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
