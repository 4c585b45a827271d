/* eng-metrics.h — segmentation scores as the ISBI 2012 challenge computed them.
 *
 * The challenge ranked submissions with Fiji's Trainable Segmentation metrics
 * (fiji/Trainable_Segmentation, package trainableSegmentation.metrics):
 *   V_rand = RandError.getMaximalVRandAfterThinning(0.0, 1.0, 0.1, true)
 *   V_info = VariationOfInformation.getMaximalVInfoAfterThinning(0.0, 1.0, 0.1)
 * This module reimplements them in C (our own code; the rules are summarised with the
 * Fiji method each comes from in eng-metrics.c) and adds the pixel error
 * (PixelError.getMetricValue, minimised over the same thresholds), the un-thinned
 * foreground-restricted Rand index (RandError.getForegroundRestrictedRandIndexStats) and
 * the split / merge scores behind V_rand and V_info, so a user can see whether a model
 * over-splits (low split score) or over-merges (low merge score).
 *
 * Conventions (ISBI): ground truth 0 = membrane, any non-zero value = cell; predictions
 * are probabilities in [0, 1] with 0 = membrane, 1 = cell interior. Images are row-major
 * (n_slices, h, w). The engine never prints; every failure comes back as an EngStatus
 * with a message naming the slice and pixel.
 *
 * Ownership: callers own every buffer they pass; EngMetricsResult is a plain value with
 * no pointers, so it can be copied or posted to another thread as is. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-status.h"

/* Fiji's loop `for (th = 0.0; th <= 1.0; th += 0.1)` in doubles runs 11 times; the last
 * threshold is 0.9999999999999999, not 1. A pixel is cell when prob > th. */
#define ENG_METRICS_N_THRESHOLDS 11

/* Scores at one threshold, each the mean over slices of the per-slice value (Fiji's
 * macro average: perSliceAverage = true). */
typedef struct {
  double threshold;
  double vrand;       /* foreground-restricted Rand F-score after thinning */
  double rand_split;  /* its recall: sum p_ij^2 / sum a_i^2 (low = over-split) */
  double rand_merge;  /* its precision: sum p_ij^2 / sum b_j^2 (low = over-merged) */
  double vinfo;       /* 2 I(A;B) / (H(A) + H(B)) after thinning; NaN where Fiji's is */
  double info_split;  /* I(A;B) / H(B) (low = over-split) */
  double info_merge;  /* I(A;B) / H(A) (low = over-merged) */
  double rand_index;  /* foreground-restricted Rand index, N^2 normalisation, no thinning */
  double pixel_error; /* fraction of pixels whose binarized class differs from the truth */
} EngMetricsRow;

typedef struct {
  size_t n_slices, h, w;
  EngMetricsRow rows[ENG_METRICS_N_THRESHOLDS];
  /* Maxima over thresholds the way Fiji takes them: start at 0, keep the first strictly
   * larger value, skip NaN. *_at is the row index (0 when nothing beat 0). */
  double vrand;
  size_t vrand_at;
  double vinfo;
  size_t vinfo_at;
  double rand_index;  /* maximal un-thinned foreground-restricted Rand index */
  size_t rand_index_at;
  double pixel_error; /* minimum over thresholds (Fiji's Metrics.getMinimumMetricValue) */
  size_t pixel_error_at;
} EngMetricsResult;

/* Scores a probability stack against labels over Fiji's 11 thresholds.
 * prob: (n_slices, h, w) floats in [0, 1] (NaN or values outside are refused);
 * gt: (n_slices, h, w) labels, 0 = membrane. Every slice must contain cell pixels in the
 * ground truth (Fiji's scores are NaN otherwise). Slices run in parallel on the engine's
 * pool (eng_parallel_for), so this must not be called from inside an eng_parallel_for
 * callback. Returns ENG_OK, ENG_ERR_INVALID or ENG_ERR_NOMEM. */
EngStatus eng_metrics_evaluate(const float *prob, const uint8_t *gt, size_t n_slices,
                               size_t h, size_t w, EngMetricsResult *out, EngError *err);

/* The threshold of row i, computed as Fiji's loop does (repeated addition of 0.1). */
double eng_metrics_threshold(size_t i);

/* ---- building blocks, exposed for tests and for overlays in the GUI ---- */

/* Partition scores of two label images of n pixels. a: ground-truth segments, 0 =
 * background, pruned (foreground restriction); b: proposed segments, 0 = boundary pixels,
 * each counted as its own singleton segment. Labels must be < n_labels_a / n_labels_b. */
typedef struct {
  double n;           /* pixels with a != 0 */
  double tp, fp, fn;  /* pair counts with self-pairs (N^2 normalisation) */
  double rand_precision, rand_recall, rand_fscore, rand_index;
  double h_a, h_b, mutual_info; /* nats; h_b counts b = 0 pixels as singletons */
  double info_precision, info_recall, info_fscore;
} EngPartitionScores;

EngStatus eng_metrics_partition_scores(const int32_t *a, const int32_t *b, size_t n,
                                       int32_t n_labels_a, int32_t n_labels_b,
                                       EngPartitionScores *out, EngError *err);

/* 4-connected components of the non-zero pixels of a row-major (h, w) mask: labels 1..k,
 * 0 where mask is 0. Returns k through *n_labels. */
EngStatus eng_metrics_components4(int32_t *labels, const uint8_t *mask, size_t h, size_t w,
                                  int32_t *n_labels, EngError *err);

/* Fiji's border thinning of a binary proposal (cell != 0): the classic watershed
 * (WatershedTransform2D, Soille & Vincent 1990) of the image that is 0 on cells and 255 on
 * membrane, 4-connected, so each membrane region is flooded from the cells around it in
 * Fiji's FIFO order and only 1-pixel dams remain (label 0). Labels 1..k elsewhere. */
EngStatus eng_metrics_thin(int32_t *labels, const uint8_t *cell, size_t h, size_t w,
                           int32_t *n_labels, EngError *err);
