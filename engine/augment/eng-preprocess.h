/* eng-preprocess.h — per-slice standardization, the network's input convention
 * (MODEL.md: 1 channel, per-slice standardized): out = (in - mean) / std over the slice.
 *
 * Raw samples stay in their own type until here (8-bit, 16-bit or float TIFFs alike), so
 * no precision is lost to an early 8-bit conversion. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-status.h"

typedef enum {
  ENG_PIXEL_U8,
  ENG_PIXEL_U16,
  ENG_PIXEL_F32,
} EngPixelType;

/* What was removed from a slice, for display and for undoing the standardization. */
typedef struct {
  double mean;
  double std;    /* population standard deviation; 1 when the slice is constant */
  int constant;  /* the slice had (numerically) no variation: out is all zeros */
} EngStandardizeInfo;

/* out (height, width) floats, caller-owned; in (height, width) samples of `type`,
 * contiguous. out may alias in only for ENG_PIXEL_F32. A constant slice (std below
 * 1e-6 of its magnitude, or exactly 0) gives zeros instead of dividing by ~0.
 * Returns ENG_ERR_NUMERIC naming the first non-finite float sample (x, y);
 * info may be NULL. */
EngStatus eng_standardize(float *out, const void *in, EngPixelType type, size_t width,
                          size_t height, EngStandardizeInfo *info, EngError *err);

/* The two halves of eng_standardize, for callers that keep the samples and standardize
 * them when used (training datasets: a byte per pixel instead of a float): stats checks
 * and measures the slice (errors as above; info required) and gives the scale,
 * 1/std or 0 for a constant slice; apply writes out[i] = (float) ((in[i] - mean) * scale)
 * for count samples of a row, a window or the slice — the very values eng_standardize
 * writes. */
EngStatus eng_standardize_stats(const void *in, EngPixelType type, size_t width,
                                size_t height, EngStandardizeInfo *info, double *scale,
                                EngError *err);
void eng_standardize_apply(float *out, const void *in, EngPixelType type, size_t count,
                           double mean, double scale);
