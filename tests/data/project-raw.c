/* project-raw.c — tests' access to project files behind the store's back (project-raw.h):
 * plain SQLite and an independent zlib, so what they check or write does not go through
 * the code under test. */
#include "project-raw.h"

#include <sqlite3.h>

#include <gio/gio.h>

gint64
raw_int(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  sqlite3_stmt *st = NULL;
  g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint(sqlite3_step(st), ==, SQLITE_ROW);
  gint64 v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

void
raw_exec(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    g_error("%s: %s", sql, msg);
  sqlite3_close(db);
}

void
raw_exec_blob(const char *path, const char *sql, const void *blob, gsize len)
{
  sqlite3 *db = NULL;
  g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
  sqlite3_stmt *st = NULL;
  g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
  sqlite3_bind_blob64(st, 1, blob, len, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    g_error("%s: %s", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
}

GBytes *
zlib_compress(const void *data, gsize len)
{
  g_autoptr(GZlibCompressor) z = g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_ZLIB, 6);
  gsize cap = len + len / 100 + 64, read = 0, written = 0;
  guint8 *out = g_malloc(cap);
  GConverterResult r = g_converter_convert(G_CONVERTER(z), data, len, out, cap,
                                           G_CONVERTER_INPUT_AT_END, &read, &written, NULL);
  g_assert_cmpint(r, ==, G_CONVERTER_FINISHED);
  g_assert_cmpuint(read, ==, len);
  return g_bytes_new_take(out, written);
}

void
downgrade_to_v3(const char *path)
{
  raw_exec(path, "DROP TABLE uncertainty; PRAGMA user_version = 3;");
}

void
downgrade_to_v2(const char *path, gint64 id)
{
  g_autoptr(GError) error = NULL;
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_auto(EmsegProjectStack) s = { 0 };
  g_assert_true(emseg_project_get_stack(p, id, &s, &error));
  gsize plane = (gsize)s.width * s.height;
  g_autofree guint8 *masks = g_malloc(plane * s.n_slices);
  g_autofree guint64 *counts = g_new(guint64, s.n_slices);
  for (guint z = 0; z < s.n_slices; z++)
    g_assert_true(emseg_project_read_mask(p, id, z, masks + z * plane, &counts[z], &error));
  emseg_project_close(p);
  /* table masks as schema 1 defined it */
  downgrade_to_v3(path);
  raw_exec(path, "DROP TABLE mask_tiles;"
                 "CREATE TABLE masks (stack_id INTEGER NOT NULL REFERENCES stacks(id) ON DELETE"
                 "  CASCADE, idx INTEGER NOT NULL, mask BLOB NOT NULL, n_labeled INTEGER NOT NULL,"
                 "  PRIMARY KEY (stack_id, idx));"
                 "PRAGMA user_version = 2;");
  for (guint z = 0; z < s.n_slices; z++) {
    if (counts[z] == 0)
      continue;
    g_autoptr(GBytes) zb = zlib_compress(masks + z * plane, plane);
    g_autofree char *sql = g_strdup_printf("INSERT INTO masks VALUES (%" G_GINT64_FORMAT
                                           ", %u, ?1, %" G_GUINT64_FORMAT ")",
                                           id, z, counts[z]);
    raw_exec_blob(path, sql, g_bytes_get_data(zb, NULL), g_bytes_get_size(zb));
  }
}

