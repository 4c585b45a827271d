/* cli-bench.c — placeholder for `emseg bench` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_bench(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
