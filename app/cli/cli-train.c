/* cli-train.c — placeholder for `emseg train` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_train(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
