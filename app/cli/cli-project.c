/* cli-project.c — placeholder for `emseg project` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_project(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
