/* emseg-project-training.c — what training leaves in a project: runs with their
 * hyperparameters, per-epoch metrics, per-layer update statistics and checkpoints (the
 * predictions made with them: emseg-project-predictions.c). Written by the engine thread on its own
 * connection, read by the GUI.
 *
 * A checkpoint replaces its predecessor of the same name inside one transaction, so a kill
 * at any moment leaves the old row or the new one; its SHA-256 is checked on every load
 * because the bytes, like everything in a project file, may come from someone else. */
#include <math.h>
#include <string.h>

#include "emseg-project-private.h"

/* meta key naming the checkpoint chosen as the current model (emseg_project_choose_checkpoint);
 * saving a checkpoint deletes it */
#define CURRENT_MODEL_KEY "current_model"

static char *
now_iso(void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  return g_date_time_format_iso8601(now);
}

/* Runs one prepared write statement in its own transaction. */
static gboolean
write_one(EmsegProject *p, sqlite3_stmt *st, const char *what, GError **error)
{
  if (!emseg_project_step_done(p, st, what, error)) {
    emseg_project_rollback(p);
    return FALSE;
  }
  return emseg_project_commit(p, what, error);
}

static void
bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
  if (s != NULL)
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, i);
}

static char *
column_text_dup(sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text(st, i);
  return t != NULL ? g_strdup((const char *)t) : NULL;
}

/* ---- runs ---- */

gboolean
emseg_project_begin_run(EmsegProject *p, const char *name, const char *params, guint64 seed,
                        gint64 parent_model_id, gint64 *run_id, GError **error)
{
  if (!emseg_project_begin(p, "starting a run", error))
    return FALSE;
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "INSERT INTO runs (name, params, seed, parent_model_id, started, status)"
      " VALUES (?, ?, ?, ?, ?, 'running')",
      error);
  if (st == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  g_autofree char *iso = now_iso();
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, params != NULL ? params : "", -1, SQLITE_TRANSIENT);
  /* SQLite integers are signed 64-bit: the seed's bits are kept, read back as guint64. */
  sqlite3_bind_int64(st, 3, (sqlite3_int64)seed);
  if (parent_model_id > 0)
    sqlite3_bind_int64(st, 4, parent_model_id);
  else
    sqlite3_bind_null(st, 4);
  sqlite3_bind_text(st, 5, iso, -1, SQLITE_TRANSIENT);
  if (!emseg_project_step_done(p, st, "starting a run", error)) {
    emseg_project_rollback(p);
    return FALSE;
  }
  gint64 id = sqlite3_last_insert_rowid(p->db);
  if (!emseg_project_commit(p, "starting a run", error))
    return FALSE;
  if (run_id != NULL)
    *run_id = id;
  return TRUE;
}

gboolean
emseg_project_end_run(EmsegProject *p, gint64 run_id, const char *status, GError **error)
{
  if (g_strcmp0(status, "finished") != 0 && g_strcmp0(status, "cancelled") != 0 &&
      g_strcmp0(status, "failed") != 0) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID,
                "%s: run status must be finished, cancelled or failed, not '%s'", p->path,
                status != NULL ? status : "(null)");
    return FALSE;
  }
  if (!emseg_project_begin(p, "ending a run", error))
    return FALSE;
  sqlite3_stmt *st =
      emseg_project_stmt(p, "UPDATE runs SET status = ?, ended = ? WHERE id = ?", error);
  if (st == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  g_autofree char *iso = now_iso();
  sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, iso, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, run_id);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE && sqlite3_changes(p->db) == 0) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
                "%s: no run %" G_GINT64_FORMAT, p->path, run_id);
    emseg_project_rollback(p);
    return FALSE;
  }
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, "ending a run", error);
    emseg_project_rollback(p);
    return FALSE;
  }
  return emseg_project_commit(p, "ending a run", error);
}

void
emseg_run_clear(EmsegRun *run)
{
  g_clear_pointer(&run->name, g_free);
  g_clear_pointer(&run->params, g_free);
  g_clear_pointer(&run->status, g_free);
  g_clear_pointer(&run->started, g_free);
  g_clear_pointer(&run->ended, g_free);
}

