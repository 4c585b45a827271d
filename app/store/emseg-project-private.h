/* emseg-project-private.h — what the project store's files share: the connection struct,
 * the statement cache, transactions, SQLite-to-GError mapping, the blob codec and the mask
 * tiles.
 * Not for use outside app/store. */
#pragma once

#include <sqlite3.h>

#include "emseg-project.h"

struct _EmsegProject {
  sqlite3 *db;          /* owned */
  GThread *owner;       /* borrowed identity: the only thread allowed to use db */
  char *path;           /* owned */
  gboolean read_only;
  int schema_version;   /* the file's: the current one, or older on a read-only open */
  GHashTable *stmts;    /* owned: SQL text -> sqlite3_stmt*, prepared once, reset per use */
};

/* Programmer error, not user input: a connection used from the wrong thread. */
#define EMSEG_PROJECT_ASSERT_THREAD(p) g_assert((p)->owner == g_thread_self())

/* Sets error from the connection's last result: code mapped to EmsegProjectError, message
 * "PATH: WHAT: sqlite message". Returns FALSE for `return project_fail(...)`. */
gboolean emseg_project_fail(EmsegProject *p, int rc, const char *what, GError **error);

/* The cached, reset and unbound statement for sql (a string literal). NULL + error. */
sqlite3_stmt *emseg_project_stmt(EmsegProject *p, const char *sql, GError **error);

/* BEGIN IMMEDIATE (take the write lock up front, so a busy writer waits on the busy
 * timeout instead of failing mid-transaction), COMMIT, ROLLBACK. Rollback never fails
 * the caller: it is only called on a path that already reports an error. */
gboolean emseg_project_begin(EmsegProject *p, const char *what, GError **error);
gboolean emseg_project_commit(EmsegProject *p, const char *what, GError **error);
void emseg_project_rollback(EmsegProject *p);

/* Whether this file has `table` (one of the schema's): FALSE only on a read-only open of
 * a file from before the table was added, where its reads find nothing. */
gboolean emseg_project_has_table(EmsegProject *p, const char *table);

/* Executes a statement that returns no rows. */
gboolean emseg_project_exec(EmsegProject *p, const char *sql, const char *what, GError **error);

/* zlib round trip. decompress checks the result is exactly expected_len bytes and names
 * `what` (table, stack, slice) when the blob is corrupt or of the wrong size. */
GBytes *emseg_project_compress(const void *data, gsize len);
gboolean emseg_project_decompress(const void *blob, gsize blob_len, void *out,
                                  gsize expected_len, const char *what, GError **error);

/* Bytes of one slice, overflow-checked (dims come from the file: untrusted). */
gboolean emseg_project_slice_bytes(const EmsegProjectStack *s, gsize bytes_per_sample,
                                   gsize *out, GError **error);

/* Reads every stroke row back (emseg-project-history.c; used by emseg-project-check.c). */
gboolean emseg_project_check_strokes(EmsegProject *project, GPtrArray *problems, guint64 *n,
                                     GError **error);

/* ---- masks, kept in square tiles (emseg-project-masks.c) ---- */

/* Side of a mask tile in pixels; tiles at the right and bottom edges are smaller. Part of
 * the schema (version 3): changing it needs a migration. Why 256, see emseg-project-masks.c. */
#define EMSEG_PROJECT_MASK_TILE 256u

typedef struct {
  guint x0, y0, x1, y1; /* half-open box [x0, x1) x [y0, y1) in image pixels */
} EmsegProjectBox;

/* The whole slice, and the smallest tile-aligned box that covers b (b within the slice). */
EmsegProjectBox emseg_project_box_whole(const EmsegProjectStack *s);
EmsegProjectBox emseg_project_box_tiles(const EmsegProjectStack *s, const EmsegProjectBox *b);

/* Reads the mask under r (tile-aligned, see emseg_project_box_tiles) into out, r's width
 * bytes per row; tiles without a row are all UNLABELED. Every stored tile is checked (size,
 * zlib stream, label values, its n_labeled) and a bad one is a CORRUPT error naming the
 * stack, slice and tile. n_labeled (may be NULL): non-UNLABELED pixels under r. */
gboolean emseg_project_get_mask_tiles(EmsegProject *p, const EmsegProjectStack *s,
                                      guint slice, const EmsegProjectBox *r, guint8 *out,
                                      guint64 *n_labeled, GError **error);
/* Stores the tiles of r (tile-aligned; mask laid out as in get) that changed, deleting the
 * rows of tiles that became all UNLABELED; a value that is not a label is an INVALID error.
 * old: what the store holds under r, read in the caller's transaction (tiles equal to it
 * are skipped), or NULL to compare each tile with its stored row instead (a row that does
 * not decode is replaced). Inside the caller's transaction. */
gboolean emseg_project_put_mask_tiles(EmsegProject *p, const EmsegProjectStack *s,
                                      guint slice, const EmsegProjectBox *r,
                                      const guint8 *mask, const guint8 *old, GError **error);
/* Schema 3's migration step: cuts every one-blob mask of table masks into tiles, then drops
 * that table. Inside the migration's transaction. */
gboolean emseg_project_migrate_masks_to_tiles(EmsegProject *p, GError **error);

/* TRUE if slice exists in stack s; else a NOT_FOUND error naming the project, the stack
 * and both numbers. */
gboolean emseg_project_check_slice(EmsegProject *project, const EmsegProjectStack *s,
                                   guint slice, GError **error);

/* Steps a statement that returns no rows and resets it; FALSE with the store's error
 * (what = the action, for the message) unless it finished with SQLITE_DONE. */
gboolean emseg_project_step_done(EmsegProject *project, sqlite3_stmt *st, const char *what,
                                 GError **error);
