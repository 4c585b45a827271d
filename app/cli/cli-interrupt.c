/* cli-interrupt.c — the SIGINT flag shared by `emseg train` and `emseg experiment`. */
#include "cli-interrupt.h"

#include <signal.h>

static atomic_int interrupted;
static void (*previous)(int) = SIG_DFL;

static void
on_sigint(int sig)
{
  (void) sig;
  atomic_store(&interrupted, 1);
}

atomic_int *
emseg_cli_catch_sigint(void)
{
  atomic_store(&interrupted, 0);
  previous = signal(SIGINT, on_sigint);
  return &interrupted;
}

void
emseg_cli_release_sigint(void)
{
  signal(SIGINT, previous);
}
