/* test-gui.c — the workbench under Xvfb (see xvfb-wrap.sh): start the application, open
 * a generated stack written as TIFF, paint a stroke and undo it, feed the training panel
 * synthetic curves and heatmap columns, and save a PNG screenshot of the window at each
 * stage (to $EMSEG_SCREENSHOT_DIR) with assertions on its pixels. Also checks the edit
 * history and the plots' off-screen drawing directly. GSK_RENDERER=cairo is set by the
 * meson test so pixels do not depend on a GL driver. */
#include <gtk/gtk.h>
#include <glib/gstdio.h>
#include <math.h>

#include "emseg-application.h"
#include "emseg-edit-history.h"
#include "emseg-heatmap.h"
#include "emseg-loss-plot.h"
#include "emseg-stack.h"
#include "emseg-window.h"

typedef struct {
  int width, height;
  gsize stride;
  guchar *data; /* GDK_MEMORY_DEFAULT: B, G, R, A bytes, premultiplied */
} Shot;

static EmsegApplication *app;
static EmsegWindow *window;

static void
spin_until (gboolean (*done) (gpointer), gpointer data, double timeout_s)
{
  gint64 end = g_get_monotonic_time () + (gint64) (timeout_s * G_USEC_PER_SEC);

  while (!done (data) && g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, FALSE);
  /* let pending layout and redraws run */
  for (int i = 0; i < 50; i++)
    g_main_context_iteration (NULL, FALSE);
}

static gboolean
view_allocated (gpointer data)
{
  return gtk_widget_get_width (data) > 100 && gtk_widget_get_mapped (data);
}

static void
after_paint_cb (GdkFrameClock *clock, gpointer data)
{
  *(gboolean *) data = TRUE;
}

static gboolean
flag_set (gpointer data)
{
  return *(gboolean *) data;
}

/* The widget paintable renders the window's last drawn content, so wait for a frame
 * painted after everything queued so far. */
static void
wait_for_paint (void)
{
  GdkFrameClock *clock = gtk_widget_get_frame_clock (GTK_WIDGET (window));
  gboolean painted = FALSE;
  gulong id;

  g_assert_nonnull (clock);
  gtk_widget_queue_draw (GTK_WIDGET (window));
  id = g_signal_connect (clock, "after-paint", G_CALLBACK (after_paint_cb), &painted);
  spin_until (flag_set, &painted, 5.0);
  g_signal_handler_disconnect (clock, id);
  g_assert_true (painted);
}

static void
shot_free (Shot *shot)
{
  g_free (shot->data);
  g_free (shot);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Shot, shot_free)

/* Renders the window's widget tree (not the X server's framebuffer) to a texture, saves it
 * as <dir>/<name>.png and returns the pixels. */
static Shot *
screenshot (const char *name)
{
  GtkWidget *w = GTK_WIDGET (window);
  int width = gtk_widget_get_width (w);
  int height = gtk_widget_get_height (w);
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (w);
  GtkSnapshot *snap = gtk_snapshot_new ();
  g_autoptr (GskRenderNode) node = NULL;
  g_autoptr (GdkTexture) texture = NULL;
  const char *dir = g_getenv ("EMSEG_SCREENSHOT_DIR");
  g_autofree char *path = NULL;
  Shot *shot = g_new0 (Shot, 1);

  wait_for_paint ();
  gdk_paintable_snapshot (paintable, snap, width, height);
  node = gtk_snapshot_free_to_node (snap);
  g_assert_nonnull (node);
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (w)), node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  shot->width = gdk_texture_get_width (texture);
  shot->height = gdk_texture_get_height (texture);
  shot->stride = (gsize) shot->width * 4;
  shot->data = g_malloc (shot->stride * shot->height);
  gdk_texture_download (texture, shot->data, shot->stride);

  if (dir == NULL)
    dir = g_get_tmp_dir ();
  g_mkdir_with_parents (dir, 0755);
  path = g_strdup_printf ("%s/%s.png", dir, name);
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_test_message ("screenshot %s (%d×%d)", path, shot->width, shot->height);
  return shot;
}

