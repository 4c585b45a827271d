/* emseg-export-dialog.h — the Export dialog: what to write (ISBI submission, label stack,
 * probability stack), which checkpoint, how many MC-dropout samples, test-time augmentation,
 * bfloat16 convolutions, the submission's membrane exponent γ (emseg-gamma.h), where; a
 * progress bar while the window's export runs. The dialog does no work: "export-requested"
 * hands the choice to the window, which runs it on the engine thread and feeds the progress
 * back here. The window owns the dialog (destroyed with it). */
#pragma once

#include <gtk/gtk.h>

#include "emseg-window.h"

G_BEGIN_DECLS

#define EMSEG_TYPE_EXPORT_DIALOG (emseg_export_dialog_get_type ())
G_DECLARE_FINAL_TYPE (EmsegExportDialog, emseg_export_dialog, EMSEG, EXPORT_DIALOG, GtkWindow)

/* models: checkpoint names, newest last (the default choice); gammas: for each model its
 * stored export exponent (the γ the dialog shows when that model is chosen), or NULL for 1
 * everywhere. Both copied. */
GtkWidget *emseg_export_dialog_new (GtkWindow *parent, const char *const *models,
                                    const double *gammas, const char *default_dir);
/* Chooses the model of that name (the project's current model) when the list holds it. */
void emseg_export_dialog_select_model (EmsegExportDialog *self, const char *name);

/* Signal "export-requested" (gint kind, const char *model or NULL, gint mc_samples,
 * gboolean tta, gboolean bf16, gdouble gamma, const char *path). */

void emseg_export_dialog_set_progress (EmsegExportDialog *self, double fraction, const char *text);
/* Busy: inputs and the Export button are insensitive until the export ends. */
void emseg_export_dialog_set_busy (EmsegExportDialog *self, gboolean busy);

G_END_DECLS
