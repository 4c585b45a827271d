/* emseg-window.h — the workbench window: a slice viewer with its controls, the training
 * panel, and the window actions (projects, import, undo/redo, zoom, slice navigation,
 * export). The window owns the project connection of the main thread, the volume it shows
 * (read from that project) and the engine thread; the application decides what to open.
 *
 * Everything goes through a project (.emseg, app/store): opening a bare stack opens (or
 * creates) its project in the user data folder, the demo is a project too, every brush
 * stroke is one transaction there, undo/redo are the store's, training runs and their
 * curves are the engine thread's records in it. */
#pragma once

#include <gtk/gtk.h>

#include "emseg-slice-view.h"
#include "emseg-train-panel.h"
#include "emseg-volume.h"

G_BEGIN_DECLS

#define EMSEG_TYPE_WINDOW (emseg_window_get_type ())
G_DECLARE_FINAL_TYPE (EmsegWindow, emseg_window, EMSEG, WINDOW, GtkApplicationWindow)

EmsegWindow *emseg_window_new (GtkApplication *app);

typedef enum {
  EMSEG_EXPORT_ISBI,          /* ISBI 2012 submission: float P(cell interior), validated */
  EMSEG_EXPORT_LABELS,        /* the project's masks, 8 bit: 0 membrane, 255 cell, 128 unlabeled */
  EMSEG_EXPORT_PROBABILITIES, /* float P(membrane), the network's own target convention */
} EmsegExportKind;

/* Shows volume with no project (strokes stay in memory); the window takes a reference. */
void emseg_window_set_volume (EmsegWindow *self, EmsegVolume *volume, const char *title);
/* A project file (.emseg) is opened; a TIFF stack or PNG folder opens its own project in
 * the user data folder, created on first use by copying the stack in on a worker thread
 * (TRUE then means started: emseg_window_is_importing says when it is done, and a failure
 * then shows a dialog). On a failure known at once shows a dialog and returns FALSE. */
gboolean emseg_window_open_path (EmsegWindow *self, const char *path, GError **error);
/* Opens project `path`; create: make a new, empty project there (replacing the file). */
gboolean emseg_window_open_project (EmsegWindow *self, const char *path, gboolean create,
                                    GError **error);
/* Imports a stack (labels may be NULL) into the open project on a worker thread and shows it
 * when done (TRUE means started: emseg_window_is_importing says when it is over; the window
 * is locked meanwhile). FALSE with a dialog when it cannot start. */
gboolean emseg_window_import_stack (EmsegWindow *self, const char *images, const char *labels,
                                    GError **error);
/* Replaces the labels of the shown stack with the label stack at `path` (same size, at
 * most as many slices; read by emseg_labels_read: 0 membrane, 255 cell, 128 unlabeled, or
 * a 0/1 mask). In a project this is one step of the
 * undo history (Ctrl+Z takes the whole import back) and one transaction: on failure
 * nothing is written. On failure shows a dialog and returns FALSE; when the file looks like
 * object ids (emseg_labels_look_like_ids), the dialog is a question whose Read as Object Ids
 * (GTK_RESPONSE_ACCEPT) runs emseg_window_import_label_ids. */
gboolean emseg_window_import_labels (EmsegWindow *self, const char *path, GError **error);
/* The same with the file read as object ids (emseg_labels_read_ids: membrane_px on each
 * side where two objects touch, 1 to EMSEG_LABELS_MAX_MEMBRANE_PX; id 0 membrane). The
 * question offers EMSEG_LABELS_DEFAULT_MEMBRANE_PX. */
gboolean emseg_window_import_label_ids (EmsegWindow *self, const char *path, guint membrane_px,
                                        GError **error);
/* Shows another stack of the open project (the stack dropdown does the same). Refused,
 * with a dialog and FALSE, while training or an export runs on the stack shown; so are
 * opening another project and importing another stack. */
gboolean emseg_window_show_stack (EmsegWindow *self, gint64 stack_id, GError **error);
GtkWidget *emseg_window_get_stack_chooser (EmsegWindow *self); /* borrowed: a GtkDropDown */
/* While training or an export runs, closing the window asks first; this is that question
 * while it is shown (a GtkDialog: ACCEPT stops and closes, CANCEL keeps running), else
 * NULL. Borrowed. */
GtkWidget *emseg_window_get_close_question (EmsegWindow *self);
/* Adapt Model to This Stack: the current model's batch-norm statistics recomputed over the
 * shown stack's images on the engine thread (no labels), stored as the checkpoint
 * "<model>-adapted-to-<stack>" that becomes the current model, with the model's export
 * exponent. FALSE with error (and no dialog) when there is no model, or the window is busy. */
gboolean emseg_window_adapt_model (EmsegWindow *self, GError **error);
gboolean emseg_window_is_adapting (EmsegWindow *self);
/* Stops a running adaptation (Esc) within a tile's forward; nothing is stored. */
void emseg_window_stop_adapting (EmsegWindow *self);
/* "Predicting slice N…" (with a percentage once the engine thread reports one) while the
 * visible slice's prediction is in work, shown beside the slice slider; NULL otherwise.
 * Borrowed. */
const char *emseg_window_get_prediction_state (EmsegWindow *self);
/* Opens the demo project (user data folder, generated on the first run). */
gboolean emseg_window_open_demo (EmsegWindow *self, GError **error);
/* Where the demo project lives. */
char *emseg_window_demo_project_path (void);

