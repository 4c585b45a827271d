/* emseg-project-history.c — brush strokes with undo/redo that survive restarts.
 *
 * Each stroke row keeps its points (for the record) and the mask patch under its bounding
 * box before and after painting, so undo and redo are exact copies rather than
 * re-rasterizations, and one transaction per stroke holds both the mask change and its
 * history. A label import (replace_masks) is a batch of such rows, one per changed slice,
 * undone and redone together. History is linear per stack: a change after an undo drops
 * the undone rows.
 *
 * Masks are stored in tiles (emseg-project-masks.c): a stroke, undo or redo reads and
 * writes only the tiles under its box, held in memory as one "region" buffer over the
 * tile-aligned box that covers it. */
#include <math.h>
#include <string.h>

#include "emseg-project-private.h"

typedef EmsegProjectBox Box;

static gsize
box_area(const Box *b)
{
  return (gsize)(b->x1 - b->x0) * (b->y1 - b->y0);
}

/* patch (box_area(b) bytes) <- the box b (inside r) of a region buffer over box r */
static void
read_patch(guint8 *patch, const guint8 *region, const Box *r, const Box *b)
{
  gsize bw = b->x1 - b->x0, rw = r->x1 - r->x0;
  for (guint y = b->y0; y < b->y1; y++)
    memcpy(patch + (gsize)(y - b->y0) * bw, region + (gsize)(y - r->y0) * rw + (b->x0 - r->x0),
           bw);
}

/* the box b (inside r) of a region buffer over box r <- patch */
static void
write_patch(guint8 *region, const guint8 *patch, const Box *r, const Box *b)
{
  gsize bw = b->x1 - b->x0, rw = r->x1 - r->x0;
  for (guint y = b->y0; y < b->y1; y++)
    memcpy(region + (gsize)(y - r->y0) * rw + (b->x0 - r->x0), patch + (gsize)(y - b->y0) * bw,
           bw);
}

/* Distance from (px, py) to the segment a-b, squared. */
static double
dist2_to_segment(double px, double py, double ax, double ay, double bx, double by)
{
  double dx = bx - ax, dy = by - ay;
  double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = CLAMP(t, 0.0, 1.0);
  double cx = ax + t * dx - px, cy = ay + t * dy - py;
  return cx * cx + cy * cy;
}

/* The pixels segment i of the polyline (to point i + 1; the last one is a dot) may cover,
 * clipped to box c. */
static Box
segment_reach(const float *xy, guint n, guint i, double radius, const Box *c)
{
  guint j = i + 1 < n ? i + 1 : i;
  double ax = xy[2 * i], ay = xy[2 * i + 1], bx = xy[2 * j], by = xy[2 * j + 1];
  double lo_x = floor(MIN(ax, bx) - radius), hi_x = ceil(MAX(ax, bx) + radius);
  double lo_y = floor(MIN(ay, by) - radius), hi_y = ceil(MAX(ay, by) + radius);
  return (Box){ (guint)CLAMP(lo_x, c->x0, c->x1), (guint)CLAMP(lo_y, c->y0, c->y1),
                (guint)CLAMP(hi_x + 1, c->x0, c->x1), (guint)CLAMP(hi_y + 1, c->y0, c->y1) };
}

/* The box every segment's reach lies in, clipped to the width x height slice; empty
 * (x1 <= x0 or y1 <= y0) when the stroke lies wholly outside it. */
static Box
stroke_reach(const float *xy, guint n, double radius, guint width, guint height)
{
  Box slice = { 0, 0, width, height }, all = { width, height, 0, 0 };
  for (guint i = 0; i < n; i++) {
    Box b = segment_reach(xy, n, i, radius, &slice);
    if (b.x1 <= b.x0 || b.y1 <= b.y0)
      continue;
    all.x0 = MIN(all.x0, b.x0);
    all.y0 = MIN(all.y0, b.y0);
    all.x1 = MAX(all.x1, b.x1);
    all.y1 = MAX(all.y1, b.y1);
  }
  return all;
}

/* Paints a round brush along the polyline into a region buffer over box r (which holds the
 * stroke's reach); pixel (x, y) is covered when its centre (x + 0.5, y + 0.5) lies within
 * radius of the path. Returns the touched box, in image pixels. */
