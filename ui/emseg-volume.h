/* emseg-volume.h — the stack the workbench shows and edits: the image slices (float
 * samples as read, never squeezed to 8 bit), one label mask per slice and, per slice a
 * model has predicted, the probability map. A volume read from a project reads image
 * slices and masks from the project when they are shown, keeping the last few
 * (EMSEG_VOLUME_CACHED_PLANES images, EMSEG_VOLUME_CACHED_MASKS masks): a 40-slice 4096²
 * stack took 13 s and 3.4 GB to load whole, and its masks alone are 670 MB. A mask handed
 * out for editing (emseg_volume_label_plane) is never dropped until emseg_volume_reload_mask
 * has made it equal to the store again, so an edit cannot be lost to the cache. Reference
 * counted: the window owns one reference and lends the viewer and the
 * edit history their own. Main thread only; the engine thread gets copies, never this
 * struct. GLib only, no GTK, so tests and the store adapter can use it without a display. */
#pragma once

#include <glib.h>

#include "emseg-project.h"

G_BEGIN_DECLS

#define EMSEG_VOLUME_ERROR (emseg_volume_error_quark ())
GQuark emseg_volume_error_quark (void);

/* Mask values (EmsegLabel: 0 membrane, 128 unlabeled, 255 cell) are the project
 * store's, from emseg-project.h, so masks go to and from the store unconverted. */

#define EMSEG_VOLUME_CACHED_PLANES 8
/* Masks are a byte per pixel, a quarter of an image plane: more of them stay. */
#define EMSEG_VOLUME_CACHED_MASKS 16
/* Predictions kept, least recently set or shown evicted first: all of a 512² stack's
 * (1 MiB a slice), 4 of 4096² (64 MiB each) — paging through a big stack kept every
 * slice's, 2.6 GB for 40 slices. An evicted one is read from the store again (or predicted
 * again) when its slice is shown. At least 4 are kept. */
#define EMSEG_VOLUME_PREDICTION_BUDGET ((gsize) 256 << 20)
/* Worker reads in flight at once: paging fast through a stack must not start a read (and
 * a plane's worth of memory) per slice passed. */
#define EMSEG_VOLUME_PREFETCH_READS 2

typedef struct {
  guint width, height, n_slices;
  float *image;      /* (n_slices, height, width) raw sample values, owned; NULL for a
                        volume read from a project (use emseg_volume_image_plane) */
  guint8 *labels;    /* (n_slices, height, width) EmsegLabel values, owned; NULL for a
                        volume read from a project (use emseg_volume_labels) */
  float **prediction; /* (n_slices) planes of P(cell interior), owned; a plane is NULL
                         until that slice is predicted, or again once evicted (the last
                         EMSEG_VOLUME_PREDICTION_BUDGET bytes' worth are kept) */
  float **uncertainty; /* (n_slices) planes (height, width) of the MC-dropout standard
                          deviation of P(cell), owned; a plane is NULL until estimated —
                          only slices the user asked about have one — or once evicted
                          (kept under the predictions' budget, pred_capacity planes) */
  float image_min;   /* sample range (of the stack, or of up to 5 spread slices of a
                        project's): the viewer's default display window */
  float image_max;
  /* private */
  gatomicrefcount ref;
  EmsegProject *source; /* project volumes: a read-only connection of their own */
  gint64 stack_id;
  float **planes;       /* project volumes: (n_slices), loaded image planes or NULL */
  guint recent[EMSEG_VOLUME_CACHED_PLANES]; /* loaded slices, least recently used first */
  guint n_recent;
  guint8 **masks;       /* project volumes: (n_slices), loaded masks or NULL */
  /* loaded masks that equal the store, least recently used first; a loaded mask not
   * listed was handed out for editing and stays until reloaded */
  guint clean_masks[EMSEG_VOLUME_CACHED_MASKS];
  guint n_clean_masks;
  guint *mask_gen;      /* project volumes: (n_slices) bumped by every emseg_volume_reload_mask:
                         * a prefetched mask read under an older count may predate a stroke,
                         * undo or import there, and is dropped */
  guint *pred_order;    /* (n_slices) slices with a prediction, least recently used first */
  guint n_pred, pred_capacity; /* pred_capacity ≤ n_slices, from the budget */
  guint *unc_order;     /* (n_slices) slices with an uncertainty plane, least recently used first */
  guint n_unc;          /* at most pred_capacity */
  guint prefetching[EMSEG_VOLUME_PREFETCH_READS]; /* slices read in flight
                                                    (emseg_volume_prefetch) */
  guint n_prefetching;
} EmsegVolume;

/* Allocates an all-zero image with every label EMSEG_LABEL_UNLABELED. Fails with a
 * message (not an abort) when the size overflows or memory is short. */
