/* main.c — entry point of `emseg-workbench [PROJECT|STACK]`: everything else happens in
 * EmsegApplication (the argument arrives through GApplication's "open"). */
#include "emseg-application.h"

int
main (int argc, char *argv[])
{
  g_autoptr (EmsegApplication) app = emseg_application_new (G_APPLICATION_DEFAULT_FLAGS);

  g_set_application_name ("emseg");
  return g_application_run (G_APPLICATION (app), argc, argv);
}
