/* cli-progress.c — the counter the prediction commands draw on stderr while they work:
 * slices done and, within a slice that takes long (big slices, MC or TTA passes), how far
 * it is. Only on a terminal, so logs and tests do not collect carriage returns. */
#include <stdio.h>
#include <unistd.h>

#include "cli-commands.h"

gboolean
emseg_cli_show_progress(guint done, guint total, gpointer progress)
{
  CliProgress *p = progress;
  p->done = done;
  p->total = total;
  p->drawn_us = g_get_monotonic_time();
  if (isatty(2)) {
    /* \033[K clears what a longer within-slice line left */
    fprintf(stderr, "\r%s: predicted %u/%u slices\033[K", p->command, done, total);
    if (done == total)
      fputc('\n', stderr);
  }
  return TRUE;
}

void
emseg_cli_show_pass_progress(double fraction, gpointer progress)
{
  CliProgress *p = progress;
  gint64 now = g_get_monotonic_time();
  if (now - p->drawn_us < EMSEG_CLI_REDRAW_US)
    return;
  p->drawn_us = now;
  if (isatty(2) && p->total > 0)
    fprintf(stderr, "\r%s: predicted %u/%u slices, slice %u at %.0f %%\033[K", p->command,
            p->done, p->total, p->done + 1, 100.0 * fraction);
}

void
emseg_cli_progress_init(CliProgress *p, const char *command, guint total)
{
  p->command = command;
  p->done = 0;
  p->total = total;
  p->drawn_us = g_get_monotonic_time();
}
