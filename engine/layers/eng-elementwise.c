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

typedef struct {
  float *out;
  uint8_t *mask;
  const float *in;
  size_t count;
  float p;
  float scale; /* 1 / (1 - p) */
  uint64_t seed;
} DropoutCtx;

/* Works on whole RNG blocks [b, e) so each block is drawn by exactly one thread. */
static void
dropout_fw_blocks(void *vctx, size_t b, size_t e)
{
  const DropoutCtx *c = vctx;
  for (size_t blk = b; blk < e; blk++) {
    EngRng rng;
    eng_rng_derive(&rng, c->seed, blk);
    size_t i0 = blk * DROPOUT_BLOCK;
    size_t i1 = i0 + DROPOUT_BLOCK < c->count ? i0 + DROPOUT_BLOCK : c->count;
    for (size_t i = i0; i < i1; i++) {
      uint8_t keep = eng_rng_uniform(&rng) >= c->p;
      c->mask[i] = keep;
      c->out[i] = keep ? c->in[i] * c->scale : 0.0f;
    }
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
  /* p >= 1 drops everything; the scale is then irrelevant and kept finite. */
  DropoutCtx c = {.out = out, .mask = mask, .in = in, .count = count, .p = p,
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
  for (size_t i = b; i < e; i++) {
    float d = c->dout[i] * c->scale;
    c->din[i] += c->mask[i] ? d : 0.0f;
  }
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
