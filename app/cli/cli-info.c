/* cli-info.c — placeholder for `emseg info` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_info(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