static Box
rasterize(guint8 *region, const Box *r, const float *xy, guint n, double radius, guint8 label)
{
  Box all = { r->x1, r->y1, 0, 0 };
  gsize rw = r->x1 - r->x0;
  for (guint i = 0; i < n; i++) {
    guint j = i + 1 < n ? i + 1 : i;
    double ax = xy[2 * i], ay = xy[2 * i + 1], bx = xy[2 * j], by = xy[2 * j + 1];
    Box seg = segment_reach(xy, n, i, radius, r);
    for (guint y = seg.y0; y < seg.y1; y++)
      for (guint x = seg.x0; x < seg.x1; x++)
        if (dist2_to_segment(x + 0.5, y + 0.5, ax, ay, bx, by) <= radius * radius) {
          region[(gsize)(y - r->y0) * rw + (x - r->x0)] = label;
          all.x0 = MIN(all.x0, x);
          all.y0 = MIN(all.y0, y);
          all.x1 = MAX(all.x1, x + 1);
          all.y1 = MAX(all.y1, y + 1);
        }
  }
  return all;
}

/* Stores the new mask of slice under the tile-aligned box r (the tiles that changed) and
 * records the change as one history row: the patches of the old and new region buffers
 * under box b (inside r, where they differ), the stroke's label, radius and points (label
 * -1, radius 0, no points for a whole-mask replacement). batch 0: a step of its own; else
 * the batch it belongs to. Inside the caller's transaction. */
static gboolean
save_change(EmsegProject *p, const EmsegProjectStack *s, guint slice, const Box *r,
            const guint8 *old_region, const guint8 *new_region, const Box *b, int label,
            double radius, const float *xy, guint n_points, gint64 batch, GError **error)
{
  gint64 stack_id = s->id;
  if (!emseg_project_put_mask_tiles(p, s, slice, r, new_region, old_region, error))
    return FALSE;
  g_autofree guint8 *before = g_malloc(box_area(b));
  g_autofree guint8 *after = g_malloc(box_area(b));
  read_patch(before, old_region, r, b);
  read_patch(after, new_region, r, b);
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "INSERT INTO strokes (stack_id, idx, label, radius, points, x0, y0, x1, y1, before,"
      " after, undone, created, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0,"
      " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?)",
      error);
  if (st == NULL)
    return FALSE;
  g_autoptr(GBytes) zb = emseg_project_compress(before, box_area(b));
  g_autoptr(GBytes) za = emseg_project_compress(after, box_area(b));
  sqlite3_bind_int64(st, 1, stack_id);
  sqlite3_bind_int64(st, 2, slice);
  sqlite3_bind_int(st, 3, label);
  sqlite3_bind_double(st, 4, radius);
  if (n_points > 0)
    sqlite3_bind_blob64(st, 5, xy, (sqlite3_uint64)n_points * 2 * sizeof(float), SQLITE_STATIC);
  else
    sqlite3_bind_zeroblob(st, 5, 0); /* an empty blob, not NULL: the column is NOT NULL */
  sqlite3_bind_int64(st, 6, b->x0);
  sqlite3_bind_int64(st, 7, b->y0);
  sqlite3_bind_int64(st, 8, b->x1);
  sqlite3_bind_int64(st, 9, b->y1);
  sqlite3_bind_blob64(st, 10, g_bytes_get_data(zb, NULL), g_bytes_get_size(zb), SQLITE_STATIC);
  sqlite3_bind_blob64(st, 11, g_bytes_get_data(za, NULL), g_bytes_get_size(za), SQLITE_STATIC);
  if (batch != 0)
    sqlite3_bind_int64(st, 12, batch);
  else
    sqlite3_bind_null(st, 12);
  return emseg_project_step_done(p, st, "saving a stroke", error);
}

