/* fixture.h — reader for the PyTorch parity fixtures (tests/reference/fixture-*.bin).
 *
 * The fixtures are written by make_fixtures.py from an independent PyTorch rendering of
 * engine/MODEL.md; a C test loads one, builds the same model in the engine and compares.
 * This reader is plain C (no GLib) so any test or tool can use it; errors are EngStatus
 * values with a message naming the file, the tensor and expected vs found.
 *
 * File format, version 1. All integers are uint32 little-endian, all values IEEE-754
 * float32 little-endian, no padding anywhere:
 *
 *   magic    8 bytes  "EMSEGFX\0"
 *   version  u32      1
 *   count    u32      number of tensor records that follow
 *   count × record:
 *     name_len u32              1..255
 *     name     name_len bytes   ASCII, not NUL-terminated; unique within the file
 *     ndim     u32              0..FIXTURE_MAX_DIMS (0 = scalar, one value)
 *     shape    ndim × u32       row-major (NCHW for activations, (cout,cin,k,k) for convs)
 *     data     prod(shape) × f32
 *   nothing after the last record (trailing bytes are an error).
 *
 * What the fixtures hold (see make_fixtures.py for how each value is produced):
 *   spec.<field>         the MODEL.md spec as numbers; block kinds as codes
 *                        0 simple, 1 basic, 2 bottleneck; booleans 0/1; spec.down_reps and
 *                        spec.up_reps are 1-D of length n_levels
 *   opt.lr, opt.rho, opt.eps, opt.wd, loss.dice_eps
 *   x, t, m              input (N,1,H,W), target (membrane = 1), per-pixel weight
 *   <param>, <buffer>    every parameter and BN running statistic before, state_dict names
 *   logits               training-mode forward (N,1,H,W); loss.bce, loss.dice (scalars)
 *   dlogits.bce, dlogits.dice   gradient of each loss w.r.t. the logits
 *   grad.<param>         d loss.bce / d param;  dgrad.<param>  d loss.dice / d param
 *   after.<buffer>       running statistics after that one training forward
 *   zerograd.<param>     present (= 1) when that gradient is zero in exact arithmetic
 *   step.<param>         parameters after one RMSprop step on grad.*
 *   infer_logits         inference-mode forward with step.* and after.*
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-status.h"

#define FIXTURE_MAGIC "EMSEGFX"   /* plus its NUL: 8 bytes */
#define FIXTURE_VERSION 1u
#define FIXTURE_MAX_DIMS 8
#define FIXTURE_MAX_NAME 255

typedef struct {
  char *name;                      /* owned, NUL-terminated */
  size_t ndim;                     /* 0 for a scalar */
  size_t shape[FIXTURE_MAX_DIMS];
  size_t numel;                    /* product of shape (1 for a scalar) */
  float *data;                     /* (numel) owned; NULL when numel == 0 */
} FixtureTensor;

typedef struct {
  char *label;                     /* owned: the path (or caller's label) for messages */
  size_t count;
  FixtureTensor *tensors;          /* (count) owned, in file order */
} Fixture;

/* Reads and parses a whole file. On failure *fx is left empty (safe to fixture_free) and
 * err says what is wrong: ENG_ERR_IO (cannot open/read), ENG_ERR_FORMAT (wrong magic or
 * version, truncated, trailing bytes, bad name or shape), ENG_ERR_NOMEM. */
EngStatus fixture_load(Fixture *fx, const char *path, EngError *err);

/* Parses an in-memory image of a fixture file; label names it in messages. */
EngStatus fixture_parse(Fixture *fx, const unsigned char *bytes, size_t len,
                        const char *label, EngError *err);

void fixture_free(Fixture *fx);

/* The tensor called name, or NULL. */
const FixtureTensor *fixture_find(const Fixture *fx, const char *name);

/* The tensor called name, checked to hold exactly numel values; NULL with err set
 * (ENG_ERR_FORMAT: missing, or "expected N values, found M") otherwise. */
const FixtureTensor *fixture_get(const Fixture *fx, const char *name, size_t numel,
                                 EngError *err);

/* A one-value tensor (e.g. "loss.bce", "spec.base_width") into *value. */
EngStatus fixture_scalar(const Fixture *fx, const char *name, double *value, EngError *err);