static void
shot_rgb (const Shot *shot, int x, int y, int rgb[3])
{
  const guchar *p;

  g_assert_cmpint (x, >=, 0);
  g_assert_cmpint (y, >=, 0);
  g_assert_cmpint (x, <, shot->width);
  g_assert_cmpint (y, <, shot->height);
  p = shot->data + (gsize) y * shot->stride + (gsize) x * 4;
  rgb[0] = p[2];
  rgb[1] = p[1];
  rgb[2] = p[0];
}

/* Window coordinates of an image point of the viewer. */
static void
image_to_window (double ix, double iy, int *x, int *y)
{
  EmsegSliceView *view = emseg_window_get_view (window);
  graphene_point_t out;
  double wx, wy;

  emseg_slice_view_image_to_widget (view, ix, iy, &wx, &wy);
  g_assert_true (gtk_widget_compute_point (GTK_WIDGET (view), GTK_WIDGET (window),
                                           &GRAPHENE_POINT_INIT (wx, wy), &out));
  *x = (int) floor (out.x);
  *y = (int) floor (out.y);
}

/* ---- edit history without a display ---- */

static void
test_history (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new (64, 48, 3, &error);
  g_autoptr (EmsegEditHistory) h = NULL;
  EmsegStrokeInfo info;
  guint8 *plane;
  guint n_membrane = 0;

  g_assert_no_error (error);
  plane = emseg_volume_label_plane (v, 1);
  plane[10 * 64 + 20] = EMSEG_LABEL_CELL; /* a prior label the undo must restore */
  h = emseg_edit_history_new (v);

  emseg_edit_history_begin_stroke (h, 1, EMSEG_LABEL_MEMBRANE, 2.0, 10, 10);
  emseg_edit_history_stroke_to (h, 30, 10);
  g_assert_true (emseg_edit_history_end_stroke (h, &info));
  g_assert_cmpuint (info.slice, ==, 1);
  for (gsize i = 0; i < 64 * 48; i++)
    n_membrane += plane[i] == EMSEG_LABEL_MEMBRANE;
  /* a 20 px line of radius 2: about 20*4 + pi*4 pixels */
  g_assert_cmpuint (n_membrane, ==, info.n_changed);
  g_assert_cmpuint (n_membrane, >, 70);
  g_assert_cmpuint (n_membrane, <, 110);
  g_assert_cmpuint (plane[10 * 64 + 20], ==, EMSEG_LABEL_MEMBRANE);
  g_assert_cmpuint (plane[30 * 64 + 20], ==, EMSEG_LABEL_UNLABELED);
  g_assert_cmpuint (info.x0, <=, 9);
  g_assert_cmpuint (info.x1, >=, 31);
  /* other slices untouched */
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[10 * 64 + 20], ==, EMSEG_LABEL_UNLABELED);

  g_assert_true (emseg_edit_history_undo (h, &info));
  g_assert_cmpuint (plane[10 * 64 + 20], ==, EMSEG_LABEL_CELL);
  g_assert_cmpuint (plane[10 * 64 + 12], ==, EMSEG_LABEL_UNLABELED);
  g_assert_false (emseg_edit_history_can_undo (h));
  g_assert_true (emseg_edit_history_redo (h, &info));
  g_assert_cmpuint (plane[10 * 64 + 20], ==, EMSEG_LABEL_MEMBRANE);

  /* a stroke that changes nothing is not recorded, and does not clear redo */
  g_assert_true (emseg_edit_history_undo (h, NULL));
  emseg_edit_history_begin_stroke (h, 0, EMSEG_LABEL_UNLABELED, 3.0, 5, 5);
  g_assert_false (emseg_edit_history_end_stroke (h, NULL));
  g_assert_true (emseg_edit_history_can_redo (h));
  /* strokes off the edge clip instead of writing out of bounds (ASan watches) */
  emseg_edit_history_begin_stroke (h, 2, EMSEG_LABEL_CELL, 5.0, -10, -10);
  emseg_edit_history_stroke_to (h, 70, 60);
  g_assert_true (emseg_edit_history_end_stroke (h, &info));
  g_assert_cmpuint (info.x1, <=, 64);
  g_assert_cmpuint (info.y1, <=, 48);
  g_assert_false (emseg_edit_history_can_redo (h));
}

/* ---- the window ---- */

