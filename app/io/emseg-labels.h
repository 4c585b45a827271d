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
 * eng-metrics.h.) */
#pragma once

#include <glib.h>

#include "emseg-stack.h"

G_BEGIN_DECLS

/* Reads label slice `index` of stack into out (width * height bytes, caller-owned) as
 * 0 = membrane, 128 = unlabeled, 255 = cell. FALSE + EMSEG_STACK_ERROR_INVALID naming the
 * file, slice, first offending pixel and its value when the slice follows none of the
 * readings above (or the stack's read error). */
gboolean emseg_labels_read(EmsegStack *stack, guint index, guint8 *out, GError **error);

G_END_DECLS
