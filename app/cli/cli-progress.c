/* cli-progress.c — the slice counter the prediction commands draw on stderr while they work
 * (only on a terminal, so logs and tests do not collect carriage returns). */
#include <stdio.h>
#include <unistd.h>

#include "cli-commands.h"

gboolean
emseg_cli_show_progress(guint done, guint total, gpointer command)
{
  if (isatty(2)) {
    fprintf(stderr, "\r%s: predicted %u/%u slices", (const char *) command, done, total);
    if (done == total)
      fputc('\n', stderr);
  }
  return TRUE;
}
