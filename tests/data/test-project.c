/* test-project.c — the SQLite project store (app/store): migrations and schema checks,
 * import with partial labels, strokes with undo/redo across reopen, training records,
 * checkpoints and predictions, two threads on two connections, and the files a project
 * must refuse (random bytes, another application's SQLite, a newer schema, a damaged
 * schema or blob, read-only, disk full), each with a message naming the file. */
#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-project.h"
#include "emseg-test-util.h"

#define W 40
#define H 30
#define N 6

static char *scratch;
static guint counter;

static char *
fresh_path(const char *stem)
{
  g_autofree char *name = g_strdup_printf("%s-%u.emseg", stem, counter++);
  return g_build_filename(scratch, name, NULL);
}

/* Images: uint16 ramps; labels: N-2 pages, left half membrane, right half cell. */
static void
make_stacks(EmsegStack **images, EmsegStack **labels, guint label_pages, guint label_width)
{
  g_autofree char *ip = fresh_path("images");
  g_autofree char *lp = fresh_path("labels");
  g_autoptr(GError) error = NULL;
  /* Float images via our writer, so the store also sees a non-8-bit type. */
  g_autofree float *img = g_new(float, W * H * N);
  for (gsize i = 0; i < W * H * N; i++) img[i] = (float)(i % 1000) * 0.5f;
  g_assert_true(emseg_tiff_write_float_stack(ip, img, W, H, N, &error));
  g_autofree guint8 *lab = g_new(guint8, label_width * H * label_pages);
  for (gsize i = 0; i < (gsize)label_width * H * label_pages; i++)
    lab[i] = (i % label_width) < label_width / 2 ? 0 : 255;
  g_assert_true(emseg_tiff_write_u8_stack(lp, lab, label_width, H, label_pages, &error));
  *images = emseg_stack_open(ip, &error);
  g_assert_no_error(error);
  *labels = emseg_stack_open(lp, &error);
  g_assert_no_error(error);
}

static EmsegProject *
make_project(char **path_out, gint64 *stack_id)
{
  g_autofree char *path = fresh_path("project");
  g_autoptr(GError) error = NULL;
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error(error);
  EmsegStack *images, *labels;
  make_stacks(&images, &labels, N - 2, W);
  g_assert_true(emseg_project_import_stack(p, "vol", images, labels, stack_id, &error));
  g_assert_no_error(error);
  emseg_stack_free(images);
  emseg_stack_free(labels);
  if (path_out != NULL)
    *path_out = g_steal_pointer(&path);
  return p;
}

static gint64
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

static void
raw_exec(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    g_error("%s: %s", sql, msg);
  sqlite3_close(db);
}

