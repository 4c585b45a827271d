/* emseg-conv-kernel.h — which convolution kernel this CPU and build give the network's 3×3
 * layers, for labels (`emseg bench`'s conv_path, `emseg train`'s header line) and for
 * choices: whether bfloat16 convolutions are really fast here (the workbench turns them on
 * by default when they are; the engine serves a bfloat16 request in float32 when not).
 * Returned strings are static. */
#pragma once

#include <glib.h>

/* oneDNN's implementation name for a representative layer (32 → 32 channels, 3×3, size²),
 * or "im2col". */
const char *emseg_conv_kernel(gsize size, gboolean bf16);
/* TRUE when a bfloat16 request gets a generated bfloat16 kernel (AVX512-BF16 or AMX). */
gboolean emseg_conv_bf16_fast(void);
