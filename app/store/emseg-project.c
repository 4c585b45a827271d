/* emseg-project.c — the project store's connection: open with defensive settings and
 * checks, schema migrations, the statement cache, transactions and error mapping, the blob
 * codec, metadata, and stacks / slices. Masks live in emseg-project-masks.c, history in
 * emseg-project-history.c, training records in emseg-project-training.c. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "emseg-labels.h"
#include "emseg-project-private.h"

G_DEFINE_QUARK(emseg-project-error-quark, emseg_project_error)

/* 'EMSG' in the SQLite header: tells our files from other applications' databases. */
#define EMSEG_APPLICATION_ID 0x454D5347
#define BUSY_TIMEOUT_MS 5000

/* Forward-only migrations; version = index + 1, each applied with its user_version bump in
 * one transaction: its SQL, then its step in C when SQL alone cannot convert the data.
 * Never edit a released entry: append a new one. */
static const struct {
  const char *sql;
  gboolean (*step)(EmsegProject *p, GError **error); /* may be NULL */
} migrations[] = {
  /* 1: the initial schema. AUTOINCREMENT where an id must never be reused: a replaced
   * checkpoint or a dropped redo stroke must not hand its id to a newcomer. */
  { "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
  "CREATE TABLE stacks (id INTEGER PRIMARY KEY, name TEXT NOT NULL, source_path TEXT,"
  "  width INTEGER NOT NULL, height INTEGER NOT NULL, n_slices INTEGER NOT NULL,"
  "  sample_type INTEGER NOT NULL, created TEXT NOT NULL);"
  "CREATE TABLE slices (stack_id INTEGER NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
  "  idx INTEGER NOT NULL, pixels BLOB NOT NULL, PRIMARY KEY (stack_id, idx));"
  "CREATE TABLE masks (stack_id INTEGER NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
  "  idx INTEGER NOT NULL, mask BLOB NOT NULL, n_labeled INTEGER NOT NULL,"
  "  PRIMARY KEY (stack_id, idx));"
  "CREATE TABLE strokes (id INTEGER PRIMARY KEY AUTOINCREMENT, stack_id INTEGER NOT NULL"
  "  REFERENCES stacks(id) ON DELETE CASCADE, idx INTEGER NOT NULL, label INTEGER NOT NULL,"
  "  radius REAL NOT NULL, points BLOB NOT NULL, x0 INTEGER NOT NULL, y0 INTEGER NOT NULL,"
  "  x1 INTEGER NOT NULL, y1 INTEGER NOT NULL, before BLOB NOT NULL, after BLOB NOT NULL,"
  "  undone INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL);"
  "CREATE INDEX strokes_by_stack ON strokes (stack_id, undone, id);"
  "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, params TEXT NOT NULL,"
  "  seed INTEGER NOT NULL, parent_model_id INTEGER, started TEXT NOT NULL, ended TEXT,"
  "  status TEXT NOT NULL CHECK (status IN ('running','finished','cancelled','failed')));"
  "CREATE TABLE epoch_metrics (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
  "  epoch INTEGER NOT NULL, train_loss REAL, val_loss REAL, train_accuracy REAL,"
  "  val_accuracy REAL, v_rand REAL, v_info REAL, seconds REAL, PRIMARY KEY (run_id, epoch));"
  "CREATE TABLE layer_stats (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
  "  epoch INTEGER NOT NULL, layer_index INTEGER NOT NULL, layer TEXT NOT NULL,"
  "  mean_abs_update REAL NOT NULL, mean_abs_weight REAL NOT NULL,"
  "  PRIMARY KEY (run_id, epoch, layer_index));"
  "CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, run_id INTEGER,"
  "  epoch INTEGER NOT NULL, spec TEXT NOT NULL, scores TEXT, weights BLOB NOT NULL,"
  "  weights_len INTEGER NOT NULL, sha256 TEXT NOT NULL, created TEXT NOT NULL);"
  "CREATE TABLE predictions (model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
  "  stack_id INTEGER NOT NULL REFERENCES stacks(id) ON DELETE CASCADE, idx INTEGER NOT NULL,"
  "  bits INTEGER NOT NULL CHECK (bits = 16), data BLOB NOT NULL,"
  "  PRIMARY KEY (model_id, stack_id, idx));", NULL },
  /* 2: strokes that belong together (a whole-stack label import): undone and redone as
   * one step. NULL for a brush stroke, which is a step of its own. */
  { "ALTER TABLE strokes ADD COLUMN batch INTEGER;", NULL },
  /* 3: masks in 256 x 256 tiles, one row per tile holding any labelled pixel, so a stroke
   * rewrites only the tiles it touches (emseg-project-masks.c); the step cuts the masks
   * table's one-blob-per-slice masks into tiles and drops it. */
  { "CREATE TABLE mask_tiles (stack_id INTEGER NOT NULL REFERENCES stacks(id)"
    "  ON DELETE CASCADE, idx INTEGER NOT NULL, ty INTEGER NOT NULL, tx INTEGER NOT NULL,"
    "  mask BLOB NOT NULL, n_labeled INTEGER NOT NULL CHECK (n_labeled > 0),"
    "  PRIMARY KEY (stack_id, idx, ty, tx));",
    emseg_project_migrate_masks_to_tiles },
  /* 4: the Monte-Carlo dropout uncertainty of a slice (per-pixel standard deviation of
   * P(cell) over `samples` passes), kept like a prediction so a closed project loses no
   * estimate: one costs minutes on a big slice. */
  { "CREATE TABLE uncertainty (model_id INTEGER NOT NULL REFERENCES models(id)"
    "  ON DELETE CASCADE, stack_id INTEGER NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL, samples INTEGER NOT NULL CHECK (samples >= 2),"
    "  bits INTEGER NOT NULL CHECK (bits = 16), data BLOB NOT NULL,"
    "  PRIMARY KEY (model_id, stack_id, idx));",
    NULL },
};

