/* emseg-window-private.h — the EmsegWindow struct and the functions its concern files
 * share: emseg-window.c (widgets, bindings, view actions), emseg-window-project.c
 * (projects, stacks, strokes to the store, recent files), emseg-window-train.c (the
 * engine thread: training, prediction overlay, export jobs) and the files it lists below
 * (import, check, models, adapt). Main thread only. */
#pragma once

#include "emseg-engine-thread.h"
#include "emseg-project.h"
#include "emseg-window.h"

typedef struct _EmsegImportJob EmsegImportJob; /* emseg-window-import.c */
typedef struct _EmsegAdoptJob EmsegAdoptJob;   /* emseg-window-shipped.c */

struct _EmsegWindow {
  GtkApplicationWindow parent_instance;

  /* template widgets */
  EmsegSliceView *view;
  GtkAdjustment *slice_adj;
  GtkAdjustment *brightness_adj;
  GtkAdjustment *contrast_adj;
  GtkAdjustment *brush_adj;
  GtkAdjustment *labels_opacity_adj;
  GtkAdjustment *prediction_opacity_adj;
  GtkAdjustment *uncertainty_opacity_adj;
  GtkAdjustment *mc_samples_adj;
  GtkLabel *slice_label;
  GtkLabel *zoom_label;
  GtkLabel *pointer_label;
  GtkLabel *status_label;
  GtkLabel *predict_label;       /* the visible slice's prediction in work, hidden otherwise */
  GtkToggleButton *pan_toggle;
  GtkToggleButton *brush_toggle;
  GtkToggleButton *eraser_toggle;
  GtkDropDown *label_dropdown;
  GtkDropDown *stack_dropdown;   /* the project's stacks; hidden when it has one */
  GtkCheckButton *labels_check;
  GtkCheckButton *prediction_check;
  GtkCheckButton *uncertainty_check;
  GtkButton *uncertainty_button;
  GtkStack *side_stack;
  EmsegTrainPanel *train_panel;
  GMenu *recent_menu;
  GMenu *model_menu;             /* the project's checkpoints (emseg-window-train.c) */
  GMenu *delete_model_menu;      /* the same, to delete (emseg-window-models.c) */

  /* owned */
  EmsegVolume *volume;
  EmsegProject *project;         /* this thread's connection, NULL without a project */
  gint64 stack_id;               /* the stack shown, 0 when the project has none */
  GArray *stack_ids;             /* gint64 per stack_dropdown row */
  gboolean filling_stacks;       /* stack_dropdown being refilled: not a choice */
  GtkFileChooserNative *chooser; /* while a chooser is open */
  char *pending_images;          /* import: images chosen, labels chooser open */
  EmsegEngineThread *engine;     /* started with the first job; freed in dispose (joins) */
  GtkWidget *export_dialog;      /* while open; destroyed with the window */

  /* training state (emseg-window-train.c) */
  guint64 train_job;             /* running training job, 0 when idle */
  guint64 preview_job;           /* prediction of the visible slice in flight */
  guint preview_slice;           /* its slice */
  guint64 export_job;            /* export prediction in flight */
  guint64 uncertainty_job;       /* MC-dropout estimate of one slice in flight */
  guint64 adapt_job;             /* BN adaptation to the shown stack (emseg-window-adapt.c) */
  char *adapt_from;              /* owned: the model it adapts */
  guint uncertainty_slice;       /* the slice it is for */
  int uncertainty_samples;
  double uncertainty_fraction;   /* of its passes done, from PROGRESS; < 0 before the first */
  double train_dropout;          /* dropout of the running training job (its snapshot's) */
  gint64 best_model_id;          /* latest checkpoint: the overlay's model */
  char *best_model_name;         /* owned */
  EmsegAdoptJob *adopt_job;      /* the shipped model being copied into this project (the task's), or NULL */
  gint64 train_started_us;
  guint64 steps_done;
  guint n_epochs;
  guint run_checkpoints;         /* checkpoints of the running training job so far */
  double start_val_loss;         /* its starting weights' validation loss (fine-tune), or NAN */
  float *export_prob;            /* (n_slices, height, width) collected PREDICTION events */
  guint export_received;
  int export_kind;               /* EmsegExportKind */
  double export_gamma;           /* ISBI: the file holds P(cell)^export_gamma (emseg-gamma.h) */
  char *export_path;             /* owned */

  guint strokes_unsaved;         /* without a project: strokes kept in memory only */
  GtkWidget *close_question;     /* "still running: close?" while shown (weak pointer) */
  gboolean close_confirmed;      /* the user chose to stop the work and close */
  gboolean checking;             /* a project check runs (emseg-window-check.c) */
  atomic_int *check_cancel;      /* its stop flag (the job's) while it runs, else NULL */
  gboolean compacting;           /* Compact Project runs: the window is locked (emseg-window-models.c) */
  atomic_int *compact_cancel;    /* its stop flag (the job's) while it runs, else NULL */
  EmsegImportJob *import_job;    /* a stack being copied into a new project, or NULL */
  GThread *import_thread;        /* its worker, joined when done or in dispose */
};

