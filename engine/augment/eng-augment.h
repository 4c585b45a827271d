/* eng-augment.h — training-time augmentation of a slice, its labels and its label mask
 * with one geometric transform (issue 5, "The recipe"; the paper's authors used Keras'
 * ImageDataGenerator settings plus U-Net's elastic warping):
 *   random horizontal / vertical flips, rotation (±25°), shear (±0.41 rad, Keras
 *   convention), and an elastic warp: random displacements N(0, σ = 10 px) on a coarse
 *   3×3 grid of control points spanning the slice, interpolated over the slice by a
 *   bicubic (tensor-product natural cubic) spline.
 * All of it is composed into one sampling map (for every output pixel, the source
 * position), so each output pixel is sampled once: bilinear for the image, nearest for the
 * labels and the mask, with reflect padding (half-sample symmetric: ... b a | a b ... ) at
 * the borders. Nearest sampling keeps labels exactly in their input value set.
 *
 * Usage: create one EngAugment per slice size (it owns every buffer, allocated once),
 * then per sample: eng_augment_draw (pure function of seed and sample index),
 * eng_augment_set (builds the map), eng_augment_apply. No allocation after create. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-status.h"

#define ENG_AUGMENT_MAX_GRID 8

/* The random recipe. */
typedef struct {
  float flip_prob;      /* probability of a horizontal flip, and of a vertical one (0.5) */
  float rotate_max_deg; /* rotation uniform in [-max, max] degrees (25) */
  float shear_max;      /* shear angle uniform in [-max, max] radians (0.41) */
  int elastic_grid;     /* control points per side, 2..ENG_AUGMENT_MAX_GRID (3); 0 = off */
  float elastic_sigma;  /* std of the control-point displacements, px (10) */
} EngAugmentParams;

/* One concrete transform. Output pixel p = (x, y) (slice centre c) samples the source at
 *   flip( c + R(angle) · S(shear) · (p - c + elastic(p)) )
 * with R(a) = [[cos a, -sin a], [sin a, cos a]] and S(s) = [[1, -sin s], [0, cos s]] (Keras)
 * acting on (x, y) pixel coordinates (x right, y down), and flips mirroring the source
 * position about the centre. Positions within 1e-4 px of an integer are snapped to it, so
 * flips and quarter turns of a square slice move pixels exactly. */
typedef struct {
  int flip_h, flip_v;
  float angle;  /* radians */
  float shear;  /* radians */
  int grid;     /* elastic control points per side; 0 = no elastic warp */
  float disp_x[ENG_AUGMENT_MAX_GRID * ENG_AUGMENT_MAX_GRID]; /* (grid, grid) row-major, px */
  float disp_y[ENG_AUGMENT_MAX_GRID * ENG_AUGMENT_MAX_GRID]; /* (grid, grid) row-major, px */
} EngAugmentDraw;

/* The recipe's defaults (values above). */
void eng_augment_params_init(EngAugmentParams *p);
/* The identity transform. */
void eng_augment_draw_identity(EngAugmentDraw *d);
/* Draws sample `sample` of the stream `seed`: same inputs, same transform, whichever
 * thread or order they are drawn in. */
void eng_augment_draw(EngAugmentDraw *d, const EngAugmentParams *p, uint64_t seed,
                      uint64_t sample);

typedef struct EngAugment EngAugment;

/* A workspace for width × height slices: the sampling map (two (height, width) float
 * planes) and the spline weights. Owned by the caller, freed with eng_augment_destroy. */
EngStatus eng_augment_create(EngAugment **out, size_t width, size_t height, EngError *err);
/* A workspace that computes only a win_w × win_h window of each augmented width × height
 * slice (training crops of big slices: map, time and outputs scale with the window, and
 * the window equals that crop of the whole slice's output bit for bit). Outputs of apply
 * are then (win_h, win_w); inputs stay (height, width). */
EngStatus eng_augment_create_window(EngAugment **out, size_t width, size_t height,
                                    size_t win_w, size_t win_h, EngError *err);
void eng_augment_destroy(EngAugment *aug);

/* Builds the sampling map of d (for a windowed workspace, of its window at (0, 0)).
 * ENG_ERR_INVALID for a grid outside 0, 2..MAX or a non-finite parameter. */
EngStatus eng_augment_set(EngAugment *aug, const EngAugmentDraw *d, EngError *err);
/* The same for the output window whose top-left pixel is (x0, y0) of the slice;
 * ENG_ERR_INVALID if the window leaves the slice. */
EngStatus eng_augment_set_window(EngAugment *aug, const EngAugmentDraw *d, size_t x0,
                                 size_t y0, EngError *err);

/* Where source position (sx, sy) lands in the output of the current draw (the one of the
 * last eng_augment_set*): the inverse of the map, by fixed-point iteration over the elastic
 * warp, within a pixel or so where the warp has no folds (the recipe's default) and the
 * position lies in the slice. For moving a training crop onto a labelled source pixel. */
void eng_augment_locate(const EngAugment *aug, double sx, double sy, double *px, double *py);

/* The current map, (win_h, win_w) each (the slice's size unless windowed): the source x
 * and y of each output pixel before reflect padding. Borrowed from aug; valid until the
 * next eng_augment_set. */
const float *eng_augment_map_x(const EngAugment *aug);
const float *eng_augment_map_y(const EngAugment *aug);

/* Resamples through the current map. Every buffer is (height, width), caller-owned (the
 * outputs of a windowed workspace (win_h, win_w));
 * any output/input pair may be NULL (both of it), outputs must not alias inputs.
 * image: bilinear; labels (any byte values) and mask (weights, 0 = unlabeled): nearest. */
void eng_augment_apply(EngAugment *aug, float *image_out, uint8_t *labels_out,
                       float *mask_out, const float *image_in, const uint8_t *labels_in,
                       const float *mask_in);

/* draw + set + apply in one call. */
EngStatus eng_augment_sample(EngAugment *aug, float *image_out, uint8_t *labels_out,
                             float *mask_out, const float *image_in,
                             const uint8_t *labels_in, const float *mask_in,
                             const EngAugmentParams *p, uint64_t seed, uint64_t sample,
                             EngError *err);
