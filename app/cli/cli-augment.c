/* cli-augment.c — placeholder for `emseg augment-preview` until its issue lands. */
#include <stdio.h>

#include "cli-commands.h"

int
emseg_cli_augment_preview(int argc, char **argv)
{
  fprintf(stderr, "emseg %s: not implemented yet\n", argv[0]);
  return 2;
}