EmsegProject *emseg_window_get_project (EmsegWindow *self); /* borrowed, may be NULL */
gint64 emseg_window_get_stack_id (EmsegWindow *self);

/* Starts a training run on the engine thread with the panel's parameters (fine_tune:
 * from the latest checkpoint); spec_override (may be NULL) replaces the panel's model
 * size with eng_spec_parse text. FALSE with error when it cannot start. */
gboolean emseg_window_start_training (EmsegWindow *self, gboolean fine_tune,
                                      const char *spec_override, GError **error);
gboolean emseg_window_is_training (EmsegWindow *self);
/* Stores the model file at path (e.g. from `emseg train --project` on a server) in the open
 * project as a new checkpoint, named after the file (-2, -3, … if taken: nothing is
 * replaced), which the overlay, Fine-tune and Export then use. Refused while training or
 * an export runs. On failure shows a dialog and returns FALSE. */
gboolean emseg_window_import_model (EmsegWindow *self, const char *path, GError **error);
/* The checkpoint the prediction overlay shows (NULL before any). */
const char *emseg_window_get_best_model (EmsegWindow *self);

/* Exports every slice of the shown stack to path; model: a checkpoint name (NULL: the
 * latest); mc_samples >= 1; tta: average the 8 flips and quarter turns; bf16: convolve in
 * bfloat16 (float32 where the CPU has no kernel); gamma: the ISBI export's exponent
 * (emseg-gamma.h; 1 writes the probabilities, other kinds ignore it). Runs on the engine
 * thread; the end is reported in the status line and a message dialog. */
gboolean emseg_window_start_export (EmsegWindow *self, EmsegExportKind kind, const char *model,
                                    int mc_samples, gboolean tta, gboolean bf16, double gamma,
                                    const char *path, GError **error);
gboolean emseg_window_is_exporting (EmsegWindow *self);

/* Estimates the MC-dropout uncertainty (per-pixel standard deviation of P(cell) over
 * n_samples >= 2 stochastic passes) of the visible slice with the overlay's model, on
 * the engine thread; the result shows as the viewer's uncertainty overlay. Refused with a
 * message when there is no model, or the model has no dropout (all passes would agree). */
gboolean emseg_window_estimate_uncertainty (EmsegWindow *self, int n_samples, GError **error);
gboolean emseg_window_is_estimating (EmsegWindow *self);
/* Stops the running uncertainty estimate (nothing when none runs); the slice keeps what it
 * showed. Its end comes back as the status line "… stopped". */
void emseg_window_stop_uncertainty (EmsegWindow *self);

/* TRUE while a bare stack opened with emseg_window_open_path is copied into its new
 * project (on a worker thread); the project opens when that ends. */
gboolean emseg_window_is_importing (EmsegWindow *self);
/* Stops that copy (Esc): nothing of it is kept and the current project stays. */
void emseg_window_stop_import (EmsegWindow *self);
/* Check Project…: reads everything the project holds back on a worker thread (as `emseg
 * project check`); progress in the status line, the outcome in a dialog. FALSE with error
 * without a project or while a check runs. */
gboolean emseg_window_check_project (EmsegWindow *self, GError **error);
gboolean emseg_window_is_checking (EmsegWindow *self);
/* Stops a running check (Esc) within one item; the status line says so. */
void emseg_window_stop_checking (EmsegWindow *self);
/* Makes checkpoint `name` of the project its current model (emseg_project_choose_checkpoint):
 * the overlay, Fine-tune, Export and the uncertainty estimate use it until a run saves a newer
 * one. Refused while a run or an export works. */
gboolean emseg_window_use_model (EmsegWindow *self, const char *name, GError **error);
/* Deletes checkpoint `name` and the predictions stored for it (Delete Model asks first);
 * when it was the current model the overlay moves to the latest one left (none: no
 * overlay). Refused while a run, an export, an adaptation or an estimate works. */
gboolean emseg_window_delete_model (EmsegWindow *self, const char *name, GError **error);
/* Compact Project…: rewrites the project file without its free pages on a worker thread
 * (its own connection; the engine thread is let go), the window locked until it ends; the
 * outcome in the status line. Refused while anything else works. */
gboolean emseg_window_compact_project (EmsegWindow *self, GError **error);
gboolean emseg_window_is_compacting (EmsegWindow *self);
/* Stops a running compaction (Esc): the file stays as it was. */
void emseg_window_stop_compacting (EmsegWindow *self);
/* TRUE while the shipped model is copied into a project that had no model, on a worker
 * (emseg-window-shipped.c): a fraction of a second after opening it; the overlay waits. */
gboolean emseg_window_is_adopting (EmsegWindow *self);
/* Labels every unlabelled pixel of the visible slice as the prediction overlay shows it
 * (membrane where P(cell) < 0.5, cell elsewhere), keeping painted labels, as one step of the
 * undo history: the start of correcting a slice for a fine-tune. Refused with a message while
 * no prediction of the slice is shown. */
gboolean emseg_window_label_from_prediction (EmsegWindow *self, GError **error);

EmsegSliceView *emseg_window_get_view (EmsegWindow *self);             /* borrowed */
EmsegTrainPanel *emseg_window_get_train_panel (EmsegWindow *self);     /* borrowed */
/* Shows a page of the sidebar: "correct" or "train". */
void emseg_window_show_page (EmsegWindow *self, const char *name);
const char *emseg_window_get_status (EmsegWindow *self);

G_END_DECLS
