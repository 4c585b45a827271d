/* emseg-conv-kernel.c — probes the convolution path a representative layer takes (see the
 * header): the engine builds, or finds, that shape's primitive and names it. */
#include "emseg-conv-kernel.h"

#include <string.h>

#include "eng-layers.h"

const char *
emseg_conv_kernel(gsize size, gboolean bf16)
{
  EngConvShape probe = {.n = 1, .cin = 32, .h = size, .w = size, .cout = 32, .k = 3,
                        .stride = 1, .bf16 = bf16 ? 1 : 0};
  return eng_conv2d_backend(&probe);
}

gboolean
emseg_conv_bf16_fast(void)
{
  /* a bfloat16 request without a generated kernel is served by the float32 entry, whose
   * name has no "bf16" in it */
  return strstr(emseg_conv_kernel(64, TRUE), "bf16") != NULL;
}
