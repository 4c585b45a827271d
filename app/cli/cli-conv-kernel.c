/* cli-conv-kernel.c — names the convolution kernel a command's 3×3 layers get, so that
 * `bench` can label its figures and `train`, `predict` and `export-isbi` can say whether
 * --bf16 is really in use on this CPU (it falls back to float32 without a bfloat16 kernel). */
#include <stdio.h>
#include <string.h>

#include "cli-commands.h"
#include "eng-layers.h"

const char *
emseg_cli_conv_kernel(size_t size, gboolean bf16)
{
  /* a representative layer of the Table 1 network: 32 → 32 channels, 3×3 */
  EngConvShape probe = {.n = 1, .cin = 32, .h = size, .w = size, .cout = 32, .k = 3,
                        .stride = 1, .bf16 = bf16 ? 1 : 0};
  return eng_conv2d_backend(&probe);
}

void
emseg_cli_report_bf16(const char *command)
{
  const char *kernel = emseg_cli_conv_kernel(64, TRUE);
  if (strstr(kernel, "bf16") != NULL)
    fprintf(stderr, "%s: convolutions in bfloat16 with float32 sums (%s)\n", command, kernel);
  else
    fprintf(stderr, "%s: --bf16: no bfloat16 convolution kernel on this CPU or build; "
                    "convolving in float32 (%s)\n", command, kernel);
}
