/* cli-export.c — placeholder for `emseg export-isbi` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_export_isbi(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
