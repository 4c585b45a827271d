/* emseg-project.h — the project file (".emseg"): one self-contained SQLite database holding
 * image stacks, label masks, the annotation history, training runs, metrics, per-layer
 * update statistics, checkpoints, predictions and uncertainty estimates.
 *
 * Threads: an EmsegProject is one SQLite connection and belongs to the thread that opened
 * it (asserted on every call). The GUI thread and the engine thread each open their own;
 * WAL mode and a busy timeout let one read while the other writes.
 *
 * Durability: every public function that writes is one transaction (a stroke, a checkpoint,
 * an epoch's metrics), so a crash loses at most the write in flight and a checkpoint is
 * either the old or the new one. A failed transaction is rolled back and reported.
 *
 * Trust: a project may come from someone else. Open applies SQLite's defensive settings,
 * runs quick_check, checks the application id, the schema version and every table's
 * columns; every blob read is checked against its declared shape and checksum.
 *
 * Storage choices: slices are the raw samples (little-endian), masks one byte per pixel,
 * predictions 16-bit quantized P(cell interior) (value / 65535), uncertainty estimates the
 * same way; all zlib-compressed with
 * GLib's GZlibCompressor (gio is already a dependency, so no extra library). Masks are kept
 * in 256 x 256 tiles (smaller at the right and bottom edges), one row per tile that holds
 * any labelled pixel: a stroke, undo or redo reads and rewrites only the tiles under its
 * box, and a slice never annotated takes no space. Projects from before (one blob per
 * mask, schema 2 and older) are converted when first opened writable; a read-only open
 * reads schema 3 as it is (it has no stored uncertainty estimates).
 *
 * Ownership: the caller owns every buffer passed in or filled, and every returned string,
 * GBytes and GArray (free with g_free / g_bytes_unref / g_array_unref). */
#pragma once

#include <stdatomic.h>

#include <glib.h>

#include "emseg-stack.h"

G_BEGIN_DECLS

#define EMSEG_PROJECT_ERROR (emseg_project_error_quark())
GQuark emseg_project_error_quark(void);

typedef enum {
  EMSEG_PROJECT_ERROR_FAILED,      /* any other SQLite failure (message has the details) */
  EMSEG_PROJECT_ERROR_NOT_FOUND,   /* no such file, stack, slice, run or checkpoint */
  EMSEG_PROJECT_ERROR_NOT_PROJECT, /* not SQLite, or SQLite from another application */
  EMSEG_PROJECT_ERROR_TOO_NEW,     /* written by a newer emseg: refused, not touched */
  EMSEG_PROJECT_ERROR_CORRUPT,     /* integrity, schema or blob check failed */
  EMSEG_PROJECT_ERROR_READ_ONLY,   /* file or folder not writable */
  EMSEG_PROJECT_ERROR_DISK_FULL,
  EMSEG_PROJECT_ERROR_BUSY,        /* another connection held the lock past the timeout */
  EMSEG_PROJECT_ERROR_INVALID,     /* bad argument: sizes, label values, unknown status */
  EMSEG_PROJECT_ERROR_CANCELLED,   /* stopped through a cancel flag; nothing was changed */
} EmsegProjectError;

/* Mask values, one byte per pixel. Membrane and cell match label files (0 / 255). */
typedef enum {
  EMSEG_LABEL_MEMBRANE = 0,
  EMSEG_LABEL_UNLABELED = 128,
  EMSEG_LABEL_CELL = 255,
} EmsegLabel;

typedef enum {
  EMSEG_PROJECT_OPEN_DEFAULT = 0,
  EMSEG_PROJECT_OPEN_CREATE = 1 << 0,    /* create the file if missing */
  EMSEG_PROJECT_OPEN_READ_ONLY = 1 << 1, /* never write (files from others, read-only media) */
  /* skip quick_check: a further connection to a project this process opened (and so
   * checked) already, e.g. the workbench viewer's reader */
  EMSEG_PROJECT_OPEN_SKIP_CHECK = 1 << 2,
} EmsegProjectOpenFlags;

typedef struct _EmsegProject EmsegProject;

