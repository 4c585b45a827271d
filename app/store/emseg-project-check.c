/* emseg-project-check.c — reading a whole project back (`emseg project check`): SQLite's
 * full integrity check, then every slice image, label mask, stroke, checkpoint, prediction
 * and uncertainty estimate decoded as the workbench would decode it; and compacting the
 * file (VACUUM). A damaged item is reported as a problem line naming it, so one bad slice
 * does not hide the state of the rest. */
#include <glib/gstdio.h>

#include "emseg-project-private.h"

typedef struct {
  EmsegProjectCheckProgress progress;
  gpointer user_data;
  guint64 done, total;
  atomic_int *cancel; /* may be NULL */
} Progress;

static void
step(Progress *pr)
{
  pr->done++;
  if (pr->progress != NULL)
    pr->progress(pr->done, pr->total, pr->user_data);
}

/* sqlite3_progress_handler: non-zero interrupts the statement (VACUUM rolls back) */
static int
interrupt_requested(void *data)
{
  return atomic_load((atomic_int *)data) != 0;
}

/* how often a cancel flag is polled, in SQLite virtual-machine steps: every step, since a
 * few rows (slices, checkpoints) may hold most of the bytes, and the poll is an atomic load */
#define CANCEL_POLL_STEPS 1

/* Lets cancel (may be NULL) interrupt this connection's statements until unwatched (NULL). */
static void
watch_cancel(EmsegProject *p, atomic_int *cancel)
{
  if (cancel != NULL)
    sqlite3_progress_handler(p->db, CANCEL_POLL_STEPS, interrupt_requested, cancel);
  else
    sqlite3_progress_handler(p->db, 0, NULL, NULL);
}

static gboolean
cancelled(const Progress *pr)
{
  return pr->cancel != NULL && atomic_load(pr->cancel) != 0;
}

static gboolean
check_stopped(EmsegProject *p, GError **error)
{
  g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED,
              "%s: the check was stopped before it read everything", p->path);
  return FALSE;
}

/* (model, stack, slice) of every row of a plane table, read before any is decoded. */
typedef struct {
  gint64 model_id, stack_id;
  guint slice;
} PlaneKey;

static GArray *
plane_keys(EmsegProject *p, const char *table, GError **error)
{
  GArray *keys = g_array_new(FALSE, FALSE, sizeof(PlaneKey));
  if (!emseg_project_has_table(p, table))
    return keys;
  g_autofree char *sql =
      g_strdup_printf("SELECT model_id, stack_id, idx FROM %s ORDER BY model_id, stack_id, idx",
                      table);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(p->db, sql, -1, &st, NULL);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    gint64 idx = sqlite3_column_int64(st, 2);
    PlaneKey k = { sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                   (guint)CLAMP(idx, 0, G_MAXUINT) };
    g_array_append_val(keys, k);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    g_array_free(keys, TRUE);
    emseg_project_fail(p, rc, "listing stored planes", error);
    return NULL;
  }
  return keys;
}

/* Adds "PREFIX: message" to problems and clears *e. */
static void
problem(GPtrArray *problems, GError **e, const char *prefix)
{
  g_ptr_array_add(problems, prefix != NULL ? g_strdup_printf("%s: %s", prefix, (*e)->message)
                                           : g_strdup((*e)->message));
  g_clear_error(e);
}

