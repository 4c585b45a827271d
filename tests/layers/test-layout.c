/* test-layout.c — eng-layout.c's NCHW ↔ NHWC / nChw16c copies against element-by-element
 * index arithmetic: float32 and bfloat16 packing (zero padding channels, bfloat16 bits
 * equal to eng_bf16_from_float's rounding), unpacking with and without accumulation
 * (padding never read), pixel counts that are not a multiple of the 16-pixel tile, and
 * both code paths (AVX-512 tiles when the CPU has them, plain loops forced). */
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "eng-layout.h"
#include "eng-rng.h"

/* Element index of (image n, channel c, pixel p) in the blocked tensor. */
static size_t
blocked_index(const EngLayout *l, size_t n, size_t c, size_t p)
{
  size_t hw = l->h * l->w;
  return n * l->cpad * hw + ((c / l->block) * hw + p) * l->block + c % l->block;
}

static float *
random_plain(const EngLayout *l, uint64_t seed)
{
  size_t count = l->n * l->c * l->h * l->w;
  float *v = g_new(float, count);
  EngRng rng;
  eng_rng_seed(&rng, seed);
  for (size_t i = 0; i < count; i++)
    v[i] = eng_rng_normal(&rng);
  /* values whose bfloat16 rounding is a tie, and a NaN */
  v[0] = 1.0f + 1.0f / 256.0f;   /* 0x3F808000: tie, rounds down to even 0x3F80 */
  v[1] = 1.0f + 3.0f / 256.0f;   /* 0x3F818000: tie, rounds up to even 0x3F82 */
  v[count - 1] = NAN;
  return v;
}

static void
check_pack(const EngLayout *l, int bf16)
{
  size_t hw = l->h * l->w, total = l->n * l->cpad * hw;
  float *src = random_plain(l, 7 + l->c + (size_t) bf16);
  /* filled with a pattern first, so a padding element left unwritten is seen */
  void *dst = g_malloc(total * sizeof(float));
  memset(dst, 0x5a, total * sizeof(float));
  eng_layout_pack(dst, src, l, bf16);
  for (size_t n = 0; n < l->n; n++)
    for (size_t c = 0; c < l->cpad; c++)
      for (size_t p = 0; p < hw; p++) {
        size_t at = blocked_index(l, n, c, p);
        float want = c < l->c ? src[(n * l->c + c) * hw + p] : 0.0f;
        if (bf16) {
          uint16_t got = ((uint16_t *) dst)[at], exp = eng_bf16_from_float(want);
          if (got != exp)
            g_error("pack bf16 c=%zu block=%zu: image %zu channel %zu pixel %zu: got 0x%04x, "
                    "expected 0x%04x (from %.9g)",
                    l->c, l->block, n, c, p, got, exp, want);
        } else {
          float got = ((float *) dst)[at];
          if (memcmp(&got, &want, sizeof got) != 0)
            g_error("pack f32 c=%zu block=%zu: image %zu channel %zu pixel %zu: got %.9g, "
                    "expected %.9g",
                    l->c, l->block, n, c, p, got, want);
        }
      }
  g_free(dst);
  g_free(src);
}

static void
check_unpack(const EngLayout *l, int accumulate)
{
  size_t hw = l->h * l->w, plain = l->n * l->c * hw, total = l->n * l->cpad * hw;
  float *blocked = g_new(float, total);
  EngRng rng;
  eng_rng_seed(&rng, 99 + l->c);
  for (size_t i = 0; i < total; i++)
    blocked[i] = NAN; /* padding stays NaN: reading it would poison the result */
  for (size_t n = 0; n < l->n; n++)
    for (size_t c = 0; c < l->c; c++)
      for (size_t p = 0; p < hw; p++)
        blocked[blocked_index(l, n, c, p)] = eng_rng_normal(&rng);
  float *dst = random_plain(l, 5);
  dst[0] = 0.5f, dst[plain - 1] = 0.25f; /* no NaN in what accumulates */
  float *before = g_memdup2(dst, plain * sizeof(float));
  eng_layout_unpack(dst, blocked, l, accumulate);
  for (size_t n = 0; n < l->n; n++)
    for (size_t c = 0; c < l->c; c++)
      for (size_t p = 0; p < hw; p++) {
        size_t i = (n * l->c + c) * hw + p;
        float v = blocked[blocked_index(l, n, c, p)];
        float want = accumulate ? before[i] + v : v;
        if (dst[i] != want)
          g_error("unpack%s c=%zu block=%zu: image %zu channel %zu pixel %zu: got %.9g, "
                  "expected %.9g",
                  accumulate ? " (accumulate)" : "", l->c, l->block, n, c, p, dst[i], want);
      }
  g_free(before);
  g_free(dst);
  g_free(blocked);
}

static void
check_shapes(void)
{
  /* {n, c, h, w, block, cpad}: nChw16c with padding (24 → 32) and without; NHWC with 32
   * channels (bfloat16 pairs of groups), 48 (an odd number of groups) and 128; pixel
   * counts 35, 81, 256 and 3 (under one tile) */
  const EngLayout shapes[] = {
      {2, 24, 5, 7, 16, 32}, {1, 64, 9, 9, 16, 64},    {1, 32, 9, 9, 32, 32},
      {2, 48, 5, 7, 48, 48}, {1, 128, 16, 16, 128, 128}, {1, 16, 1, 3, 16, 16},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(shapes); i++) {
    for (int bf16 = 0; bf16 <= 1; bf16++)
      check_pack(&shapes[i], bf16);
    for (int acc = 0; acc <= 1; acc++)
      check_unpack(&shapes[i], acc);
  }
}

static void
test_layout_fast(void)
{
#if defined(__x86_64__)
  /* the AVX-512 tiles must be what runs wherever the CPU has AVX-512 */
  g_assert_cmpint(eng_layout_fast(), ==, __builtin_cpu_supports("avx512f") ? 1 : 0);
#endif
  g_test_message("AVX-512 tiles: %s", eng_layout_fast() ? "yes" : "no (plain loops)");
  check_shapes();
}

static void
test_layout_plain_loops(void)
{
  eng_layout_force_plain_loops(1);
  g_assert_false(eng_layout_fast());
  check_shapes();
  eng_layout_force_plain_loops(0);
}

static void
test_bf16_rounding(void)
{
  g_assert_cmphex(eng_bf16_from_float(1.0f), ==, 0x3F80);
  g_assert_cmphex(eng_bf16_from_float(1.0f + 1.0f / 256.0f), ==, 0x3F80);
  g_assert_cmphex(eng_bf16_from_float(1.0f + 3.0f / 256.0f), ==, 0x3F82);
  g_assert_cmphex(eng_bf16_from_float(-2.0f), ==, 0xC000);
  g_assert_cmphex(eng_bf16_from_float(INFINITY), ==, 0x7F80);
  uint16_t nan = eng_bf16_from_float(NAN);
  g_assert_cmphex(nan & 0x7F80, ==, 0x7F80);
  g_assert_cmphex(nan & 0x007F, !=, 0);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/layout/bf16-rounding", test_bf16_rounding);
  g_test_add_func("/layout/pack-unpack", test_layout_fast);
  g_test_add_func("/layout/pack-unpack-plain-loops", test_layout_plain_loops);
  return g_test_run();
}