/* A writable open upgrades an older file to the current schema first (a failed upgrade
 * leaves it as it was). A read-only open cannot: it reads schema 3 as it is and refuses
 * older files with a READ_ONLY error naming `emseg project upgrade`. */
EmsegProject *emseg_project_open(const char *path, EmsegProjectOpenFlags flags, GError **error);
void emseg_project_close(EmsegProject *project);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegProject, emseg_project_close)
/* Deletes a project file (not open anywhere) with the -wal and -shm files SQLite keeps
 * beside it: a stale WAL would be replayed into a new file of the same name. Returns 0, or
 * the errno of deleting the project file itself (its companions may well be absent). */
int emseg_project_remove_files(const char *path);

const char *emseg_project_get_path(EmsegProject *project);
int emseg_project_schema_version(void); /* what this build writes */
/* The open file's schema: emseg_project_schema_version() after a writable open (which
 * upgrades), possibly older after a read-only one (see emseg_project_open). */
int emseg_project_file_schema(EmsegProject *project);
/* Full PRAGMA integrity_check (slow on big files; open runs quick_check). */
gboolean emseg_project_check_integrity(EmsegProject *project, GError **error);

/* Free-form metadata (name, description, created, …). get returns NULL if unset. */
gboolean emseg_project_set_meta(EmsegProject *project, const char *key, const char *value,
                                GError **error);
char *emseg_project_get_meta(EmsegProject *project, const char *key, GError **error);

/* ---- stacks, slices, masks ---- */

typedef struct {
  gint64 id;
  char *name;        /* owned */
  char *source_path; /* owned, where it was imported from */
  guint width, height, n_slices;
  EmsegSampleType type;
} EmsegProjectStack;

void emseg_project_stack_clear(EmsegProjectStack *stack);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(EmsegProjectStack, emseg_project_stack_clear)

/* Copies every slice of `images` in (one transaction). labels, if given, must have the same
 * width and height and at most as many pages: page i becomes slice i's mask (0 membrane,
 * 255 cell, 128 unlabeled: emseg_labels_read); slices beyond the last label page stay
 * unlabeled. */
gboolean emseg_project_import_stack(EmsegProject *project, const char *name,
                                    EmsegStack *images, EmsegStack *labels, gint64 *stack_id,
                                    GError **error);
/* Called after each slice stored (done of total); returning FALSE stops the import, which
 * then writes nothing and fails with G_IO_ERROR_CANCELLED. */
typedef gboolean (*EmsegProjectImportProgress)(guint done, guint total, gpointer user_data);
/* emseg_project_import_stack with progress (may be NULL) and a way to stop. */
gboolean emseg_project_import_stack_full(EmsegProject *project, const char *name,
                                         EmsegStack *images, EmsegStack *labels,
                                         gint64 *stack_id, EmsegProjectImportProgress progress,
                                         gpointer user_data, GError **error);
/* Stacks in id order: a GArray of EmsegProjectStack (cleared on free). */
GArray *emseg_project_list_stacks(EmsegProject *project, GError **error);
gboolean emseg_project_get_stack(EmsegProject *project, gint64 stack_id,
                                 EmsegProjectStack *out, GError **error);

/* The images of stack stack_id as an EmsegStack (read-only; its own connection to the
 * project's file, so it may outlive `project`; read it from the thread that opened it).
 * Free with emseg_stack_free. NULL with error set when there is no such stack. */
EmsegStack *emseg_project_open_stack_images(EmsegProject *project, gint64 stack_id,
                                            GError **error);

/* out: width*height samples of the stack's type (raw) or float. */
gboolean emseg_project_read_slice(EmsegProject *project, gint64 stack_id, guint slice,
                                  void *out, GError **error);
gboolean emseg_project_read_slice_float(EmsegProject *project, gint64 stack_id, guint slice,
                                        float *out, GError **error);

/* out: width*height EmsegLabel bytes; a slice never annotated reads as all UNLABELED.
 * n_labeled (may be NULL) receives the count of non-UNLABELED pixels. */
gboolean emseg_project_read_mask(EmsegProject *project, gint64 stack_id, guint slice,
                                 guint8 *out, guint64 *n_labeled, GError **error);
