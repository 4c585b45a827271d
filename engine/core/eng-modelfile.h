/* eng-modelfile.h — the versioned binary model format (".emsegmodel").
 *
 * A model file carries its spec, so it never needs outside knowledge to be loaded:
 *   "EMSEGMDL" | u32 version (1) | u32 dtype (0 f32, 1 f16) | u32 len + spec text
 *   | u32 len + metadata text (free-form "key=value" lines) | u32 n_tensors
 *   | per tensor: u16 len + name, u32 ndim, u64 dims[ndim] | all tensor data, table order
 *   | u64 FNV-1a checksum of every byte before it.
 * All integers little-endian. Loading checks every name and shape against the table the
 * spec produces, so a truncated, corrupt or foreign file is refused with a reason.
 * f16 storage halves the size (for shipped models); values are rounded to nearest. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-model.h"

typedef enum {
  ENG_DTYPE_F32 = 0,
  ENG_DTYPE_F16 = 1,
} EngDtype;

/* Serializes into a malloc'd buffer the caller frees. meta may be NULL. */
EngStatus eng_model_serialize(const EngModel *model, EngDtype dtype, const char *meta,
                              uint8_t **out, size_t *out_len, EngError *err);
/* Builds a new model (caller frees) from bytes; *meta_out (may be NULL) receives a
 * malloc'd copy of the metadata text. */
EngStatus eng_model_deserialize(const uint8_t *buf, size_t len, EngModel **out,
                                char **meta_out, EngError *err);

/* Writes atomically (temporary file, fsync, rename): a crash leaves the old file or the
 * new one, never a torn one. */
EngStatus eng_model_save(const EngModel *model, const char *path, EngDtype dtype,
                         const char *meta, EngError *err);
EngStatus eng_model_load(const char *path, EngModel **out, char **meta_out, EngError *err);

/* IEEE half conversions (round to nearest even), exposed for tests. */
uint16_t eng_f32_to_f16(float f);
float eng_f16_to_f32(uint16_t h);