/* The oldest schema a read-only open accepts as it is (it cannot migrate): one that only
 * lacks tables added after it, which then read as empty (emseg_project_has_table).
 * Older files need masks converted (schema 3) and are refused with the upgrade command. */
#define READABLE_SCHEMA 3

/* What the code expects to find, checked on every open: a file whose tables lack a column
 * we use is refused before any query can misbehave on it. */
static const struct {
  const char *table;
  const char *columns;
  int since; /* the schema version that added the table: not expected in older files */
} expected_schema[] = {
  { "meta", "key,value", 1 },
  { "stacks", "id,name,source_path,width,height,n_slices,sample_type,created", 1 },
  { "slices", "stack_id,idx,pixels", 1 },
  { "mask_tiles", "stack_id,idx,ty,tx,mask,n_labeled", 3 },
  { "strokes", "id,stack_id,idx,label,radius,points,x0,y0,x1,y1,before,after,undone,created,batch",
    1 },
  { "runs", "id,name,params,seed,parent_model_id,started,ended,status", 1 },
  { "epoch_metrics",
    "run_id,epoch,train_loss,val_loss,train_accuracy,val_accuracy,v_rand,v_info,seconds", 1 },
  { "layer_stats", "run_id,epoch,layer_index,layer,mean_abs_update,mean_abs_weight", 1 },
  { "models", "id,name,run_id,epoch,spec,scores,weights,weights_len,sha256,created", 1 },
  { "predictions", "model_id,stack_id,idx,bits,data", 1 },
  { "uncertainty", "model_id,stack_id,idx,samples,bits,data", 4 },
};

int
emseg_project_schema_version(void)
{
  return (int)G_N_ELEMENTS(migrations);
}

int
emseg_project_file_schema(EmsegProject *p)
{
  return p->schema_version;
}

gboolean
emseg_project_has_table(EmsegProject *p, const char *table)
{
  for (guint t = 0; t < G_N_ELEMENTS(expected_schema); t++)
    if (strcmp(expected_schema[t].table, table) == 0)
      return expected_schema[t].since <= p->schema_version;
  g_return_val_if_reached(FALSE);
}

/* ---- errors, statements, transactions ---- */

static EmsegProjectError
map_code(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return EMSEG_PROJECT_ERROR_BUSY;
  case SQLITE_FULL: return EMSEG_PROJECT_ERROR_DISK_FULL;
  case SQLITE_READONLY: return EMSEG_PROJECT_ERROR_READ_ONLY;
  case SQLITE_CORRUPT: return EMSEG_PROJECT_ERROR_CORRUPT;
  case SQLITE_NOTADB: return EMSEG_PROJECT_ERROR_NOT_PROJECT;
  case SQLITE_CANTOPEN: return EMSEG_PROJECT_ERROR_NOT_FOUND;
  case SQLITE_CONSTRAINT: return EMSEG_PROJECT_ERROR_INVALID;
  case SQLITE_INTERRUPT: return EMSEG_PROJECT_ERROR_CANCELLED;
  default: return EMSEG_PROJECT_ERROR_FAILED;
  }
}

gboolean
emseg_project_fail(EmsegProject *p, int rc, const char *what, GError **error)
{
  const char *msg = p->db != NULL ? sqlite3_errmsg(p->db) : sqlite3_errstr(rc);
  const char *hint = "";
  switch (map_code(rc)) {
  case EMSEG_PROJECT_ERROR_DISK_FULL: hint = " (disk full: free some space and retry)"; break;
  case EMSEG_PROJECT_ERROR_READ_ONLY: hint = " (the project is read-only)"; break;
  case EMSEG_PROJECT_ERROR_BUSY: hint = " (another program kept the project locked)"; break;
  case EMSEG_PROJECT_ERROR_CANCELLED: hint = " (stopped: nothing was changed)"; break;
  default: break;
  }
  g_set_error(error, EMSEG_PROJECT_ERROR, map_code(rc), "%s: %s: %s%s", p->path, what, msg, hint);
  return FALSE;
}

