/* emseg-window.h — the workbench window: a slice viewer with its controls, the training
 * panel, and the window actions (open, undo/redo, zoom, slice navigation). The window
 * owns the volume it shows; the application decides what to open. */
#pragma once

#include <gtk/gtk.h>

#include "emseg-slice-view.h"
#include "emseg-train-panel.h"
#include "emseg-volume.h"

G_BEGIN_DECLS

#define EMSEG_TYPE_WINDOW (emseg_window_get_type ())
G_DECLARE_FINAL_TYPE (EmsegWindow, emseg_window, EMSEG, WINDOW, GtkApplicationWindow)

EmsegWindow *emseg_window_new (GtkApplication *app);

/* Shows volume (the window takes its own reference); title names where it came from. */
void emseg_window_set_volume (EmsegWindow *self, EmsegVolume *volume, const char *title);
/* Opens a TIFF stack or PNG folder; on failure shows a dialog and returns FALSE. */
gboolean emseg_window_open_path (EmsegWindow *self, const char *path, GError **error);
/* Replaces the demo/current volume with a freshly generated synthetic stack. */
gboolean emseg_window_open_demo (EmsegWindow *self, GError **error);

EmsegSliceView *emseg_window_get_view (EmsegWindow *self);             /* borrowed */
EmsegTrainPanel *emseg_window_get_train_panel (EmsegWindow *self);     /* borrowed */
/* Shows a page of the sidebar: "correct" or "train". */
void emseg_window_show_page (EmsegWindow *self, const char *name);
const char *emseg_window_get_status (EmsegWindow *self);

G_END_DECLS
