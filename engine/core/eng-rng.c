/* eng-rng.c — xoshiro128+ with splitmix64 seeding (public-domain algorithms by Blackman
 * and Vigna), written out here so that results do not depend on the C library. */
#include "eng-rng.h"

#include <math.h>

static uint64_t
splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void
eng_rng_seed(EngRng *rng, uint64_t seed)
{
  uint64_t x = seed;
  for (int i = 0; i < 4; i += 2) {
    uint64_t v = splitmix64(&x);
    rng->s[i] = (uint32_t) v;
    rng->s[i + 1] = (uint32_t) (v >> 32);
  }
  if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]))
    rng->s[0] = 1; /* the all-zero state is a fixed point */
}

void
eng_rng_derive(EngRng *rng, uint64_t seed, uint64_t stream)
{
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
  eng_rng_seed(rng, splitmix64(&x));
}

static inline uint32_t
rotl(uint32_t x, int k)
{
  return (x << k) | (x >> (32 - k));
}

uint32_t
eng_rng_u32(EngRng *rng)
{
  uint32_t *s = rng->s;
  uint32_t result = s[0] + s[3];
  uint32_t t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 11);
  return result;
}

float
eng_rng_uniform(EngRng *rng)
{
  return (float) (eng_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

float
eng_rng_normal(EngRng *rng)
{
  /* Box–Muller in double; u1 in (0, 1] keeps log finite. */
  double u1 = ((double) (eng_rng_u32(rng) >> 8) + 1.0) / 16777216.0;
  double u2 = (double) (eng_rng_u32(rng) >> 8) / 16777216.0;
  return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