sqlite3_stmt *
emseg_project_stmt(EmsegProject *p, const char *sql, GError **error)
{
  EMSEG_PROJECT_ASSERT_THREAD(p);
  sqlite3_stmt *st = g_hash_table_lookup(p->stmts, sql);
  if (st == NULL) {
    int rc = sqlite3_prepare_v3(p->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
      emseg_project_fail(p, rc, "preparing a query", error);
      return NULL;
    }
    g_hash_table_insert(p->stmts, (gpointer)(guintptr)sql, st);
  } else {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  return st;
}

gboolean
emseg_project_exec(EmsegProject *p, const char *sql, const char *what, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(p, sql, error);
  if (st == NULL)
    return FALSE;
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return emseg_project_fail(p, rc, what, error);
  return TRUE;
}

gboolean
emseg_project_begin(EmsegProject *p, const char *what, GError **error)
{
  if (p->read_only) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_READ_ONLY,
                "%s: %s: the project was opened read-only", p->path, what);
    return FALSE;
  }
  return emseg_project_exec(p, "BEGIN IMMEDIATE", what, error);
}

gboolean
emseg_project_commit(EmsegProject *p, const char *what, GError **error)
{
  if (emseg_project_exec(p, "COMMIT", what, error))
    return TRUE;
  emseg_project_rollback(p);
  return FALSE;
}

void
emseg_project_rollback(EmsegProject *p)
{
  if (!sqlite3_get_autocommit(p->db))
    sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- blob codec ---- */

GBytes *
emseg_project_compress(const void *data, gsize len)
{
  /* Level 1: slices are noisy EM images that gain little from harder work, and a stroke's
   * transaction should stay short. */
  g_autoptr(GZlibCompressor) z = g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_ZLIB, 1);
  GByteArray *out = g_byte_array_sized_new((guint)MIN(len / 2 + 64, G_MAXUINT / 2));
  gsize in_pos = 0;
  guint8 chunk[65536];
  for (;;) {
    gsize read = 0, written = 0;
    g_autoptr(GError) err = NULL;
    GConverterResult r = g_converter_convert(G_CONVERTER(z), (const guint8 *)data + in_pos,
                                             len - in_pos, chunk, sizeof chunk,
                                             G_CONVERTER_INPUT_AT_END, &read, &written, &err);
    /* Compression of memory into memory cannot fail except by running out of it. */
    g_assert(r != G_CONVERTER_ERROR);
    in_pos += read;
    g_byte_array_append(out, chunk, (guint)written);
    if (r == G_CONVERTER_FINISHED)
      break;
  }
  return g_byte_array_free_to_bytes(out);
}

gboolean
emseg_project_decompress(const void *blob, gsize blob_len, void *out, gsize expected_len,
                         const char *what, GError **error)
{
  g_autoptr(GZlibDecompressor) z = g_zlib_decompressor_new(G_ZLIB_COMPRESSOR_FORMAT_ZLIB);
  gsize in_pos = 0, out_pos = 0;
  guint8 extra[16];
  for (;;) {
    gsize read = 0, written = 0;
    g_autoptr(GError) err = NULL;
    /* Once out is full, decode into a scratch buffer: any byte there means the blob holds
     * more than its declared shape. */
    gboolean full = out_pos == expected_len;
    GConverterResult r = g_converter_convert(
        G_CONVERTER(z), (const guint8 *)blob + in_pos, blob_len - in_pos,
        full ? extra : (guint8 *)out + out_pos, full ? sizeof extra : expected_len - out_pos,
        G_CONVERTER_INPUT_AT_END, &read, &written, &err);
    if (r == G_CONVERTER_ERROR) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                  "%s: stored data is corrupt (%s)", what, err->message);
      return FALSE;
    }
    in_pos += read;
    if (full && written > 0) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                  "%s: stored data is larger than its declared %" G_GSIZE_FORMAT " bytes", what,
                  expected_len);
      return FALSE;
    }
    out_pos += full ? 0 : written;
    if (r == G_CONVERTER_FINISHED)
      break;
    if (read == 0 && written == 0) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                  "%s: stored data is truncated", what);
      return FALSE;
    }
  }
  if (out_pos != expected_len) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: stored data has %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT,
                what, out_pos, expected_len);
    return FALSE;
  }
  return TRUE;
}

/* ---- open ---- */

static gboolean
query_int(EmsegProject *p, const char *sql, gint64 *out, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(p, sql, error);
  if (st == NULL)
    return FALSE;
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return emseg_project_fail(p, rc, "reading the project header", error);
  }
  *out = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return TRUE;
}