/* emseg-window.c */
void emseg_window_set_status (EmsegWindow *self, const char *text);
void emseg_window_show_error (EmsegWindow *self, const char *primary, const GError *error);
void emseg_window_show_message (EmsegWindow *self, GtkMessageType type, const char *primary,
                                const char *secondary);
void emseg_window_update_actions (EmsegWindow *self);
/* A worker that must finish after the window (a compaction, the shipped model's copy) holds
 * the application, so closing the window does not end the process under it: returns it
 * held and referenced (NULL when the window has none), for emseg_window_release_application
 * (NULL is fine) when the worker is done. */
GApplication *emseg_window_hold_application (EmsegWindow *self);
void emseg_window_release_application (GApplication *app);
/* NULL when idle, else what the engine thread is doing for the shown stack ("Training",
 * "An export"): it would be stopped by opening another project or showing another stack. */
const char *emseg_window_busy_with (EmsegWindow *self);
/* Shows volume (may be NULL) without touching the project (the project file calls it). */
void emseg_window_show_volume (EmsegWindow *self, EmsegVolume *volume, const char *title);

/* emseg-window-project.c */
void emseg_window_project_init (EmsegWindow *self);
void emseg_window_project_class_init (GtkWidgetClass *wc);
void emseg_window_project_dispose (EmsegWindow *self);
void emseg_window_stroke_finished (EmsegWindow *self, guint slice);
gboolean emseg_window_undo_redo (EmsegWindow *self, gboolean undo);
gboolean emseg_window_can_undo (EmsegWindow *self);
gboolean emseg_window_can_redo (EmsegWindow *self);

/* Whether a worker thread's progress is worth posting to the status line now: the last
 * one always, else at most every 250 ms (*drawn_us: the worker's last post, updated). */
static inline gboolean
emseg_window_progress_due (gint64 *drawn_us, gboolean last)
{
  gint64 now = g_get_monotonic_time ();

  if (!last && now - *drawn_us < 250 * 1000)
    return FALSE;
  *drawn_us = now;
  return TRUE;
}

/* emseg-window-import.c: opening a bare stack copies it into a new project on a worker */
gboolean emseg_window_import_new_project (EmsegWindow *self, const char *stack_path, const char *name,
                                          const char *project_path, GError **error);
/* Import Stack… into the open project (labels may be NULL): the same copy, writing to the
 * open project's file; the window is locked until it ends, then shows the new stack. */
gboolean emseg_window_import_into_open (EmsegWindow *self, const char *stack_path, const char *labels_path,
                                        const char *name, GError **error);
/* TRUE while a copy writes to the open project: nothing else may write to it. */
gboolean emseg_window_import_locks_project (EmsegWindow *self);
/* Stops a running import and joins its worker (the half-made project is removed). */
void emseg_window_import_dispose (EmsegWindow *self);

/* emseg-window-check.c */
void emseg_window_check_class_init (GtkWidgetClass *wc);

/* emseg-window-models.c */
void emseg_window_models_class_init (GtkWidgetClass *wc);

/* emseg-window-adapt.c */
void emseg_window_adapt_class_init (GtkWidgetClass *wc);
/* The engine thread's events of the adaptation job (from the train file's dispatcher). */
void emseg_window_adapt_event (EmsegWindow *self, const EmsegEngineEvent *ev);

/* emseg-window-shipped.c */
/* Copies the shipped model (when one is installed) into the open project on a worker; when
 * it is in, it becomes the current model (emseg_window_train_model_changed) and, with
 * say_ready, the Train panel says the overlay shows it. Busy meanwhile
 * (emseg_window_busy_with). */
void emseg_window_adopt_shipped_model (EmsegWindow *self, gboolean say_ready);

/* emseg-window-train.c */
void emseg_window_train_init (EmsegWindow *self);
void emseg_window_train_class_init (GtkWidgetClass *wc);
void emseg_window_train_dispose (EmsegWindow *self);
/* The project changed (opened, closed, other stack): stop jobs, reload earlier runs. */
void emseg_window_train_project_changed (EmsegWindow *self);
/* Frees the engine thread when it has no training or export (an import into the open
 * project wants no other writer); it starts again with the next job. */
void emseg_window_train_release_engine (EmsegWindow *self);
/* Starts the engine thread for the open project if it is not running. */
gboolean emseg_window_train_ensure_engine (EmsegWindow *self, GError **error);
/* The project's current checkpoint changed (Use Model, an adaptation): it becomes the
 * overlay's model, the uncertainty estimates of the previous one go, the slice is
 * predicted again. */
void emseg_window_train_model_changed (EmsegWindow *self);
/* The project's list of checkpoints changed but not its current model: the menus again. */
void emseg_window_train_models_listed (EmsegWindow *self);
/* The label beside the slice slider that says what the overlay waits for (NULL hides it). */
void emseg_window_train_show_preview_state (EmsegWindow *self, const char *text);
/* The visible slice changed: refresh its prediction overlay from the best model. */
void emseg_window_train_slice_changed (EmsegWindow *self);
/* The uncertainty button: "Estimate uncertainty (N samples)", or while an estimate runs
 * "Stop estimate (NN %)" bound to win.stop-uncertainty. */
void emseg_window_update_uncertainty_button (EmsegWindow *self);
