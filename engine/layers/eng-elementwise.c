/* eng-elementwise.c — ReLU, residual sum, sigmoid and inverted dropout.
 *
 * All are memory-bound single passes, split across the engine's pool in contiguous
 * chunks. Dropout draws its mask in fixed blocks of DROPOUT_BLOCK elements, each block
 * from its own derived RNG stream, so the mask depends only on (seed, count) and never
 * on how many threads ran. */
#include "eng-layers.h"

#include <math.h>
#include <string.h>

#include "eng-parallel.h"
#include "eng-rng.h"

/* Below this many elements per thread the pool's wake-up costs more than it saves. */
#define ELEM_MIN_CHUNK ((size_t) 1 << 15)
/* Elements per RNG stream; part of the mask's definition (changing it changes masks). */
#define DROPOUT_BLOCK ((size_t) 4096)

typedef struct {
  float *out;
  float *din;
  const float *in;
  const float *dout;
  const float *x;
} ElemCtx;

static void
relu_fw_range(void *vctx, size_t b, size_t e)
{
  const ElemCtx *c = vctx;
  for (size_t i = b; i < e; i++)
    c->out[i] = c->in[i] > 0.0f ? c->in[i] : 0.0f;
}

void
eng_relu_forward(float *out, const float *in, size_t count)
{
  ElemCtx c = {.out = out, .in = in};
  eng_parallel_for(count, ELEM_MIN_CHUNK, relu_fw_range, &c);
}

static void
relu_bw_range(void *vctx, size_t b, size_t e)
{
  const ElemCtx *c = vctx;
  /* unconditional loads: the select then vectorizes */
  for (size_t i = b; i < e; i++) {
    float d = c->dout[i], y = c->x[i];
    c->din[i] += y > 0.0f ? d : 0.0f;
  }
}

void
eng_relu_backward(float *din, const float *dout, const float *out, size_t count)
{
  ElemCtx c = {.din = din, .dout = dout, .x = out};
  eng_parallel_for(count, ELEM_MIN_CHUNK, relu_bw_range, &c);
}

static void
add_range(void *vctx, size_t b, size_t e)
{
  const ElemCtx *c = vctx;
  for (size_t i = b; i < e; i++)
    c->out[i] += c->x[i];
}

void
eng_add_inplace(float *y, const float *x, size_t count)
{
  ElemCtx c = {.out = y, .x = x};
  eng_parallel_for(count, ELEM_MIN_CHUNK, add_range, &c);
}

static void
sigmoid_range(void *vctx, size_t b, size_t e)
{
  const ElemCtx *c = vctx;
  for (size_t i = b; i < e; i++) {
    /* Two branches so that exp never overflows for large |z|. */
    float z = c->in[i];
    if (z >= 0.0f) {
      c->out[i] = 1.0f / (1.0f + expf(-z));
    } else {
      float ez = expf(z);
      c->out[i] = ez / (1.0f + ez);
    }
  }
}

void
eng_sigmoid_forward(float *out, const float *in, size_t count)
{
  ElemCtx c = {.out = out, .in = in};
  eng_parallel_for(count, ELEM_MIN_CHUNK / 4, sigmoid_range, &c);
}

/* v where keep (0 or 1), else +0, as a bitwise AND: gcc does not vectorize a select on a
 * uint8 mask between floats, but does this (widening the byte to an all-ones word). */
static inline float
keep_or_zero(float v, uint8_t keep)
{
  uint32_t bits, m = (uint32_t) 0 - (uint32_t) keep;
  memcpy(&bits, &v, sizeof bits);
  bits &= m;
  memcpy(&v, &bits, sizeof v);
  return v;
}

typedef struct {
  float *out;
  uint8_t *mask;
  const float *in;
  size_t count;
  uint32_t threshold; /* keep when (u32 >> 8) >= threshold */
  float scale;        /* 1 / (1 - p) */
  uint64_t seed;
} DropoutCtx;

/* eng_rng_u32 (xoshiro128+) inlined on four scalar words: the out-of-line call per
 * element, and gcc's habit of vectorizing a state array through the stack, were most of
 * dropout's cost. It must stay bit-identical to eng-rng.c so that masks are the ones
 * eng_rng_uniform(...) >= p gives (tests/layers checks that definition). */
static void
draw_mask(uint8_t *m, size_t len, const EngRng *rng, uint32_t threshold)
{
  uint32_t s0 = rng->s[0], s1 = rng->s[1], s2 = rng->s[2], s3 = rng->s[3];
  for (size_t i = 0; i < len; i++) {
    uint32_t result = s0 + s3;
    uint32_t t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >> 21);
    m[i] = (result >> 8) >= threshold;
  }
}

/* Works on whole RNG blocks [b, e) so each block is drawn by exactly one thread. The mask
 * comes first (serial RNG), then a branch-free pass that vectorizes. */
static void
dropout_fw_blocks(void *vctx, size_t b, size_t e)
{
  const DropoutCtx *c = vctx;
  for (size_t blk = b; blk < e; blk++) {
    EngRng rng;
    eng_rng_derive(&rng, c->seed, blk);
    size_t i0 = blk * DROPOUT_BLOCK;
    size_t i1 = i0 + DROPOUT_BLOCK < c->count ? i0 + DROPOUT_BLOCK : c->count;
    uint8_t local[DROPOUT_BLOCK]; /* when the caller keeps no mask */
    uint8_t *m = c->mask ? c->mask + i0 : local;
    draw_mask(m, i1 - i0, &rng, c->threshold);
    for (size_t i = 0; i < i1 - i0; i++)
      c->out[i0 + i] = keep_or_zero(c->in[i0 + i] * c->scale, m[i]);
  }
}

void
eng_dropout_forward(float *out, uint8_t *mask, const float *in, size_t count, float p,
                    uint64_t seed)
{
  if (p <= 0.0f) {
    if (out != in)
      memmove(out, in, count * sizeof *out);
    if (mask)
      memset(mask, 1, count);
    return;
  }
  /* eng_rng_uniform is (u >> 8) * 2^-24 exactly, so uniform >= p is the same as
   * (u >> 8) >= ceil(p * 2^24) (exact in double). p >= 1 drops everything (threshold
   * past any 24-bit value), the scale then kept finite. */
  double t = ceil((double) p * 16777216.0);
  DropoutCtx c = {.out = out, .mask = mask, .in = in, .count = count,
                  .threshold = t > 16777216.0 ? 16777217u : (uint32_t) t,
                  .scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f, .seed = seed};
  size_t blocks = (count + DROPOUT_BLOCK - 1) / DROPOUT_BLOCK;
  eng_parallel_for(blocks, 4, dropout_fw_blocks, &c);
}

typedef struct {
  float *din;
  const float *dout;
  const uint8_t *mask;
  float scale;
} DropoutBwCtx;

static void
dropout_bw_range(void *vctx, size_t b, size_t e)
{
  const DropoutBwCtx *c = vctx;
  for (size_t i = b; i < e; i++)
    c->din[i] += keep_or_zero(c->dout[i] * c->scale, c->mask[i]);
}

void
eng_dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count,
                     float p)
{
  if (p <= 0.0f) {
    eng_add_inplace(din, dout, count);
    return;
  }
  DropoutBwCtx c = {.din = din, .dout = dout, .mask = mask,
                    .scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f};
  eng_parallel_for(count, ELEM_MIN_CHUNK, dropout_bw_range, &c);
}