GArray *
emseg_project_list_runs(EmsegProject *p, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "SELECT id, name, params, seed, coalesce(parent_model_id, 0), started, ended, status"
      " FROM runs ORDER BY id",
      error);
  if (st == NULL)
    return NULL;
  GArray *a = g_array_new(FALSE, TRUE, sizeof(EmsegRun));
  g_array_set_clear_func(a, (GDestroyNotify)emseg_run_clear);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    EmsegRun r = {
      .id = sqlite3_column_int64(st, 0),
      .name = column_text_dup(st, 1),
      .params = column_text_dup(st, 2),
      .seed = (guint64)sqlite3_column_int64(st, 3),
      .parent_model_id = sqlite3_column_int64(st, 4),
      .started = column_text_dup(st, 5),
      .ended = column_text_dup(st, 6),
      .status = column_text_dup(st, 7),
    };
    g_array_append_val(a, r);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, "listing runs", error);
    g_array_unref(a);
    return NULL;
  }
  return a;
}

/* ---- metrics and layer statistics ---- */

static void
bind_real(sqlite3_stmt *st, int i, double v)
{
  if (isnan(v))
    sqlite3_bind_null(st, i);
  else
    sqlite3_bind_double(st, i, v);
}

static double
column_real(sqlite3_stmt *st, int i)
{
  return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

gboolean
emseg_project_add_epoch_metrics(EmsegProject *p, gint64 run_id, const EmsegEpochMetrics *m,
                                GError **error)
{
  if (!emseg_project_begin(p, "saving epoch metrics", error))
    return FALSE;
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, train_loss, val_loss,"
      " train_accuracy, val_accuracy, v_rand, v_info, seconds) VALUES (?,?,?,?,?,?,?,?,?)",
      error);
  if (st == NULL) {
    emseg_project_rollback(p);
    return FALSE;
  }
  sqlite3_bind_int64(st, 1, run_id);
  sqlite3_bind_int64(st, 2, m->epoch);
  bind_real(st, 3, m->train_loss);
  bind_real(st, 4, m->val_loss);
  bind_real(st, 5, m->train_accuracy);
  bind_real(st, 6, m->val_accuracy);
  bind_real(st, 7, m->v_rand);
  bind_real(st, 8, m->v_info);
  bind_real(st, 9, m->seconds);
  return write_one(p, st, "saving epoch metrics", error);
}

GArray *
emseg_project_get_epoch_metrics(EmsegProject *p, gint64 run_id, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "SELECT epoch, train_loss, val_loss, train_accuracy, val_accuracy, v_rand, v_info,"
      " seconds FROM epoch_metrics WHERE run_id = ? ORDER BY epoch",
      error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64(st, 1, run_id);
  GArray *a = g_array_new(FALSE, TRUE, sizeof(EmsegEpochMetrics));
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    EmsegEpochMetrics m = {
      .epoch = (guint)sqlite3_column_int64(st, 0),
      .train_loss = column_real(st, 1),
      .val_loss = column_real(st, 2),
      .train_accuracy = column_real(st, 3),
      .val_accuracy = column_real(st, 4),
      .v_rand = column_real(st, 5),
      .v_info = column_real(st, 6),
      .seconds = column_real(st, 7),
    };
    g_array_append_val(a, m);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, "reading epoch metrics", error);
    g_array_unref(a);
    return NULL;
  }
  return a;
}

gboolean
emseg_project_add_layer_stats(EmsegProject *p, gint64 run_id, guint epoch, guint n,
                              const char *const *layer_names, const double *mean_abs_update,
                              const double *mean_abs_weight, GError **error)
{
  if (!emseg_project_begin(p, "saving layer statistics", error))
    return FALSE;
  for (guint i = 0; i < n; i++) {
    sqlite3_stmt *st = emseg_project_stmt(
        p,
        "INSERT OR REPLACE INTO layer_stats (run_id, epoch, layer_index, layer,"
        " mean_abs_update, mean_abs_weight) VALUES (?, ?, ?, ?, ?, ?)",
        error);
    if (st == NULL) {
      emseg_project_rollback(p);
      return FALSE;
    }
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, epoch);
    sqlite3_bind_int64(st, 3, i);
    sqlite3_bind_text(st, 4, layer_names[i], -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, mean_abs_update[i]);
    sqlite3_bind_double(st, 6, mean_abs_weight[i]);
    if (!emseg_project_step_done(p, st, "saving layer statistics", error)) {
      emseg_project_rollback(p);
      return FALSE;
    }
  }
  return emseg_project_commit(p, "saving layer statistics", error);
}