static void
test_migrations_and_import(void)
{
  g_autofree char *path = NULL;
  gint64 id = 0;
  EmsegProject *p = make_project(&path, &id);
  g_autoptr(GError) error = NULL;

  /* Partial labels: slices 0..N-3 labeled, the last two unlabeled. */
  g_autoptr(GArray) labeled = emseg_project_labeled_slices(p, id, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(labeled->len, ==, N - 2);
  guint8 mask[W * H];
  guint64 n_lab = 0;
  g_assert_true(emseg_project_read_mask(p, id, N - 1, mask, &n_lab, &error));
  g_assert_cmpuint(n_lab, ==, 0);
  for (gsize i = 0; i < W * H; i++) g_assert_cmpuint(mask[i], ==, EMSEG_LABEL_UNLABELED);
  g_assert_true(emseg_project_read_mask(p, id, 0, mask, &n_lab, &error));
  g_assert_cmpuint(n_lab, ==, W * H);
  g_assert_cmpuint(mask[0], ==, EMSEG_LABEL_MEMBRANE);
  g_assert_cmpuint(mask[W - 1], ==, EMSEG_LABEL_CELL);

  /* Pixels come back exactly, raw and as float. */
  float px[W * H];
  g_assert_true(emseg_project_read_slice_float(p, id, 2, px, &error));
  g_assert_no_error(error);
  for (gsize i = 0; i < W * H; i++)
    g_assert_cmpfloat(px[i], ==, (float)((2 * W * H + i) % 1000) * 0.5f);
  g_auto(EmsegProjectStack) s = { 0 };
  g_assert_true(emseg_project_get_stack(p, id, &s, &error));
  g_assert_cmpint(s.type, ==, EMSEG_SAMPLE_F32);
  g_assert_cmpstr(s.name, ==, "vol");
  g_assert_false(emseg_project_read_slice(p, id, N, px, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_clear_error(&error);
  emseg_project_close(p);

  /* Reopening applies no migration twice and keeps everything. */
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, emseg_project_schema_version());
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  emseg_project_close(p);
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, emseg_project_schema_version());
  g_assert_cmpint(raw_int(path, "SELECT count(*) FROM stacks"), ==, 1);
  /* WAL is recorded in the file header: bytes 18 and 19 (read/write versions) are 2. */
  g_autofree char *head = NULL;
  gsize head_len = 0;
  g_assert_true(g_file_get_contents(path, &head, &head_len, NULL));
  g_assert_cmpint(head[18], ==, 2);
  g_assert_cmpint(head[19], ==, 2);
  g_assert_true(emseg_project_check_integrity(p, &error));

  /* Labels of another size, or with more pages than images, are refused. */
  EmsegStack *images, *labels;
  make_stacks(&images, &labels, N - 2, W - 2);
  g_assert_false(emseg_project_import_stack(p, "bad", images, labels, NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "38 x 30"));
  g_assert_nonnull(strstr(error->message, "40 x 30"));
  g_clear_error(&error);
  emseg_stack_free(images);
  emseg_stack_free(labels);
  make_stacks(&images, &labels, N + 1, W);
  g_assert_false(emseg_project_import_stack(p, "bad", images, labels, NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "7 pages"));
  g_clear_error(&error);
  emseg_stack_free(images);
  emseg_stack_free(labels);
  /* The failed imports left nothing behind. */
  g_autoptr(GArray) stacks = emseg_project_list_stacks(p, &error);
  g_assert_cmpuint(stacks->len, ==, 1);
  emseg_project_close(p);
}

static void
test_strokes_undo_redo_across_reopen(void)
{
  g_autofree char *path = NULL;
  gint64 id = 0;
  EmsegProject *p = make_project(&path, &id);
  g_autoptr(GError) error = NULL;
  guint slice = N - 1; /* unlabeled slice */
  const float line[] = { 5, 5, 20, 5 };
  gint64 s1 = 0, s2 = 0;
  g_assert_true(emseg_project_apply_stroke(p, id, slice, EMSEG_LABEL_MEMBRANE, 1.5, line, 2,
                                           &s1, &error));
  g_assert_no_error(error);
  const float dot[] = { 30, 20 };
  g_assert_true(emseg_project_apply_stroke(p, id, slice, EMSEG_LABEL_CELL, 3, dot, 1, &s2,
                                           &error));
  g_assert_cmpint(s2, >, s1);
  guint8 m[W * H];
  guint64 n1 = 0, n2 = 0;
  g_assert_true(emseg_project_read_mask(p, id, slice, m, &n2, &error));
  g_assert_cmpuint(m[5 * W + 10], ==, EMSEG_LABEL_MEMBRANE);
  g_assert_cmpuint(m[20 * W + 30], ==, EMSEG_LABEL_CELL);
  g_assert_cmpuint(m[0], ==, EMSEG_LABEL_UNLABELED);
  emseg_project_close(p);

  /* After a restart, undo removes the dot, then the line. */
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  gboolean did = FALSE;
  guint changed = 0;
  g_assert_true(emseg_project_can_undo(p, id));
  guint span = 0;
  g_assert_true(emseg_project_undo(p, id, &did, &changed, &span, &error));
  g_assert_true(did);
  g_assert_cmpuint(changed, ==, slice);
  g_assert_cmpuint(span, ==, 1);
  g_assert_true(emseg_project_read_mask(p, id, slice, m, &n1, &error));
  g_assert_cmpuint(m[20 * W + 30], ==, EMSEG_LABEL_UNLABELED);
  g_assert_cmpuint(m[5 * W + 10], ==, EMSEG_LABEL_MEMBRANE);
  g_assert_cmpuint(n1, <, n2);
  g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
  g_assert_true(emseg_project_read_mask(p, id, slice, m, &n1, &error));
  g_assert_cmpuint(n1, ==, 0);
  g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
  g_assert_false(did);
  emseg_project_close(p);

  /* Redo after another restart restores exactly; a new stroke then clears the redo list. */
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_true(emseg_project_redo(p, id, &did, NULL, NULL, &error));
  g_assert_true(did);
  g_assert_true(emseg_project_redo(p, id, &did, NULL, NULL, &error));
  g_assert_true(emseg_project_read_mask(p, id, slice, m, &n1, &error));
  g_assert_cmpuint(n1, ==, n2);
  g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
  g_assert_true(emseg_project_can_redo(p, id));
  g_assert_true(emseg_project_apply_stroke(p, id, slice, EMSEG_LABEL_UNLABELED, 2, line, 2,
                                           NULL, &error));
  g_assert_false(emseg_project_can_redo(p, id));
  guint64 applied = 0;
  g_assert_true(emseg_project_stroke_count(p, id, &applied, NULL, &error));
  g_assert_cmpuint(applied, ==, 2);

  /* Bad strokes are refused with reasons. */
  g_assert_false(emseg_project_apply_stroke(p, id, slice, 7, 2, line, 2, NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_clear_error(&error);
  const float nan_pt[] = { NAN, 1 };
  g_assert_false(emseg_project_apply_stroke(p, id, slice, EMSEG_LABEL_CELL, 2, nan_pt, 1, NULL,
                                            &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_clear_error(&error);
  emseg_project_close(p);
}

/* All masks of the stack, slice after slice. */
static void
read_all_masks(EmsegProject *p, gint64 id, guint8 *out)
{
  g_autoptr(GError) error = NULL;
  for (guint z = 0; z < N; z++) {
    g_assert_true(emseg_project_read_mask(p, id, z, out + (gsize)z * W * H, NULL, &error));
    g_assert_no_error(error);
  }
}

/* A label import (replace_masks) is one step of the history: one undo puts every slice
 * back, across a reopen too; unchanged slices are not recorded; bad input writes nothing.
 * A project of schema version 1 (before batches) is upgraded on open. */
static void
test_label_import_one_undo_step(void)
{
  g_autofree char *path = NULL;
  gint64 id = 0;
  EmsegProject *p = make_project(&path, &id);
  g_autoptr(GError) error = NULL;
  const float dot[] = { 10, 10 };
  g_assert_true(emseg_project_apply_stroke(p, id, 2, EMSEG_LABEL_MEMBRANE, 4, dot, 1, NULL,
                                           &error));
  guint8 before[N * W * H], after[N * W * H], now[N * W * H];
  read_all_masks(p, id, before);

  /* Slices 1..4 replaced; slice 1 with what it already holds. */
  memcpy(after, before, sizeof before);
  for (guint z = 2; z <= 4; z++)
    for (guint i = 0; i < W * H; i++)
      after[z * W * H + i] = (i / W) == z ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_CELL;
  guint changed = 99;
  g_assert_true(emseg_project_replace_masks(p, id, 1, 4, after + W * H, &changed, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(changed, ==, 3);
  read_all_masks(p, id, now);
  g_assert_cmpmem(now, sizeof now, after, sizeof after);

  gboolean did = FALSE;
  guint slice = 0, span = 0;
  g_assert_true(emseg_project_undo(p, id, &did, &slice, &span, &error));
  g_assert_true(did);
  g_assert_cmpuint(slice, ==, 2);
  g_assert_cmpuint(span, ==, 3);
  read_all_masks(p, id, now);
  g_assert_cmpmem(now, sizeof now, before, sizeof before);
  emseg_project_close(p);

  /* After a reopen, redo brings the whole import back; then undo twice reaches the dot. */
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_true(emseg_project_redo(p, id, &did, &slice, &span, &error));
  g_assert_true(did);
  read_all_masks(p, id, now);
  g_assert_cmpmem(now, sizeof now, after, sizeof after);
  g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
  g_assert_true(emseg_project_undo(p, id, &did, &slice, &span, &error));
  g_assert_true(did);
  g_assert_cmpuint(slice, ==, 2);
  g_assert_cmpuint(span, ==, 1);
  g_assert_true(emseg_project_redo(p, id, &did, NULL, NULL, &error));

  /* Nothing to change: nothing recorded. */
  guint64 rows = 0, rows2 = 0;
  g_assert_true(emseg_project_stroke_count(p, id, &rows, NULL, &error));
  g_assert_true(emseg_project_replace_masks(p, id, 0, N, before, &changed, &error));
  g_assert_cmpuint(changed, ==, 0);
  g_assert_true(emseg_project_stroke_count(p, id, &rows2, NULL, &error));
  g_assert_cmpuint(rows2, ==, rows);
  g_assert_true(emseg_project_can_redo(p, id)); /* the undone import is still there */

  /* A bad value on the last slice: refused, and the slices before it are untouched. */
  memcpy(now, after, sizeof now);
  now[(N - 1) * W * H + 5] = 7;
  g_assert_false(emseg_project_replace_masks(p, id, 0, N, now, &changed, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_clear_error(&error);
  read_all_masks(p, id, now);
  g_assert_cmpmem(now, sizeof now, before, sizeof before);
  g_assert_true(emseg_project_stroke_count(p, id, &rows2, NULL, &error));
  g_assert_cmpuint(rows2, ==, rows);
  /* Slices past the end of the stack. */
  g_assert_false(emseg_project_replace_masks(p, id, N - 1, 2, after, &changed, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_clear_error(&error);
  /* An import that changes something drops the redo list, as a stroke does. */
  g_assert_true(emseg_project_replace_masks(p, id, 1, 4, after + W * H, &changed, &error));
  g_assert_cmpuint(changed, ==, 3);
  g_assert_false(emseg_project_can_redo(p, id));
  g_assert_true(emseg_project_undo(p, id, &did, &slice, &span, &error));
  g_assert_cmpuint(span, ==, 3);
  read_all_masks(p, id, now);
  g_assert_cmpmem(now, sizeof now, before, sizeof before);
  emseg_project_close(p);

  /* A version-1 file (strokes without batch) is upgraded, its history kept. */
  raw_exec(path, "ALTER TABLE strokes DROP COLUMN batch; PRAGMA user_version = 1;");
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, emseg_project_schema_version());
  g_assert_true(emseg_project_replace_masks(p, id, 1, 4, after + W * H, &changed, &error));
  g_assert_cmpuint(changed, ==, 3);
  g_assert_true(emseg_project_undo(p, id, &did, &slice, &span, &error));
  g_assert_cmpuint(span, ==, 3);
  g_assert_true(emseg_project_undo(p, id, &did, &slice, &span, &error));
  g_assert_true(did);
  g_assert_cmpuint(slice, ==, 2); /* the dot, painted before the upgrade */
  g_assert_cmpuint(span, ==, 1);
  emseg_project_close(p);
}

static void
test_training_records(void)
{
  gint64 id = 0;
  g_autofree char *path = NULL;
  EmsegProject *p = make_project(&path, &id);
  g_autoptr(GError) error = NULL;
  gint64 run = 0;
  g_assert_true(emseg_project_begin_run(p, "r1", "lr=0.001\nbatch=4\n", G_MAXUINT64 - 5, 0,
                                        &run, &error));
  g_assert_no_error(error);
  for (guint e = 0; e < 3; e++) {
    EmsegEpochMetrics m = { e, 1.0 / (e + 1), 1.5 / (e + 1), 0.8, NAN, NAN, NAN, 12.5 };
    g_assert_true(emseg_project_add_epoch_metrics(p, run, &m, &error));
    const char *names[] = { "conv0", "conv1" };
    double upd[] = { 1e-3 * e, 2e-3 }, wt[] = { 0.1, 0.2 };
    g_assert_true(emseg_project_add_layer_stats(p, run, e, 2, names, upd, wt, &error));
  }
  g_assert_true(emseg_project_end_run(p, run, "finished", &error));
  g_assert_false(emseg_project_end_run(p, run, "exploded", &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_clear_error(&error);

  g_autoptr(GArray) runs = emseg_project_list_runs(p, &error);
  g_assert_cmpuint(runs->len, ==, 1);
  EmsegRun *r = &g_array_index(runs, EmsegRun, 0);
  g_assert_cmpuint(r->seed, ==, G_MAXUINT64 - 5);
  g_assert_cmpstr(r->status, ==, "finished");
  g_assert_nonnull(r->ended);
  g_autoptr(GArray) ms = emseg_project_get_epoch_metrics(p, run, &error);
  g_assert_cmpuint(ms->len, ==, 3);
  EmsegEpochMetrics *m2 = &g_array_index(ms, EmsegEpochMetrics, 2);
  g_assert_cmpfloat(m2->train_loss, ==, 1.0 / 3);
  g_assert_true(isnan(m2->v_rand));
  g_autoptr(GArray) ls = emseg_project_get_layer_stats(p, run, &error);
  g_assert_cmpuint(ls->len, ==, 6);
  EmsegLayerStat *l = &g_array_index(ls, EmsegLayerStat, 4);
  g_assert_cmpuint(l->epoch, ==, 2);
  g_assert_cmpstr(l->layer, ==, "conv0");
  g_assert_cmpfloat(l->mean_abs_update, ==, 2e-3);

  /* Checkpoints: replace by name, verify on load, detect tampering. */
  guint8 w1[1000], w2[1500];
  memset(w1, 1, sizeof w1);
  memset(w2, 2, sizeof w2);
  gint64 m_a = 0, m_b = 0;
  g_assert_true(emseg_project_save_checkpoint(p, "latest", run, 1, "spec", NULL, w1, sizeof w1,
                                              &m_a, &error));
  float prob[W * H];
  for (gsize i = 0; i < W * H; i++) prob[i] = (float)i / (W * H);
  g_assert_true(emseg_project_save_prediction(p, m_a, id, 0, prob, &error));
  g_assert_true(emseg_project_save_checkpoint(p, "latest", run, 2, "spec", "v_rand=0.9", w2,
                                              sizeof w2, &m_b, &error));
  g_assert_cmpint(m_b, !=, m_a);
  g_auto(EmsegCheckpointInfo) info = { 0 };
  g_autoptr(GBytes) b = emseg_project_load_checkpoint(p, "latest", &info, &error);
  g_assert_no_error(error);
  g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), w2, sizeof w2);
  g_assert_cmpuint(info.epoch, ==, 2);
  g_assert_cmpstr(info.scores, ==, "v_rand=0.9");
  g_autoptr(GArray) cks = emseg_project_list_checkpoints(p, &error);
  g_assert_cmpuint(cks->len, ==, 1);
  /* The replaced checkpoint's predictions went with it. */
  g_assert_false(emseg_project_read_prediction(p, m_a, id, 0, prob, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_clear_error(&error);
  g_assert_true(emseg_project_save_prediction(p, m_b, id, 0, prob, &error));
  float back[W * H];
  g_assert_true(emseg_project_read_prediction(p, m_b, id, 0, back, &error));
  for (gsize i = 0; i < W * H; i++)
    g_assert_cmpfloat_with_epsilon(back[i], prob[i], 0.5 / 65535 + 1e-7);
  emseg_project_close(p);

  raw_exec(path, "UPDATE models SET weights = zeroblob(1500) WHERE name = 'latest'");
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_null(emseg_project_load_checkpoint(p, "latest", NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "checksum does not match"));
  g_clear_error(&error);
  g_assert_null(emseg_project_load_checkpoint(p, "nope", NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  emseg_project_close(p);
}

static void
expect_open_fails(const char *path, EmsegProjectOpenFlags flags, int code, const char *frag)
{
  g_autoptr(GError) error = NULL;
  EmsegProject *p = emseg_project_open(path, flags, &error);
  g_assert_null(p);
  if (g_test_verbose())
    g_test_message("%s", error != NULL ? error->message : "(no error)");
  g_assert_error(error, EMSEG_PROJECT_ERROR, code);
  g_assert_nonnull(strstr(error->message, path));
  if (strstr(error->message, frag) == NULL)
    g_error("message \"%s\" lacks \"%s\"", error->message, frag);
}

static void
test_refuses_foreign_and_damaged_files(void)
{
  g_autofree char *rnd = fresh_path("random");
  guint8 junk[8192];
  for (gsize i = 0; i < sizeof junk; i++) junk[i] = (guint8)(i * 2654435761u >> 13);
  g_file_set_contents(rnd, (char *)junk, sizeof junk, NULL);
  expect_open_fails(rnd, EMSEG_PROJECT_OPEN_DEFAULT, EMSEG_PROJECT_ERROR_NOT_PROJECT,
                    "not a SQLite database");
  /* a new project in a folder that does not exist: said so, not SQLite's "unable to open" */
  g_autofree char *nowhere = fresh_path("no-such-folder/new.emseg");
  expect_open_fails(nowhere, EMSEG_PROJECT_OPEN_CREATE, EMSEG_PROJECT_ERROR_NOT_FOUND,
                    "no-such-folder does not exist");

  g_autofree char *other = fresh_path("other-app");
  raw_exec(other, "CREATE TABLE bookmarks (url TEXT); PRAGMA application_id = 1234;");
  expect_open_fails(other, EMSEG_PROJECT_OPEN_DEFAULT, EMSEG_PROJECT_ERROR_NOT_PROJECT,
                    "another application");
  /* …and it was not modified: still in rollback-journal mode, no tables of ours. */
  g_assert_cmpint(raw_int(other, "SELECT count(*) FROM sqlite_schema"), ==, 1);
  g_assert_cmpint(raw_int(other, "PRAGMA user_version"), ==, 0);

  g_autofree char *newer = NULL;
  gint64 id = 0;
  emseg_project_close(make_project(&newer, &id));
  raw_exec(newer, "PRAGMA user_version = 99");
  expect_open_fails(newer, EMSEG_PROJECT_OPEN_DEFAULT, EMSEG_PROJECT_ERROR_TOO_NEW,
                    "newer emseg (schema version 99");

  g_autofree char *damaged = NULL;
  emseg_project_close(make_project(&damaged, &id));
  raw_exec(damaged, "ALTER TABLE strokes DROP COLUMN created");
  expect_open_fails(damaged, EMSEG_PROJECT_OPEN_DEFAULT, EMSEG_PROJECT_ERROR_CORRUPT,
                    "table 'strokes' lacks column 'created'");

  /* Blobs are untrusted: a slice of the wrong size and a mask with a non-label value. */
  g_autofree char *blobs = NULL;
  EmsegProject *p = make_project(&blobs, &id);
  emseg_project_close(p);
  raw_exec(blobs, "UPDATE slices SET pixels = x'789c030000000001' WHERE idx = 1;"
                  "UPDATE slices SET pixels = x'00112233' WHERE idx = 2;");
  g_autoptr(GError) error = NULL;
  p = emseg_project_open(blobs, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  float px[W * H];
  g_assert_false(emseg_project_read_slice(p, id, 1, px, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "slice 1"));
  g_assert_nonnull(strstr(error->message, "expected 4800"));
  g_clear_error(&error);
  g_assert_false(emseg_project_read_slice(p, id, 2, px, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "slice 2"));
  g_clear_error(&error);
  /* Slice 0 still reads: damage is reported per slice, not fatal to the project. */
  g_assert_true(emseg_project_read_slice(p, id, 0, px, &error));
  g_assert_no_error(error);
  emseg_project_close(p);

  g_autofree char *missing = fresh_path("missing");
  g_assert_null(emseg_project_open(missing, EMSEG_PROJECT_OPEN_DEFAULT, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
}

static void
test_read_only_and_disk_full(void)
{
  g_autofree char *path = NULL;
  gint64 id = 0;
  emseg_project_close(make_project(&path, &id));
  g_assert_cmpint(g_chmod(path, 0444), ==, 0);
  expect_open_fails(path, EMSEG_PROJECT_OPEN_DEFAULT, EMSEG_PROJECT_ERROR_READ_ONLY,
                    "read-only");
  g_autoptr(GError) error = NULL;
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
  g_assert_no_error(error);
  guint8 m[W * H];
  g_assert_true(emseg_project_read_mask(p, id, 0, m, NULL, &error));
  const float dot[] = { 3, 3 };
  g_assert_false(emseg_project_apply_stroke(p, id, 0, EMSEG_LABEL_CELL, 2, dot, 1, NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_READ_ONLY);
  g_clear_error(&error);
  emseg_project_close(p);
  g_chmod(path, 0644);

  /* Disk full in the middle of a save: the stroke is refused, the project stays usable. */
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  guint64 before = 0;
  g_assert_true(emseg_project_stroke_count(p, id, &before, NULL, &error));
  gint64 pages = raw_int(path, "PRAGMA page_count");
  g_assert_true(emseg_project_set_max_pages_for_testing(p, (guint64)pages, &error));
  /* A checkpoint bigger than any free page left. */
  g_autofree guint8 *big = g_malloc0(1 << 20);
  g_assert_false(emseg_project_save_checkpoint(p, "big", 0, 0, "spec", NULL, big, 1 << 20, NULL,
                                               &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_DISK_FULL);
  g_assert_nonnull(strstr(error->message, "disk full"));
  g_clear_error(&error);
  g_assert_true(emseg_project_set_max_pages_for_testing(p, 0, &error));
  g_assert_true(emseg_project_apply_stroke(p, id, 0, EMSEG_LABEL_CELL, 2, dot, 1, NULL, &error));
  g_assert_no_error(error);
  g_assert_true(emseg_project_check_integrity(p, &error));
  g_autoptr(GArray) cks = emseg_project_list_checkpoints(p, &error);
  g_assert_cmpuint(cks->len, ==, 0);
  emseg_project_close(p);
}

typedef struct {
  const char *path;
  gint64 stack_id;
  guint strokes;
  GError *error; /* owned by the thread until joined */
} WriterArgs;

static gpointer
writer_thread(gpointer data)
{
  WriterArgs *a = data;
  /* Its own connection, as the engine thread does. */
  EmsegProject *p = emseg_project_open(a->path, EMSEG_PROJECT_OPEN_DEFAULT, &a->error);
  if (p == NULL)
    return NULL;
  for (guint i = 0; i < a->strokes && a->error == NULL; i++) {
    float pt[2] = { (float)(i % W), (float)((i * 7) % H) };
    emseg_project_apply_stroke(p, a->stack_id, N - 1, EMSEG_LABEL_CELL, 1.5, pt, 1, NULL,
                               &a->error);
  }
  emseg_project_close(p);
  return NULL;
}

static void
test_two_threads(void)
{
  g_autofree char *path = NULL;
  gint64 id = 0;
  EmsegProject *p = make_project(&path, &id);
  WriterArgs a = { path, id, 60, NULL };
  GThread *t = g_thread_new("writer", writer_thread, &a);
  g_autoptr(GError) error = NULL;
  guint8 m[W * H];
  guint64 last = 0;
  for (guint i = 0; i < 200; i++) {
    guint64 n = 0;
    g_assert_true(emseg_project_read_mask(p, id, N - 1, m, &n, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(n, >=, last); /* the reader never sees a stroke vanish */
    last = n;
  }
  g_thread_join(t);
  g_assert_no_error(a.error);
  guint64 applied = 0;
  g_assert_true(emseg_project_stroke_count(p, id, &applied, NULL, &error));
  g_assert_cmpuint(applied, ==, 60);
  emseg_project_close(p);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  scratch = g_dir_make_tmp("emseg-test-project-XXXXXX", NULL);
  g_assert_nonnull(scratch);
  g_test_add_func("/project/migrations-and-import", test_migrations_and_import);
  g_test_add_func("/project/strokes-undo-redo-across-reopen",
                  test_strokes_undo_redo_across_reopen);
  g_test_add_func("/project/label-import-one-undo-step", test_label_import_one_undo_step);
  g_test_add_func("/project/training-records", test_training_records);
  g_test_add_func("/project/refuses-foreign-and-damaged-files",
                  test_refuses_foreign_and_damaged_files);
  g_test_add_func("/project/read-only-and-disk-full", test_read_only_and_disk_full);
  g_test_add_func("/project/two-threads", test_two_threads);
  int rc = g_test_run();
  emseg_test_remove_tree(scratch);
  g_free(scratch);
  return rc;
}