static gboolean
migrate(EmsegProject *p, gint64 from, GError **error)
{
  for (gint64 v = from; v < (gint64)G_N_ELEMENTS(migrations); v++) {
    g_autofree char *what = g_strdup_printf("upgrading the schema to version %d", (int)v + 1);
    if (!emseg_project_begin(p, what, error))
      return FALSE;
    char *errmsg = NULL;
    g_autofree char *bump = g_strdup_printf("PRAGMA user_version = %d; PRAGMA application_id = %d;",
                                            (int)v + 1, EMSEG_APPLICATION_ID);
    int rc = sqlite3_exec(p->db, migrations[v].sql, NULL, NULL, &errmsg);
    if (rc == SQLITE_OK && migrations[v].step != NULL && !migrations[v].step(p, error)) {
      emseg_project_rollback(p);
      return FALSE;
    }
    if (rc == SQLITE_OK)
      rc = sqlite3_exec(p->db, bump, NULL, NULL, &errmsg);
    if (rc != SQLITE_OK) {
      g_set_error(error, EMSEG_PROJECT_ERROR, map_code(rc), "%s: %s: %s", p->path, what,
                  errmsg != NULL ? errmsg : sqlite3_errstr(rc));
      sqlite3_free(errmsg);
      emseg_project_rollback(p);
      return FALSE;
    }
    if (!emseg_project_commit(p, what, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
verify_schema(EmsegProject *p, GError **error)
{
  for (guint t = 0; t < G_N_ELEMENTS(expected_schema); t++) {
    if (expected_schema[t].since > p->schema_version)
      continue;
    sqlite3_stmt *st = emseg_project_stmt(p, "SELECT name FROM pragma_table_info(?)", error);
    if (st == NULL)
      return FALSE;
    sqlite3_bind_text(st, 1, expected_schema[t].table, -1, SQLITE_STATIC);
    g_autoptr(GString) found = g_string_new(NULL);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      g_string_append_printf(found, "%s%s", found->len ? "," : "",
                             (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
      return emseg_project_fail(p, rc, "reading the schema", error);
    g_auto(GStrv) want = g_strsplit(expected_schema[t].columns, ",", -1);
    g_auto(GStrv) have = g_strsplit(found->str, ",", -1);
    for (char **c = want; *c; c++)
      if (!g_strv_contains((const char *const *)have, *c)) {
        g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                    "%s: table '%s' %s column '%s'; the file was damaged or edited by "
                    "another program",
                    p->path, expected_schema[t].table, found->len ? "lacks" : "is missing, no",
                    *c);
        return FALSE;
      }
  }
  return TRUE;
}

static gboolean
marked_read_only(const char *path)
{
  /* access() says yes to root for any file; a file nobody may write was made read-only on
   * purpose (a shared reference project), so we honour the mode bits too. */
  struct stat st;
  if (g_stat(path, &st) == 0 && (st.st_mode & 0222) == 0)
    return TRUE;
  if (g_access(path, W_OK) != 0)
    return TRUE;
  /* WAL needs its -wal and -shm files beside the project. */
  g_autofree char *dir = g_path_get_dirname(path);
  return g_access(dir, W_OK) != 0;
}

static gboolean
configure(EmsegProject *p, GError **error)
{
  sqlite3 *db = p->db;
  int on = 1, off = 0;
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
  /* Defensive: a hostile file cannot corrupt itself through writable_schema tricks or
   * run functions from its schema (views, triggers, CHECKs) with side effects. */
  if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, on, NULL) != SQLITE_OK ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, off, NULL) != SQLITE_OK ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, off, NULL) != SQLITE_OK ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, off, NULL) != SQLITE_OK ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, off, NULL) != SQLITE_OK)
    return emseg_project_fail(p, sqlite3_errcode(db), "applying defensive settings", error);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  return TRUE;
}

static gboolean
check_identity(EmsegProject *p, gboolean *fresh, GError **error)
{
  /* The first read of the file: a non-SQLite file fails here with NOTADB. */
  gint64 n_objects = 0;
  sqlite3_stmt *st = emseg_project_stmt(p, "SELECT count(*) FROM sqlite_schema", error);
  if (st == NULL) {
    if (error && *error && (*error)->code == EMSEG_PROJECT_ERROR_NOT_PROJECT) {
      g_clear_error(error);
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_PROJECT,
                  "%s: not an emseg project (not a SQLite database)", p->path);
    }
    return FALSE;
  }
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    if ((rc & 0xff) == SQLITE_NOTADB) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_PROJECT,
                  "%s: not an emseg project (not a SQLite database)", p->path);
      return FALSE;
    }
    return emseg_project_fail(p, rc, "reading the file", error);
  }
  n_objects = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);

  gint64 app_id = 0, version = 0;
  if (!query_int(p, "PRAGMA application_id", &app_id, error) ||
      !query_int(p, "PRAGMA user_version", &version, error))
    return FALSE;
  *fresh = n_objects == 0 && version == 0 && app_id == 0;
  if (*fresh)
    return TRUE;
  if (app_id != EMSEG_APPLICATION_ID) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_PROJECT,
                "%s: not an emseg project (a SQLite database of another application, "
                "application id 0x%08" G_GINT64_MODIFIER "x)",
                p->path, app_id);
    return FALSE;
  }
  if (version > (gint64)G_N_ELEMENTS(migrations)) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_TOO_NEW,
                "%s: written by a newer emseg (schema version %" G_GINT64_FORMAT
                ", this build knows up to %d); update emseg to open it",
                p->path, version, (int)G_N_ELEMENTS(migrations));
    return FALSE;
  }
  return TRUE;
}

