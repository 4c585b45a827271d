/* test-project.c — the SQLite project store (app/store): migrations and schema checks
 * (schema 2's one-blob masks cut into tiles), import with partial labels, masks in tiles
 * (sizes that are not multiples of the tile, strokes across tile borders, a tile erased
 * back to no row), strokes with undo/redo across reopen, training records, checkpoints and
 * predictions, two threads on two connections, and the files a project must refuse
 * (random bytes, another application's SQLite, a newer schema, a damaged schema, blob or
 * mask tile, read-only, disk full), each with a message naming the file. */
#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-project.h"
#include "emseg-test-util.h"
#include "project-raw.h"

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

/* An EmsegProjectImportProgress that stops after the second slice; seen: calls, last done. */
static gboolean
stop_after_two(guint done, guint total, gpointer user_data)
{
  guint *seen = user_data;
  g_assert_cmpuint(done, ==, seen[1] + 1);
  g_assert_cmpuint(total, ==, N);
  seen[0]++;
  seen[1] = done;
  return done < 2;
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

/* A project with one stack of n w x h uint8 slices and no labels. */
static EmsegProject *
make_sized_project(guint w, guint h, guint n, char **path_out, gint64 *stack_id)
{
  g_autofree char *ip = fresh_path("images");
  g_autofree char *path = fresh_path("project");
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *img = g_malloc((gsize)w * h * n);
  for (gsize i = 0; i < (gsize)w * h * n; i++) img[i] = (guint8)(i * 7);
  g_assert_true(emseg_tiff_write_u8_stack(ip, img, w, h, n, &error));
  EmsegStack *images = emseg_stack_open(ip, &error);
  g_assert_no_error(error);
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error(error);
  g_assert_true(emseg_project_import_stack(p, "sized", images, NULL, stack_id, &error));
  emseg_stack_free(images);
  *path_out = g_steal_pointer(&path);
  return p;
}

/* Labels at random; unlabeled_share of the pixels (about) left UNLABELED. */
static void
random_labels(guint8 *m, gsize n, GRand *rng, double unlabeled_share)
{
  for (gsize i = 0; i < n; i++) {
    double u = g_rand_double(rng);
    m[i] = u < unlabeled_share                         ? EMSEG_LABEL_UNLABELED
           : u < unlabeled_share + (1 - unlabeled_share) / 2 ? EMSEG_LABEL_MEMBRANE
                                                             : EMSEG_LABEL_CELL;
  }
}

#define TILE 256 /* the store's tile side (schema 3) */

/* Tiles of a w x h mask that hold any labelled pixel: the rows the store should have. */
static gint64
labeled_tiles(const guint8 *m, guint w, guint h)
{
  gint64 n = 0;
  for (guint ty = 0; ty * TILE < h; ty++)
    for (guint tx = 0; tx * TILE < w; tx++) {
      gboolean any = FALSE;
      for (guint y = ty * TILE; !any && y < MIN(h, ty * TILE + TILE); y++)
        for (guint x = tx * TILE; !any && x < MIN(w, tx * TILE + TILE); x++)
          any = m[(gsize)y * w + x] != EMSEG_LABEL_UNLABELED;
      n += any;
    }
  return n;
}

static gint64
tile_rows(const char *path, gint64 id, guint slice)
{
  g_autofree char *sql = g_strdup_printf(
      "SELECT count(*) FROM mask_tiles WHERE stack_id = %" G_GINT64_FORMAT " AND idx = %u", id,
      slice);
  return raw_int(path, sql);
}

/* The brush as the store documents it: pixel (x, y) is painted when its centre lies
 * within radius of a segment of the polyline (a single point is a dot). */
static void
paint_oracle(guint8 *m, guint w, guint h, const float *xy, guint n, double radius, guint8 label)
{
  for (guint y = 0; y < h; y++)
    for (guint x = 0; x < w; x++)
      for (guint i = 0; i < n; i++) {
        guint j = i + 1 < n ? i + 1 : i;
        double ax = xy[2 * i], ay = xy[2 * i + 1], bx = xy[2 * j], by = xy[2 * j + 1];
        double px = x + 0.5, py = y + 0.5, dx = bx - ax, dy = by - ay;
        double len2 = dx * dx + dy * dy;
        double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
        t = CLAMP(t, 0.0, 1.0);
        double cx = ax + t * dx - px, cy = ay + t * dy - py;
        if (cx * cx + cy * cy <= radius * radius) {
          m[(gsize)y * w + x] = label;
          break;
        }
      }
}

static void
assert_mask(EmsegProject *p, gint64 id, guint slice, const guint8 *want, gsize n)
{
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *got = g_malloc(n);
  guint64 n_lab = 0, want_lab = 0;
  g_assert_true(emseg_project_read_mask(p, id, slice, got, &n_lab, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(got, n, want, n);
  for (gsize i = 0; i < n; i++) want_lab += want[i] != EMSEG_LABEL_UNLABELED;
  g_assert_cmpuint(n_lab, ==, want_lab);
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
  /* An import stopped by its progress callback (Ctrl-C, a closed window) writes nothing; the
   * callback saw each slice stored, in order. */
  make_stacks(&images, &labels, N - 2, W);
  guint seen[2] = { 0, 0 }; /* calls, last done */
  g_assert_false(emseg_project_import_stack_full(p, "stopped", images, labels, NULL,
                                                 stop_after_two, seen, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_nonnull(strstr(error->message, "stopped at slice 2 of 6; nothing was written"));
  g_assert_cmpuint(seen[0], ==, 2);
  g_assert_cmpuint(seen[1], ==, 2);
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

  /* A version-1 file (strokes without batch, one-blob masks) is upgraded, its history and
   * labels kept (`before` is what the slices hold now). */
  downgrade_to_v2(path, id);
  raw_exec(path, "ALTER TABLE strokes DROP COLUMN batch; PRAGMA user_version = 1;");
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, emseg_project_schema_version());
  read_all_masks(p, id, now);
  g_assert_cmpmem(now, sizeof now, before, sizeof before);
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
  g_assert_true(emseg_project_save_uncertainty(p, m_a, id, 0, 4, prob, &error));
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
  /* the quick list reads the size from the blob's header and leaves the date out; the dated
   * one has it, as the load does */
  g_assert_cmpuint(g_array_index(cks, EmsegCheckpointInfo, 0).weights_len, ==, sizeof w2);
  g_assert_cmpstr(g_array_index(cks, EmsegCheckpointInfo, 0).scores, ==, "v_rand=0.9");
  g_assert_null(g_array_index(cks, EmsegCheckpointInfo, 0).created);
  {
    g_autoptr(GArray) dated = emseg_project_list_checkpoints_dated(p, &error);
    g_assert_cmpuint(dated->len, ==, 1);
    g_assert_cmpuint(g_array_index(dated, EmsegCheckpointInfo, 0).weights_len, ==, sizeof w2);
    g_assert_cmpstr(g_array_index(dated, EmsegCheckpointInfo, 0).created, ==, info.created);
    g_assert_nonnull(info.created);
  }

  /* The current model: the latest, unless one was chosen since the last checkpoint saved;
   * a choice of a name the project does not hold is refused. */
  {
    g_auto(EmsegCheckpointInfo) cur = { 0 };
    gboolean chosen = TRUE;
    gint64 m_c = 0;
    g_assert_true(emseg_project_current_checkpoint(p, &cur, &chosen, &error));
    g_assert_cmpint(cur.id, ==, m_b);
    g_assert_false(chosen);
    emseg_checkpoint_info_clear(&cur);
    g_assert_true(emseg_project_save_checkpoint(p, "other", 0, 0, "spec", NULL, w1, sizeof w1,
                                                &m_c, &error));
    g_assert_true(emseg_project_current_checkpoint(p, &cur, &chosen, &error));
    g_assert_cmpstr(cur.name, ==, "other");
    emseg_checkpoint_info_clear(&cur);
    g_assert_true(emseg_project_choose_checkpoint(p, "latest", &error));
    g_assert_true(emseg_project_current_checkpoint(p, &cur, &chosen, &error));
    g_assert_cmpstr(cur.name, ==, "latest");
    g_assert_cmpint(cur.id, ==, m_b);
    g_assert_true(chosen);
    emseg_checkpoint_info_clear(&cur);
    g_assert_false(emseg_project_choose_checkpoint(p, "nope", &error));
    g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "no model named 'nope'"));
    g_clear_error(&error);
    /* a checkpoint saved (a run's, an import) makes the newest current again */
    g_assert_true(emseg_project_save_checkpoint(p, "other", 0, 0, "spec", NULL, w2, sizeof w2,
                                                &m_c, &error));
    g_assert_true(emseg_project_current_checkpoint(p, &cur, &chosen, &error));
    g_assert_cmpstr(cur.name, ==, "other");
    g_assert_false(chosen);
    emseg_checkpoint_info_clear(&cur);
    g_assert_true(emseg_project_choose_checkpoint(p, "latest", &error));
    /* the others below count on one checkpoint: "other" goes again, with the choice kept */
    raw_exec(path, "DELETE FROM models WHERE name = 'other'");
    g_assert_true(emseg_project_current_checkpoint(p, &cur, &chosen, &error));
    g_assert_cmpint(cur.id, ==, m_b);
    g_assert_true(chosen);
  }
  /* The replaced checkpoint's predictions went with it. */
  g_assert_false(emseg_project_read_prediction(p, m_a, id, 0, prob, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_clear_error(&error);
  g_assert_false(emseg_project_read_uncertainty(p, m_a, id, 0, prob, NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_clear_error(&error);
  g_assert_true(emseg_project_save_prediction(p, m_b, id, 0, prob, &error));
  float back[W * H];
  g_assert_true(emseg_project_read_prediction(p, m_b, id, 0, back, &error));
  for (gsize i = 0; i < W * H; i++)
    g_assert_cmpfloat_with_epsilon(back[i], prob[i], 0.5 / 65535 + 1e-7);

  /* Uncertainty estimates: kept per checkpoint and slice with their number of passes, a
   * newer estimate replacing the older; fewer than 2 passes is not an estimate. */
  float std[W * H];
  for (gsize i = 0; i < W * H; i++) std[i] = 0.5f * (float)((i * 7) % 13) / 12;
  g_assert_true(emseg_project_save_uncertainty(p, m_b, id, 0, 4, prob, &error));
  g_assert_true(emseg_project_save_uncertainty(p, m_b, id, 0, 16, std, &error));
  int samples = 0;
  g_assert_true(emseg_project_read_uncertainty(p, m_b, id, 0, back, &samples, &error));
  g_assert_cmpint(samples, ==, 16);
  for (gsize i = 0; i < W * H; i++)
    g_assert_cmpfloat_with_epsilon(back[i], std[i], 0.5 / 65535 + 1e-7);
  g_assert_false(emseg_project_save_uncertainty(p, m_b, id, 1, 1, std, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "at least 2 Monte-Carlo samples, got 1"));
  g_clear_error(&error);
  g_assert_false(emseg_project_read_uncertainty(p, m_b, id, 1, back, &samples, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, "uncertainty of model"));
  g_assert_nonnull(strstr(error->message, "slice 1: none stored"));
  g_clear_error(&error);
  emseg_project_close(p);

  /* Damaged: an error naming what, never a crash. */
  raw_exec(path, "UPDATE uncertainty SET data = x'789c0300'");
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_false(emseg_project_read_uncertainty(p, m_b, id, 0, back, &samples, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "uncertainty of model"));
  g_clear_error(&error);
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
                    "is read-only, and working on a project writes to it");
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

/* Masks in tiles: round trips on sizes that are not multiples of the tile side and on a
 * slice smaller than one tile; a rewrite stores only the tiles that changed; strokes across
 * tile borders and the image's edge match the brush's definition and undo / redo back to
 * identical masks; a tile erased back to UNLABELED loses its row; replace_masks undo;
 * labeled_slices. */
static void
test_mask_tiles(void)
{
  const guint sizes[][2] = { { 300, 517 }, { 100, 60 }, { 512, 256 } };
  GRand *rng = g_rand_new_with_seed(7);
  for (guint k = 0; k < G_N_ELEMENTS(sizes); k++) {
    guint w = sizes[k][0], h = sizes[k][1], n_slices = 4;
    gsize n = (gsize)w * h;
    g_autofree char *path = NULL;
    gint64 id = 0;
    g_autoptr(GError) error = NULL;
    EmsegProject *p = make_sized_project(w, h, n_slices, &path, &id);
    g_autoptr(GArray) none = emseg_project_labeled_slices(p, id, &error);
    g_assert_cmpuint(none->len, ==, 0);
    g_assert_cmpint(raw_int(path, "SELECT count(*) FROM mask_tiles"), ==, 0);

    /* Slice 1: random labels with holes; slice 3: one labelled pixel in the last tile. */
    g_autofree guint8 *m1 = g_malloc(n), *m3 = g_malloc(n), *all_unl = g_malloc(n);
    memset(all_unl, EMSEG_LABEL_UNLABELED, n);
    random_labels(m1, n, rng, 0.3);
    memcpy(m3, all_unl, n);
    m3[n - 1] = EMSEG_LABEL_CELL;
    g_assert_true(emseg_project_write_mask(p, id, 1, m1, &error));
    g_assert_true(emseg_project_write_mask(p, id, 3, m3, &error));
    g_assert_no_error(error);
    assert_mask(p, id, 1, m1, n);
    assert_mask(p, id, 3, m3, n);
    assert_mask(p, id, 0, all_unl, n);
    g_assert_cmpint(tile_rows(path, id, 1), ==, labeled_tiles(m1, w, h));
    g_assert_cmpint(tile_rows(path, id, 3), ==, 1);
    g_autoptr(GArray) labeled = emseg_project_labeled_slices(p, id, &error);
    g_assert_cmpuint(labeled->len, ==, 2);
    g_assert_cmpuint(g_array_index(labeled, guint, 0), ==, 1);
    g_assert_cmpuint(g_array_index(labeled, guint, 1), ==, 3);

    /* Rewriting with one pixel changed replaces exactly one row (REPLACE takes a new
     * rowid; the rows of the unchanged tiles keep theirs). */
    gint64 top = raw_int(path, "SELECT max(rowid) FROM mask_tiles");
    m1[n / 2] = m1[n / 2] == EMSEG_LABEL_CELL ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_CELL;
    g_assert_true(emseg_project_write_mask(p, id, 1, m1, &error));
    g_autofree char *newer = g_strdup_printf("SELECT count(*) FROM mask_tiles WHERE rowid > %"
                                             G_GINT64_FORMAT, top);
    g_assert_cmpint(raw_int(path, newer), ==, 1);
    assert_mask(p, id, 1, m1, n);

    /* A stroke across the corner of four tiles (or the middle of a small slice) and one
     * off the bottom-right edge: each exactly the brush's pixels; undo / redo exact. */
    const float cross[] = { MIN(250.f, w / 2.f), MIN(250.f, h / 2.f),
                            MIN(270.f, w / 2.f + 20), MIN(262.f, h / 2.f + 12),
                            MIN(252.f, w / 2.f + 2), MIN(275.f, h / 2.f + 25) };
    const float edge[] = { w - 3.f, h - 40.f, w + 10.f, h + 5.f };
    g_autofree guint8 *before = g_memdup2(m1, n), *after1 = g_memdup2(m1, n);
    paint_oracle(after1, w, h, cross, 3, 7.5, EMSEG_LABEL_MEMBRANE);
    g_autofree guint8 *after2 = g_memdup2(after1, n);
    paint_oracle(after2, w, h, edge, 2, 4, EMSEG_LABEL_UNLABELED);
    g_assert_true(emseg_project_apply_stroke(p, id, 1, EMSEG_LABEL_MEMBRANE, 7.5, cross, 3,
                                             NULL, &error));
    assert_mask(p, id, 1, after1, n);
    g_assert_true(emseg_project_apply_stroke(p, id, 1, EMSEG_LABEL_UNLABELED, 4, edge, 2, NULL,
                                             &error));
    g_assert_no_error(error);
    assert_mask(p, id, 1, after2, n);
    g_assert_cmpint(tile_rows(path, id, 1), ==, labeled_tiles(after2, w, h));
    gboolean did = FALSE;
    g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
    assert_mask(p, id, 1, after1, n);
    g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
    assert_mask(p, id, 1, before, n);
    g_assert_true(emseg_project_redo(p, id, &did, NULL, NULL, &error));
    g_assert_true(emseg_project_redo(p, id, &did, NULL, NULL, &error));
    g_assert_true(did);
    assert_mask(p, id, 1, after2, n);

    /* Erasing slice 3's one pixel removes its tile's row and the slice from the list;
     * undo brings both back. */
    const float dot[] = { w - 1.f, h - 1.f };
    g_assert_true(emseg_project_apply_stroke(p, id, 3, EMSEG_LABEL_UNLABELED, 3, dot, 1, NULL,
                                             &error));
    assert_mask(p, id, 3, all_unl, n);
    g_assert_cmpint(tile_rows(path, id, 3), ==, 0);
    g_autoptr(GArray) after_erase = emseg_project_labeled_slices(p, id, &error);
    g_assert_cmpuint(after_erase->len, ==, 1);
    g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
    assert_mask(p, id, 3, m3, n);
    g_assert_cmpint(tile_rows(path, id, 3), ==, 1);

    /* replace_masks over all slices, undone in one step back to identical masks. */
    g_autofree guint8 *old_all = g_malloc(n * n_slices), *new_all = g_malloc(n * n_slices);
    for (guint z = 0; z < n_slices; z++)
      g_assert_true(emseg_project_read_mask(p, id, z, old_all + z * n, NULL, &error));
    random_labels(new_all, n * n_slices, rng, 0.5);
    memcpy(new_all + 3 * n, all_unl, n); /* slice 3's tile goes */
    guint changed = 0;
    g_assert_true(emseg_project_replace_masks(p, id, 0, n_slices, new_all, &changed, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(changed, ==, 4);
    for (guint z = 0; z < n_slices; z++) assert_mask(p, id, z, new_all + z * n, n);
    g_assert_cmpint(tile_rows(path, id, 3), ==, 0);
    g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
    for (guint z = 0; z < n_slices; z++) assert_mask(p, id, z, old_all + z * n, n);
    g_assert_cmpint(tile_rows(path, id, 0), ==, 0);
    g_assert_cmpint(tile_rows(path, id, 3), ==, 1);
    g_assert_true(emseg_project_check_integrity(p, &error));
    g_assert_no_error(error);
    emseg_project_close(p);
  }
  g_rand_free(rng);
}

/* A project as schema 2 wrote it (each mask one blob) is cut into tiles on open, inside
 * one transaction: the masks read back exactly, the old table is gone, the history still
 * undoes; a read-only open refuses to upgrade and leaves the file as it was. */
static void
test_migrate_v2_masks_to_tiles(void)
{
  guint w = 300, h = 517, n_slices = 5;
  gsize n = (gsize)w * h;
  g_autofree char *path = NULL;
  gint64 id = 0;
  g_autoptr(GError) error = NULL;
  EmsegProject *p = make_sized_project(w, h, n_slices, &path, &id);
  GRand *rng = g_rand_new_with_seed(11);
  g_autofree guint8 *want = g_malloc(n * n_slices);
  memset(want, EMSEG_LABEL_UNLABELED, n * n_slices);
  random_labels(want, n, rng, 0.0);                 /* slice 0: fully labelled */
  random_labels(want + 2 * n, n, rng, 0.9);         /* slice 2: sparse */
  for (guint y = 300; y < 310; y++)                 /* slice 4: a bar in the bottom tiles */
    memset(want + 4 * n + (gsize)y * w + 20, EMSEG_LABEL_CELL, 270);
  for (guint z = 0; z < n_slices; z++)
    g_assert_true(emseg_project_write_mask(p, id, z, want + z * n, &error));
  const float line[] = { 10, 10, 280, 500 };
  g_assert_true(emseg_project_apply_stroke(p, id, 2, EMSEG_LABEL_MEMBRANE, 3, line, 2, NULL,
                                           &error));
  g_autofree guint8 *pre_stroke = g_memdup2(want + 2 * n, n);
  g_assert_true(emseg_project_read_mask(p, id, 2, want + 2 * n, NULL, &error));
  g_assert_no_error(error);
  emseg_project_close(p);

  downgrade_to_v2(path, id);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, 2);
  g_assert_cmpint(raw_int(path, "SELECT count(*) FROM masks"), ==, 3);

  /* read-only: refused, nothing written */
  expect_open_fails(path, EMSEG_PROJECT_OPEN_READ_ONLY, EMSEG_PROJECT_ERROR_READ_ONLY,
                    "opening it writable converts it");
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, 2);
  g_assert_cmpint(raw_int(path, "SELECT count(*) FROM masks"), ==, 3);

  gint64 t0 = g_get_monotonic_time();
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_test_message("open with the migration: %.1f ms", (g_get_monotonic_time() - t0) / 1000.0);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, emseg_project_schema_version());
  g_assert_cmpint(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'masks'"),
                  ==, 0);
  for (guint z = 0; z < n_slices; z++) {
    assert_mask(p, id, z, want + z * n, n);
    g_assert_cmpint(tile_rows(path, id, z), ==, labeled_tiles(want + z * n, w, h));
  }
  g_assert_cmpint(tile_rows(path, id, 4), ==, 2); /* the bar crosses x = 256 */
  g_autoptr(GArray) labeled = emseg_project_labeled_slices(p, id, &error);
  g_assert_cmpuint(labeled->len, ==, 3);
  g_assert_cmpuint(g_array_index(labeled, guint, 0), ==, 0);
  g_assert_cmpuint(g_array_index(labeled, guint, 1), ==, 2);
  g_assert_cmpuint(g_array_index(labeled, guint, 2), ==, 4);
  /* The stroke painted before the upgrade is undone on the tiles. */
  gboolean did = FALSE;
  g_assert_true(emseg_project_undo(p, id, &did, NULL, NULL, &error));
  g_assert_true(did);
  assert_mask(p, id, 2, pre_stroke, n);
  g_assert_true(emseg_project_check_integrity(p, &error));
  emseg_project_close(p);

  /* A schema-2 mask that does not decode: the upgrade is refused, naming the slice, and
   * the file stays at version 2 for an older emseg. */
  g_autofree char *bad = NULL;
  p = make_sized_project(w, h, 2, &bad, &id);
  g_assert_true(emseg_project_write_mask(p, id, 1, want, &error));
  emseg_project_close(p);
  downgrade_to_v2(bad, id);
  raw_exec(bad, "UPDATE masks SET mask = x'789c0300' WHERE idx = 1");
  expect_open_fails(bad, EMSEG_PROJECT_OPEN_DEFAULT, EMSEG_PROJECT_ERROR_CORRUPT,
                    "upgrading the schema to version 3: mask of stack 1, slice 1");
  g_assert_cmpint(raw_int(bad, "PRAGMA user_version"), ==, 2);
  g_assert_cmpint(raw_int(bad, "SELECT count(*) FROM masks"), ==, 1);
  g_rand_free(rng);
}

/* A schema-3 file (before stored uncertainty estimates) opens read-only as it is, for the
 * commands that only read: its labels and predictions read, an estimate is "none stored",
 * the file untouched. Opened writable it gains the table and keeps estimates. */
static void
test_read_only_schema3(void)
{
  g_autofree char *path = NULL;
  gint64 id = 0, run = 0, model = 0;
  g_autoptr(GError) error = NULL;
  EmsegProject *p = make_sized_project(W, H, 2, &path, &id);
  guint8 mask[W * H];
  float prob[W * H], back[W * H];
  memset(mask, EMSEG_LABEL_CELL, sizeof mask);
  for (gsize i = 0; i < W * H; i++) prob[i] = (float)i / (W * H);
  guint8 w[64] = { 0 };
  g_assert_true(emseg_project_write_mask(p, id, 1, mask, &error));
  g_assert_true(emseg_project_begin_run(p, "r", "{}", 1, 0, &run, &error));
  g_assert_true(emseg_project_save_checkpoint(p, "best", run, 1, "spec", NULL, w, sizeof w,
                                              &model, &error));
  g_assert_true(emseg_project_save_prediction(p, model, id, 1, prob, &error));
  g_assert_no_error(error);
  emseg_project_close(p);
  downgrade_to_v3(path);

  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
  g_assert_no_error(error);
  guint8 got[W * H];
  g_assert_true(emseg_project_read_mask(p, id, 1, got, NULL, &error));
  g_assert_cmpmem(got, sizeof got, mask, sizeof mask);
  g_assert_true(emseg_project_read_prediction(p, model, id, 1, back, &error));
  g_assert_false(emseg_project_read_uncertainty(p, model, id, 1, back, NULL, &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, "predates stored estimates"));
  g_clear_error(&error);
  emseg_project_close(p);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, 3);
  g_assert_cmpint(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'uncertainty'"),
                  ==, 0);

  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  g_assert_cmpint(raw_int(path, "PRAGMA user_version"), ==, emseg_project_schema_version());
  g_assert_true(emseg_project_save_uncertainty(p, model, id, 1, 8, prob, &error));
  int samples = 0;
  g_assert_true(emseg_project_read_uncertainty(p, model, id, 1, back, &samples, &error));
  g_assert_cmpint(samples, ==, 8);
  g_assert_no_error(error);
  emseg_project_close(p);
}

/* Damaged mask tiles are errors naming stack, slice and tile, never a crash; the rest of
 * the slice's tiles and the other slices still work, and writing the mask again replaces
 * the damage. */
static void
test_corrupt_mask_tiles(void)
{
  guint w = 300, h = 517;
  gsize n = (gsize)w * h;
  g_autofree char *path = NULL;
  gint64 id = 0;
  g_autoptr(GError) error = NULL;
  EmsegProject *p = make_sized_project(w, h, 6, &path, &id);
  g_autofree guint8 *m = g_malloc(n), *got = g_malloc(n);
  GRand *rng = g_rand_new_with_seed(3);
  random_labels(m, n, rng, 0.2);
  for (guint z = 0; z < 6; z++)
    g_assert_true(emseg_project_write_mask(p, id, z, m, &error));
  emseg_project_close(p);

  /* tile 1,0 of slice 0: not zlib; of slice 1: zlib of nothing (wrong size); of slice 2:
   * a whole 256 x 256 tile where the edge tile is 44 x 256; slice 3: a value that is not
   * a label; slice 4: a count that does not match; slice 5: a position that is not whole. */
  g_autofree guint8 *big = g_malloc(TILE * TILE), *bad_val = g_malloc(44 * TILE);
  memset(big, EMSEG_LABEL_CELL, TILE * TILE);
  memset(bad_val, EMSEG_LABEL_CELL, 44 * TILE);
  bad_val[44 * 5 + 3] = 7;
  g_autoptr(GBytes) zbig = zlib_compress(big, TILE * TILE);
  g_autoptr(GBytes) zval = zlib_compress(bad_val, 44 * TILE);
  raw_exec(path, "UPDATE mask_tiles SET mask = x'00112233' WHERE idx = 0 AND tx = 1 AND ty = 0;"
                 "UPDATE mask_tiles SET mask = x'789c030000000001' WHERE idx = 1 AND tx = 1"
                 "  AND ty = 0;"
                 "UPDATE mask_tiles SET n_labeled = n_labeled + 1 WHERE idx = 4 AND tx = 1"
                 "  AND ty = 0;"
                 "UPDATE mask_tiles SET tx = 0.5 WHERE idx = 5 AND tx = 1 AND ty = 0;");
  raw_exec_blob(path, "UPDATE mask_tiles SET mask = ?1 WHERE idx = 2 AND tx = 1 AND ty = 0",
                g_bytes_get_data(zbig, NULL), g_bytes_get_size(zbig));
  raw_exec_blob(path, "UPDATE mask_tiles SET mask = ?1 WHERE idx = 3 AND tx = 1 AND ty = 0",
                g_bytes_get_data(zval, NULL), g_bytes_get_size(zval));
  p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error(error);
  const char *why[] = { "corrupt", "expected 11264", "larger than its declared 11264",
                        "value 7 at pixel (x 259, y 5)", "declares", "not a whole number" };
  for (guint z = 0; z < 6; z++) {
    g_assert_false(emseg_project_read_mask(p, id, z, got, NULL, &error));
    if (g_test_verbose())
      g_test_message("%s", error->message);
    g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT);
    g_autofree char *where = g_strdup_printf("stack %" G_GINT64_FORMAT ", slice %u", id, z);
    g_assert_nonnull(strstr(error->message, path));
    g_assert_nonnull(strstr(error->message, where));
    if (z < 5)
      g_assert_nonnull(strstr(error->message, "tile 1,0 (x 256..299, y 0..255)"));
    if (strstr(error->message, why[z]) == NULL)
      g_error("message \"%s\" lacks \"%s\"", error->message, why[z]);
    g_clear_error(&error);
  }
  /* A stroke on the damaged tile fails and writes nothing; one on a sound tile works. */
  const float on_bad[] = { 280, 100 }, elsewhere[] = { 100, 400 };
  g_assert_false(emseg_project_apply_stroke(p, id, 0, EMSEG_LABEL_CELL, 5, on_bad, 1, NULL,
                                            &error));
  g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CORRUPT);
  g_clear_error(&error);
  guint64 strokes = 99;
  g_assert_true(emseg_project_stroke_count(p, id, &strokes, NULL, &error));
  g_assert_cmpuint(strokes, ==, 0);
  g_assert_true(emseg_project_apply_stroke(p, id, 0, EMSEG_LABEL_CELL, 5, elsewhere, 1, NULL,
                                           &error));
  g_assert_no_error(error);
  /* Writing the whole mask replaces the damaged tile. */
  g_assert_true(emseg_project_write_mask(p, id, 0, m, &error));
  g_assert_no_error(error);
  assert_mask(p, id, 0, m, n);
  emseg_project_close(p);
  g_rand_free(rng);
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
  g_test_add_func("/project/mask-tiles", test_mask_tiles);
  g_test_add_func("/project/migrate-v2-masks-to-tiles", test_migrate_v2_masks_to_tiles);
  g_test_add_func("/project/read-only-schema-3", test_read_only_schema3);
  g_test_add_func("/project/corrupt-mask-tiles", test_corrupt_mask_tiles);
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
