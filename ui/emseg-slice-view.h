/* emseg-slice-view.h — the slice viewer: one slice of an EmsegVolume at any zoom, with
 * label, prediction and uncertainty (MC-dropout standard deviation, cyan) overlays,
 * brightness/contrast, panning and brush painting.
 *
 * Modelled on vipsdisp's imagedisplay: three named coordinate spaces —
 *   image  : pixels of the slice, (0,0) top-left corner, pixel (x,y) covers [x,x+1);
 *   widget : logical (application) pixels of this widget, what GTK events report;
 *   device : physical pixels, widget × scale factor, which Cairo handles for HiDPI.
 * The view is `scale` widget pixels per image pixel and `origin`, the image point shown
 * at widget (0,0). Only the visible part of the slice is converted to RGB (subsampled
 * when zoomed out), in tiles that are cached while the view pans, and drawn with
 * nearest-neighbour filtering.
 *
 * Properties bindable to controls: slice, zoom, brightness, contrast, labels-visible,
 * labels-opacity, prediction-visible, prediction-opacity, uncertainty-visible,
 * uncertainty-opacity, tool, brush-label,
 * brush-radius; read-only pointer-text (coordinates and value under the pointer).
 * Signal "stroke-finished" (guint slice, guint x0, guint y0, guint x1, guint y1) fires
 * after a stroke changed pixels, so the window saves that slice's mask at once. */
#pragma once

#include <gtk/gtk.h>

#include "emseg-edit-history.h"
#include "emseg-volume.h"

G_BEGIN_DECLS

typedef enum {
  EMSEG_TOOL_PAN = 0,
  EMSEG_TOOL_BRUSH,
  EMSEG_TOOL_ERASER,
} EmsegTool;

#define EMSEG_TYPE_SLICE_VIEW (emseg_slice_view_get_type ())
G_DECLARE_FINAL_TYPE (EmsegSliceView, emseg_slice_view, EMSEG, SLICE_VIEW, GtkWidget)

GtkWidget *emseg_slice_view_new (void);

/* Takes its own reference on volume (may be NULL to show nothing); resets the edit
 * history, which belongs to the view. The view fits the slice on its next allocation. */
void emseg_slice_view_set_volume (EmsegSliceView *self, EmsegVolume *volume);
EmsegVolume *emseg_slice_view_get_volume (EmsegSliceView *self);   /* borrowed */
EmsegEditHistory *emseg_slice_view_get_history (EmsegSliceView *self); /* borrowed */

void emseg_slice_view_set_slice (EmsegSliceView *self, guint slice);
guint emseg_slice_view_get_slice (EmsegSliceView *self);
double emseg_slice_view_get_zoom (EmsegSliceView *self);
/* Zooms to `zoom` widget pixels per image pixel keeping image point under (wx, wy). */
void emseg_slice_view_zoom_at (EmsegSliceView *self, double zoom, double wx, double wy);
void emseg_slice_view_zoom_in (EmsegSliceView *self);
void emseg_slice_view_zoom_out (EmsegSliceView *self);
void emseg_slice_view_zoom_fit (EmsegSliceView *self);
void emseg_slice_view_zoom_one (EmsegSliceView *self);
/* Shifts the view by (dx, dy) widget pixels, as a drag does. */
void emseg_slice_view_pan (EmsegSliceView *self, double dx, double dy);

/* Coordinate conversions between the named spaces. */
void emseg_slice_view_widget_to_image (EmsegSliceView *self, double wx, double wy,
                                       double *ix, double *iy);
void emseg_slice_view_image_to_widget (EmsegSliceView *self, double ix, double iy,
                                       double *wx, double *wy);

void emseg_slice_view_set_tool (EmsegSliceView *self, EmsegTool tool);
void emseg_slice_view_set_brush_label (EmsegSliceView *self, EmsegLabel label);
void emseg_slice_view_set_brush_radius (EmsegSliceView *self, double radius);
double emseg_slice_view_get_brush_radius (EmsegSliceView *self);

/* Paints a stroke through image points (xs[i], ys[i]) with the current tool, exactly as
 * a pointer drag would (signals included). For tests and scripted corrections. */
void emseg_slice_view_paint_stroke (EmsegSliceView *self, const double *xs, const double *ys,
                                    guint n);
gboolean emseg_slice_view_undo (EmsegSliceView *self);
gboolean emseg_slice_view_redo (EmsegSliceView *self);
/* Call after changing the volume's pixels from outside (new prediction, store reload). */
void emseg_slice_view_volume_changed (EmsegSliceView *self);

const char *emseg_slice_view_get_pointer_text (EmsegSliceView *self);

/* Diagnostics (the 4096² panning measurement): how long the last snapshot took in ms —
 * converting the tiles that came into view, and drawing the visible ones scaled — and how
 * many tiles it converted (tiles_converted may be NULL). */
double emseg_slice_view_get_last_draw_ms (EmsegSliceView *self, guint *tiles_converted);

G_END_DECLS
