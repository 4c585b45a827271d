/* emseg-labels.h — one reading of label files for everything that trains on them or stores
 * them (project import, the workbench's label import, `emseg train`, augment-preview):
 *
 *   0 = membrane, 255 = cell, 128 = unlabeled   emseg's own format (ISBI's labels are 0/255;
 *                                               `emseg project export-labels` writes 128)
 *   0 = membrane, 1 = cell                      a 0/1 mask (8-bit, 16-bit or float)
 *   0 = membrane, 65535 = cell                  the 16-bit form of 0/255
 *
 * decided per slice from the values it holds. Anything else (0/200, 1/2 from another
 * tool, instance ids, values blurred by resizing) is refused with the file, slice, pixel
 * and value, instead of being guessed: before this, a 0/1 mask was stored as all membrane
 * by a project import and trained as membrane-only by `emseg train`.
 * (Scoring reads ground truth as Fiji does, 0 = membrane and non-zero = cell; see
 * eng-metrics.h.)
 *
 * Object ids (instance labels: one value per cell, no membrane drawn, as SNEMI3D and CREMI
 * ship their ground truth) are a different kind of file, so they are read only when asked
 * for (emseg_labels_read_ids): guessing would take another tool's 1/2 classes for two
 * objects. The refusal above says when a slice looks like ids, so the user learns the way. */
#pragma once

#include <glib.h>

#include "emseg-stack.h"

G_BEGIN_DECLS

/* Reads label slice `index` of stack into out (width * height bytes, caller-owned) as
 * 0 = membrane, 128 = unlabeled, 255 = cell. FALSE + EMSEG_STACK_ERROR_INVALID naming the
 * file, slice, first offending pixel and its value when the slice follows none of the
 * readings above (or the stack's read error). */
gboolean emseg_labels_read(EmsegStack *stack, guint index, guint8 *out, GError **error);

/* Reads slice `index` of stack as object ids (any integer type, or float holding whole
 * numbers) into out as labels: a pixel is membrane (0) where it touches, side by side or one
 * above the other, a pixel of another non-zero id, and within membrane_px - 1 pixels of such
 * a pixel (a square neighbourhood), so two touching objects are parted by 2 * membrane_px
 * pixels; id 0 is membrane, or unlabeled (128) with zero_unlabeled; every other pixel is cell
 * (255). membrane_px: 1 to EMSEG_LABELS_MAX_MEMBRANE_PX. FALSE + EMSEG_STACK_ERROR_INVALID
 * naming the file, slice, pixel and value for a float that is no whole number (or the
 * stack's read error). */
#define EMSEG_LABELS_MAX_MEMBRANE_PX 16
/* The default: ids filled in from ISBI 2012's labels (each membrane pixel given its nearest
 * cell's id) come back with 22.9 % membrane against the original 22.4 % (93.5 % of pixels
 * agree; 1 px: 6.4 %, 2: 14.9 %, 4: 30.4 %), so a fine-tune of the shipped model sees the
 * membranes it was trained on. */
#define EMSEG_LABELS_DEFAULT_MEMBRANE_PX 3
gboolean emseg_labels_read_ids(EmsegStack *stack, guint index, guint membrane_px,
                               gboolean zero_unlabeled, guint8 *out, GError **error);

/* TRUE when slice `index` holds three or more different non-zero whole numbers: what object
 * ids look like and no label encoding allows (values blurred by resizing can look so too,
 * which is why this only prompts a question). FALSE also when the slice cannot be read. */
gboolean emseg_labels_look_like_ids(EmsegStack *stack, guint index);

G_END_DECLS
