/* eng-spec.h — the network's specification as data (engine/MODEL.md): block types,
 * depths, widths and switches, so users can build the paper's Table 1 model, shallower
 * variants and the skip ablations of its Section 3.2 without code changes. */
#pragma once

#include "eng-status.h"

#define ENG_MAX_LEVELS 6

typedef enum {
  ENG_BLOCK_SIMPLE = 0,
  ENG_BLOCK_BASIC = 1,
  ENG_BLOCK_BOTTLENECK = 2,
} EngBlockType;

typedef struct {
  int in_channels;
  int base_width;
  EngBlockType init_block;
  int init_reps;
  EngBlockType main_block;
  int n_levels;
  int down_reps[ENG_MAX_LEVELS];
  int across_reps;
  int up_reps[ENG_MAX_LEVELS]; /* deepest level first */
  int long_skip;
  int short_skip;
  int batchnorm;
  float dropout;
  float bn_eps;
  float bn_momentum;
} EngSpec;

/* Table 1 of the paper: base width 32, bottleneck depths 3, 8, 10 | 3 | 10, 8, 3. */
void eng_spec_default(EngSpec *spec);
EngStatus eng_spec_validate(const EngSpec *spec, EngError *err);

/* Applies comma-separated `key=value` overrides, e.g. "base_width=8,down=1,1,1"… see
 * eng_spec_help(). Depth lists use '/' between levels: "down=3/8/10,up=10/8/3". */
EngStatus eng_spec_parse(EngSpec *spec, const char *text, EngError *err);
const char *eng_spec_help(void);
/* Writes a one-line description in the same syntax eng_spec_parse reads. Both use a '.'
 * decimal point whatever the process's locale (eng-clocale.h), so a model file written
 * under one locale reads under any other. */
void eng_spec_format(const EngSpec *spec, char *buf, size_t size);
const char *eng_block_type_name(EngBlockType type);

/* Output width of main level `level` (level n_levels is the across stage). */
int eng_spec_level_out(const EngSpec *spec, int level);
/* Smallest divisor the input height and width must be a multiple of. */
int eng_spec_size_multiple(const EngSpec *spec);