/* Replaces a whole mask (scripted imports, tests); not part of the undo history. For an
 * import a person may want to take back, use emseg_project_replace_masks. */
gboolean emseg_project_write_mask(EmsegProject *project, gint64 stack_id, guint slice,
                                  const guint8 *mask, GError **error);
/* Slices that have at least one labeled pixel, ascending: GArray of guint. */
GArray *emseg_project_labeled_slices(EmsegProject *project, gint64 stack_id, GError **error);

/* ---- annotation history (undo/redo survives restarts) ---- */

/* Paints a round brush of `radius` pixels along the polyline xy[0..2*n_points) (image
 * coordinates, x then y) with `label` (any EmsegLabel, UNLABELED erases), in one
 * transaction with its undo record. Clears the redo list. stroke_id may be NULL. */
gboolean emseg_project_apply_stroke(EmsegProject *project, gint64 stack_id, guint slice,
                                    EmsegLabel label, double radius, const float *xy,
                                    guint n_points, gint64 *stroke_id, GError **error);
/* Replaces the masks of slices first .. first+n_slices-1 with `masks` (n_slices masks of
 * width*height EmsegLabel bytes, caller-owned) as ONE step of the history: one undo puts
 * every slice back. Slices whose mask does not change are left out of the record;
 * n_changed (may be NULL) receives how many changed. One transaction: on error nothing
 * is written. Clears the redo list when anything changed. */
gboolean emseg_project_replace_masks(EmsegProject *project, gint64 stack_id, guint first,
                                     guint n_slices, const guint8 *masks, guint *n_changed,
                                     GError **error);
/* Undo the latest applied step (a stroke, or a whole replace_masks) / redo the latest
 * undone one. *did (may be NULL) says whether there was anything to do; slice_out and
 * n_slices_out (each may be NULL) the span of slices that changed: slice_out ..
 * slice_out + n_slices_out - 1 (one slice for a brush stroke). */
gboolean emseg_project_undo(EmsegProject *project, gint64 stack_id, gboolean *did,
                            guint *slice_out, guint *n_slices_out, GError **error);
gboolean emseg_project_redo(EmsegProject *project, gint64 stack_id, gboolean *did,
                            guint *slice_out, guint *n_slices_out, GError **error);
gboolean emseg_project_can_undo(EmsegProject *project, gint64 stack_id);
gboolean emseg_project_can_redo(EmsegProject *project, gint64 stack_id);
/* Number of applied (not undone) history rows (a brush stroke is one; replace_masks adds
 * one per changed slice), and the id of the latest applied one (0: none). */
gboolean emseg_project_stroke_count(EmsegProject *project, gint64 stack_id, guint64 *applied,
                                    gint64 *latest_id, GError **error);
gboolean emseg_project_stroke_exists(EmsegProject *project, gint64 stroke_id, GError **error);

/* ---- training: runs, metrics, layer statistics, checkpoints, predictions ---- */

/* params: every hyperparameter as "key=value" lines (the engine's spec text and options);
 * parent_model_id: the checkpoint fine-tuned from, or 0. Status starts as "running". */
gboolean emseg_project_begin_run(EmsegProject *project, const char *name, const char *params,
                                 guint64 seed, gint64 parent_model_id, gint64 *run_id,
                                 GError **error);
/* status: "finished", "cancelled" or "failed". */
gboolean emseg_project_end_run(EmsegProject *project, gint64 run_id, const char *status,
                               GError **error);

typedef struct {
  gint64 id;
  char *name, *params, *status, *started, *ended; /* owned; ended may be NULL */
  guint64 seed;
  gint64 parent_model_id;
} EmsegRun;
void emseg_run_clear(EmsegRun *run);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(EmsegRun, emseg_run_clear)
/* GArray of EmsegRun (cleared on free), in id order. */
GArray *emseg_project_list_runs(EmsegProject *project, GError **error);

/* One epoch of a run; NAN in any field means "not computed" (stored as NULL). */
typedef struct {
  guint epoch;
  double train_loss, val_loss, train_accuracy, val_accuracy, v_rand, v_info, seconds;
} EmsegEpochMetrics;
gboolean emseg_project_add_epoch_metrics(EmsegProject *project, gint64 run_id,
                                         const EmsegEpochMetrics *m, GError **error);
