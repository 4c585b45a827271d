/* cli-interrupt.h — Ctrl-C for long CLI runs: while caught, SIGINT only raises a flag that
 * the training run polls between steps, so a run stops cleanly and its files stay whole. */
#pragma once

#include <stdatomic.h>

/* Clears the flag, installs the handler and returns the flag (process-wide, static). */
atomic_int *emseg_cli_catch_sigint(void);
/* Restores the handler that was in place before emseg_cli_catch_sigint. */
void emseg_cli_release_sigint(void);
