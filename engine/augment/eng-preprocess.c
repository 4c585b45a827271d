/* eng-preprocess.c — per-slice standardization (eng-preprocess.h).
 *
 * Two passes in double (mean, then the centred sum of squares): one pass with
 * sum/sum-of-squares loses the variance of 16-bit slices with a large offset. */
#include "eng-preprocess.h"

#include <math.h>

static double
sample_at(const void *in, EngPixelType type, size_t i)
{
  switch (type) {
  case ENG_PIXEL_U8:
    return ((const uint8_t *) in)[i];
  case ENG_PIXEL_U16:
    return ((const uint16_t *) in)[i];
  default:
    return ((const float *) in)[i];
  }
}

EngStatus
eng_standardize_stats(const void *in, EngPixelType type, size_t width, size_t height,
                      EngStandardizeInfo *info, double *scale, EngError *err)
{
  if (!in)
    return eng_error_set(err, ENG_ERR_INVALID, "standardize: no input buffer");
  if (type != ENG_PIXEL_U8 && type != ENG_PIXEL_U16 && type != ENG_PIXEL_F32)
    return eng_error_set(err, ENG_ERR_INVALID, "standardize: unknown pixel type %d",
                         (int) type);
  if (width == 0 || height == 0 || width > SIZE_MAX / height)
    return eng_error_set(err, ENG_ERR_INVALID, "standardize: bad slice size %zux%zu",
                         width, height);
  size_t n = width * height;

  double sum = 0.0, peak = 0.0;
  for (size_t i = 0; i < n; i++) {
    double v = sample_at(in, type, i);
    if (!isfinite(v))
      return eng_error_set(err, ENG_ERR_NUMERIC,
                           "standardize: non-finite sample at x=%zu, y=%zu of a %zux%zu slice",
                           i % width, i / width, width, height);
    sum += v;
    if (fabs(v) > peak)
      peak = fabs(v);
  }
  double mean = sum / (double) n;
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = sample_at(in, type, i) - mean;
    ss += d * d;
  }
  double std = sqrt(ss / (double) n);
  int constant = std == 0.0 || std < 1e-6 * peak;
  *scale = constant ? 0.0 : 1.0 / std;
  info->mean = mean;
  info->std = constant ? 1.0 : std;
  info->constant = constant;
  return ENG_OK;
}

void
eng_standardize_apply(float *out, const void *in, EngPixelType type, size_t count,
                      double mean, double scale)
{
  for (size_t i = 0; i < count; i++)
    out[i] = (float) ((sample_at(in, type, i) - mean) * scale);
}

EngStatus
eng_standardize(float *out, const void *in, EngPixelType type, size_t width, size_t height,
                EngStandardizeInfo *info, EngError *err)
{
  if (!out)
    return eng_error_set(err, ENG_ERR_INVALID, "standardize: no input or output buffer");
  EngStandardizeInfo own;
  double scale;
  EngStatus st = eng_standardize_stats(in, type, width, height, info ? info : &own, &scale,
                                       err);
  if (st == ENG_OK)
    eng_standardize_apply(out, in, type, width * height, (info ? info : &own)->mean, scale);
  return st;
}
