/* eng-rng.h — a small, seedable, splittable random generator (xoshiro128+ seeded by
 * splitmix64) so that one seed makes a run reproducible, whatever the thread count:
 * parallel users derive independent streams with eng_rng_derive(seed, stream_id). */
#pragma once

#include <stdint.h>

typedef struct {
  uint32_t s[4];
} EngRng;

void eng_rng_seed(EngRng *rng, uint64_t seed);
/* A generator for sub-stream `stream` of `seed`; same inputs give the same stream. */
void eng_rng_derive(EngRng *rng, uint64_t seed, uint64_t stream);
uint32_t eng_rng_u32(EngRng *rng);
/* Uniform in [0, 1). */
float eng_rng_uniform(EngRng *rng);
/* Standard normal (Box–Muller). */
float eng_rng_normal(EngRng *rng);