static char *
write_generated_stack (guint *width, guint *height, guint *n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new_synthetic (192, 160, 4, 7, 0, &error);
  g_autofree guint8 *bytes = NULL;
  gsize total;
  char *path;

  g_assert_no_error (error);
  total = emseg_volume_plane_size (v) * v->n_slices;
  bytes = g_malloc (total);
  for (gsize i = 0; i < total; i++)
    bytes[i] = (guint8) v->image[i];
  path = g_build_filename (g_get_tmp_dir (), "emseg-gui-stack.tif", NULL);
  g_assert_true (emseg_tiff_write_u8_stack (path, bytes, v->width, v->height, v->n_slices, &error));
  g_assert_no_error (error);
  *width = v->width;
  *height = v->height;
  *n = v->n_slices;
  return path;
}

static void
test_window_paint_undo (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *path = write_generated_stack (&width, &height, &n);
  EmsegSliceView *view = emseg_window_get_view (window);
  EmsegVolume *v;
  g_autoptr (Shot) before = NULL;
  g_autoptr (Shot) painted = NULL;
  g_autoptr (Shot) undone = NULL;
  double xs[] = { 40, 150 }, ys[] = { 80, 80 };
  int x, y, rgb0[3], rgb1[3], rgb2[3];
  guint red_pixels = 0;

  g_assert_true (emseg_window_open_path (window, path, &error));
  g_assert_no_error (error);
  g_unlink (path);
  v = emseg_slice_view_get_volume (view);
  g_assert_nonnull (v);
  g_assert_cmpuint (v->width, ==, width);
  g_assert_cmpuint (v->n_slices, ==, n);
  spin_until (view_allocated, view, 5.0);
  emseg_slice_view_zoom_fit (view);
  spin_until (view_allocated, view, 0.2);
  g_assert_cmpfloat (emseg_slice_view_get_zoom (view), >, 1.0); /* 192 px fitted into a larger view */

  before = screenshot ("01-opened");
  image_to_window (95.5, 80.5, &x, &y);
  shot_rgb (before, x, y, rgb0);
  /* the stack is grey: no overlay colour where we will paint */
  g_assert_cmpint (abs (rgb0[0] - rgb0[1]), <, 8);
  g_assert_cmpint (abs (rgb0[1] - rgb0[2]), <, 8);

  emseg_slice_view_set_tool (view, EMSEG_TOOL_BRUSH);
  emseg_slice_view_set_brush_label (view, EMSEG_LABEL_MEMBRANE);
  emseg_slice_view_set_brush_radius (view, 4.0);
  emseg_slice_view_paint_stroke (view, xs, ys, G_N_ELEMENTS (xs));
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_MEMBRANE);
  spin_until (view_allocated, view, 0.2);
  painted = screenshot ("02-painted");
  shot_rgb (painted, x, y, rgb1);
  /* membrane overlay is red at 45 % over grey: red clearly above green and blue */
  g_assert_cmpint (rgb1[0], >, rgb1[1] + 40);
  g_assert_cmpint (rgb1[0], >, rgb1[2] + 40);
  /* and along the whole stroke, but not far from it */
  for (double ix = 45; ix < 146; ix += 5)
    {
      int px, py, c[3];

      image_to_window (ix, 80.5, &px, &py);
      shot_rgb (painted, px, py, c);
      red_pixels += c[0] > c[1] + 40;
      image_to_window (ix, 110.5, &px, &py);
      shot_rgb (painted, px, py, c);
      g_assert_cmpint (c[0], <, c[1] + 8);
    }
  g_assert_cmpuint (red_pixels, ==, 21);
  g_assert_nonnull (strstr (emseg_window_get_status (window), "Slice 1 changed"));

  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_UNLABELED);
  spin_until (view_allocated, view, 0.2);
  undone = screenshot ("03-undone");
  shot_rgb (undone, x, y, rgb2);
  for (int c = 0; c < 3; c++)
    g_assert_cmpint (rgb2[c], ==, rgb0[c]);

  /* Page Down's action moves to the next slice; zoom actions change the zoom */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.next-slice", NULL);
  g_assert_cmpuint (emseg_slice_view_get_slice (view), ==, 1);
  {
    double z = emseg_slice_view_get_zoom (view);

    gtk_widget_activate_action (GTK_WIDGET (window), "win.zoom-in", NULL);
    g_assert_cmpfloat (emseg_slice_view_get_zoom (view), >, z);
    gtk_widget_activate_action (GTK_WIDGET (window), "win.zoom-fit", NULL);
    g_assert_cmpfloat_with_epsilon (emseg_slice_view_get_zoom (view), z, 1e-9);
  }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.redo", NULL);
  g_assert_cmpuint (emseg_slice_view_get_slice (view), ==, 0); /* redo follows its stroke */
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_MEMBRANE);
}

