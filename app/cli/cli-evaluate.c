/* cli-evaluate.c — placeholder for `emseg evaluate` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_evaluate(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
