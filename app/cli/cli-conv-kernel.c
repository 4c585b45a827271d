/* cli-conv-kernel.c — says on stderr whether --bf16 is really in use on this CPU for
 * `train`, `predict`, `export-isbi` and `calibrate-gamma` (the engine falls back to float32
 * without a bfloat16 kernel; emseg-conv-kernel.h probes which one a layer gets). */
#include <stdio.h>

#include "cli-commands.h"
#include "emseg-conv-kernel.h"

void
emseg_cli_report_bf16(const char *command)
{
  const char *kernel = emseg_conv_kernel(64, TRUE);
  if (emseg_conv_bf16_fast())
    fprintf(stderr, "%s: convolutions in bfloat16 with float32 sums (%s)\n", command, kernel);
  else
    fprintf(stderr, "%s: --bf16: no bfloat16 convolution kernel on this CPU or build; "
                    "convolving in float32 (%s)\n", command, kernel);
}