void
emseg_layer_stat_clear(EmsegLayerStat *stat)
{
  g_clear_pointer(&stat->layer, g_free);
}

GArray *
emseg_project_get_layer_stats(EmsegProject *p, gint64 run_id, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "SELECT epoch, layer_index, layer, mean_abs_update, mean_abs_weight FROM layer_stats"
      " WHERE run_id = ? ORDER BY epoch, layer_index",
      error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64(st, 1, run_id);
  GArray *a = g_array_new(FALSE, TRUE, sizeof(EmsegLayerStat));
  g_array_set_clear_func(a, (GDestroyNotify)emseg_layer_stat_clear);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    EmsegLayerStat s = {
      .epoch = (guint)sqlite3_column_int64(st, 0),
      .layer_index = (guint)sqlite3_column_int64(st, 1),
      .layer = column_text_dup(st, 2),
      .mean_abs_update = sqlite3_column_double(st, 3),
      .mean_abs_weight = sqlite3_column_double(st, 4),
    };
    g_array_append_val(a, s);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, "reading layer statistics", error);
    g_array_unref(a);
    return NULL;
  }
  return a;
}

/* ---- checkpoints ---- */

/* Runs one write statement whose only parameter is a checkpoint name (inside the caller's
 * transaction). */
static gboolean
step_with_name(EmsegProject *p, const char *sql, const char *name, const char *what,
               GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(p, sql, error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  return emseg_project_step_done(p, st, what, error);
}

/* The NOT_FOUND error for a name the project holds no checkpoint of; n_models: how many it
 * holds. Returns FALSE. */
static gboolean
no_model_named(EmsegProject *p, const char *name, guint n_models, GError **error)
{
  g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
              "%s holds no model named '%s' (%u models: emseg project info lists them)",
              emseg_project_get_path(p), name, n_models);
  return FALSE;
}

gboolean
emseg_project_save_checkpoint(EmsegProject *p, const char *name, gint64 run_id, guint epoch,
                              const char *spec, const char *scores, const void *weights,
                              gsize weights_len, gint64 *model_id, GError **error)
{
  g_autofree char *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, weights, weights_len);
  if (!emseg_project_begin(p, "saving a checkpoint", error))
    return FALSE;
  /* Delete + insert rather than UPDATE: a fresh id tells readers the checkpoint changed,
   * and predictions of the replaced weights go with them (ON DELETE CASCADE). */
  gboolean ok =
      step_with_name(p, "DELETE FROM models WHERE name = ?", name, "replacing a checkpoint", error);
  sqlite3_stmt *st = NULL;
  if (ok) { /* a new checkpoint is the current model again (see choose_checkpoint) */
    st = emseg_project_stmt(p, "DELETE FROM meta WHERE key = '" CURRENT_MODEL_KEY "'", error);
    ok = st != NULL && emseg_project_step_done(p, st, "saving a checkpoint", error);
  }
  if (ok) {
    st = emseg_project_stmt(
        p,
        "INSERT INTO models (name, run_id, epoch, spec, scores, weights, weights_len, sha256,"
        " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        error);
    ok = st != NULL;
  }
  if (!ok) {
    emseg_project_rollback(p);
    return FALSE;
  }
  g_autofree char *iso = now_iso();
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  if (run_id > 0)
    sqlite3_bind_int64(st, 2, run_id);
  else
    sqlite3_bind_null(st, 2);
  sqlite3_bind_int64(st, 3, epoch);
  sqlite3_bind_text(st, 4, spec != NULL ? spec : "", -1, SQLITE_TRANSIENT);
  bind_text_or_null(st, 5, scores);
  sqlite3_bind_blob64(st, 6, weights, weights_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 7, (sqlite3_int64)weights_len);
  sqlite3_bind_text(st, 8, sha, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 9, iso, -1, SQLITE_TRANSIENT);
  if (!emseg_project_step_done(p, st, "saving a checkpoint", error)) {
    emseg_project_rollback(p);
    return FALSE;
  }
  gint64 id = sqlite3_last_insert_rowid(p->db);
  if (!emseg_project_commit(p, "saving a checkpoint", error))
    return FALSE;
  if (model_id != NULL)
    *model_id = id;
  return TRUE;
}

