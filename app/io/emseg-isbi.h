/* emseg-isbi.h — ISBI 2012 submission export: validation and the streaming export loop.
 *
 * A submission is a 32-bit float TIFF with one page per input slice, the input's width and
 * height, every value finite and in [0, 1], 0 = membrane and 1 = cell interior. The export
 * refuses to write anything that breaks one of those rules, and writes through the same
 * stack writer as `emseg predict` (emseg-stack.h), so both produce identical files.
 *
 * The export does not know the network: the caller supplies a per-slice prediction
 * callback, so the CLI, the GUI (and tests) share this code with their own model handling. */
#pragma once

#include <glib.h>

#include "emseg-stack.h"

G_BEGIN_DECLS

/* Checks one slice of cell-interior probabilities: every value finite and in [0, 1].
 * The error names `what` (file or source), the slice, the first bad pixel and its value. */
gboolean emseg_isbi_validate_slice(const float *prob, guint width, guint height,
                                   const char *what, guint slice, GError **error);

/* Checks a probability stack's shape against the input stack's, in one message:
 * "expected 30 slices of 512 x 512, found 29 slices of 512 x 512". */
gboolean emseg_isbi_validate_shape(guint width, guint height, guint n_slices,
                                   guint expected_width, guint expected_height,
                                   guint expected_n_slices, const char *what, GError **error);

/* Fills prob_out (width*height) with P(cell interior) for input slice `index`, whose raw
 * values (as float, no normalization) are in `image`. Returns FALSE with error set to stop. */
typedef gboolean (*EmsegIsbiPredictFunc)(gpointer user_data, guint index, const float *image,
                                         guint width, guint height, float *prob_out,
                                         GError **error);

/* Called after each slice with (slices done, total); may be NULL. */
typedef void (*EmsegIsbiProgressFunc)(gpointer user_data, guint done, guint total);

/* Predicts every slice of `images` and writes the submission to out_path. Each slice is
 * validated before it is appended; nothing appears at out_path unless all slices passed. */
gboolean emseg_isbi_export(EmsegStack *images, EmsegIsbiPredictFunc predict,
                           gpointer predict_data, EmsegIsbiProgressFunc progress,
                           gpointer progress_data, const char *out_path, GError **error);

/* Re-validates an existing probability stack (e.g. from `emseg predict`) against the input
 * stack and writes it as a submission, each value raised to the export exponent gamma
 * (emseg-gamma.h; 1 copies the values). */
gboolean emseg_isbi_export_from_probabilities(EmsegStack *images, EmsegStack *probabilities,
                                              double gamma, const char *out_path,
                                              GError **error);

G_END_DECLS