static void
finalize_stmt(gpointer st)
{
  sqlite3_finalize(st);
}

EmsegProject *
emseg_project_open(const char *path, EmsegProjectOpenFlags flags, GError **error)
{
  g_return_val_if_fail(path != NULL, NULL);
  gboolean exists = g_file_test(path, G_FILE_TEST_EXISTS);
  gboolean read_only = (flags & EMSEG_PROJECT_OPEN_READ_ONLY) != 0;
  if (!exists && (!(flags & EMSEG_PROJECT_OPEN_CREATE) || read_only)) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND, "%s: no such project",
                path);
    return NULL;
  }
  if (exists && g_file_test(path, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_PROJECT,
                "%s: is a folder, not a project file", path);
    return NULL;
  }
  if (!exists) {
    /* SQLite says only "unable to open database file" for a missing folder */
    g_autofree char *dir = g_path_get_dirname(path);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
                  "%s: cannot create the project, the folder %s does not exist", path, dir);
      return NULL;
    }
  }
  if (exists && !read_only && marked_read_only(path)) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_READ_ONLY,
                "%s: the file or its folder is read-only, and working on a project writes to "
                "it (every stroke and run is saved as it happens): copy it somewhere writable. "
                "emseg project info, export-labels and predict --project read it as it is",
                path);
    return NULL;
  }

  EmsegProject *p = g_new0(EmsegProject, 1);
  p->owner = g_thread_self();
  p->path = g_strdup(path);
  p->read_only = read_only;
  p->schema_version = (int)G_N_ELEMENTS(migrations);
  p->stmts = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                   finalize_stmt);
  int oflags = SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  /* A URI so read-only opens can say mode=ro / immutable=1; it needs an absolute path, and
   * escapes any '?' or '#' in the name. */
  g_autofree char *abs = g_canonicalize_filename(path, NULL);
  g_autofree char *uri = g_filename_to_uri(abs, NULL, NULL);
  g_autofree char *target = NULL;
  if (read_only && marked_read_only(path))
    /* Nobody can write: no -shm can be created, so tell SQLite the file will not change. */
    target = g_strconcat(uri, "?immutable=1", NULL);
  else if (read_only)
    target = g_strconcat(uri, "?mode=ro", NULL);
  else
    target = g_strdup(uri);
  oflags |= read_only ? SQLITE_OPEN_READONLY
                      : SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(target, &p->db, oflags, NULL);
  gboolean fresh = FALSE;
  gboolean ok = rc == SQLITE_OK ? TRUE : emseg_project_fail(p, rc, "opening", error);
  ok = ok && configure(p, error);
  ok = ok && check_identity(p, &fresh, error);
  if (ok && !(flags & EMSEG_PROJECT_OPEN_SKIP_CHECK)) {
    /* quick_check reads every page but skips index cross-checks: seconds on gigabytes.
     * The full integrity_check is emseg_project_check_integrity(). */
    sqlite3_stmt *st = emseg_project_stmt(p, "PRAGMA quick_check", error);
    ok = st != NULL;
    if (ok) {
      rc = sqlite3_step(st);
      const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
      if (res == NULL || strcmp(res, "ok") != 0) {
        g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                    "%s: the project file is damaged (quick_check: %s)", path,
                    res != NULL ? res : sqlite3_errmsg(p->db));
        ok = FALSE;
      }
      sqlite3_reset(st);
    }
  }
  if (ok && !read_only) {
    /* After the identity check: another application's database is never modified. */
    ok = emseg_project_exec(p, "PRAGMA journal_mode = WAL", "enabling WAL", error) &&
         emseg_project_exec(p, "PRAGMA synchronous = FULL", "setting synchronous", error);
  }
  ok = ok && emseg_project_exec(p, "PRAGMA foreign_keys = ON", "enabling foreign keys", error);
  if (ok) {
    gint64 version = 0;
    ok = query_int(p, "PRAGMA user_version", &version, error);
    if (ok && version < (gint64)G_N_ELEMENTS(migrations)) {
      if (read_only && version >= READABLE_SCHEMA) {
        p->schema_version = (int)version;
      } else if (read_only) {
        g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_READ_ONLY,
                    "%s: %s; opening it writable converts it (the workbench does; from the "
                    "command line: emseg project upgrade %s)", path,
                    fresh ? "empty file" : "written by an older emseg", path);
        ok = FALSE;
      } else {
        ok = migrate(p, version, error);
      }
    }
  }
  ok = ok && verify_schema(p, error);
  if (ok && fresh) {
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *iso = g_date_time_format_iso8601(now);
    ok = emseg_project_set_meta(p, "created", iso, error);
  }
  if (!ok) {
    emseg_project_close(p);
    return NULL;
  }
  return p;
}