/* GArray of EmsegEpochMetrics in epoch order. */
GArray *emseg_project_get_epoch_metrics(EmsegProject *project, gint64 run_id, GError **error);

/* One epoch's per-layer statistics in one transaction: n layers, names in layer order. */
gboolean emseg_project_add_layer_stats(EmsegProject *project, gint64 run_id, guint epoch,
                                       guint n, const char *const *layer_names,
                                       const double *mean_abs_update,
                                       const double *mean_abs_weight, GError **error);
typedef struct {
  guint epoch;
  guint layer_index;
  char *layer; /* owned */
  double mean_abs_update, mean_abs_weight;
} EmsegLayerStat;
void emseg_layer_stat_clear(EmsegLayerStat *stat);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(EmsegLayerStat, emseg_layer_stat_clear)
/* GArray of EmsegLayerStat (cleared on free), by epoch then layer order. */
GArray *emseg_project_get_layer_stats(EmsegProject *project, gint64 run_id, GError **error);

/* Stores a checkpoint under `name`, replacing any previous one of that name atomically.
 * weights: the model file bytes (eng_model_serialize), kept opaque; spec: its spec text;
 * scores: free-form "key=value" lines (may be NULL); run_id 0 when not from a run. */
gboolean emseg_project_save_checkpoint(EmsegProject *project, const char *name, gint64 run_id,
                                       guint epoch, const char *spec, const char *scores,
                                       const void *weights, gsize weights_len,
                                       gint64 *model_id, GError **error);
typedef struct {
  gint64 id, run_id;
  guint epoch;
  char *name, *spec, *scores, *created; /* owned; scores may be NULL */
  gsize weights_len;
} EmsegCheckpointInfo;
void emseg_checkpoint_info_clear(EmsegCheckpointInfo *info);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(EmsegCheckpointInfo, emseg_checkpoint_info_clear)
/* Loads by name; verifies size and SHA-256 before returning the weights. info may be NULL. */
GBytes *emseg_project_load_checkpoint(EmsegProject *project, const char *name,
                                      EmsegCheckpointInfo *info, GError **error);
/* GArray of EmsegCheckpointInfo (cleared on free), in id order, created left NULL: it is
 * stored after the weights, and reading it walks them (tens of ms per checkpoint). */
GArray *emseg_project_list_checkpoints(EmsegProject *project, GError **error);
/* The same with created filled in, at that cost (emseg project info). */
GArray *emseg_project_list_checkpoints_dated(EmsegProject *project, GError **error);
/* The entry named `name` of such a list (names are unique in a project), or NULL; points
 * into the array. */
EmsegCheckpointInfo *emseg_checkpoint_find(GArray *checkpoints, const char *name);
/* The current model: the checkpoint last chosen with emseg_project_choose_checkpoint, unless
 * a checkpoint was saved since (a training run's or an import's: the newest model is current
 * again) or the chosen one is gone; else the latest. The model the workbench shows and
 * fine-tunes, and `emseg predict --project` uses. out gets zeros (name NULL) when the project
 * holds no model; chosen (may be NULL) says whether a choice picked it. Clear out after. */
gboolean emseg_project_current_checkpoint(EmsegProject *project, EmsegCheckpointInfo *out,
                                          gboolean *chosen, GError **error);
/* Deletes checkpoint `name` with its stored predictions and uncertainty estimates (their
 * count in n_planes, may be NULL); the runs that made it keep their curves. If it was the
 * chosen current model, the current model is the latest again. Error
 * EMSEG_PROJECT_ERROR_NOT_FOUND when there is none of that name. The file keeps its size:
 * new checkpoints reuse the pages, emseg_project_compact gives them back to the disk. */
gboolean emseg_project_delete_checkpoint(EmsegProject *project, const char *name,
                                         guint *n_planes, GError **error);
/* Makes checkpoint `name` the current model (until the next checkpoint is saved); error
 * EMSEG_PROJECT_ERROR_NOT_FOUND when there is none of that name. */
