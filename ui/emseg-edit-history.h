/* emseg-edit-history.h — brush strokes on label masks and their undo/redo history.
 *
 * A stroke paints a round brush of one label value along a polyline on one slice, with
 * the project store's rasterisation (see the .c), so a stroke painted here and the same
 * points given to emseg_project_apply_stroke change the same pixels. With a project open
 * the window hands each finished stroke to the store and clears this history: then it is
 * only the live painter, and undo/redo go through the store. It records,
 * for every pixel it changed, the value it had before, so undo restores exactly what was
 * there (not "unlabeled") and redo reapplies the stroke. The history spans slices: undo
 * after changing slice undoes the last stroke wherever it was and reports its slice so
 * the viewer can follow. GLib only (no GTK): the viewer drives it, the tests check it
 * without a display. Main thread only. */
#pragma once

#include <glib.h>

#include "emseg-volume.h"

G_BEGIN_DECLS

typedef struct _EmsegEditHistory EmsegEditHistory;

/* One finished stroke, as the history keeps it. Read-only for callers. */
typedef struct {
  guint slice;
  guint8 label;          /* EmsegLabel painted (the eraser paints EMSEG_LABEL_UNLABELED) */
  double radius;         /* image pixels */
  guint n_changed;       /* pixels whose value this stroke changed */
  guint x0, y0, x1, y1;  /* bounding box of the changed pixels, x1/y1 exclusive */
} EmsegStrokeInfo;

/* Borrows nothing: takes its own reference on volume, dropped in _free. */
EmsegEditHistory *emseg_edit_history_new (EmsegVolume *volume);
void emseg_edit_history_free (EmsegEditHistory *history);

/* Starts a stroke at (x, y) in image coordinates and stamps the first disc. A stroke
 * already in progress is ended first. */
void emseg_edit_history_begin_stroke (EmsegEditHistory *history, guint slice, guint8 label,
                                      double radius, double x, double y);
/* Paints a segment from the previous point to (x, y). Returns TRUE if pixels changed. */
gboolean emseg_edit_history_stroke_to (EmsegEditHistory *history, double x, double y);
/* Finishes the stroke. A stroke that changed nothing is dropped and FALSE is returned;
 * otherwise it goes on the undo stack, the redo stack is cleared, info (if non-NULL)
 * describes it and TRUE is returned. */
gboolean emseg_edit_history_end_stroke (EmsegEditHistory *history, EmsegStrokeInfo *info);
gboolean emseg_edit_history_in_stroke (const EmsegEditHistory *history);
/* The last point of the last finished stroke on `slice`, for shift-click straight lines. */
gboolean emseg_edit_history_last_point (const EmsegEditHistory *history, guint slice,
                                        double *x, double *y);

/* The points (x, y float pairs, image coordinates) of the last finished stroke, as the
 * store wants them; NULL and *n_points 0 when there is none. Borrowed until the next call. */
const float *emseg_edit_history_last_points (const EmsegEditHistory *history, guint *n_points);
/* Drops every undo and redo entry (the pixels stay as they are); the last point for
 * shift-click lines is kept. */
void emseg_edit_history_clear (EmsegEditHistory *history);

gboolean emseg_edit_history_can_undo (const EmsegEditHistory *history);
gboolean emseg_edit_history_can_redo (const EmsegEditHistory *history);
/* Undo/redo the most recent stroke; info (if non-NULL) says which slice changed. */
gboolean emseg_edit_history_undo (EmsegEditHistory *history, EmsegStrokeInfo *info);
gboolean emseg_edit_history_redo (EmsegEditHistory *history, EmsegStrokeInfo *info);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EmsegEditHistory, emseg_edit_history_free)

G_END_DECLS