/* Drops the redo list (undone rows): a new change after an undo forks the history. */
static gboolean
clear_redo(EmsegProject *p, gint64 stack_id, GError **error)
{
  sqlite3_stmt *st =
      emseg_project_stmt(p, "DELETE FROM strokes WHERE stack_id = ? AND undone = 1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64(st, 1, stack_id);
  return emseg_project_step_done(p, st, "clearing the redo list", error);
}

gboolean
emseg_project_apply_stroke(EmsegProject *p, gint64 stack_id, guint slice, EmsegLabel label,
                           double radius, const float *xy, guint n_points, gint64 *stroke_id,
                           GError **error)
{
  if (label != EMSEG_LABEL_MEMBRANE && label != EMSEG_LABEL_CELL &&
      label != EMSEG_LABEL_UNLABELED) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID,
                "%s: %d is not a label (0 membrane, 128 unlabeled, 255 cell)", p->path, label);
    return FALSE;
  }
  if (n_points == 0 || n_points > 1000000 || !(radius > 0 && radius <= 4096)) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID,
                "%s: a stroke needs 1 to 1000000 points and a radius in (0, 4096], got %u "
                "points and radius %g",
                p->path, n_points, radius);
    return FALSE;
  }
  for (guint i = 0; i < 2 * n_points; i++)
    if (!isfinite(xy[i])) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID,
                  "%s: stroke point %u is not finite", p->path, i / 2);
      return FALSE;
    }
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error))
    return FALSE;
  if (!emseg_project_check_slice(p, &s, slice, error))
    return FALSE;
  /* Only the tiles under the stroke's reach are read and written. */
  Box reach = stroke_reach(xy, n_points, radius, s.width, s.height);
  Box r = reach.x1 > reach.x0 && reach.y1 > reach.y0 ? emseg_project_box_tiles(&s, &reach)
                                                     : (Box){ 0, 0, 0, 0 };
  Box b = { 0, 0, 0, 0 };
  g_autofree guint8 *region = NULL, *before = NULL;
  if (!emseg_project_begin(p, "saving a stroke", error))
    return FALSE;
  gboolean ok = TRUE;
  if (r.x1 > r.x0) {
    region = g_malloc(box_area(&r));
    before = g_malloc(box_area(&r));
    ok = emseg_project_get_mask_tiles(p, &s, slice, &r, region, NULL, error);
    if (ok) {
      memcpy(before, region, box_area(&r));
      b = rasterize(region, &r, xy, n_points, radius, (guint8)label);
    }
  }
  if (ok && b.x1 <= b.x0) {
    /* Entirely outside the image (or between the pixel centres): nothing to record. */
    emseg_project_rollback(p);
    if (stroke_id != NULL)
      *stroke_id = 0;
    return TRUE;
  }
  ok = ok && clear_redo(p, stack_id, error) &&
       save_change(p, &s, slice, &r, before, region, &b, label, radius, xy, n_points, 0, error);
  if (!ok) {
    emseg_project_rollback(p);
    return FALSE;
  }
  gint64 id = sqlite3_last_insert_rowid(p->db);
  if (!emseg_project_commit(p, "saving a stroke", error))
    return FALSE;
  if (stroke_id != NULL)
    *stroke_id = id;
  return TRUE;
}

/* The box around every pixel where a and b differ (width x height masks); empty (x1 <= x0)
 * when they are equal. */
static Box
diff_box(const guint8 *a, const guint8 *b, guint width, guint height)
{
  Box box = { width, height, 0, 0 };
  for (guint y = 0; y < height; y++) {
    const guint8 *ra = a + (gsize)y * width, *rb = b + (gsize)y * width;
    if (memcmp(ra, rb, width) == 0)
      continue;
    guint x0 = 0, x1 = width;
    while (ra[x0] == rb[x0])
      x0++;
    while (ra[x1 - 1] == rb[x1 - 1])
      x1--;
    box.x0 = MIN(box.x0, x0);
    box.x1 = MAX(box.x1, x1);
    box.y0 = MIN(box.y0, y);
    box.y1 = y + 1;
  }
  return box;
}