gboolean emseg_project_choose_checkpoint(EmsegProject *project, const char *name,
                                         GError **error);

/* P(cell interior) per pixel, stored 16-bit quantized; values are clamped to [0, 1]. */
gboolean emseg_project_save_prediction(EmsegProject *project, gint64 model_id,
                                       gint64 stack_id, guint slice, const float *prob,
                                       GError **error);
gboolean emseg_project_read_prediction(EmsegProject *project, gint64 model_id,
                                       gint64 stack_id, guint slice, float *prob,
                                       GError **error);

/* The Monte-Carlo dropout uncertainty of a slice: per-pixel standard deviation of P(cell)
 * over `samples` (>= 2) passes, stored 16-bit quantized like predictions (clamped to
 * [0, 1]; a standard deviation of values in [0, 1] is at most 0.5). A missing estimate is a
 * NOT_FOUND error. samples (may be NULL): how many passes the stored one averaged. */
gboolean emseg_project_save_uncertainty(EmsegProject *project, gint64 model_id,
                                        gint64 stack_id, guint slice, int samples,
                                        const float *std, GError **error);
gboolean emseg_project_read_uncertainty(EmsegProject *project, gint64 model_id,
                                        gint64 stack_id, guint slice, float *std,
                                        int *samples, GError **error);

/* ---- checking and compacting (emseg-project-check.c) ---- */

typedef struct {
  guint64 slices, masks, strokes, checkpoints, predictions, uncertainties; /* items read */
} EmsegProjectCheckCounts;
/* Called after each item read: done of total (slices, masks, checkpoints, planes). */
typedef void (*EmsegProjectCheckProgress)(guint64 done, guint64 total, gpointer user_data);
/* Checks a checkpoint's bytes beyond their stored checksum (that they load as a model,
 * say); FALSE + error when they do not. */
typedef gboolean (*EmsegProjectCheckModel)(GBytes *weights, gpointer user_data,
                                           GError **error);
/* Reads back everything the project holds: PRAGMA integrity_check (slow on big files),
 * then every slice image, label mask, stroke (both patches), checkpoint (size, SHA-256,
 * then check_model when not NULL), stored prediction and uncertainty estimate. Each damaged
 * item adds one line to problems (owned strings, naming the item and what is wrong); the
 * check goes on past it. FALSE + error only when the check itself cannot run (the file
 * cannot be listed, out of memory) or cancel (may be NULL, borrowed) was raised: then
 * EMSEG_PROJECT_ERROR_CANCELLED, within one item (or SQLite step of the integrity check),
 * with problems and counts as far as it got. Works on a read-only open. */
gboolean emseg_project_check_contents(EmsegProject *project, EmsegProjectCheckCounts *counts,
                                      GPtrArray *problems, EmsegProjectCheckModel check_model,
                                      atomic_int *cancel, EmsegProjectCheckProgress progress,
                                      gpointer user_data, GError **error);
/* Rewrites the file without its free pages (VACUUM), which deleted and replaced
 * checkpoints and predictions leave behind; needs a writable open and, for the length of
 * it, free disk space about the file's size. bytes_before / bytes_after: file size plus
 * write-ahead log. cancel (may be NULL, borrowed) is polled while VACUUM copies rows into
 * its new file (not while it writes that back, which cannot be stopped): raised, it stops
 * with EMSEG_PROJECT_ERROR_CANCELLED and the file holds what it held. */
gboolean emseg_project_compact(EmsegProject *project, atomic_int *cancel,
                               guint64 *bytes_before, guint64 *bytes_after, GError **error);

/* Bytes of free pages in the file (deleted or replaced data): what compacting would give
 * back, roughly. */
gboolean emseg_project_free_bytes(EmsegProject *project, guint64 *bytes, GError **error);

/* Test hook: caps the file at n_pages database pages (SQLite's max_page_count) on this
 * connection, so tests can provoke "disk full" on any filesystem. 0 lifts the cap. */
gboolean emseg_project_set_max_pages_for_testing(EmsegProject *project, guint64 n_pages,
                                                 GError **error);

G_END_DECLS
