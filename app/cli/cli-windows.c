/* cli-windows.c — tells on stderr when a command predicts slices in windows
 * (emseg_predict_window: slices of more than 1024² pixels), so a person knows why the
 * memory stays low and that window edges carry a margin of context, and when slices are
 * padded to a size the network takes (sides that are not multiples of its decimation). */
#include <stdio.h>

#include "cli-commands.h"
#include "emseg-predict.h"

void
emseg_cli_report_windows(const char *command, const EngModel *model, EmsegStack *stack)
{
  guint h = emseg_stack_get_height(stack), w = emseg_stack_get_width(stack), gh, gw, margin;
  guint mult = (guint) eng_spec_size_multiple(eng_model_spec(model));
  emseg_predict_window(h, w, mult, &gh, &gw, &margin);
  if (h % mult || w % mult)
    fprintf(stderr, "%s: %ux%u slices are mirrored at their bottom and right edges up to "
                    "multiples of %u (the network's decimation), and the result cropped\n",
            command, w, h, mult);
  if (gh < h || gw < w)
    fprintf(stderr, "%s: %ux%u slices are predicted in %ux%u windows with %u px of context "
                    "on inner edges (EMSEG_PREDICT_WINDOW sets the side)\n",
            command, w, h, gw, gh, margin);
}