gboolean
emseg_project_replace_masks(EmsegProject *p, gint64 stack_id, guint first, guint n_slices,
                            const guint8 *masks, guint *n_changed, GError **error)
{
  if (n_changed != NULL)
    *n_changed = 0;
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error))
    return FALSE;
  if (n_slices == 0)
    return TRUE;
  if (!emseg_project_check_slice(p, &s, first, error) ||
      !emseg_project_check_slice(p, &s, first + n_slices - 1, error))
    return FALSE;
  const char *what = "replacing masks";
  gsize n = (gsize)s.width * s.height;
  Box whole = emseg_project_box_whole(&s);
  g_autofree guint8 *old = g_malloc(n);
  if (!emseg_project_begin(p, what, error))
    return FALSE;
  gboolean ok = TRUE;
  gint64 batch = 0; /* named after its first row */
  guint changed = 0;
  for (guint z = 0; ok && z < n_slices; z++) {
    const guint8 *mask = masks + (gsize)z * n;
    ok = emseg_project_get_mask_tiles(p, &s, first + z, &whole, old, NULL, error);
    Box b = ok ? diff_box(old, mask, s.width, s.height) : (Box){ 0, 0, 0, 0 };
    if (!ok || b.x1 <= b.x0)
      continue;
    ok = save_change(p, &s, first + z, &whole, old, mask, &b, -1, 0.0, NULL, 0, batch, error);
    if (ok && batch == 0)
      batch = sqlite3_last_insert_rowid(p->db);
    changed++;
  }
  if (ok && changed > 0) {
    /* the first row, inserted before its batch had a name, joins it; the redo list goes */
    sqlite3_stmt *st = emseg_project_stmt(p, "UPDATE strokes SET batch = id WHERE id = ?", error);
    ok = st != NULL;
    if (ok) {
      sqlite3_bind_int64(st, 1, batch);
      ok = emseg_project_step_done(p, st, what, error) && clear_redo(p, stack_id, error);
    }
  }
  if (!ok) {
    emseg_project_rollback(p);
    return FALSE;
  }
  if (!emseg_project_commit(p, what, error))
    return FALSE;
  if (n_changed != NULL)
    *n_changed = changed;
  return TRUE;
}

/* Writes one history row's `before` (undo) or `after` (redo) patch into its slice and
 * flips its undone flag; inside the caller's transaction. */
static gboolean
apply_row(EmsegProject *p, const EmsegProjectStack *s, gint64 stack_id, gint64 id,
          gboolean undo, guint *slice_out, GError **error)
{
  const char *what = undo ? "undoing a stroke" : "redoing a stroke";
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      undo ? "SELECT idx, x0, y0, x1, y1, before FROM strokes WHERE id = ?"
           : "SELECT idx, x0, y0, x1, y1, after FROM strokes WHERE id = ?",
      error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
      rc = SQLITE_CORRUPT; /* listed a moment ago in this transaction */
    return emseg_project_fail(p, rc, what, error);
  }
  gint64 idx = sqlite3_column_int64(st, 0);
  gint64 x0 = sqlite3_column_int64(st, 1), y0 = sqlite3_column_int64(st, 2);
  gint64 x1 = sqlite3_column_int64(st, 3), y1 = sqlite3_column_int64(st, 4);
  g_autofree char *where = g_strdup_printf("%s: stroke %" G_GINT64_FORMAT, p->path, id);
  gboolean ok = TRUE;
  /* The box comes from the file: check it against the stack before using it. */
  if (idx < 0 || idx >= s->n_slices || x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0 ||
      x1 > s->width || y1 > s->height) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: slice or box out of the stack's bounds", where);
    ok = FALSE;
  }
  Box b = { (guint)x0, (guint)y0, (guint)x1, (guint)y1 };
  /* Only the tiles under the row's box are read and written. */
  Box r = ok ? emseg_project_box_tiles(s, &b) : (Box){ 0, 0, 0, 0 };
  g_autofree guint8 *patch = ok ? g_malloc(box_area(&b)) : NULL;
  g_autofree guint8 *region = ok ? g_malloc(box_area(&r)) : NULL;
  g_autofree guint8 *old = ok ? g_malloc(box_area(&r)) : NULL;
  ok = ok && emseg_project_decompress(sqlite3_column_blob(st, 5),
                                      (gsize)sqlite3_column_bytes(st, 5), patch, box_area(&b),
                                      where, error);
  sqlite3_reset(st);
  ok = ok && emseg_project_get_mask_tiles(p, s, (guint)idx, &r, region, NULL, error);
  if (ok) {
    memcpy(old, region, box_area(&r));
    write_patch(region, patch, &r, &b);
    ok = emseg_project_put_mask_tiles(p, s, (guint)idx, &r, region, old, error);
  }
  if (ok) {
    st = emseg_project_stmt(p, "UPDATE strokes SET undone = ? WHERE id = ?", error);
    ok = st != NULL;
    if (ok) {
      sqlite3_bind_int(st, 1, undo ? 1 : 0);
      sqlite3_bind_int64(st, 2, id);
      ok = emseg_project_step_done(p, st, what, error);
    }
  }
  if (ok)
    *slice_out = (guint)idx;
  return ok;
}

