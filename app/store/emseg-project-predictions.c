/* emseg-project-predictions.c — per-slice planes a checkpoint produced: its prediction
 * P(cell interior) and its Monte-Carlo dropout uncertainty (standard deviation of P over
 * the passes). Both are kept 16-bit quantized (value / 65535, clamped to [0, 1]) and
 * zlib-compressed, one row per (checkpoint, stack, slice), and go with their checkpoint
 * (ON DELETE CASCADE) when it is replaced. */
#include <math.h>

#include "emseg-project-private.h"

/* The slice's plane quantized and compressed; NULL + error if the stack or slice is not
 * in the project. */
static GBytes *
pack_plane(EmsegProject *p, gint64 stack_id, guint slice, const float *v, GError **error)
{
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error) ||
      !emseg_project_check_slice(p, &s, slice, error))
    return NULL;
  gsize n = (gsize)s.width * s.height;
  g_autofree guint16 *q = g_new(guint16, n);
  for (gsize i = 0; i < n; i++) {
    float x = isnan(v[i]) ? 0.f : CLAMP(v[i], 0.f, 1.f);
    q[i] = (guint16)lrintf(x * 65535.f);
  }
  return emseg_project_compress(q, n * sizeof *q);
}

/* Inserts or replaces one row: st binds model, stack, slice and the blob as ?1..?4 (and
 * anything else the caller bound). */
static gboolean
put_plane(EmsegProject *p, sqlite3_stmt *st, gint64 model_id, gint64 stack_id, guint slice,
          GBytes *blob, const char *what, GError **error)
{
  sqlite3_bind_int64(st, 1, model_id);
  sqlite3_bind_int64(st, 2, stack_id);
  sqlite3_bind_int64(st, 3, slice);
  sqlite3_bind_blob64(st, 4, g_bytes_get_data(blob, NULL), g_bytes_get_size(blob),
                      SQLITE_STATIC);
  if (!emseg_project_step_done(p, st, what, error)) {
    emseg_project_rollback(p);
    return FALSE;
  }
  return emseg_project_commit(p, what, error);
}

/* Reads one row of `table` (data, and samples when samples != NULL) into out; a missing
 * row is a NOT_FOUND error naming the model, stack and slice. */
static gboolean
get_plane(EmsegProject *p, sqlite3_stmt *st, const char *kind, gint64 model_id,
          gint64 stack_id, guint slice, float *out, int *samples, GError **error)
{
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error))
    return FALSE;
  gsize n = (gsize)s.width * s.height;
  sqlite3_bind_int64(st, 1, model_id);
  sqlite3_bind_int64(st, 2, stack_id);
  sqlite3_bind_int64(st, 3, slice);
  int rc = sqlite3_step(st);
  gboolean ok;
  g_autofree char *what = g_strdup_printf("%s: %s of model %" G_GINT64_FORMAT
                                          " for stack %" G_GINT64_FORMAT ", slice %u",
                                          p->path, kind, model_id, stack_id, slice);
  if (rc == SQLITE_ROW) {
    g_autofree guint16 *q = g_new(guint16, n);
    ok = emseg_project_decompress(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0),
                                  q, n * sizeof *q, what, error);
    for (gsize i = 0; ok && i < n; i++)
      out[i] = q[i] / 65535.f;
    if (ok && samples != NULL)
      *samples = sqlite3_column_int(st, 1);
  } else if (rc == SQLITE_DONE) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND, "%s: none stored",
                what);
    ok = FALSE;
  } else {
    g_autofree char *reading = g_strdup_printf("reading a %s", kind);
    ok = emseg_project_fail(p, rc, reading, error);
  }
  sqlite3_reset(st);
  return ok;
}

gboolean
emseg_project_save_prediction(EmsegProject *p, gint64 model_id, gint64 stack_id, guint slice,
                              const float *prob, GError **error)
{
  g_autoptr(GBytes) z = pack_plane(p, stack_id, slice, prob, error);
  if (z == NULL || !emseg_project_begin(p, "saving a prediction", error))
    return FALSE;
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "INSERT OR REPLACE INTO predictions (model_id, stack_id, idx, data, bits)"
      " VALUES (?1, ?2, ?3, ?4, 16)",
      error);
  if (st == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  return put_plane(p, st, model_id, stack_id, slice, z, "saving a prediction", error);
}

gboolean
emseg_project_read_prediction(EmsegProject *p, gint64 model_id, gint64 stack_id, guint slice,
                              float *prob, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p, "SELECT data FROM predictions WHERE model_id = ?1 AND stack_id = ?2 AND idx = ?3",
      error);
  return st != NULL &&
         get_plane(p, st, "prediction", model_id, stack_id, slice, prob, NULL, error);
}

gboolean
emseg_project_save_uncertainty(EmsegProject *p, gint64 model_id, gint64 stack_id, guint slice,
                               int samples, const float *std, GError **error)
{
  if (samples < 2) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID,
                "%s: an uncertainty estimate needs at least 2 Monte-Carlo samples, got %d",
                p->path, samples);
    return FALSE;
  }
  g_autoptr(GBytes) z = pack_plane(p, stack_id, slice, std, error);
  if (z == NULL || !emseg_project_begin(p, "saving an uncertainty estimate", error))
    return FALSE;
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "INSERT OR REPLACE INTO uncertainty (model_id, stack_id, idx, data, samples, bits)"
      " VALUES (?1, ?2, ?3, ?4, ?5, 16)",
      error);
  if (st == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  sqlite3_bind_int(st, 5, samples);
  return put_plane(p, st, model_id, stack_id, slice, z, "saving an uncertainty estimate",
                   error);
}

gboolean
emseg_project_read_uncertainty(EmsegProject *p, gint64 model_id, gint64 stack_id, guint slice,
                               float *std, int *samples, GError **error)
{
  if (!emseg_project_has_table(p, "uncertainty")) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
                "%s: uncertainty of model %" G_GINT64_FORMAT " for stack %" G_GINT64_FORMAT
                ", slice %u: none stored (the project predates stored estimates)",
                p->path, model_id, stack_id, slice);
    return FALSE;
  }
  sqlite3_stmt *st = emseg_project_stmt(p,
                                        "SELECT data, samples FROM uncertainty"
                                        " WHERE model_id = ?1 AND stack_id = ?2 AND idx = ?3",
                                        error);
  int n = 0;
  gboolean ok = st != NULL &&
                get_plane(p, st, "uncertainty", model_id, stack_id, slice, std, &n, error);
  if (ok && samples != NULL)
    *samples = n;
  return ok;
}