static void
feed_training (EmsegTrainPanel *panel, guint n_layers, guint n_epochs)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autofree float *updates = g_new (float, n_layers);

  for (guint l = 0; l < n_layers; l++)
    g_ptr_array_add (names, g_strdup_printf ("block.%u", l));
  emseg_train_panel_begin_run (panel, (const char *const *) names->pdata, n_layers);
  emseg_train_panel_set_state (panel, EMSEG_TRAIN_RUNNING);
  for (guint e = 1; e <= n_epochs; e++)
    {
      for (guint s = 0; s < 10; s++)
        emseg_train_panel_add_step (panel, e - 1 + s / 10.0,
                                    0.7 * exp (-0.3 * (e - 1 + s / 10.0)) + 0.05 * sin (s * 2.1));
      /* updates fall from input to output and over epochs, across three decades */
      for (guint l = 0; l < n_layers; l++)
        updates[l] = (float) (1e-2 * pow (10.0, -3.0 * l / (n_layers - 1)) / e);
      emseg_train_panel_add_epoch (panel, e, 0.7 * exp (-0.3 * e), 0.75 * exp (-0.25 * e), updates);
      emseg_train_panel_set_progress (panel, (double) e / 10, e, 10, e * 10, 60.0 * (10 - e));
    }
}

static gboolean
always_false (gpointer data)
{
  return FALSE;
}

static void
test_window_training_panel (void)
{
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);
  EmsegHeatmap *heatmap = emseg_train_panel_get_heatmap (panel);
  EmsegLossPlot *plot = emseg_train_panel_get_loss_plot (panel);
  g_autoptr (Shot) shot = NULL;
  graphene_point_t p;
  int rgb[3];
  guint n_coloured = 0;
  g_autofree char *hover = NULL;

  emseg_window_show_page (window, "train");
  feed_training (panel, 24, 6);
  g_assert_cmpuint (emseg_heatmap_get_n_epochs (heatmap), ==, 6);
  g_assert_cmpuint (emseg_loss_plot_get_n_points (plot, 0), ==, 60);
  g_assert_cmpuint (emseg_loss_plot_get_n_points (plot, 1), ==, 6);
  spin_until (always_false, NULL, 0.3);
  g_assert_true (gtk_widget_get_mapped (GTK_WIDGET (heatmap)));
  shot = screenshot ("04-training-panel");

  /* The heatmap's cells: scan its middle row band for saturated (non-grey) colour. */
  for (int k = 0; k < 20; k++)
    {
      double hx = 100 + k * (gtk_widget_get_width (GTK_WIDGET (heatmap)) - 160) / 20.0;

      g_assert_true (gtk_widget_compute_point (GTK_WIDGET (heatmap), GTK_WIDGET (window),
                                               &GRAPHENE_POINT_INIT (hx, 60), &p));
      shot_rgb (shot, (int) p.x, (int) p.y, rgb);
      n_coloured += MAX (MAX (rgb[0], rgb[1]), rgb[2]) - MIN (MIN (rgb[0], rgb[1]), rgb[2]) > 60;
    }
  g_assert_cmpuint (n_coloured, >=, 15);

  /* hover text names the nearest point; far from every point there is none */
  hover = emseg_heatmap_hover_text (heatmap, 110, 10);
  g_assert_nonnull (hover);
  g_assert_nonnull (strstr (hover, "block.0"));
  g_assert_nonnull (strstr (hover, "epoch 1"));
  g_assert_null (emseg_loss_plot_hover_text (plot, -100, -100));
}

/* The first-run demo: a synthetic EM stack whose first slices carry exact labels, so
 * both label colours show over the image. */