int
emseg_project_remove_files(const char *path)
{
  int rc = g_unlink(path) == 0 ? 0 : errno;
  g_autofree char *wal = g_strconcat(path, "-wal", NULL);
  g_autofree char *shm = g_strconcat(path, "-shm", NULL);
  g_unlink(wal);
  g_unlink(shm);
  return rc;
}

void
emseg_project_close(EmsegProject *p)
{
  if (p == NULL)
    return;
  if (p->db != NULL)
    EMSEG_PROJECT_ASSERT_THREAD(p);
  g_hash_table_destroy(p->stmts); /* finalizes every statement before the close */
  if (p->db != NULL && !p->read_only) {
    /* Leave the file in rollback-journal mode: a read-only open of a WAL file (emseg
     * project info, say) must create -wal and -shm beside it and cannot remove them, so a
     * command that only reads would leave two files behind. The next writable open turns
     * WAL on again. Only the last connection can switch; with another one open (the
     * engine thread's) this fails at once (no busy wait) and that one switches later. */
    sqlite3_busy_timeout(p->db, 0);
    sqlite3_exec(p->db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
  }
  sqlite3_close(p->db);
  g_free(p->path);
  g_free(p);
}

const char *
emseg_project_get_path(EmsegProject *p)
{
  return p->path;
}

gboolean
emseg_project_check_integrity(EmsegProject *p, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(p, "PRAGMA integrity_check", error);
  if (st == NULL)
    return FALSE;
  int rc = sqlite3_step(st);
  g_autofree char *res =
      rc == SQLITE_ROW ? g_strdup((const char *)sqlite3_column_text(st, 0)) : NULL;
  sqlite3_reset(st);
  if (res == NULL)
    return emseg_project_fail(p, rc, "checking integrity", error);
  if (strcmp(res, "ok") != 0) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: the project file is damaged (integrity_check: %s)", p->path, res);
    return FALSE;
  }
  return TRUE;
}

/* ---- metadata ---- */

gboolean
emseg_project_set_meta(EmsegProject *p, const char *key, const char *value, GError **error)
{
  if (!emseg_project_begin(p, "saving metadata", error))
    return FALSE;
  sqlite3_stmt *st =
      emseg_project_stmt(p, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", error);
  int rc = SQLITE_ERROR;
  if (st != NULL) {
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  if (st == NULL || rc != SQLITE_DONE) {
    if (st != NULL)
      emseg_project_fail(p, rc, "saving metadata", error);
    emseg_project_rollback(p);
    return FALSE;
  }
  return emseg_project_commit(p, "saving metadata", error);
}

char *
emseg_project_get_meta(EmsegProject *p, const char *key, GError **error)
{
  sqlite3_stmt *st = emseg_project_stmt(p, "SELECT value FROM meta WHERE key = ?", error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  char *v = rc == SQLITE_ROW ? g_strdup((const char *)sqlite3_column_text(st, 0)) : NULL;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    emseg_project_fail(p, rc, "reading metadata", error);
  return v;
}

/* ---- stacks ---- */

void
emseg_project_stack_clear(EmsegProjectStack *s)
{
  g_clear_pointer(&s->name, g_free);
  g_clear_pointer(&s->source_path, g_free);
}

gboolean
emseg_project_slice_bytes(const EmsegProjectStack *s, gsize bytes_per_sample, gsize *out,
                          GError **error)
{
  gsize px = 0, bytes = 0;
  if (s->width == 0 || s->height == 0 || s->width > (1u << 20) || s->height > (1u << 20) ||
      !g_size_checked_mul(&px, s->width, s->height) || px > ((gsize)1 << 30) ||
      !g_size_checked_mul(&bytes, px, bytes_per_sample)) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "stack %" G_GINT64_FORMAT ": implausible size %u x %u", s->id, s->width,
                s->height);
    return FALSE;
  }
  *out = bytes;
  return TRUE;
}

static gboolean
read_stack_row(EmsegProject *p, sqlite3_stmt *st, EmsegProjectStack *out, GError **error)
{
  gint64 w = sqlite3_column_int64(st, 3), h = sqlite3_column_int64(st, 4);
  gint64 n = sqlite3_column_int64(st, 5), type = sqlite3_column_int64(st, 6);
  out->id = sqlite3_column_int64(st, 0);
  if (w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20) || n < 0 || n > 1000000 ||
      type < EMSEG_SAMPLE_U8 || type > EMSEG_SAMPLE_F32) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: stack %" G_GINT64_FORMAT " has an invalid shape or type (%" G_GINT64_FORMAT
                " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT ", type %" G_GINT64_FORMAT ")",
                p->path, out->id, w, h, n, type);
    return FALSE;
  }
  out->name = g_strdup((const char *)sqlite3_column_text(st, 1));
  out->source_path = g_strdup((const char *)sqlite3_column_text(st, 2));
  out->width = (guint)w;
  out->height = (guint)h;
  out->n_slices = (guint)n;
  out->type = (EmsegSampleType)type;
  return TRUE;
}

#define STACK_COLUMNS "id, name, source_path, width, height, n_slices, sample_type"

