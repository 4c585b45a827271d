/* emseg-dataset.h — the slices a training run learns from or validates on, held in memory:
 * the image samples as read (8-bit, 16-bit or float; other types as float) with each
 * slice's standardization, turned into the network's input convention (per-slice
 * standardized floats) when read — the same values as standardizing up front, at a byte
 * per pixel for 8-bit stacks instead of four — plus 8-bit labels (0 = membrane, 255 =
 * cell, anything else = unlabeled; eng_labels_to_target turns them into target and loss
 * mask). Built from label/image stack files, from a project's stack
 * and masks, or from the synthetic generator (tests, experiments, demos).
 *
 * Ownership: an EmsegDataset owns its arrays and its source string; stacks and projects
 * passed to the constructors are borrowed for the call only. The struct is plain data:
 * read its fields directly, never resize them. */
#pragma once

#include <glib.h>

#include "emseg-project.h"
#include "emseg-stack.h"
#include "eng-preprocess.h"

G_BEGIN_DECLS

#define EMSEG_DATASET_ERROR (emseg_dataset_error_quark())
GQuark emseg_dataset_error_quark(void);

typedef enum {
  EMSEG_DATASET_ERROR_INPUT, /* sizes differ, slice out of range, slice without labels */
  EMSEG_DATASET_ERROR_ENGINE, /* standardization or the synthetic generator failed */
} EmsegDatasetError;

typedef struct {
  guint width, height, n;
  guint8 *labels; /* (n, height, width) 0 membrane, 255 cell, other = unlabeled */
  guint *slice;   /* (n) slice index in the source, for messages */
  guint64 *n_labeled; /* (n) labeled pixels per slice */
  char *source;   /* where the slices came from, for messages */
  /* the images: read them with emseg_dataset_read_image / _window */
  EngPixelType type;
  guint8 *samples;      /* (n, height, width) samples of type */
  double *mean, *scale; /* (n) standardized = (float) ((sample - mean) * scale) */
} EmsegDataset;

/* An empty dataset of n slices of type (all zeros, all labels membrane). */
EmsegDataset *emseg_dataset_new(guint width, guint height, guint n, EngPixelType type,
                                const char *source);
void emseg_dataset_free(EmsegDataset *ds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegDataset, emseg_dataset_free)

gsize emseg_dataset_plane(const EmsegDataset *ds);             /* width * height */
/* Slice i standardized into out (height × width floats, caller-owned). */
void emseg_dataset_read_image(const EmsegDataset *ds, guint i, float *out);
/* The height × width window at (x0, y0) of slice i standardized (as the whole slice) into
 * out (height × width floats). */
void emseg_dataset_read_window(const EmsegDataset *ds, guint i, guint x0, guint y0,
                               guint width, guint height, float *out);
guint8 *emseg_dataset_labels(const EmsegDataset *ds, guint i); /* borrowed plane */
/* Re-counts n_labeled after a caller edited labels in place. */
void emseg_dataset_recount(EmsegDataset *ds);

/* Slices slices[0..n) of images with the same pages of labels. A slice past the end of
 * labels, or with no labeled pixel, is an error naming the file and the slice. */
EmsegDataset *emseg_dataset_from_stacks(EmsegStack *images, EmsegStack *labels,
                                        const guint *slices, guint n, GError **error);
/* A copy of ds with each slice cut to height x width (at most ds's size): per slice the
 * window, at a position on a grid of step pixels (a multiple of the model's size multiple),
 * that holds the most labelled pixels, the central one among equals. For validating big
 * slices in pieces the inference graph can hold. The standardization stays the whole
 * slice's. */
EmsegDataset *emseg_dataset_crop_labelled(const EmsegDataset *ds, guint height, guint width,
                                          guint step);
/* Slices of a project stack with their masks. slices NULL: every slice that has at least
 * one labeled pixel (emseg_project_labeled_slices). A requested slice with no labeled
 * pixel is an error. */
EmsegDataset *emseg_dataset_from_project(EmsegProject *project, gint64 stack_id,
                                         const guint *slices, guint n, GError **error);
/* Slices first..first+n-1 of the synthetic EM-like stack of `seed` (eng-synth.h), size x
 * size pixels, with exact labels. */
EmsegDataset *emseg_dataset_synthetic(guint64 seed, guint first, guint n, guint size,
                                      GError **error);

G_END_DECLS
