/* eng-synth.h — a synthetic, EM-like serial-section stack with exact labels, for smoke
 * tests, the demo project and the README's demo job when ../shared/isbi2012 is absent.
 *
 * A slice is a power diagram of drifting cell centres seen through a smooth domain warp
 * (wavy membranes), membranes 2–4 px wide of varying thickness, dark mitochondria and
 * vesicles inside cells (sectioned spheres, so they grow and vanish along the stack),
 * per-cell and low-frequency intensity variation, fine texture, Gaussian blur and noise.
 * Everything is a pure function of (seed, slice, x, y): the same seed gives the same stack
 * at any size and thread count, and slice z+1 differs from slice z by about a pixel of
 * drift, as in serial sections. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-status.h"

typedef struct {
  uint64_t seed;
  float cell_size;      /* mean spacing of cell centres, px (default 44) */
  float membrane_min;   /* thinnest membrane, px (default 2) */
  float membrane_max;   /* thickest membrane, px (default 4) */
  float organelles;     /* mean number of organelles per cell (default 1.8) */
  float blur_sigma;     /* Gaussian blur of the rendered slice, px (default 1.0) */
  float noise_sigma;    /* additive noise after blur, grey levels (default 12) */
} EngSynthParams;

/* Fills p with the defaults above and the given seed. */
void eng_synth_params_init(EngSynthParams *p, uint64_t seed);

/* Renders slice `slice` of the stack described by p.
 * image:  (height, width) 8-bit grey, row-major, caller-owned;
 * labels: (height, width) 255 = cell interior (organelles included), 0 = membrane;
 *         caller-owned, may be NULL.
 * Allocates its own scratch (about 12 bytes per pixel) and frees it before returning;
 * runs over rows with eng_parallel_for, so it must not be called from inside one.
 * Returns ENG_ERR_INVALID for sizes outside 1..16384 or nonsensical parameters,
 * ENG_ERR_NOMEM if scratch cannot be allocated. */
EngStatus eng_synth_slice(uint8_t *image, uint8_t *labels, const EngSynthParams *p,
                          size_t slice, size_t width, size_t height, EngError *err);

/* Renders slices first..first+count-1 into consecutive planes of image and labels
 * (each (count, height, width); labels may be NULL). */
EngStatus eng_synth_stack(uint8_t *image, uint8_t *labels, const EngSynthParams *p,
                          size_t first, size_t count, size_t width, size_t height,
                          EngError *err);