gboolean
emseg_project_check_contents(EmsegProject *p, EmsegProjectCheckCounts *counts,
                             GPtrArray *problems, EmsegProjectCheckModel check_model,
                             atomic_int *cancel, EmsegProjectCheckProgress progress,
                             gpointer user_data, GError **error)
{
  EMSEG_PROJECT_ASSERT_THREAD(p);
  memset(counts, 0, sizeof *counts);
  g_autoptr(GError) e = NULL;
  watch_cancel(p, cancel); /* integrity_check reads every page: minutes on big files */
  gboolean sound = emseg_project_check_integrity(p, &e);
  watch_cancel(p, NULL);
  if (g_error_matches(e, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED))
    return check_stopped(p, error);
  if (!sound)
    problem(problems, &e, NULL);

  g_autoptr(GArray) stacks = emseg_project_list_stacks(p, error);
  if (stacks == NULL)
    return FALSE;
  /* Everything listed first, so the progress has its total; the lists are then read. */
  static const char *const plane_tables[] = { "predictions", "uncertainty" };
  Progress pr = { progress, user_data, 0, 0, cancel };
  g_autoptr(GPtrArray) labeled = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
  for (guint i = 0; i < stacks->len; i++) {
    EmsegProjectStack *s = &g_array_index(stacks, EmsegProjectStack, i);
    GArray *l = emseg_project_labeled_slices(p, s->id, error);
    if (l == NULL)
      return FALSE;
    g_ptr_array_add(labeled, l);
    pr.total += s->n_slices + l->len;
  }
  g_autoptr(GArray) models = emseg_project_list_checkpoints(p, error);
  g_autoptr(GArray) predictions = models ? plane_keys(p, plane_tables[0], error) : NULL;
  g_autoptr(GArray) uncertainties = predictions ? plane_keys(p, plane_tables[1], error) : NULL;
  if (uncertainties == NULL)
    return FALSE;
  GArray *keys[2] = { predictions, uncertainties };
  pr.total += models->len + predictions->len + uncertainties->len;

  for (guint i = 0; i < stacks->len; i++) {
    EmsegProjectStack *s = &g_array_index(stacks, EmsegProjectStack, i);
    gsize plane = (gsize)s->width * s->height;
    g_autofree float *pixels = g_try_new(float, plane);
    g_autofree guint8 *mask = g_try_new(guint8, plane);
    if (pixels == NULL || mask == NULL) {
      g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_FAILED,
                  "%s: not enough memory for one %u x %u slice of stack %" G_GINT64_FORMAT,
                  p->path, s->width, s->height, s->id);
      return FALSE;
    }
    for (guint z = 0; z < s->n_slices && !cancelled(&pr); z++, step(&pr)) {
      counts->slices++;
      if (!emseg_project_read_slice_float(p, s->id, z, pixels, &e))
        problem(problems, &e, NULL);
    }
    GArray *l = g_ptr_array_index(labeled, i);
    for (guint k = 0; k < l->len && !cancelled(&pr); k++, step(&pr)) {
      counts->masks++;
      if (!emseg_project_read_mask(p, s->id, g_array_index(l, guint, k), mask, NULL, &e))
        problem(problems, &e, NULL);
    }
  }

  if (cancelled(&pr))
    return check_stopped(p, error);
  if (!emseg_project_check_strokes(p, problems, &counts->strokes, error))
    return FALSE;

  for (guint i = 0; i < models->len && !cancelled(&pr); i++, step(&pr)) {
    const EmsegCheckpointInfo *m = &g_array_index(models, EmsegCheckpointInfo, i);
    counts->checkpoints++;
    g_autoptr(GBytes) weights = emseg_project_load_checkpoint(p, m->name, NULL, &e);
    if (weights == NULL) {
      problem(problems, &e, NULL);
      continue;
    }
    if (check_model != NULL && !check_model(weights, user_data, &e)) {
      g_autofree char *prefix = g_strdup_printf("%s: checkpoint '%s'", p->path, m->name);
      problem(problems, &e, prefix);
    }
  }

  for (int kind = 0; kind < 2; kind++) {
    const char *table = plane_tables[kind];
    g_autofree float *plane = NULL;
    gint64 plane_stack = -1;
    for (guint i = 0; i < keys[kind]->len && !cancelled(&pr); i++, step(&pr)) {
      const PlaneKey *k = &g_array_index(keys[kind], PlaneKey, i);
      *(kind == 0 ? &counts->predictions : &counts->uncertainties) += 1;
      if (k->stack_id != plane_stack) {
        g_auto(EmsegProjectStack) s = { 0 };
        if (!emseg_project_get_stack(p, k->stack_id, &s, &e)) {
          problem(problems, &e, table);
          continue;
        }
        g_free(plane);
        plane = g_try_new(float, (gsize)s.width * s.height);
        plane_stack = plane != NULL ? k->stack_id : -1;
        if (plane == NULL) {
          g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_FAILED,
                      "%s: not enough memory for one %u x %u plane", p->path, s.width, s.height);
          return FALSE;
        }
      }
      gboolean ok = kind == 0 ? emseg_project_read_prediction(p, k->model_id, k->stack_id,
                                                             k->slice, plane, &e)
                              : emseg_project_read_uncertainty(p, k->model_id, k->stack_id,
                                                              k->slice, plane, NULL, &e);
      if (!ok)
        problem(problems, &e, NULL);
    }
  }
  return cancelled(&pr) ? check_stopped(p, error) : TRUE;
}

/* File size plus its write-ahead log, 0 for a missing file. */
static guint64
size_on_disk(const char *path)
{
  GStatBuf st;
  guint64 n = g_stat(path, &st) == 0 ? (guint64)st.st_size : 0;
  g_autofree char *wal = g_strconcat(path, "-wal", NULL);
  if (g_stat(wal, &st) == 0)
    n += (guint64)st.st_size;
  return n;
}

gboolean
emseg_project_free_bytes(EmsegProject *p, guint64 *bytes, GError **error)
{
  EMSEG_PROJECT_ASSERT_THREAD(p);
  *bytes = 0;
  sqlite3_stmt *st = emseg_project_stmt(
      p, "SELECT f.freelist_count * s.page_size FROM pragma_freelist_count() f,"
         " pragma_page_size() s", error);
  if (st == NULL)
    return FALSE;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *bytes = (guint64)sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW || emseg_project_fail(p, rc, "measuring free pages", error);
}

gboolean
emseg_project_compact(EmsegProject *p, atomic_int *cancel, guint64 *bytes_before,
                      guint64 *bytes_after, GError **error)
{
  EMSEG_PROJECT_ASSERT_THREAD(p);
  if (p->read_only) {
    g_set_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_READ_ONLY,
                "%s: opened read-only; compacting rewrites the file", p->path);
    return FALSE;
  }
  /* fold the log into the file first, so "before" is the file's own size */
  if (!emseg_project_exec(p, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the log", error))
    return FALSE;
  *bytes_before = size_on_disk(p->path);
  /* VACUUM builds the new file as an attached temporary database; configure() allows none
   * (no statement of ours attaches), so one is allowed for the length of it */
  int attached = sqlite3_limit(p->db, SQLITE_LIMIT_ATTACHED, 1);
  watch_cancel(p, cancel);
  gboolean ok = emseg_project_exec(p, "VACUUM", "compacting", error);
  watch_cancel(p, NULL);
  sqlite3_limit(p->db, SQLITE_LIMIT_ATTACHED, attached);
  if (!ok ||
      !emseg_project_exec(p, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the log", error))
    return FALSE;
  *bytes_after = size_on_disk(p->path);
  return TRUE;
}
