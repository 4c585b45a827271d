/* eng-layout.c — NCHW ↔ channel-blocked copies for the oneDNN convolutions (see
 * eng-layout.h). The unit of work is a tile of 16 channels x 16 pixels: read as 16
 * channel rows, transposed, written as 16 pixel rows of 16 channels (pack), or the reverse
 * (unpack). Work is split over images x runs of pixels, so each thread writes whole
 * pixel rows of the blocked tensor and whole 64-byte pieces of the plain one. */
#include "eng-layout.h"

#include <string.h>

#include "eng-parallel.h"

/* The AVX-512 tiles are compiled for that ISA whatever the build targets (the default
 * build is portable) and chosen at run time when the CPU has it. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_PATH 1
#include <immintrin.h>
#else
#define HAVE_AVX512_PATH 0
#endif

#define TILE 16
/* Pixels per task: 16 tiles, so a task reads or writes 1 KiB runs of 16 channel rows. */
#define RUN 256

typedef struct {
  const EngLayout *l;
  void *dst;
  const float *src;
  int bf16, accumulate;
  size_t runs_per_image;
  size_t step; /* channel groups per task: 2 for bfloat16 pairs (pack_tile_bf16_pair), else 1 */
  int avx512;
} Job;

/* Offset (in elements) of channel group g (channels 16g..16g+15) at pixel p of image n in
 * the blocked tensor. */
static inline size_t
blocked_at(const EngLayout *l, size_t n, size_t g, size_t p)
{
  size_t hw = l->h * l->w, c0 = g * TILE;
  return n * l->cpad * hw + ((c0 / l->block) * hw + p) * l->block + c0 % l->block;
}

#if HAVE_AVX512_PATH
#pragma GCC push_options
#pragma GCC target("avx512f")

