/* cli-predict.c — placeholder for `emseg predict` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_predict(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
