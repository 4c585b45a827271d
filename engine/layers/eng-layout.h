/* eng-layout.h — the engine's own copies between its NCHW activations and the channel-
 * interleaved layouts oneDNN's convolutions work in: NHWC (the AMX bfloat16 kernels) and
 * nChw16c (the AVX-512 float32 and bfloat16 kernels).
 *
 * Both are the same move: per image and per block of `block` channels, the (block x
 * pixels) matrix is transposed to (pixels x block), so a channel block's values for one
 * pixel lie side by side. NHWC is one block of all C channels; nChw16c is blocks of 16
 * with the channel count padded up to a multiple of 16 (padding written as zeros). oneDNN's
 * generic reorders did these at 0.5–3 G elements/s here, and in a bfloat16 training step
 * they took more time than the convolutions themselves (eng-conv-dnnl.c has the figures);
 * these run 16x16 tiles through AVX-512 registers where the build targets it, plain loops
 * elsewhere, split over the engine's threads.
 *
 * Ownership: callers own every buffer; nothing is allocated. Must not be called from
 * inside an eng_parallel_for callback (they split work themselves). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A layout eng_layout_* can produce: `block` channels interleaved (a multiple of 16), the
 * channel count padded up to `cpad`, a multiple of block (NHWC has no padding, so it is
 * only this module's when c is a multiple of 16). */
typedef struct {
  size_t n, c, h, w; /* the plain NCHW tensor */
  size_t block;      /* channels per block: c for NHWC (c a multiple of 16), 16 for nChw16c */
  size_t cpad;       /* channels including zero padding, a multiple of block */
} EngLayout;

/* Plain float32 NCHW → blocked float32 (dst is float *) or bfloat16 (dst is uint16_t *,
 * round to nearest even, as oneDNN rounds) when bf16 is set. Padding channels become 0. */
void eng_layout_pack(void *dst, const float *src, const EngLayout *l, int bf16);

/* Blocked float32 → plain float32 NCHW: dst = src, or dst += src when accumulate is set.
 * Padding channels are not read. */
void eng_layout_unpack(float *dst, const float *src, const EngLayout *l, int accumulate);

/* Whether the copies run on AVX-512 tiles (the CPU has it). Without, they are plain
 * loops, slower than oneDNN's reorders, and eng-conv-dnnl.c leaves the copies to oneDNN. */
int eng_layout_fast(void);

/* Tests only: 1 makes eng_layout_fast() false and the copies take the plain loops. */
void eng_layout_force_plain_loops(int on);

/* float32 → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
static inline uint16_t
eng_bf16_from_float(float f)
{
  union {
    float f;
    uint32_t u;
  } v = {.f = f};
  if (f != f)
    return (uint16_t) ((v.u >> 16) | 0x40);
  return (uint16_t) ((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