/* The rows of the step to undo (latest applied) or redo (earliest undone): one stroke, or
 * every row of its batch, in the order they are to be applied. A row's step is its batch,
 * or its own id for a brush stroke (a batch is named after its first row's id). NULL on
 * error; an empty array when there is nothing to do. */
static GArray *
history_step_rows(EmsegProject *p, gint64 stack_id, gboolean undo, const char *what,
                  GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      undo ? "SELECT id FROM strokes WHERE stack_id = ?1 AND undone = 0 AND coalesce(batch, id) ="
             " (SELECT coalesce(batch, id) FROM strokes WHERE stack_id = ?1 AND undone = 0"
             " ORDER BY id DESC LIMIT 1) ORDER BY id DESC"
           : "SELECT id FROM strokes WHERE stack_id = ?1 AND undone = 1 AND coalesce(batch, id) ="
             " (SELECT coalesce(batch, id) FROM strokes WHERE stack_id = ?1 AND undone = 1"
             " ORDER BY id ASC LIMIT 1) ORDER BY id ASC",
      error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64(st, 1, stack_id);
  GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    gint64 row = sqlite3_column_int64(st, 0);
    g_array_append_val(ids, row);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, what, error);
    g_array_unref(ids);
    return NULL;
  }
  return ids;
}

/* Undo (latest applied step, write its `before` patches) or redo (earliest undone step,
 * write its `after` patches), in one transaction. */
static gboolean
step_history(EmsegProject *p, gint64 stack_id, gboolean undo, gboolean *did, guint *slice_out,
             guint *n_slices_out, GError **error)
{
  const char *what = undo ? "undoing a stroke" : "redoing a stroke";
  if (did != NULL)
    *did = FALSE;
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error))
    return FALSE;
  if (!emseg_project_begin(p, what, error))
    return FALSE;
  g_autoptr(GArray) ids = history_step_rows(p, stack_id, undo, what, error);
  if (ids == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  if (ids->len == 0) {
    emseg_project_rollback(p);
    return TRUE;
  }
  guint lo = G_MAXUINT, hi = 0;
  for (guint i = 0; i < ids->len; i++) {
    guint slice = 0;
    if (!apply_row(p, &s, stack_id, g_array_index(ids, gint64, i), undo, &slice, error)) {
      emseg_project_rollback(p);
      return FALSE;
    }
    lo = MIN(lo, slice);
    hi = MAX(hi, slice);
  }
  if (!emseg_project_commit(p, what, error))
    return FALSE;
  if (did != NULL)
    *did = TRUE;
  if (slice_out != NULL)
    *slice_out = lo;
  if (n_slices_out != NULL)
    *n_slices_out = hi - lo + 1;
  return TRUE;
}

gboolean
emseg_project_undo(EmsegProject *p, gint64 stack_id, gboolean *did, guint *slice_out,
                   guint *n_slices_out, GError **error)
{
  return step_history(p, stack_id, TRUE, did, slice_out, n_slices_out, error);
}

gboolean
emseg_project_redo(EmsegProject *p, gint64 stack_id, gboolean *did, guint *slice_out,
                   guint *n_slices_out, GError **error)
{
  return step_history(p, stack_id, FALSE, did, slice_out, n_slices_out, error);
}

static gboolean
exists_query(EmsegProject *p, const char *sql, gint64 arg)
{
  sqlite3_stmt *st = emseg_project_stmt(p, sql, NULL);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64(st, 1, arg);
  gboolean yes = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_reset(st);
  return yes;
}

gboolean
emseg_project_can_undo(EmsegProject *p, gint64 stack_id)
{
  return exists_query(p, "SELECT 1 FROM strokes WHERE stack_id = ? AND undone = 0 LIMIT 1",
                      stack_id);
}