void
emseg_checkpoint_info_clear(EmsegCheckpointInfo *info)
{
  g_clear_pointer(&info->name, g_free);
  g_clear_pointer(&info->spec, g_free);
  g_clear_pointer(&info->scores, g_free);
  g_clear_pointer(&info->created, g_free);
}

#define MODEL_COLUMNS "id, coalesce(run_id, 0), epoch, name, spec, scores, created, weights_len"
/* The same without reading past the weights: SQLite stores a row's columns in order, so
 * created and weights_len, which follow the blob, cost a walk down its overflow pages
 * (0.08 s to list 9 shipped-size checkpoints, 0.23 s with created, against 0.1 ms without;
 * the workbench lists them on every model change). length() reads the blob's size from the
 * row header; created stays NULL. */
#define MODEL_COLUMNS_QUICK \
  "id, coalesce(run_id, 0), epoch, name, spec, scores, NULL, length(weights)"

static void
read_info(sqlite3_stmt *st, EmsegCheckpointInfo *info)
{
  info->id = sqlite3_column_int64(st, 0);
  info->run_id = sqlite3_column_int64(st, 1);
  info->epoch = (guint)sqlite3_column_int64(st, 2);
  info->name = column_text_dup(st, 3);
  info->spec = column_text_dup(st, 4);
  info->scores = column_text_dup(st, 5);
  info->created = column_text_dup(st, 6);
  gint64 len = sqlite3_column_int64(st, 7);
  info->weights_len = len > 0 ? (gsize)len : 0;
}

GBytes *
emseg_project_load_checkpoint(EmsegProject *p, const char *name, EmsegCheckpointInfo *info,
                              GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p, "SELECT " MODEL_COLUMNS ", weights, sha256 FROM models WHERE name = ?", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
                  "%s: no checkpoint named '%s'", p->path, name);
    else
      emseg_project_fail(p, rc, "loading a checkpoint", error);
    return NULL;
  }
  EmsegCheckpointInfo tmp = { 0 };
  read_info(st, &tmp);
  const void *blob = sqlite3_column_blob(st, 8);
  gsize len = (gsize)sqlite3_column_bytes(st, 8);
  g_autofree char *sha_want = column_text_dup(st, 9);
  g_autofree char *sha_got = g_compute_checksum_for_data(G_CHECKSUM_SHA256, blob, len);
  GBytes *bytes = NULL;
  if (len != tmp.weights_len || g_strcmp0(sha_want, sha_got) != 0) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: checkpoint '%s' is damaged (%" G_GSIZE_FORMAT " bytes, %" G_GSIZE_FORMAT
                " declared; checksum %s)",
                p->path, name, len, tmp.weights_len,
                g_strcmp0(sha_want, sha_got) == 0 ? "matches" : "does not match");
  } else {
    bytes = g_bytes_new(blob, len);
  }
  sqlite3_reset(st);
  if (bytes != NULL && info != NULL)
    *info = tmp;
  else
    emseg_checkpoint_info_clear(&tmp);
  return bytes;
}

static GArray *
list_checkpoints(EmsegProject *p, gboolean dated, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      dated ? "SELECT " MODEL_COLUMNS " FROM models ORDER BY id"
            : "SELECT " MODEL_COLUMNS_QUICK " FROM models ORDER BY id",
      error);
  if (st == NULL)
    return NULL;
  GArray *a = g_array_new(FALSE, TRUE, sizeof(EmsegCheckpointInfo));
  g_array_set_clear_func(a, (GDestroyNotify)emseg_checkpoint_info_clear);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    EmsegCheckpointInfo info = { 0 };
    read_info(st, &info);
    g_array_append_val(a, info);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, "listing checkpoints", error);
    g_array_unref(a);
    return NULL;
  }
  return a;
}

GArray *
emseg_project_list_checkpoints(EmsegProject *p, GError **error)
{
  return list_checkpoints(p, FALSE, error);
}