gboolean
emseg_project_get_stack(EmsegProject *p, gint64 stack_id, EmsegProjectStack *out,
                        GError **error)
{
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st =
      emseg_project_stmt(p, "SELECT " STACK_COLUMNS " FROM stacks WHERE id = ?", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64(st, 1, stack_id);
  int rc = sqlite3_step(st);
  gboolean ok;
  if (rc == SQLITE_ROW) {
    ok = read_stack_row(p, st, out, error);
  } else if (rc == SQLITE_DONE) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
                "%s: no stack %" G_GINT64_FORMAT, p->path, stack_id);
    ok = FALSE;
  } else {
    ok = emseg_project_fail(p, rc, "reading stacks", error);
  }
  sqlite3_reset(st);
  return ok;
}

GArray *
emseg_project_list_stacks(EmsegProject *p, GError **error)
{
  sqlite3_stmt *st =
      emseg_project_stmt(p, "SELECT " STACK_COLUMNS " FROM stacks ORDER BY id", error);
  if (st == NULL)
    return NULL;
  GArray *a = g_array_new(FALSE, TRUE, sizeof(EmsegProjectStack));
  g_array_set_clear_func(a, (GDestroyNotify)emseg_project_stack_clear);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    EmsegProjectStack s = { 0 };
    if (!read_stack_row(p, st, &s, error)) {
      sqlite3_reset(st);
      g_array_unref(a);
      return NULL;
    }
    g_array_append_val(a, s);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    emseg_project_fail(p, rc, "listing stacks", error);
    g_array_unref(a);
    return NULL;
  }
  return a;
}

gboolean
emseg_project_step_done(EmsegProject *p, sqlite3_stmt *st, const char *what, GError **error)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || emseg_project_fail(p, rc, what, error);
}

gboolean
emseg_project_check_slice(EmsegProject *p, const EmsegProjectStack *s, guint slice,
                          GError **error)
{
  if (slice < s->n_slices)
    return TRUE;
  g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND,
              "%s: stack %" G_GINT64_FORMAT " has %u slices, slice %u requested", p->path, s->id,
              s->n_slices, slice);
  return FALSE;
}

gboolean
emseg_project_import_stack(EmsegProject *p, const char *name, EmsegStack *images,
                           EmsegStack *labels, gint64 *stack_id, GError **error)
{
  return emseg_project_import_stack_full(p, name, images, labels, stack_id, NULL, NULL, error);
}

gboolean
emseg_project_import_stack_full(EmsegProject *p, const char *name, EmsegStack *images,
                                EmsegStack *labels, gint64 *stack_id,
                                EmsegProjectImportProgress progress, gpointer user_data,
                                GError **error)
{
  guint w = emseg_stack_get_width(images), h = emseg_stack_get_height(images);
  guint n = emseg_stack_get_n_slices(images);
  EmsegSampleType type = emseg_stack_get_sample_type(images);
  if (labels != NULL) {
    guint lw = emseg_stack_get_width(labels), lh = emseg_stack_get_height(labels);
    guint ln = emseg_stack_get_n_slices(labels);
    if (lw != w || lh != h || ln > n) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID,
                  "%s: labels are %u pages of %u x %u but the images %s are %u pages of "
                  "%u x %u; labels need the same size and at most as many pages",
                  emseg_stack_get_path(labels), ln, lw, lh, emseg_stack_get_path(images), n, w,
                  h);
      return FALSE;
    }
  }
  EmsegProjectStack shape = { 0, NULL, NULL, w, h, n, type };
  EmsegProjectBox whole = emseg_project_box_whole(&shape);
  gsize bytes = 0;
  if (!emseg_project_slice_bytes(&shape, emseg_sample_type_size(type), &bytes, error))
    return FALSE;

  if (!emseg_project_begin(p, "importing a stack", error))
    return FALSE;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  sqlite3_stmt *st = emseg_project_stmt(
      p,
      "INSERT INTO stacks (name, source_path, width, height, n_slices, sample_type, created)"
      " VALUES (?, ?, ?, ?, ?, ?, ?)",
      error);
  gboolean ok = st != NULL;
  if (ok) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, emseg_stack_get_path(images), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, w);
    sqlite3_bind_int64(st, 4, h);
    sqlite3_bind_int64(st, 5, n);
    sqlite3_bind_int64(st, 6, type);
    sqlite3_bind_text(st, 7, iso, -1, SQLITE_TRANSIENT);
    ok = emseg_project_step_done(p, st, "importing a stack", error);
  }
  gint64 id = sqlite3_last_insert_rowid(p->db);
  shape.id = id;
  g_autofree guint8 *raw = g_malloc(bytes);
  g_autofree guint8 *lab = labels != NULL ? g_malloc((gsize)w * h) : NULL;
  for (guint i = 0; ok && i < n; i++) {
    ok = emseg_stack_read_raw(images, i, raw, error);
    if (!ok)
      break;
    /* Samples are stored little-endian whatever the host; x86 and ARM hosts are. */
    G_STATIC_ASSERT(G_BYTE_ORDER == G_LITTLE_ENDIAN);
    g_autoptr(GBytes) z = emseg_project_compress(raw, bytes);
    st = emseg_project_stmt(p, "INSERT INTO slices (stack_id, idx, pixels) VALUES (?, ?, ?)",
                            error);
    ok = st != NULL;
    if (!ok)
      break;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, i);
    sqlite3_bind_blob64(st, 3, g_bytes_get_data(z, NULL), g_bytes_get_size(z), SQLITE_STATIC);
    ok = emseg_project_step_done(p, st, "importing a slice", error);
    if (ok && labels != NULL && i < emseg_stack_get_n_slices(labels)) {
      /* 0 / 128 / 255 as EmsegLabel, or a refusal naming the file, slice and value */
      ok = emseg_labels_read(labels, i, lab, error);
      ok = ok && emseg_project_put_mask_tiles(p, &shape, i, &whole, lab, NULL, error);
    }
    if (ok && progress != NULL && !progress(i + 1, n, user_data)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                  "importing %s stopped at slice %u of %u; nothing was written",
                  emseg_stack_get_path(images), i + 1, n);
      ok = FALSE;
    }
  }
  if (!ok) {
    emseg_project_rollback(p);
    return FALSE;
  }
  if (!emseg_project_commit(p, "importing a stack", error))
    return FALSE;
  if (stack_id != NULL)
    *stack_id = id;
  return TRUE;
}