gboolean
emseg_project_can_redo(EmsegProject *p, gint64 stack_id)
{
  return exists_query(p, "SELECT 1 FROM strokes WHERE stack_id = ? AND undone = 1 LIMIT 1",
                      stack_id);
}

gboolean
emseg_project_stroke_exists(EmsegProject *p, gint64 stroke_id, GError **error)
{
  return exists_query(p, "SELECT 1 FROM strokes WHERE id = ?", stroke_id);
}

gboolean
emseg_project_stroke_count(EmsegProject *p, gint64 stack_id, guint64 *applied,
                           gint64 *latest_id, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p, "SELECT count(*), coalesce(max(id), 0) FROM strokes WHERE stack_id = ? AND undone = 0",
      error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64(st, 1, stack_id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    if (applied != NULL)
      *applied = (guint64)sqlite3_column_int64(st, 0);
    if (latest_id != NULL)
      *latest_id = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || emseg_project_fail(p, rc, "counting strokes", error);
}

/* Every stroke row decodes: its slice and box lie in its stack, both patches inflate to the
 * box's size and hold only label values. One line per damaged row goes to problems; *n
 * counts the rows read. FALSE + error only when the rows cannot be listed. */
gboolean
emseg_project_check_strokes(EmsegProject *p, GPtrArray *problems, guint64 *n, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p, "SELECT id, stack_id, idx, x0, y0, x1, y1, before, after FROM strokes ORDER BY id",
      error);
  if (st == NULL)
    return FALSE;
  int rc;
  *n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    gint64 id = sqlite3_column_int64(st, 0), stack_id = sqlite3_column_int64(st, 1);
    gint64 idx = sqlite3_column_int64(st, 2);
    gint64 x0 = sqlite3_column_int64(st, 3), y0 = sqlite3_column_int64(st, 4);
    gint64 x1 = sqlite3_column_int64(st, 5), y1 = sqlite3_column_int64(st, 6);
    g_autofree char *where =
        g_strdup_printf("%s: stroke %" G_GINT64_FORMAT " (stack %" G_GINT64_FORMAT
                        ", slice %" G_GINT64_FORMAT ")", p->path, id, stack_id, idx);
    (*n)++;
    g_auto(EmsegProjectStack) s = { 0 };
    g_autoptr(GError) e = NULL;
    /* get_stack runs its own statement: st stays valid, it is a different one */
    if (!emseg_project_get_stack(p, stack_id, &s, &e)) {
      g_ptr_array_add(problems, g_strdup_printf("%s: %s", where, e->message));
      continue;
    }
    if (idx < 0 || idx >= s.n_slices || x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0 ||
        x1 > s.width || y1 > s.height) {
      g_ptr_array_add(problems, g_strdup_printf("%s: slice or box (%" G_GINT64_FORMAT ", %"
                                                G_GINT64_FORMAT ")-(%" G_GINT64_FORMAT ", %"
                                                G_GINT64_FORMAT ") outside the %u x %u x %u stack",
                                                where, x0, y0, x1, y1, s.width, s.height,
                                                s.n_slices));
      continue;
    }
    Box b = { (guint)x0, (guint)y0, (guint)x1, (guint)y1 };
    g_autofree guint8 *patch = g_malloc(box_area(&b));
    for (int col = 7; col <= 8; col++) {
      const char *half = col == 7 ? "its undo patch" : "its redo patch";
      g_autofree char *what = g_strdup_printf("%s, %s", where, half);
      if (!emseg_project_decompress(sqlite3_column_blob(st, col),
                                    (gsize)sqlite3_column_bytes(st, col), patch, box_area(&b),
                                    what, &e)) {
        g_ptr_array_add(problems, g_strdup(e->message));
        g_clear_error(&e);
        continue;
      }
      for (gsize i = 0; i < box_area(&b); i++)
        if (patch[i] != EMSEG_LABEL_MEMBRANE && patch[i] != EMSEG_LABEL_CELL &&
            patch[i] != EMSEG_LABEL_UNLABELED) {
          g_ptr_array_add(problems, g_strdup_printf("%s holds %u, not a label value", what,
                                                    patch[i]));
          break;
        }
    }
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE || emseg_project_fail(p, rc, "listing the strokes", error);
}