/* In-register transpose: on return r[j] holds what was column j of the rows r[0..15]. */
static inline void
transpose16(__m512 r[16])
{
  __m512 t[16], s[16];
  for (int k = 0; k < 8; k++) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  /* s[4k + m], 128-bit lane L: rows 4k..4k+3 at column 4L + m */
  for (int k = 0; k < 4; k++) {
    __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 2]);
    __m512d c = _mm512_castps_pd(t[4 * k + 1]), d = _mm512_castps_pd(t[4 * k + 3]);
    s[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    s[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    s[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    s[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  /* column 4L + m gathers lane L of s[m], s[4 + m], s[8 + m], s[12 + m] */
  for (int m = 0; m < 4; m++) {
    __m512 x0 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0x44);
    __m512 x1 = _mm512_shuffle_f32x4(s[m], s[4 + m], 0xEE);
    __m512 y0 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0x44);
    __m512 y1 = _mm512_shuffle_f32x4(s[8 + m], s[12 + m], 0xEE);
    r[m] = _mm512_shuffle_f32x4(x0, y0, 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
    r[8 + m] = _mm512_shuffle_f32x4(x1, y1, 0x88);
    r[12 + m] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
  }
}

/* Round to nearest even in integer arithmetic (AVX512-BF16's instruction would need a
 * third code path for about 10% on this copy). */
static inline __m256i
to_bf16(__m512 v)
{
  __m512i u = _mm512_castps_si512(v);
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(
      r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

/* One tile: channels c0.. (nc valid, the rest zero), pixels p.. (np valid). */
static inline void
pack_tile_avx512(const Job *j, size_t n, size_t g, size_t p, size_t nc, size_t np)
{
  const EngLayout *l = j->l;
  size_t hw = l->h * l->w;
  const float *src = j->src + (n * l->c + g * TILE) * hw + p;
  __mmask16 pm = (__mmask16) ((1u << np) - 1u);
  __m512 r[16];
  for (size_t i = 0; i < TILE; i++)
    r[i] = i < nc ? _mm512_maskz_loadu_ps(pm, src + i * hw) : _mm512_setzero_ps();
  transpose16(r);
  size_t at = blocked_at(l, n, g, p);
  if (j->bf16) {
    uint16_t *dst = (uint16_t *) j->dst + at;
    for (size_t q = 0; q < np; q++)
      _mm256_storeu_si256((__m256i *) (dst + q * l->block), to_bf16(r[q]));
  } else {
    float *dst = (float *) j->dst + at;
    for (size_t q = 0; q < np; q++)
      _mm512_storeu_ps(dst + q * l->block, r[q]);
  }
}

/* bfloat16, two groups at once (channels 16g..16g+31, all valid): each pixel's 32
 * values fill one 64-byte line, written whole instead of in two halves by two tasks (which
 * ran at under 1 G elements/s). */
static inline void
pack_tile_bf16_pair(const Job *j, size_t n, size_t g, size_t p, size_t np)
{
  const EngLayout *l = j->l;
  size_t hw = l->h * l->w;
  const float *src = j->src + (n * l->c + g * TILE) * hw + p;
  __mmask16 pm = (__mmask16) ((1u << np) - 1u);
  __m512 a[16], b[16];
  for (size_t i = 0; i < TILE; i++) {
    a[i] = _mm512_maskz_loadu_ps(pm, src + i * hw);
    b[i] = _mm512_maskz_loadu_ps(pm, src + (i + TILE) * hw);
  }
  transpose16(a);
  transpose16(b);
  uint16_t *dst = (uint16_t *) j->dst + blocked_at(l, n, g, p);
  for (size_t q = 0; q < np; q++) {
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(to_bf16(a[q])), to_bf16(b[q]), 1);
    _mm512_storeu_si512((void *) (dst + q * l->block), v);
  }
}

static inline void
unpack_tile_avx512(const Job *j, size_t n, size_t g, size_t p, size_t nc, size_t np)
{
  const EngLayout *l = j->l;
  size_t hw = l->h * l->w;
  const float *src = j->src + blocked_at(l, n, g, p);
  __m512 r[16];
  for (size_t q = 0; q < TILE; q++)
    r[q] = q < np ? _mm512_loadu_ps(src + q * l->block) : _mm512_setzero_ps();
  transpose16(r);
  float *dst = (float *) j->dst + (n * l->c + g * TILE) * hw + p;
  __mmask16 pm = (__mmask16) ((1u << np) - 1u);
  for (size_t i = 0; i < nc; i++) {
    __m512 v = r[i];
    if (j->accumulate)
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(pm, dst + i * hw));
    _mm512_mask_storeu_ps(dst + i * hw, pm, v);
  }
}

#pragma GCC pop_options
#endif

/* plain loops: the same tiles, element by element, for CPUs without AVX-512 */

static inline void
pack_tile(const Job *j, size_t n, size_t g, size_t p, size_t nc, size_t np)
{
  const EngLayout *l = j->l;
  size_t hw = l->h * l->w;
  const float *src = j->src + (n * l->c + g * TILE) * hw + p;
  size_t at = blocked_at(l, n, g, p);
  for (size_t q = 0; q < np; q++)
    for (size_t i = 0; i < TILE; i++) {
      float v = i < nc ? src[i * hw + q] : 0.0f;
      if (j->bf16)
        ((uint16_t *) j->dst)[at + q * l->block + i] = eng_bf16_from_float(v);
      else
        ((float *) j->dst)[at + q * l->block + i] = v;
    }
}

static inline void
unpack_tile(const Job *j, size_t n, size_t g, size_t p, size_t nc, size_t np)
{
  const EngLayout *l = j->l;
  size_t hw = l->h * l->w;
  const float *src = j->src + blocked_at(l, n, g, p);
  float *dst = (float *) j->dst + (n * l->c + g * TILE) * hw + p;
  for (size_t i = 0; i < nc; i++)
    for (size_t q = 0; q < np; q++) {
      float v = src[q * l->block + i];
      dst[i * hw + q] = j->accumulate ? dst[i * hw + q] + v : v;
    }
}

/* Tasks are (image, channel group, run of pixels), channel group outermost within an
 * image: a task touches 16 rows of the plain tensor (not all C of them) over RUN pixels.
 * Rows of a plain tensor lie hw * 4 bytes apart — 256 KiB at 256² — so all of them map to
 * the same cache sets; walking 128 of them at once (the first version, pixels outermost)
 * defeated the caches and prefetchers: 0.55 G elements/s unpacking 128 channels at 256²,
 * as slow as oneDNN's reorder. */
static void
run_range(void *ctx, size_t begin, size_t end, int pack)
{
  const Job *j = ctx;
  const EngLayout *l = j->l;
  size_t hw = l->h * l->w, groups = l->cpad / TILE / j->step;
  for (size_t t = begin; t < end; t++) {
    size_t run = t % j->runs_per_image, g = (t / j->runs_per_image) % groups * j->step;
    size_t n = t / j->runs_per_image / groups;
    size_t p0 = run * RUN, p1 = p0 + RUN < hw ? p0 + RUN : hw, c0 = g * TILE;
    /* a group wholly in the padding is still written (zeros) by pack, skipped by unpack */
    size_t nc = c0 >= l->c ? 0 : (l->c - c0 < TILE ? l->c - c0 : TILE);
    if (!pack && nc == 0)
      continue;
    for (size_t p = p0; p < p1; p += TILE) {
      size_t np = p1 - p < TILE ? p1 - p : TILE;
#if HAVE_AVX512_PATH
      if (j->avx512) {
        if (j->step == 2)
          pack_tile_bf16_pair(j, n, g, p, np);
        else if (pack)
          pack_tile_avx512(j, n, g, p, nc, np);
        else
          unpack_tile_avx512(j, n, g, p, nc, np);
        continue;
      }
#endif
      if (pack)
        pack_tile(j, n, g, p, nc, np);
      else
        unpack_tile(j, n, g, p, nc, np);
    }
  }
}

static void
pack_range(void *ctx, size_t begin, size_t end)
{
  run_range(ctx, begin, end, 1);
}

static void
unpack_range(void *ctx, size_t begin, size_t end)
{
  run_range(ctx, begin, end, 0);
}

static int force_plain_loops;

void
eng_layout_force_plain_loops(int on)
{
  force_plain_loops = on;
}

int
eng_layout_fast(void)
{
#if HAVE_AVX512_PATH
  return !force_plain_loops && __builtin_cpu_supports("avx512f");
#else
  return 0;
#endif
}

static void
split(const EngLayout *l, Job *j, EngRangeFn fn)
{
  j->avx512 = eng_layout_fast();
  if (!j->avx512)
    j->step = 1;
  size_t hw = l->h * l->w;
  j->runs_per_image = (hw + RUN - 1) / RUN;
  /* about 16K elements per chunk at least, so small tensors are not split to no gain */
  size_t per_task = RUN * TILE * j->step, min_chunk = (16384 + per_task - 1) / per_task;
  eng_parallel_for(l->n * (l->cpad / TILE / j->step) * j->runs_per_image, min_chunk, fn, j);
}

void
eng_layout_pack(void *dst, const float *src, const EngLayout *l, int bf16)
{
  Job j = {.l = l, .dst = dst, .src = src, .bf16 = bf16, .step = 1};
  if (bf16 && l->block % (2 * TILE) == 0 && l->c == l->cpad)
    j.step = 2;
  split(l, &j, pack_range);
}

void
eng_layout_unpack(float *dst, const float *src, const EngLayout *l, int accumulate)
{
  Job j = {.l = l, .dst = dst, .src = src, .accumulate = accumulate, .step = 1};
  split(l, &j, unpack_range);
}
