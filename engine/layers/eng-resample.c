/* eng-resample.c — resolution changes on n*c planes: 2×2 max-pool, decimation and
 * nearest ×2 repetition, each with its backward.
 *
 * Work is split over planes (each plane written by one thread, so the accumulating
 * backwards need no atomics); a plane at the deepest level is small, so the minimum chunk
 * is counted in planes of the size at hand. */
#include "eng-layers.h"

#include "eng-parallel.h"

typedef struct {
  float *out;
  uint8_t *argmax;
  const float *in;
  const uint8_t *cargmax;
  size_t h, w; /* full-resolution plane size (the larger of the two sides) */
} ResampleCtx;

/* Planes per chunk so that a chunk moves at least ~64 K elements. */
static size_t
plane_chunk(size_t plane)
{
  size_t want = ((size_t) 1 << 16) / (plane ? plane : 1);
  return want ? want : 1;
}

static void
maxpool_fw_range(void *vctx, size_t b, size_t e)
{
  const ResampleCtx *c = vctx;
  size_t h = c->h, w = c->w, ho = h / 2, wo = w / 2;
  for (size_t p = b; p < e; p++) {
    const float *in = c->in + p * h * w;
    float *out = c->out + p * ho * wo;
    uint8_t *am = c->argmax + p * ho * wo;
    for (size_t y = 0; y < ho; y++) {
      const float *r0 = in + 2 * y * w;
      const float *r1 = r0 + w;
      for (size_t x = 0; x < wo; x++) {
        /* Strict > keeps the first maximum in row-major order (0,0),(0,1),(1,0),(1,1). */
        float m = r0[2 * x];
        uint8_t a = 0;
        if (r0[2 * x + 1] > m) {
          m = r0[2 * x + 1];
          a = 1;
        }
        if (r1[2 * x] > m) {
          m = r1[2 * x];
          a = 2;
        }
        if (r1[2 * x + 1] > m) {
          m = r1[2 * x + 1];
          a = 3;
        }
        out[y * wo + x] = m;
        am[y * wo + x] = a;
      }
    }
  }
}

void
eng_maxpool2_forward(float *out, uint8_t *argmax, const float *in, size_t nc, size_t h,
                     size_t w)
{
  ResampleCtx c = {.out = out, .argmax = argmax, .in = in, .h = h, .w = w};
  eng_parallel_for(nc, plane_chunk(h * w), maxpool_fw_range, &c);
}

static void
maxpool_bw_range(void *vctx, size_t b, size_t e)
{
  const ResampleCtx *c = vctx;
  size_t h = c->h, w = c->w, ho = h / 2, wo = w / 2;
  for (size_t p = b; p < e; p++) {
    float *din = c->out + p * h * w;
    const float *dout = c->in + p * ho * wo;
    const uint8_t *am = c->cargmax + p * ho * wo;
    for (size_t y = 0; y < ho; y++)
      for (size_t x = 0; x < wo; x++) {
        uint8_t a = am[y * wo + x];
        din[(2 * y + (a >> 1)) * w + 2 * x + (a & 1)] += dout[y * wo + x];
      }
  }
}

void
eng_maxpool2_backward(float *din, const float *dout, const uint8_t *argmax, size_t nc,
                      size_t h, size_t w)
{
  ResampleCtx c = {.out = din, .in = dout, .cargmax = argmax, .h = h, .w = w};
  eng_parallel_for(nc, plane_chunk(h * w), maxpool_bw_range, &c);
}

static void
decimate_fw_range(void *vctx, size_t b, size_t e)
{
  const ResampleCtx *c = vctx;
  size_t h = c->h, w = c->w, ho = h / 2, wo = w / 2;
  for (size_t p = b; p < e; p++) {
    const float *in = c->in + p * h * w;
    float *out = c->out + p * ho * wo;
    for (size_t y = 0; y < ho; y++)
      for (size_t x = 0; x < wo; x++)
        out[y * wo + x] = in[2 * y * w + 2 * x];
  }
}

void
eng_decimate2_forward(float *out, const float *in, size_t nc, size_t h, size_t w)
{
  ResampleCtx c = {.out = out, .in = in, .h = h, .w = w};
  eng_parallel_for(nc, plane_chunk(h * w), decimate_fw_range, &c);
}

static void
decimate_bw_range(void *vctx, size_t b, size_t e)
{
  const ResampleCtx *c = vctx;
  size_t h = c->h, w = c->w, ho = h / 2, wo = w / 2;
  for (size_t p = b; p < e; p++) {
    float *din = c->out + p * h * w;
    const float *dout = c->in + p * ho * wo;
    for (size_t y = 0; y < ho; y++)
      for (size_t x = 0; x < wo; x++)
        din[2 * y * w + 2 * x] += dout[y * wo + x];
  }
}

void
eng_decimate2_backward(float *din, const float *dout, size_t nc, size_t h, size_t w)
{
  ResampleCtx c = {.out = din, .in = dout, .h = h, .w = w};
  eng_parallel_for(nc, plane_chunk(h * w), decimate_bw_range, &c);
}

/* For repeat, ctx h, w are the *input* (small) sizes. */
static void
repeat_fw_range(void *vctx, size_t b, size_t e)
{
  const ResampleCtx *c = vctx;
  size_t h = c->h, w = c->w, wo = 2 * w;
  for (size_t p = b; p < e; p++) {
    const float *in = c->in + p * h * w;
    float *out = c->out + p * 4 * h * w;
    for (size_t y = 0; y < h; y++) {
      float *o0 = out + 2 * y * wo;
      float *o1 = o0 + wo;
      for (size_t x = 0; x < w; x++) {
        float v = in[y * w + x];
        o0[2 * x] = v;
        o0[2 * x + 1] = v;
        o1[2 * x] = v;
        o1[2 * x + 1] = v;
      }
    }
  }
}

void
eng_repeat2_forward(float *out, const float *in, size_t nc, size_t h, size_t w)
{
  ResampleCtx c = {.out = out, .in = in, .h = h, .w = w};
  eng_parallel_for(nc, plane_chunk(4 * h * w), repeat_fw_range, &c);
}

static void
repeat_bw_range(void *vctx, size_t b, size_t e)
{
  const ResampleCtx *c = vctx;
  size_t h = c->h, w = c->w, wo = 2 * w;
  for (size_t p = b; p < e; p++) {
    float *din = c->out + p * h * w;
    const float *dout = c->in + p * 4 * h * w;
    for (size_t y = 0; y < h; y++) {
      const float *d0 = dout + 2 * y * wo;
      const float *d1 = d0 + wo;
      for (size_t x = 0; x < w; x++)
        din[y * w + x] += (d0[2 * x] + d0[2 * x + 1]) + (d1[2 * x] + d1[2 * x + 1]);
    }
  }
}

void
eng_repeat2_backward(float *din, const float *dout, size_t nc, size_t h, size_t w)
{
  ResampleCtx c = {.out = din, .in = dout, .h = h, .w = w};
  eng_parallel_for(nc, plane_chunk(4 * h * w), repeat_bw_range, &c);
}