GArray *
emseg_project_list_checkpoints_dated(EmsegProject *p, GError **error)
{
  return list_checkpoints(p, TRUE, error);
}

EmsegCheckpointInfo *
emseg_checkpoint_find(GArray *checkpoints, const char *name)
{
  for (guint i = 0; i < checkpoints->len; i++)
    if (strcmp(g_array_index(checkpoints, EmsegCheckpointInfo, i).name, name) == 0)
      return &g_array_index(checkpoints, EmsegCheckpointInfo, i);
  return NULL;
}

gboolean
emseg_project_choose_checkpoint(EmsegProject *p, const char *name, GError **error)
{
  g_autoptr(GArray) cps = emseg_project_list_checkpoints(p, error);
  if (cps == NULL)
    return FALSE;
  if (emseg_checkpoint_find(cps, name) != NULL)
    return emseg_project_set_meta(p, CURRENT_MODEL_KEY, name, error);
  return no_model_named(p, name, cps->len, error);
}

gboolean
emseg_project_delete_checkpoint(EmsegProject *p, const char *name, guint *n_planes,
                                GError **error)
{
  if (n_planes != NULL)
    *n_planes = 0;
  if (!emseg_project_begin(p, "deleting a checkpoint", error))
    return FALSE;
  /* counted before the delete: its cascade takes the model's stored planes with it */
  const char *count_sql =
      emseg_project_has_table(p, "uncertainty")
          ? "SELECT (SELECT COUNT(*) FROM predictions WHERE model_id = m.id) +"
            " (SELECT COUNT(*) FROM uncertainty WHERE model_id = m.id) FROM models m"
            " WHERE m.name = ?"
          : "SELECT (SELECT COUNT(*) FROM predictions WHERE model_id = m.id) FROM models m"
            " WHERE m.name = ?";
  sqlite3_stmt *st = emseg_project_stmt(p, count_sql, error);
  gboolean ok = st != NULL, found = FALSE;
  if (ok) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    found = rc == SQLITE_ROW;
    if (found && n_planes != NULL)
      *n_planes = (guint)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    ok = rc == SQLITE_ROW || rc == SQLITE_DONE || emseg_project_fail(p, rc, "deleting a checkpoint", error);
  }
  if (ok && !found) {
    emseg_project_rollback(p);
    g_autoptr(GArray) cps = emseg_project_list_checkpoints(p, NULL);
    return no_model_named(p, name, cps != NULL ? cps->len : 0, error);
  }
  ok = ok &&
       step_with_name(p, "DELETE FROM models WHERE name = ?", name, "deleting a checkpoint", error);
  /* a choice of the deleted model would otherwise outlive it by name */
  ok = ok && step_with_name(p,
                            "DELETE FROM meta WHERE key = '" CURRENT_MODEL_KEY "' AND value = ?",
                            name, "deleting a checkpoint", error);
  if (!ok) {
    emseg_project_rollback(p);
    return FALSE;
  }
  return emseg_project_commit(p, "deleting a checkpoint", error);
}

gboolean
emseg_project_current_checkpoint(EmsegProject *p, EmsegCheckpointInfo *out, gboolean *chosen,
                                 GError **error)
{
  *out = (EmsegCheckpointInfo){ 0 };
  if (chosen != NULL)
    *chosen = FALSE;
  g_autoptr(GError) local = NULL;
  g_autofree char *want = emseg_project_get_meta(p, CURRENT_MODEL_KEY, &local);
  if (local != NULL) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  g_autoptr(GArray) cps = emseg_project_list_checkpoints(p, error);
  if (cps == NULL)
    return FALSE;
  if (cps->len == 0)
    return TRUE;
  /* the latest, unless a choice names one still there */
  EmsegCheckpointInfo *pick = want != NULL ? emseg_checkpoint_find(cps, want) : NULL;
  if (pick != NULL && chosen != NULL)
    *chosen = TRUE;
  if (pick == NULL)
    pick = &g_array_index(cps, EmsegCheckpointInfo, cps->len - 1);
  /* hand over the row's strings rather than copying them */
  *out = *pick;
  *pick = (EmsegCheckpointInfo){ 0 };
  return TRUE;
}