EmsegVolume *emseg_volume_new (guint width, guint height, guint n_slices, GError **error);
EmsegVolume *emseg_volume_ref (EmsegVolume *volume);
void emseg_volume_unref (EmsegVolume *volume);

/* Recomputes image_min/image_max after the image samples were filled in. */
void emseg_volume_update_range (EmsegVolume *volume);
/* Copies prob (height × width) in as the slice's prediction (the most recent; may evict the
 * least recently used other one). */
void emseg_volume_set_prediction (EmsegVolume *volume, guint slice, const float *prob);

gsize emseg_volume_plane_size (const EmsegVolume *volume);
/* The slice's samples. For a project volume it is read from the project if it is not one
 * of the last EMSEG_VOLUME_CACHED_PLANES used (about 0.2 s for 4096²), so the pointer is
 * valid until EMSEG_VOLUME_CACHED_PLANES other slices were asked for; a slice that cannot
 * be read shows as zeros, with a warning. */
const float *emseg_volume_image_plane (EmsegVolume *volume, guint slice);
/* Starts reading the slice's image plane and mask on a worker thread (its own read-only
 * connection), so that paging to it finds them loaded: the viewer asks for the neighbours
 * of the slice it shows. Nothing happens for in-memory volumes, slices loaded or in flight, a
 * slice out of range, or while EMSEG_VOLUME_PREFETCH_READS reads are in flight; plane and
 * mask arrive through the main loop (a mask only if no reload of that slice came between)
 * and may be evicted as any other. */
void emseg_volume_prefetch (EmsegVolume *volume, guint slice);
/* The slice's mask to read (project volumes: read from the project when it is not one of
 * the last EMSEG_VOLUME_CACHED_MASKS used; valid until that many other masks were asked
 * for; a mask that cannot be read shows as unlabeled, with a warning). */
const guint8 *emseg_volume_labels (EmsegVolume *volume, guint slice);
/* The slice's mask to edit in place (brush strokes while dragging, undo of the viewer's
 * own history). In a project volume the plane then stays in memory until
 * emseg_volume_reload_mask makes it the store's again. */
guint8 *emseg_volume_label_plane (EmsegVolume *volume, guint slice);
/* The slice's prediction, NULL if none (or evicted); marks it recently used. */
float *emseg_volume_prediction_plane (EmsegVolume *volume, guint slice);
/* The uncertainty (MC standard deviation) of a slice, NULL until estimated (or evicted);
 * marks it recently used. */
const float *emseg_volume_uncertainty_plane (EmsegVolume *volume, guint slice);
/* Copies std (height × width) in as the slice's uncertainty. Estimates are kept under the
 * same budget as predictions (every slice of a 512² stack, 4 of 4096²), the least recently
 * set or shown dropped first: unlike a prediction it is not in the project, so a dropped one
 * is estimated again on request. */
void emseg_volume_set_uncertainty (EmsegVolume *volume, guint slice, const float *std);
/* Drops every slice's prediction (the model they came from was deleted). */
void emseg_volume_clear_predictions (EmsegVolume *volume);
/* Drops every slice's uncertainty (the model it came from was replaced). */
void emseg_volume_clear_uncertainty (EmsegVolume *volume);

const char *emseg_label_to_string (guint8 label);

/* Reads a whole TIFF stack or PNG folder (app/io) into a volume; labels_path (may be
 * NULL) is a stack of the same size with 255 = cell, 0 = membrane. Errors name the file
 * and, for a size mismatch, both sizes. */
EmsegVolume *emseg_volume_new_from_stack (const char *image_path, const char *labels_path,
                                          GError **error);
/* Stack `stack_id` of an open project: image slices and masks when shown, through a
 * read-only connection of the volume's own (the caller's project may close first). Errors
 * name the project file and the slice. */
EmsegVolume *emseg_volume_new_from_project (EmsegProject *project, gint64 stack_id,
                                            GError **error);
/* Re-reads one slice's mask from the store (after a stroke, undo or redo there), so the
 * viewer shows exactly what is stored. changed (may be NULL) says whether the plane
 * differed from the store: after a stroke it normally does not, and the viewer need not
 * redraw. A project volume's mask that is not loaded is left to be read when asked for
 * (changed FALSE: nothing on screen showed it). */
gboolean emseg_volume_reload_mask (EmsegVolume *volume, EmsegProject *project,
                                   gint64 stack_id, guint slice, gboolean *changed,
                                   GError **error);

/* The demo project: an EM-like synthetic stack (engine/augment eng-synth) whose first
 * n_labelled slices carry their exact labels and the rest are unlabeled. */
EmsegVolume *emseg_volume_new_synthetic (guint width, guint height, guint n_slices,
                                         guint64 seed, guint n_labelled, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EmsegVolume, emseg_volume_unref)

G_END_DECLS
