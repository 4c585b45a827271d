/* emseg-application.h — the GtkApplication of the workbench (id org.emseg.Workbench):
 * application actions with their accelerators, the stylesheet, and what to show at
 * start — the files given on the command line, or the demo project on a first run. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define EMSEG_APPLICATION_ID "org.emseg.Workbench"

#define EMSEG_TYPE_APPLICATION (emseg_application_get_type ())
G_DECLARE_FINAL_TYPE (EmsegApplication, emseg_application, EMSEG, APPLICATION, GtkApplication)

/* flags: G_APPLICATION_DEFAULT_FLAGS normally; tests add G_APPLICATION_NON_UNIQUE so a
 * running workbench on the same session does not swallow their window. */
EmsegApplication *emseg_application_new (GApplicationFlags flags);

/* Registers the compiled-in resources once; safe to call repeatedly (tests call it
 * before building windows without running the application). */
void emseg_resources_ensure_registered (void);

G_END_DECLS