static void
test_window_demo (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Shot) shot = NULL;
  EmsegSliceView *view = emseg_window_get_view (window);
  guint n_red = 0, n_green = 0;

  g_assert_true (emseg_window_open_demo (window, &error));
  g_assert_no_error (error);
  emseg_window_show_page (window, "correct");
  spin_until (view_allocated, view, 0.3);
  shot = screenshot ("05-demo-project");
  for (int k = 0; k < 400; k++)
    {
      int x, y, c[3];

      image_to_window (8 + (k % 20) * 12.0, 8 + (k / 20) * 12.0, &x, &y);
      shot_rgb (shot, x, y, c);
      n_red += c[0] > c[1] + 40 && c[0] > c[2] + 40;
      n_green += c[1] > c[0] + 30 && c[1] > c[2] + 30;
    }
  /* membranes are a minority of pixels, cell interiors the majority */
  g_assert_cmpuint (n_red, >, 10);
  g_assert_cmpuint (n_green, >, 150);
}

/* ---- plots drawn off-screen ---- */

static void
test_plot_offscreen (void)
{
  g_autoptr (EmsegLossPlot) plot = g_object_ref_sink (EMSEG_LOSS_PLOT (emseg_loss_plot_new ()));
  g_autoptr (EmsegHeatmap) hm = g_object_ref_sink (EMSEG_HEATMAP (emseg_heatmap_new ()));
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, 400, 240);
  cairo_t *cr = cairo_create (surface);
  GdkRGBA blue = { 0, 0, 1, 1 };
  double x[] = { 1, 2, 3, 4 }, y[] = { 1.0, 0.5, NAN, 0.25 };
  guint s, n_blue = 0;
  const guint8 *data;
  int stride;
  g_autofree char *hover = NULL;
  const char *names[] = { "a", "b" };
  float cells[] = { 1e-3f, 0.0f, 1e-5f, 1e-4f };

  emseg_loss_plot_set_axis_labels (plot, "epoch", "loss");
  s = emseg_loss_plot_add_series (plot, "train", &blue, 0.0, FALSE);
  emseg_loss_plot_set_points (plot, s, x, y, G_N_ELEMENTS (x));
  emseg_loss_plot_draw (plot, cr, 400, 240);
  cairo_surface_flush (surface);
  data = cairo_image_surface_get_data (surface);
  stride = cairo_image_surface_get_stride (surface);
  for (int py = 0; py < 240; py++)
    for (int px = 0; px < 400; px++)
      {
        guint32 v = *(const guint32 *) (gconstpointer) (data + py * stride + px * 4);

        n_blue += (v & 0xff) > 200 && ((v >> 16) & 0xff) < 60;
      }
  g_assert_cmpuint (n_blue, >, 100); /* the curve and its legend swatch */
  /* the first point (epoch 1, loss 1.0) is at the plot's top-left corner region */
  hover = emseg_loss_plot_hover_text (plot, 57, 20);
  g_assert_nonnull (hover);
  g_assert_nonnull (strstr (hover, "train"));
  g_assert_nonnull (strstr (hover, ": 1"));

  /* heatmap: zero is "no data" and draws grey, the rest on the colour scale */
  emseg_heatmap_set_layers (hm, names, 2);
  emseg_heatmap_set_data (hm, cells, 2);
  g_assert_cmpuint (emseg_heatmap_get_n_epochs (hm), ==, 2);
  emseg_heatmap_draw (hm, cr, 400, 240);
  g_free (hover);
  hover = emseg_heatmap_hover_text (hm, 100, 20);
  g_assert_cmpstr (hover, ==, "layer a · epoch 1: 0.001");
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
}

int
main (int argc, char *argv[])
{
  g_autoptr (GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  gtk_init ();

  /* A non-unique application: a workbench already running on this session must not
   * receive our windows. */
  app = emseg_application_new (G_APPLICATION_NON_UNIQUE);
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);
  window = emseg_window_new (GTK_APPLICATION (app));
  gtk_window_set_default_size (GTK_WINDOW (window), 1200, 960);
  gtk_window_present (GTK_WINDOW (window));

  g_test_add_func ("/gui/history", test_history);
  g_test_add_func ("/gui/plot-offscreen", test_plot_offscreen);
  g_test_add_func ("/gui/window/paint-undo", test_window_paint_undo);
  g_test_add_func ("/gui/window/training-panel", test_window_training_panel);
  g_test_add_func ("/gui/window/demo", test_window_demo);
  status = g_test_run ();

  gtk_window_destroy (GTK_WINDOW (window));
  for (int i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
  g_object_unref (app);
  return status;
}