/* ---- slices ---- */

gboolean
emseg_project_read_slice(EmsegProject *p, gint64 stack_id, guint slice, void *out,
                         GError **error)
{
  g_auto(EmsegProjectStack) s = { 0 };
  gsize bytes = 0;
  if (!emseg_project_get_stack(p, stack_id, &s, error) || !emseg_project_check_slice(p, &s, slice, error) ||
      !emseg_project_slice_bytes(&s, emseg_sample_type_size(s.type), &bytes, error))
    return FALSE;
  sqlite3_stmt *st =
      emseg_project_stmt(p, "SELECT pixels FROM slices WHERE stack_id = ? AND idx = ?", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64(st, 1, stack_id);
  sqlite3_bind_int64(st, 2, slice);
  int rc = sqlite3_step(st);
  gboolean ok;
  g_autofree char *what =
      g_strdup_printf("%s: stack %" G_GINT64_FORMAT ", slice %u", p->path, stack_id, slice);
  if (rc == SQLITE_ROW) {
    ok = emseg_project_decompress(sqlite3_column_blob(st, 0), (gsize)sqlite3_column_bytes(st, 0),
                                  out, bytes, what, error);
  } else if (rc == SQLITE_DONE) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT,
                "%s: pixels are missing from the project", what);
    ok = FALSE;
  } else {
    ok = emseg_project_fail(p, rc, "reading a slice", error);
  }
  sqlite3_reset(st);
  return ok;
}

gboolean
emseg_project_read_slice_float(EmsegProject *p, gint64 stack_id, guint slice, float *out,
                               GError **error)
{
  g_auto(EmsegProjectStack) s = { 0 };
  if (!emseg_project_get_stack(p, stack_id, &s, error))
    return FALSE;
  gsize n = (gsize)s.width * s.height;
  if (s.type == EMSEG_SAMPLE_F32)
    return emseg_project_read_slice(p, stack_id, slice, out, error);
  g_autofree guint8 *raw = g_try_malloc(n * emseg_sample_type_size(s.type));
  if (raw == NULL || !emseg_project_read_slice(p, stack_id, slice, raw, error))
    return FALSE;
  for (gsize i = 0; i < n; i++) {
    switch (s.type) {
    case EMSEG_SAMPLE_U8: out[i] = raw[i]; break;
    case EMSEG_SAMPLE_I8: out[i] = ((gint8 *)raw)[i]; break;
    case EMSEG_SAMPLE_U16: out[i] = ((guint16 *)raw)[i]; break;
    case EMSEG_SAMPLE_I16: out[i] = ((gint16 *)raw)[i]; break;
    case EMSEG_SAMPLE_U32: out[i] = (float)((guint32 *)raw)[i]; break;
    case EMSEG_SAMPLE_I32: out[i] = (float)((gint32 *)raw)[i]; break;
    case EMSEG_SAMPLE_F32: break;
    }
  }
  return TRUE;
}

gboolean
emseg_project_set_max_pages_for_testing(EmsegProject *p, guint64 n_pages, GError **error)
{
  EMSEG_PROJECT_ASSERT_THREAD(p);
  /* A PRAGMA argument cannot be bound; the value is a number we format ourselves. */
  g_autofree char *sql = g_strdup_printf("PRAGMA max_page_count = %" G_GUINT64_FORMAT,
                                         n_pages != 0 ? n_pages : (guint64)4294967294u);
  int rc = sqlite3_exec(p->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK || emseg_project_fail(p, rc, "limiting the file size", error);
}
