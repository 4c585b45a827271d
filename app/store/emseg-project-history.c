/* emseg-project-history.c — brush strokes with undo/redo that survive restarts.
 *
 * Each stroke row keeps its points (for the record) and the mask patch under its bounding
 * box before and after painting, so undo and redo are exact copies rather than
 * re-rasterizations, and one transaction per stroke holds both the mask change and its
 * history. History is linear per stack: painting after an undo drops the undone strokes. */
#include <math.h>
#include <string.h>

#include "emseg-project-private.h"

typedef struct {
  guint x0, y0, x1, y1; /* half-open box [x0, x1) x [y0, y1) in image pixels */
} Box;

static gsize
box_area(const Box *b)
{
  return (gsize)(b->x1 - b->x0) * (b->y1 - b->y0);
}

static void
copy_patch(guint8 *patch, guint8 *mask, guint width, const Box *b, gboolean to_patch)
{
  gsize bw = b->x1 - b->x0;
  for (guint y = b->y0; y < b->y1; y++) {
    guint8 *pr = patch + (gsize)(y - b->y0) * bw;
    guint8 *mr = mask + (gsize)y * width + b->x0;
    if (to_patch)
      memcpy(pr, mr, bw);
    else
      memcpy(mr, pr, bw);
  }
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

/* Paints a round brush along the polyline; pixel (x, y) is covered when its centre
 * (x + 0.5, y + 0.5) lies within radius of the path. Returns the touched box. */
static Box
rasterize(guint8 *mask, guint width, guint height, const float *xy, guint n, double radius,
          guint8 label)
{
  Box all = { width, height, 0, 0 };
  for (guint i = 0; i < n; i++) {
    guint j = i + 1 < n ? i + 1 : i;
    double ax = xy[2 * i], ay = xy[2 * i + 1], bx = xy[2 * j], by = xy[2 * j + 1];
    double lo_x = floor(MIN(ax, bx) - radius), hi_x = ceil(MAX(ax, bx) + radius);
    double lo_y = floor(MIN(ay, by) - radius), hi_y = ceil(MAX(ay, by) + radius);
    guint x0 = (guint)CLAMP(lo_x, 0, width), x1 = (guint)CLAMP(hi_x + 1, 0, width);
    guint y0 = (guint)CLAMP(lo_y, 0, height), y1 = (guint)CLAMP(hi_y + 1, 0, height);
    for (guint y = y0; y < y1; y++)
      for (guint x = x0; x < x1; x++)
        if (dist2_to_segment(x + 0.5, y + 0.5, ax, ay, bx, by) <= radius * radius) {
          mask[(gsize)y * width + x] = label;
          all.x0 = MIN(all.x0, x);
          all.y0 = MIN(all.y0, y);
          all.x1 = MAX(all.x1, x + 1);
          all.y1 = MAX(all.y1, y + 1);
        }
  }
  return all;
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
  gsize n = (gsize)s.width * s.height;
  g_autofree guint8 *mask = g_malloc(n);
  g_autofree guint8 *before_mask = g_malloc(n);

  if (!emseg_project_begin(p, "saving a stroke", error))
    return FALSE;
  gboolean ok = emseg_project_get_mask(p, stack_id, slice, mask, n, NULL, error);
  Box b = { 0, 0, 0, 0 };
  if (ok) {
    memcpy(before_mask, mask, n);
    b = rasterize(mask, s.width, s.height, xy, n_points, radius, (guint8)label);
  }
  if (ok && b.x1 <= b.x0) {
    /* Entirely outside the image: nothing to record. */
    emseg_project_rollback(p);
    if (stroke_id != NULL)
      *stroke_id = 0;
    return TRUE;
  }
  g_autofree guint8 *before = ok ? g_malloc(box_area(&b)) : NULL;
  g_autofree guint8 *after = ok ? g_malloc(box_area(&b)) : NULL;
  if (ok) {
    copy_patch(before, before_mask, s.width, &b, TRUE);
    copy_patch(after, mask, s.width, &b, TRUE);
    ok = emseg_project_put_mask(p, stack_id, slice, mask, n, error);
  }
  sqlite3_stmt *st = NULL;
  if (ok) {
    st = emseg_project_stmt(p, "DELETE FROM strokes WHERE stack_id = ? AND undone = 1", error);
    ok = st != NULL;
    if (ok) {
      sqlite3_bind_int64(st, 1, stack_id);
      ok = emseg_project_step_done(p, st, "clearing the redo list", error);
    }
  }
  if (ok) {
    st = emseg_project_stmt(
        p,
        "INSERT INTO strokes (stack_id, idx, label, radius, points, x0, y0, x1, y1, before,"
        " after, undone, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0,"
        " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        error);
    ok = st != NULL;
  }
  if (ok) {
    g_autoptr(GBytes) zb = emseg_project_compress(before, box_area(&b));
    g_autoptr(GBytes) za = emseg_project_compress(after, box_area(&b));
    sqlite3_bind_int64(st, 1, stack_id);
    sqlite3_bind_int64(st, 2, slice);
    sqlite3_bind_int(st, 3, label);
    sqlite3_bind_double(st, 4, radius);
    sqlite3_bind_blob64(st, 5, xy, (sqlite3_uint64)n_points * 2 * sizeof(float), SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, b.x0);
    sqlite3_bind_int64(st, 7, b.y0);
    sqlite3_bind_int64(st, 8, b.x1);
    sqlite3_bind_int64(st, 9, b.y1);
    sqlite3_bind_blob64(st, 10, g_bytes_get_data(zb, NULL), g_bytes_get_size(zb), SQLITE_STATIC);
    sqlite3_bind_blob64(st, 11, g_bytes_get_data(za, NULL), g_bytes_get_size(za), SQLITE_STATIC);
    ok = emseg_project_step_done(p, st, "saving a stroke", error);
  }
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

/* Undo (undo = TRUE: latest applied stroke, write its `before`) or redo (earliest undone,
 * write its `after`), in one transaction. */
static gboolean
step_history(EmsegProject *p, gint64 stack_id, gboolean undo, gboolean *did, guint *slice_out,
             GError **error)
{
  const char *what = undo ? "undoing a stroke" : "redoing a stroke";
  if (did != NULL)
    *did = FALSE;
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error))
    return FALSE;
  if (!emseg_project_begin(p, what, error))
    return FALSE;
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      undo ? "SELECT id, idx, x0, y0, x1, y1, before FROM strokes"
             " WHERE stack_id = ? AND undone = 0 ORDER BY id DESC LIMIT 1"
           : "SELECT id, idx, x0, y0, x1, y1, after FROM strokes"
             " WHERE stack_id = ? AND undone = 1 ORDER BY id ASC LIMIT 1",
      error);
  if (st == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  sqlite3_bind_int64(st, 1, stack_id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    emseg_project_rollback(p);
    return TRUE;
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    emseg_project_fail(p, rc, what, error);
    emseg_project_rollback(p);
    return FALSE;
  }
  gint64 id = sqlite3_column_int64(st, 0);
  gint64 idx = sqlite3_column_int64(st, 1);
  gint64 x0 = sqlite3_column_int64(st, 2), y0 = sqlite3_column_int64(st, 3);
  gint64 x1 = sqlite3_column_int64(st, 4), y1 = sqlite3_column_int64(st, 5);
  g_autofree char *where =
      g_strdup_printf("%s: stroke %" G_GINT64_FORMAT, p->path, id);
  gboolean ok = TRUE;
  /* The box comes from the file: check it against the stack before using it. */
  if (idx < 0 || idx >= s.n_slices || x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0 ||
      x1 > s.width || y1 > s.height) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: slice or box out of the stack's bounds", where);
    ok = FALSE;
  }
  Box b = { (guint)x0, (guint)y0, (guint)x1, (guint)y1 };
  gsize n = (gsize)s.width * s.height;
  g_autofree guint8 *patch = ok ? g_malloc(box_area(&b)) : NULL;
  g_autofree guint8 *mask = ok ? g_malloc(n) : NULL;
  ok = ok && emseg_project_decompress(sqlite3_column_blob(st, 6),
                                      (gsize)sqlite3_column_bytes(st, 6), patch, box_area(&b),
                                      where, error);
  sqlite3_reset(st);
  ok = ok && emseg_project_get_mask(p, stack_id, (guint)idx, mask, n, NULL, error);
  if (ok) {
    copy_patch(patch, mask, s.width, &b, FALSE);
    ok = emseg_project_put_mask(p, stack_id, (guint)idx, mask, n, error);
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
  if (!ok) {
    emseg_project_rollback(p);
    return FALSE;
  }
  if (!emseg_project_commit(p, what, error))
    return FALSE;
  if (did != NULL)
    *did = TRUE;
  if (slice_out != NULL)
    *slice_out = (guint)idx;
  return TRUE;
}

gboolean
emseg_project_undo(EmsegProject *p, gint64 stack_id, gboolean *did, guint *slice_out,
                   GError **error)
{
  return step_history(p, stack_id, TRUE, did, slice_out, error);
}

gboolean
emseg_project_redo(EmsegProject *p, gint64 stack_id, gboolean *did, guint *slice_out,
                   GError **error)
{
  return step_history(p, stack_id, FALSE, did, slice_out, error);
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
