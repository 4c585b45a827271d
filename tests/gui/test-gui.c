/* test-gui.c — the workbench under Xvfb (see xvfb-wrap.sh): start the application, open
 * a generated stack written as TIFF (it becomes a project), paint a stroke and undo it
 * through the project store, quit and reopen (the stroke and its undo survive), train a
 * tiny network on the engine thread until curve points, heatmap columns and the
 * prediction overlay appear (measuring the main loop's lateness meanwhile), stop a run,
 * export (ISBI, labels, a refused path), reopen and find the earlier run's curves; the
 * MC-dropout uncertainty overlay (and its refusal without dropout), the V_rand / V_info
 * plot, the "Earlier runs" popover; a 4096² slice panned frame by frame (timings reported,
 * tile seams checked); a PNG screenshot of the window at each stage (to
 * $EMSEG_SCREENSHOT_DIR) with assertions on its pixels. Also checks the edit history (and that it rasterises exactly like the
 * store) and the plots' off-screen drawing. GSK_RENDERER=cairo is set by the meson test
 * so pixels do not depend on a GL driver. */
#include <gtk/gtk.h>
#include <locale.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <sqlite3.h>

#include "emseg-application.h"
#include "emseg-edit-history.h"
#include "emseg-export-dialog.h"
#include "emseg-gamma.h"
#include "emseg-project.h"
#include "emseg-test-util.h"
#include "emseg-stack.h"
#include "emseg-conv-kernel.h"
#include "emseg-window.h"
#include "eng-modelfile.h"

typedef struct {
  int width, height;
  int ox, oy;   /* where the widget's (0,0) is in the picture (a window's frame margin) */
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
wait_for_paint (GtkWidget *w)
{
  GdkFrameClock *clock = gtk_widget_get_frame_clock (w);
  gboolean painted = FALSE;
  gulong id;

  g_assert_nonnull (clock);
  gtk_widget_queue_draw (w);
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
 * as <dir>/<name>.png and returns the pixels. A window's paintable includes its frame
 * margin (the client-side shadow): it is rendered at its own size, unscaled, and shot_rgb
 * takes widget coordinates. */
static Shot *
screenshot_widget (GtkWidget *w, const char *name)
{
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (w);
  int width = gdk_paintable_get_intrinsic_width (paintable);
  int height = gdk_paintable_get_intrinsic_height (paintable);
  double mx = 0.0, my = 0.0;
  GtkSnapshot *snap = gtk_snapshot_new ();
  g_autoptr (GskRenderNode) node = NULL;
  g_autoptr (GdkTexture) texture = NULL;
  const char *dir = g_getenv ("EMSEG_SCREENSHOT_DIR");
  g_autofree char *path = NULL;
  Shot *shot = g_new0 (Shot, 1);

  wait_for_paint (w);
  width = gdk_paintable_get_intrinsic_width (paintable);
  height = gdk_paintable_get_intrinsic_height (paintable);
  if (width <= 0 || height <= 0)
    {
      width = gtk_widget_get_width (w);
      height = gtk_widget_get_height (w);
    }
  if (GTK_IS_NATIVE (w))
    gtk_native_get_surface_transform (GTK_NATIVE (w), &mx, &my);
  shot->ox = (int) lrint (mx);
  shot->oy = (int) lrint (my);
  gdk_paintable_snapshot (paintable, snap, width, height);
  node = gtk_snapshot_free_to_node (snap);
  g_assert_nonnull (node);
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (gtk_widget_get_native (w)), node,
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
  g_test_message ("screenshot %s (%d×%d, widget origin at %d,%d)", path, shot->width, shot->height, shot->ox, shot->oy);
  return shot;
}

static Shot *
screenshot (const char *name)
{
  return screenshot_widget (GTK_WIDGET (window), name);
}

static void
shot_rgb (const Shot *shot, int x, int y, int rgb[3])
{
  const guchar *p;

  x += shot->ox;
  y += shot->oy;
  g_assert_cmpint (x, >=, 0);
  g_assert_cmpint (y, >=, 0);
  g_assert_cmpint (x, <, shot->width);
  g_assert_cmpint (y, <, shot->height);
  p = shot->data + (gsize) y * shot->stride + (gsize) x * 4;
  rgb[0] = p[2];
  rgb[1] = p[1];
  rgb[2] = p[0];
}

/* Screenshot pixels inside widget w (a plot) within 12 levels of colour (r, g, b). */
static guint
plot_pixels_like (const Shot *shot, GtkWidget *w, double r, double g, double b)
{
  graphene_rect_t bounds;
  guint n = 0;

  g_assert_true (gtk_widget_compute_bounds (w, GTK_WIDGET (window), &bounds));
  for (int y = (int) bounds.origin.y; y < (int) (bounds.origin.y + bounds.size.height); y++)
    for (int x = (int) bounds.origin.x; x < (int) (bounds.origin.x + bounds.size.width); x++)
      {
        int c[3];

        if (x < 0 || y < 0 || x >= shot->width || y >= shot->height)
          continue;
        shot_rgb (shot, x, y, c);
        n += abs (c[0] - (int) lrint (r * 255)) <= 12 && abs (c[1] - (int) lrint (g * 255)) <= 12 &&
             abs (c[2] - (int) lrint (b * 255)) <= 12;
      }
  return n;
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

/* Writes a generated 190×150×4 stack as an 8-bit TIFF (and, if labels_path is given, its
 * exact labels for the first n_labelled slices) into the test's temporary folder. Its
 * sides are no multiple of the tiny networks' 16, so every window test predicts padded
 * slices and trains on crops (with 192×160, such stacks were refused unnoticed). */
static char *
write_generated_stack (guint *width, guint *height, guint *n, guint n_labelled, char **labels_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new_synthetic (190, 150, 4, 7, n_labelled, &error);
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
  if (labels_path != NULL)
    {
      *labels_path = g_build_filename (g_get_tmp_dir (), "emseg-gui-labels.tif", NULL);
      g_assert_true (emseg_tiff_write_u8_stack (*labels_path, v->labels, v->width, v->height, n_labelled, &error));
      g_assert_no_error (error);
    }
  *width = v->width;
  *height = v->height;
  *n = v->n_slices;
  return path;
}

static gboolean
import_finished (gpointer data)
{
  return !emseg_window_is_importing (window);
}

/* A new project in the user data folder holding a generated stack with 3 labelled slices;
 * the window shows it. Returns the project's path (free it). */
static char *
new_project_with_stack (const char *file_name, guint *width, guint *height, guint *n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *labels = NULL;
  g_autofree char *images = write_generated_stack (width, height, n, 3, &labels);
  char *project_path = g_build_filename (g_get_user_data_dir (), file_name, NULL);

  g_mkdir_with_parents (g_get_user_data_dir (), 0755);
  g_assert_true (emseg_window_open_project (window, project_path, TRUE, &error));
  g_assert_no_error (error);
  g_assert_null (emseg_slice_view_get_volume (emseg_window_get_view (window))); /* empty project */
  g_assert_true (emseg_window_import_stack (window, images, labels, &error));
  g_assert_no_error (error);
  /* copied on a worker: the stack shows when it is done */
  spin_until (import_finished, NULL, 60.0);
  g_assert_nonnull (emseg_slice_view_get_volume (emseg_window_get_view (window)));
  g_unlink (images);
  g_unlink (labels);
  return project_path;
}

/* A volume read from a project: image slices read when asked for (or prefetched) and only
 * the last EMSEG_VOLUME_CACHED_PLANES kept, masks likewise (EMSEG_VOLUME_CACHED_MASKS). Every slice
 * and mask, asked for in an order that evicts (0..n-1, then back), equals the store's; the
 * display window comes from sampled slices, so it lies within the stack's true range; the
 * planes stay readable after the caller's connection closed (the volume has its own). A mask
 * handed out for editing survives any number of evictions with its unsaved edit, until
 * reloaded from the store; reloading a mask not in memory reads nothing. */
static void
test_volume_from_project (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("emseg-gui-XXXXXX", &error);
  g_autofree char *tif = g_build_filename (dir, "im.tif", NULL);
  g_autofree char *proj = g_build_filename (dir, "p.emseg", NULL);
  const guint W = 40, H = 24, N = MAX (EMSEG_VOLUME_CACHED_PLANES, EMSEG_VOLUME_CACHED_MASKS) + 5;
  g_autofree guint8 *pixels = g_new (guint8, (gsize) W * H * N);
  g_autoptr (EmsegStack) st = NULL;
  g_autoptr (EmsegVolume) v = NULL;
  EmsegProject *p;
  gint64 stack_id = 0;
  g_autofree float *want = g_new (float, (gsize) W * H * N);
  float lo = INFINITY, hi = -INFINITY;

  g_assert_no_error (error);
  for (gsize i = 0; i < (gsize) W * H * N; i++)
    pixels[i] = (guint8) ((i * 2654435761u) >> 24);
  g_assert_true (emseg_tiff_write_u8_stack (tif, pixels, W, H, N, &error));
  p = emseg_project_open (proj, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error (error);
  st = emseg_stack_open (tif, &error);
  g_assert_no_error (error);
  g_assert_true (emseg_project_import_stack (p, "im", st, NULL, &stack_id, &error));
  for (guint z = 0; z < N; z++)
    g_assert_true (emseg_project_read_slice_float (p, stack_id, z, want + (gsize) z * W * H, &error));
  /* every mask different: slice z has pixel z labelled cell, pixel z + 1 membrane */
  {
    g_autofree guint8 *mask = g_new (guint8, (gsize) W * H);

    for (guint z = 0; z < N; z++)
      {
        memset (mask, EMSEG_LABEL_UNLABELED, (gsize) W * H);
        mask[z] = EMSEG_LABEL_CELL;
        mask[z + 1] = EMSEG_LABEL_MEMBRANE;
        g_assert_true (emseg_project_write_mask (p, stack_id, z, mask, &error));
      }
  }
  for (gsize i = 0; i < (gsize) W * H * N; i++)
    {
      lo = MIN (lo, want[i]);
      hi = MAX (hi, want[i]);
    }
  v = emseg_volume_new_from_project (p, stack_id, &error);
  g_assert_no_error (error);
  emseg_project_close (p);
  g_assert_null (v->image);
  g_assert_null (v->labels);
  for (guint z = 0; z < N; z++)
    g_assert_null (v->masks[z]); /* none read at open */
  /* a prefetched slice (not one of the 5 sampled for the display window) arrives through
   * the main loop, read on a worker thread */
  g_assert_null (v->planes[N / 2 + 1]);
  emseg_volume_prefetch (v, N / 2 + 1);
  {
    gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    while (v->planes[N / 2 + 1] == NULL && g_get_monotonic_time () < end)
      g_main_context_iteration (NULL, TRUE);
  }
  g_assert_nonnull (v->planes[N / 2 + 1]);
  g_assert_cmpmem (v->planes[N / 2 + 1], W * H * sizeof (float), want + (gsize) (N / 2 + 1) * W * H,
                   W * H * sizeof (float));
  g_assert_cmpuint (v->n_prefetching, ==, 0);
  /* its mask came along, clean (evictable); a mask whose slice was reloaded (a stroke or an
   * undo there) while its read was in flight is dropped, the plane kept */
  g_assert_nonnull (v->masks[N / 2 + 1]);
  g_assert_cmpuint (v->masks[N / 2 + 1][N / 2 + 1], ==, EMSEG_LABEL_CELL);
  g_assert_cmpuint (v->n_clean_masks, ==, 1);
  {
    EmsegProject *q = emseg_project_open (proj, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
    gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    g_assert_no_error (error);
    emseg_volume_prefetch (v, N / 2 + 2);
    g_assert_cmpuint (v->n_prefetching, ==, 1);
    g_assert_true (emseg_volume_reload_mask (v, q, stack_id, N / 2 + 2, NULL, &error));
    while (v->n_prefetching > 0 && g_get_monotonic_time () < end)
      g_main_context_iteration (NULL, TRUE);
    g_assert_nonnull (v->planes[N / 2 + 2]);
    g_assert_null (v->masks[N / 2 + 2]);
    emseg_project_close (q);
  }
  /* no more than EMSEG_VOLUME_PREFETCH_READS reads at once, however many are asked for */
  for (guint z = 1; z < N; z++)
    emseg_volume_prefetch (v, z);
  g_assert_cmpuint (v->n_prefetching, <=, EMSEG_VOLUME_PREFETCH_READS);
  {
    gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    while (v->n_prefetching > 0 && g_get_monotonic_time () < end)
      g_main_context_iteration (NULL, TRUE);
  }
  g_assert_cmpuint (v->n_prefetching, ==, 0);
  g_assert_cmpfloat (v->image_min, >=, lo);
  g_assert_cmpfloat (v->image_max, <=, hi);
  g_assert_cmpfloat (v->image_min, <, v->image_max);
  for (guint pass = 0; pass < 2; pass++)
    for (guint k = 0; k < N; k++)
      {
        guint z = pass == 0 ? k : N - 1 - k;

        const guint8 *mask;

        g_assert_cmpmem (emseg_volume_image_plane (v, z), W * H * sizeof (float), want + (gsize) z * W * H,
                         W * H * sizeof (float));
        mask = emseg_volume_labels (v, z);
        for (guint i = 0; i < W * H; i++)
          g_assert_cmpuint (mask[i], ==,
                            i == z ? EMSEG_LABEL_CELL : i == z + 1 ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_UNLABELED);
      }
  g_assert_cmpuint (v->n_recent, ==, EMSEG_VOLUME_CACHED_PLANES);
  g_assert_cmpuint (v->n_clean_masks, ==, EMSEG_VOLUME_CACHED_MASKS);
  {
    guint loaded = 0, masks = 0;

    for (guint z = 0; z < N; z++)
      {
        loaded += v->planes[z] != NULL;
        masks += v->masks[z] != NULL;
      }
    g_assert_cmpuint (loaded, ==, EMSEG_VOLUME_CACHED_PLANES);
    g_assert_cmpuint (masks, ==, EMSEG_VOLUME_CACHED_MASKS);
  }
  /* an edit in progress (not in the store) outlives every eviction, until reloaded */
  {
    guint8 *edited = emseg_volume_label_plane (v, N - 1);
    gboolean changed = FALSE;

    edited[0] = EMSEG_LABEL_MEMBRANE;
    for (guint pass = 0; pass < 2; pass++)
      for (guint z = 0; z < N - 1; z++)
        emseg_volume_labels (v, z);
    g_assert_true (v->masks[N - 1] == edited);
    g_assert_cmpuint (emseg_volume_labels (v, N - 1)[0], ==, EMSEG_LABEL_MEMBRANE);
    p = emseg_project_open (proj, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    g_assert_no_error (error);
    g_assert_true (emseg_volume_reload_mask (v, p, stack_id, N - 1, &changed, &error));
    g_assert_true (changed);
    g_assert_cmpuint (edited[0], ==, EMSEG_LABEL_UNLABELED); /* the store's again */
    for (guint z = 0; z < EMSEG_VOLUME_CACHED_MASKS; z++)
      emseg_volume_labels (v, z);
    g_assert_null (v->masks[N - 1]); /* clean now, so evicted like any other */
    g_assert_true (emseg_volume_reload_mask (v, p, stack_id, N - 1, &changed, &error));
    g_assert_false (changed);
    g_assert_null (v->masks[N - 1]); /* not read: it is read when shown */
    emseg_project_close (p);
  }
  g_unlink (tif);
  g_clear_pointer (&v, emseg_volume_unref);
  g_unlink (proj);
  {
    g_autofree char *wal = g_strconcat (proj, "-wal", NULL), *shm = g_strconcat (proj, "-shm", NULL);

    g_unlink (wal);
    g_unlink (shm);
  }
  g_rmdir (dir);
}

/* Predictions are kept up to the volume's budget, least recently used evicted first: a
 * 512² stack keeps all (the budget holds 256 of its planes), a 4096² one 4; with the
 * capacity lowered to 3, showing (reading) a plane keeps it, setting a fourth evicts the
 * one least recently set or shown, and a re-set plane holds the new values. */
static void
test_volume_prediction_budget (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new (16, 8, 6, &error);
  float plane[16 * 8];

  g_assert_no_error (error);
  g_assert_cmpuint (v->pred_capacity, ==, 6); /* all six: far under the budget */
  g_assert_cmpuint ((guint) MIN (MAX (EMSEG_VOLUME_PREDICTION_BUDGET / ((gsize) 4096 * 4096 * sizeof (float)), 4), 40),
                    ==, 4);
  v->pred_capacity = 3;
  for (guint z = 0; z < 3; z++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (plane); i++)
        plane[i] = (float) z;
      emseg_volume_set_prediction (v, z, plane);
    }
  g_assert_cmpfloat (emseg_volume_prediction_plane (v, 0)[5], ==, 0.0f); /* shown: now the most recent */
  emseg_volume_set_prediction (v, 3, plane);
  g_assert_nonnull (emseg_volume_prediction_plane (v, 0));
  g_assert_null (emseg_volume_prediction_plane (v, 1)); /* least recently used */
  g_assert_nonnull (emseg_volume_prediction_plane (v, 2));
  for (guint i = 0; i < G_N_ELEMENTS (plane); i++)
    plane[i] = 0.25f;
  emseg_volume_set_prediction (v, 1, plane);
  g_assert_cmpfloat (emseg_volume_prediction_plane (v, 1)[7], ==, 0.25f);
  g_assert_null (emseg_volume_prediction_plane (v, 3)); /* 0 and 2 were read after it */
  g_assert_nonnull (emseg_volume_prediction_plane (v, 0));
  g_assert_cmpuint (v->n_pred, ==, 3);
}

/* Uncertainty estimates are kept under the predictions' budget too: with the capacity
 * lowered to 2, a third estimate drops the one least recently set or shown; clearing them
 * all leaves room for as many again. */
static void
test_volume_uncertainty_budget (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new (16, 8, 5, &error);
  float plane[16 * 8];

  g_assert_no_error (error);
  v->pred_capacity = 2;
  for (guint z = 0; z < 2; z++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (plane); i++)
        plane[i] = 0.1f * (float) (z + 1);
      emseg_volume_set_uncertainty (v, z, plane);
    }
  g_assert_cmpfloat (emseg_volume_uncertainty_plane (v, 0)[3], ==, 0.1f); /* shown: most recent */
  emseg_volume_set_uncertainty (v, 4, plane);
  g_assert_nonnull (emseg_volume_uncertainty_plane (v, 0));
  g_assert_null (emseg_volume_uncertainty_plane (v, 1));
  g_assert_nonnull (emseg_volume_uncertainty_plane (v, 4));
  g_assert_cmpuint (v->n_unc, ==, 2);
  emseg_volume_clear_uncertainty (v);
  g_assert_null (emseg_volume_uncertainty_plane (v, 0));
  emseg_volume_set_uncertainty (v, 2, plane);
  emseg_volume_set_uncertainty (v, 3, plane);
  g_assert_nonnull (emseg_volume_uncertainty_plane (v, 2));
  g_assert_nonnull (emseg_volume_uncertainty_plane (v, 3));
}

/* The viewer's live brush and the store's stroke change the same pixels: paint with the
 * edit history, hand its points to emseg_project_apply_stroke on a blank copy, compare. */
static void
test_brush_matches_store (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new (97, 61, 2, &error);
  g_autoptr (EmsegEditHistory) h = NULL;
  g_autofree char *dir = g_dir_make_tmp ("emseg-gui-XXXXXX", &error);
  g_autofree char *tif = g_build_filename (dir, "blank.tif", NULL);
  g_autofree char *proj = g_build_filename (dir, "p.emseg", NULL);
  g_autofree guint8 *blank = g_malloc0 (97 * 61 * 2);
  g_autofree guint8 *mask = g_malloc (97 * 61);
  g_autoptr (EmsegProject) p = NULL;
  g_autoptr (EmsegStack) st = NULL;
  const double radii[] = { 0.5, 1.3, 2.0, 3.7, 6.0 };
  gint64 stack_id = 0;

  g_assert_no_error (error);
  g_assert_true (emseg_tiff_write_u8_stack (tif, blank, 97, 61, 2, &error));
  p = emseg_project_open (proj, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error (error);
  st = emseg_stack_open (tif, &error);
  g_assert_no_error (error);
  g_assert_true (emseg_project_import_stack (p, "blank", st, NULL, &stack_id, &error));
  h = emseg_edit_history_new (v);
  for (guint k = 0; k < G_N_ELEMENTS (radii); k++)
    {
      /* fractional, diagonal, doubling back and leaving the image */
      double xs[] = { 10.3 + k, 40.77, 33.1, 90.2 + k * 3, 60.5 };
      double ys[] = { 5.6, 30.25 + k, 12.9, 58.4, 70.0 };
      guint8 label = k % 2 ? EMSEG_LABEL_CELL : EMSEG_LABEL_MEMBRANE;
      const float *xy;
      guint n_points = 0, n_diff = 0, n_set = 0;

      emseg_edit_history_begin_stroke (h, 1, label, radii[k], xs[0], ys[0]);
      for (guint i = 1; i < G_N_ELEMENTS (xs); i++)
        emseg_edit_history_stroke_to (h, xs[i], ys[i]);
      g_assert_true (emseg_edit_history_end_stroke (h, NULL));
      xy = emseg_edit_history_last_points (h, &n_points);
      g_assert_cmpuint (n_points, ==, G_N_ELEMENTS (xs));
      g_assert_true (emseg_project_apply_stroke (p, stack_id, 1, label, radii[k], xy, n_points, NULL, &error));
      g_assert_no_error (error);
      g_assert_true (emseg_project_read_mask (p, stack_id, 1, mask, NULL, &error));
      for (gsize i = 0; i < 97 * 61; i++)
        {
          n_diff += mask[i] != emseg_volume_label_plane (v, 1)[i];
          n_set += mask[i] == label;
        }
      g_assert_cmpuint (n_set, >, 20);
      g_assert_cmpuint (n_diff, ==, 0);
    }
  g_clear_pointer (&p, emseg_project_close);
  g_unlink (tif);
  g_unlink (proj);
  g_rmdir (dir);
}

static void
close_dialogs (void)
{
  GListModel *tops = gtk_window_get_toplevels ();

  for (guint i = g_list_model_get_n_items (tops); i-- > 0;)
    {
      g_autoptr (GObject) w = g_list_model_get_item (tops, i);

      if (GTK_IS_MESSAGE_DIALOG (w))
        gtk_window_destroy (GTK_WINDOW (w));
    }
}

/* The first toplevel whose type is called type_name, or NULL (borrowed). */
static GtkWidget *
find_toplevel (const char *type_name)
{
  GListModel *tops = gtk_window_get_toplevels ();

  for (guint i = 0; i < g_list_model_get_n_items (tops); i++)
    {
      g_autoptr (GObject) w = g_list_model_get_item (tops, i);

      if (g_str_equal (G_OBJECT_TYPE_NAME (w), type_name))
        return GTK_WIDGET (w);
    }
  return NULL;
}

/* The open message dialogs of this type, in stacking order (borrowed). */
static GPtrArray *
message_dialogs (GtkMessageType type)
{
  GListModel *tops = gtk_window_get_toplevels ();
  GPtrArray *found = g_ptr_array_new ();

  for (guint i = 0; i < g_list_model_get_n_items (tops); i++)
    {
      g_autoptr (GObject) w = g_list_model_get_item (tops, i);
      GtkMessageType t;

      if (!GTK_IS_MESSAGE_DIALOG (w))
        continue;
      g_object_get (w, "message-type", &t, NULL);
      if (t == type)
        g_ptr_array_add (found, w);
    }
  return found;
}

static guint
count_message_dialogs (GtkMessageType type)
{
  g_autoptr (GPtrArray) found = message_dialogs (type);

  return found->len;
}

/* The first message dialog of this type, or NULL (borrowed). */
static GtkWidget *
find_message_dialog (GtkMessageType type)
{
  g_autoptr (GPtrArray) found = message_dialogs (type);

  return found->len > 0 ? found->pdata[0] : NULL;
}

/* The test window after the previous one has gone: a new one showing the project. */
static void
open_in_new_window (const char *project_path)
{
  g_autoptr (GError) error = NULL;

  window = emseg_window_new (GTK_APPLICATION (app));
  gtk_window_set_default_size (GTK_WINDOW (window), 1200, 960);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_true (emseg_window_open_path (window, project_path, &error));
  g_assert_no_error (error);
}

/* "Quit and start again": the window goes (its connection and engine thread with it)
 * and a new one opens the project from its file. */
static void
restart_window (const char *project_path)
{
  close_dialogs ();
  gtk_window_destroy (GTK_WINDOW (window));
  for (int i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
  open_in_new_window (project_path);
}

static void
test_window_paint_undo (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *path = write_generated_stack (&width, &height, &n, 0, NULL);
  g_autofree char *project_path = NULL;
  g_autofree guint8 *stored = NULL;
  guint64 applied = 0;
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
  /* copied into its project on a worker: the window stays usable meanwhile */
  spin_until (import_finished, NULL, 60.0);
  g_assert_false (emseg_window_is_importing (window));
  g_unlink (path);
  /* a bare stack opens its own project in the user data folder */
  g_assert_nonnull (emseg_window_get_project (window));
  project_path = g_strdup (emseg_project_get_path (emseg_window_get_project (window)));
  g_assert_true (g_str_has_prefix (project_path, g_get_user_data_dir ()));
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
  g_assert_nonnull (strstr (emseg_window_get_status (window), "stroke saved"));
  /* one stroke in the store, and the screen's mask is the stored one byte for byte */
  g_assert_true (emseg_project_stroke_count (emseg_window_get_project (window), emseg_window_get_stack_id (window),
                                             &applied, NULL, &error));
  g_assert_cmpuint (applied, ==, 1);
  stored = g_malloc (width * height);
  g_assert_true (emseg_project_read_mask (emseg_window_get_project (window), emseg_window_get_stack_id (window), 0,
                                          stored, NULL, &error));
  g_assert_cmpmem (stored, width * height, emseg_volume_label_plane (v, 0), width * height);
  /* so reading it back after the stroke changes nothing, and the viewer is not redrawn */
  {
    gboolean changed = TRUE;

    g_assert_true (emseg_volume_reload_mask (v, emseg_window_get_project (window), emseg_window_get_stack_id (window),
                                             0, &changed, &error));
    g_assert_false (changed);
    /* a mask changed in the store behind the viewer's back does read as a change */
    stored[0] = stored[0] == EMSEG_LABEL_CELL ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_CELL;
    g_assert_true (emseg_project_write_mask (emseg_window_get_project (window), emseg_window_get_stack_id (window), 0,
                                             stored, &error));
    g_assert_true (emseg_volume_reload_mask (v, emseg_window_get_project (window), emseg_window_get_stack_id (window),
                                             0, &changed, &error));
    g_assert_true (changed);
    g_assert_cmpuint (emseg_volume_label_plane (v, 0)[0], ==, stored[0]);
    stored[0] = EMSEG_LABEL_UNLABELED;
    g_assert_true (emseg_project_write_mask (emseg_window_get_project (window), emseg_window_get_stack_id (window), 0,
                                             stored, &error));
    g_assert_true (emseg_volume_reload_mask (v, emseg_window_get_project (window), emseg_window_get_stack_id (window),
                                             0, &changed, &error));
    g_assert_true (changed);
  }

  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_UNLABELED);
  g_assert_true (emseg_project_stroke_count (emseg_window_get_project (window), emseg_window_get_stack_id (window),
                                             &applied, NULL, &error));
  g_assert_cmpuint (applied, ==, 0);
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

  /* Quit and reopen the same stack: the stroke is there, and undo still removes it. */
  restart_window (project_path);
  view = emseg_window_get_view (window);
  v = emseg_slice_view_get_volume (view);
  g_assert_nonnull (v);
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_MEMBRANE);
  spin_until (view_allocated, view, 5.0);
  emseg_slice_view_zoom_fit (view);
  {
    g_autoptr (Shot) reopened = screenshot ("03b-reopened");
    int c[3];

    image_to_window (95.5, 80.5, &x, &y);
    shot_rgb (reopened, x, y, c);
    g_assert_cmpint (c[0], >, c[1] + 40);
  }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_UNLABELED);
  g_assert_true (emseg_project_stroke_count (emseg_window_get_project (window), emseg_window_get_stack_id (window),
                                             &applied, NULL, &error));
  g_assert_cmpuint (applied, ==, 0);
  /* the project is among the recent files (the Open Recent menu lists it) */
  {
    g_autoptr (GFile) f = g_file_new_for_path (project_path);
    g_autofree char *uri = g_file_get_uri (f);

    g_assert_true (gtk_recent_manager_has_item (gtk_recent_manager_get_default (), uri));
  }
  /* and the undo itself is stored: one more restart keeps the slice clean */
  restart_window (project_path);
  v = emseg_slice_view_get_volume (emseg_window_get_view (window));
  g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 95], ==, EMSEG_LABEL_UNLABELED);

  /* "Import labels for this stack" on the first two slices is one undo step */
  {
    g_autofree char *labels = g_build_filename (g_get_tmp_dir (), "emseg-gui-import-labels.tif", NULL);
    g_autofree guint8 *lab = g_malloc ((gsize) width * height * 2);
    g_autofree guint8 *mask0 = g_memdup2 (emseg_volume_label_plane (v, 0), (gsize) width * height);

    for (gsize i = 0; i < (gsize) width * height * 2; i++)
      lab[i] = (i % width) < width / 3 ? 0 : 255;
    g_assert_true (emseg_tiff_write_u8_stack (labels, lab, width, height, 2, &error));
    g_assert_no_error (error);
    g_assert_true (emseg_window_import_labels (window, labels, &error));
    g_assert_no_error (error);
    g_unlink (labels);
    g_assert_nonnull (strstr (emseg_window_get_status (window), "2 of 2 slices changed"));
    spin_until (view_allocated, emseg_window_get_view (window), 0.2);
    g_clear_pointer (&undone, shot_free);
    undone = screenshot ("03c-labels-imported");
    g_assert_cmpuint (emseg_volume_label_plane (v, 0)[80 * width + 5], ==, EMSEG_LABEL_MEMBRANE);
    g_assert_cmpuint (emseg_volume_label_plane (v, 1)[80 * width + 95], ==, EMSEG_LABEL_CELL);
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL));
    g_assert_nonnull (strstr (emseg_window_get_status (window), "label import on slices 1–2"));
    g_assert_cmpmem (emseg_volume_label_plane (v, 0), (gsize) width * height, mask0, (gsize) width * height);
    g_assert_cmpuint (emseg_volume_label_plane (v, 1)[80 * width + 95], ==, EMSEG_LABEL_UNLABELED);
    /* a stack of the wrong size is refused with both sizes named, and nothing changes */
    g_assert_true (emseg_tiff_write_u8_stack (labels, lab, width / 2, height, 2, &error));
    g_assert_false (emseg_window_import_labels (window, labels, &error));
    g_assert_nonnull (error);
    g_assert_nonnull (strstr (error->message, "but the images are"));
    g_clear_error (&error);
    g_unlink (labels);
    g_assert_false (emseg_project_can_undo (emseg_window_get_project (window), emseg_window_get_stack_id (window)));

    /* object ids (a value per cell, 16×16 blocks) are refused as labels but raise a question,
     * whose Read as Object Ids imports them with membrane where two blocks touch */
    {
      g_autofree float *ids = g_malloc ((gsize) width * height * sizeof (float));
      GtkWidget *question;

      close_dialogs (); /* the refusal above */
      for (gsize i = 0; i < (gsize) width * height; i++)
        ids[i] = (float) (1 + (i % width) / 16 + 100 * (i / width / 16));
      g_assert_true (emseg_tiff_write_float_stack (labels, ids, width, height, 1, &error));
      g_assert_false (emseg_window_import_labels (window, labels, &error));
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, "as object ids do"));
      g_clear_error (&error);
      g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 0);
      question = find_message_dialog (GTK_MESSAGE_QUESTION);
      g_assert_nonnull (question);
      g_assert_false (emseg_project_can_undo (emseg_window_get_project (window), emseg_window_get_stack_id (window)));
      /* its width field starts at ISBI's 3 pixels a side; 2 are asked for */
      {
        GtkSpinButton *spin = g_object_get_data (G_OBJECT (question), "membrane-px");

        g_assert_cmpint (gtk_spin_button_get_value_as_int (spin), ==, 3);
        spin_until (view_allocated, question, 0.2);
        shot_free (screenshot_widget (question, "03d-object-ids-question"));
        gtk_spin_button_set_value (spin, 2);
      }
      gtk_dialog_response (GTK_DIALOG (question), GTK_RESPONSE_ACCEPT);
      g_assert_null (find_message_dialog (GTK_MESSAGE_QUESTION));
      g_unlink (labels);
      g_assert_nonnull (strstr (emseg_window_get_status (window), "Labels imported from object ids: 1 of 1"));
      /* x 15 | 16 parts two blocks: x 14 to 17 become membrane; (8, 8) is inside one */
      g_assert_cmpuint (emseg_volume_label_plane (v, 0)[40 * width + 13], ==, EMSEG_LABEL_CELL);
      g_assert_cmpuint (emseg_volume_label_plane (v, 0)[40 * width + 14], ==, EMSEG_LABEL_MEMBRANE);
      g_assert_cmpuint (emseg_volume_label_plane (v, 0)[40 * width + 17], ==, EMSEG_LABEL_MEMBRANE);
      g_assert_cmpuint (emseg_volume_label_plane (v, 0)[40 * width + 18], ==, EMSEG_LABEL_CELL);
      g_assert_cmpuint (emseg_volume_label_plane (v, 0)[8 * width + 8], ==, EMSEG_LABEL_CELL);
      g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL));
    }
  }
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
      /* V_rand / V_info every second epoch, as with metrics_every = 2 */
      if (e % 2 == 0)
        emseg_train_panel_add_scores (panel, e, 1.0 - 0.5 * exp (-0.4 * e), 1.0 - 0.4 * exp (-0.3 * e));
      else
        emseg_train_panel_add_scores (panel, e, NAN, NAN);
      emseg_train_panel_set_progress (panel, (double) e / 10, e, 10, e * 10, 60.0 * (10 - e));
    }
}

static gboolean
always_false (gpointer data)
{
  return FALSE;
}

/* The first GtkCheckButton under w (depth first) labelled label, or with any label when
 * label is NULL; NULL if there is none. */
static GtkCheckButton *
find_check_button (GtkWidget *w, const char *label)
{
  if (GTK_IS_CHECK_BUTTON (w) &&
      (label == NULL || g_strcmp0 (gtk_check_button_get_label (GTK_CHECK_BUTTON (w)), label) == 0))
    return GTK_CHECK_BUTTON (w);
  for (GtkWidget *c = gtk_widget_get_first_child (w); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkCheckButton *found = find_check_button (c, label);

      if (found != NULL)
        return found;
    }
  return NULL;
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
  /* bfloat16 training is offered, on by default where the CPU has bfloat16 kernels (the
   * probe is the CLI's: `emseg train --bf16` says the same), and reaches the run's
   * parameters */
  {
    GtkCheckButton *bf16 = find_check_button (GTK_WIDGET (panel), "bfloat16");
    EmsegTrainParams params;
    gboolean fast = strstr (emseg_conv_kernel (64, TRUE), "bf16") != NULL;

    g_assert_nonnull (bf16);
    emseg_train_panel_get_params (panel, &params);
    g_assert_cmpint (params.bf16, ==, fast);
    gtk_check_button_set_active (bf16, !fast);
    emseg_train_panel_get_params (panel, &params);
    g_assert_cmpint (params.bf16, ==, !fast);
    gtk_check_button_set_active (bf16, FALSE);
    /* the loss dropdown offers BCE and the Dice of either class, and each reaches the run */
    {
      GtkDropDown *loss = GTK_DROP_DOWN (gtk_widget_get_template_child (
          GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL, "loss_dropdown"));
      const EngLossKind kinds[] = { ENG_LOSS_BCE, ENG_LOSS_DICE, ENG_LOSS_DICE_CELL };
      guint keep = gtk_drop_down_get_selected (loss);

      g_assert_cmpuint (g_list_model_get_n_items (gtk_drop_down_get_model (loss)), ==, 3);
      for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
        {
          gtk_drop_down_set_selected (loss, i);
          emseg_train_panel_get_params (panel, &params);
          g_assert_cmpint (params.loss, ==, kinds[i]);
        }
      gtk_drop_down_set_selected (loss, keep);
    }
    spin_until (always_false, NULL, 0.3);
    g_assert_true (gtk_widget_get_mapped (GTK_WIDGET (bf16))); /* the expander is open */
    {
      g_autoptr (Shot) params_shot = screenshot ("04a-hyperparameters");
    }
  }
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

  /* the score plot: 3 points per curve (epochs 2, 4, 6), hover names them */
  {
    EmsegLossPlot *scores = emseg_train_panel_get_score_plot (panel);
    const double *x, *y;
    g_autofree char *shover = NULL;
    double wx;

    g_assert_cmpuint (emseg_loss_plot_get_n_series (scores), ==, 2);
    g_assert_cmpuint (emseg_loss_plot_get_points (scores, 0, &x, &y), ==, 3);
    g_assert_cmpfloat (x[2], ==, 6.0);
    g_assert_cmpuint (emseg_loss_plot_get_n_points (scores, 1), ==, 3);
    /* the last V_rand point is at the right end of the frame (x range 2..6), about
     * 12 px from the widget's right edge; its height is found by scanning */
    wx = gtk_widget_get_width (GTK_WIDGET (scores)) - 12;
    for (double wy = 0; wy < gtk_widget_get_height (GTK_WIDGET (scores)) && shover == NULL; wy += 2)
      {
        g_autofree char *t = emseg_loss_plot_hover_text (scores, wx, wy);

        if (t != NULL && g_str_has_prefix (t, "V_rand"))
          shover = g_steal_pointer (&t);
      }
    g_assert_nonnull (shover);
    g_assert_nonnull (strstr (shover, "epoch 6"));
    /* the V_rand green is on screen in the score plot */
    g_assert_cmpuint (plot_pixels_like (shot, GTK_WIDGET (scores), 0.17, 0.63, 0.17), >, 30);
  }
}


/* ---- training on the engine thread, export, reopen ---- */

typedef struct {
  gint64 expected_us; /* when the timer should fire next */
  GArray *late_ms;    /* double: lateness of each firing */
} Latency;

/* A 10 ms timer's lateness measures how long the main loop was busy elsewhere. */
static gboolean
latency_tick (gpointer data)
{
  Latency *lat = data;
  gint64 now = g_get_monotonic_time ();
  double late = (now - lat->expected_us) / 1000.0;

  g_array_append_val (lat->late_ms, late);
  lat->expected_us = now + 10 * 1000;
  return G_SOURCE_CONTINUE;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

typedef struct {
  EmsegTrainPanel *panel;
  guint min_epochs;
} HeatWait;

static gboolean
heatmap_and_curve (gpointer data)
{
  HeatWait *w = data;
  EmsegHeatmap *heatmap = emseg_train_panel_get_heatmap (w->panel);
  EmsegLossPlot *plot = emseg_train_panel_get_loss_plot (w->panel);

  return emseg_heatmap_get_n_epochs (heatmap) >= w->min_epochs && emseg_loss_plot_get_n_series (plot) >= 2 &&
         emseg_loss_plot_get_n_points (plot, emseg_loss_plot_get_n_series (plot) - 3) > 0 &&
         emseg_loss_plot_get_n_points (plot, emseg_loss_plot_get_n_series (plot) - 2) >= w->min_epochs;
}

static gboolean
training_done (gpointer data)
{
  return !emseg_window_is_training (window);
}

static gboolean
overlay_shown (gpointer data)
{
  EmsegVolume *v = emseg_slice_view_get_volume (emseg_window_get_view (window));

  return emseg_volume_prediction_plane (v, 0) != NULL && emseg_volume_prediction_plane (v, 0)[0] != 0.5f;
}

static gboolean
slice1_predicted (gpointer data)
{
  EmsegVolume *v = emseg_slice_view_get_volume (emseg_window_get_view (window));

  return emseg_volume_prediction_plane (v, 1) != NULL;
}

/* The project holds checkpoint *data's prediction of slice 0 of the shown stack. */
static gboolean
slice0_predicted_by (gpointer data)
{
  gsize plane = emseg_volume_plane_size (emseg_slice_view_get_volume (emseg_window_get_view (window)));
  g_autofree float *prob = g_new (float, plane);

  return emseg_project_read_prediction (emseg_window_get_project (window), *(const gint64 *) data,
                                        emseg_window_get_stack_id (window), 0, prob, NULL);
}

static gboolean
adapt_done (gpointer data)
{
  return !emseg_window_is_adapting (window);
}

static gboolean
adopt_finished (gpointer data)
{
  return !emseg_window_is_adopting (window);
}

static gboolean
no_prediction_state (gpointer data)
{
  return emseg_window_get_prediction_state (window) == NULL;
}

static gboolean
export_done (gpointer data)
{
  return !emseg_window_is_exporting (window);
}

/* Screen pixels of the heatmap's cells that carry colour (not grey, not background). */
static guint
heatmap_coloured (const Shot *shot, EmsegHeatmap *heatmap)
{
  guint n = 0;

  for (int k = 0; k < 20; k++)
    for (int r = 0; r < 4; r++)
      {
        graphene_point_t p;
        int rgb[3];
        double hx = 100 + k * (gtk_widget_get_width (GTK_WIDGET (heatmap)) - 160) / 20.0;

        g_assert_true (gtk_widget_compute_point (GTK_WIDGET (heatmap), GTK_WIDGET (window),
                                                 &GRAPHENE_POINT_INIT (hx, 30 + r * 30), &p));
        shot_rgb (shot, (int) p.x, (int) p.y, rgb);
        n += MAX (MAX (rgb[0], rgb[1]), rgb[2]) - MIN (MIN (rgb[0], rgb[1]), rgb[2]) > 60;
      }
  return n;
}

/* The tiny network of the training smoke test: seconds per epoch here, also under ASan. */
#define TINY_SPEC "base_width=4,down=1/1,across=1"

/* Writes a model of spec_text (over the defaults), weights drawn from seed, to path. */
static void
write_model_file (const char *path, const char *spec_text, guint64 seed, EngDtype dtype, const char *meta)
{
  EngSpec spec;
  EngError err;
  EngModel *model;

  eng_spec_default (&spec);
  g_assert_cmpint (eng_spec_parse (&spec, spec_text, &err), ==, ENG_OK);
  model = eng_model_new (&spec, seed, &err);
  g_assert_nonnull (model);
  g_assert_cmpint (eng_model_save (model, path, dtype, meta, &err), ==, ENG_OK);
  eng_model_free (model);
}
#define MEASURE_S 4.0

static gboolean
always_false_until_step (gpointer data)
{
  EmsegLossPlot *plot = emseg_train_panel_get_loss_plot (data);
  guint n = emseg_loss_plot_get_n_series (plot);

  /* the current run's step series is the third last */
  return n >= 3 && emseg_loss_plot_get_n_points (plot, n - 3) > 0;
}

static gboolean
panel_paused (gpointer data)
{
  return emseg_train_panel_get_state (data) == EMSEG_TRAIN_PAUSED;
}

static gboolean
panel_running (gpointer data)
{
  return emseg_train_panel_get_state (data) == EMSEG_TRAIN_RUNNING;
}

static gboolean
estimate_done (gpointer data)
{
  return !emseg_window_is_estimating (window);
}

static gboolean
button_shows_percent (gpointer button)
{
  return strstr (gtk_button_get_label (GTK_BUTTON (button)), "%)") != NULL;
}

/* "Estimate uncertainty": MC dropout (the panel's dropout 0.2) on the visible slice; the
 * cyan overlay must be exactly the documented blend of the estimate over the picture
 * without it — untouched where the passes agree, cyan where they do not. */
static void
check_uncertainty (EmsegSliceView *view)
{
  g_autoptr (GError) error = NULL;
  EmsegVolume *v = emseg_slice_view_get_volume (view);
  const float *std;
  g_autoptr (Shot) off = NULL;
  g_autoptr (Shot) on = NULL;
  guint n_checked = 0, n_visible = 0, n_agree = 0;
  double sum = 0.0, max = 0.0;
  gsize plane = emseg_volume_plane_size (v);

  g_assert_null (emseg_volume_uncertainty_plane (v, 0));
  g_object_set (view, "prediction-visible", FALSE, "labels-visible", FALSE, NULL);
  g_assert_true (emseg_window_estimate_uncertainty (window, 8, &error));
  g_assert_no_error (error);
  g_assert_true (emseg_window_is_estimating (window));
  g_assert_false (emseg_window_estimate_uncertainty (window, 8, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  spin_until (estimate_done, NULL, 60.0);
  g_assert_false (emseg_window_is_estimating (window));
  std = emseg_volume_uncertainty_plane (v, 0);
  g_assert_nonnull (std);
  for (gsize i = 0; i < plane; i++)
    {
      g_assert_true (std[i] >= 0.0f && std[i] <= 0.5f);
      sum += std[i];
      max = MAX (max, std[i]);
    }
  g_test_message ("uncertainty of slice 1 (8 samples): mean std %.4f, max %.4f", sum / plane, max);
  g_assert_cmpfloat (max, >, 0.0); /* dropout 0.2: the passes differ somewhere */
  g_assert_nonnull (strstr (emseg_window_get_status (window), "mean σ"));

  g_object_set (view, "uncertainty-visible", FALSE, NULL);
  off = screenshot ("07b-uncertainty-hidden");
  g_object_set (view, "uncertainty-visible", TRUE, NULL);
  on = screenshot ("07c-uncertainty");
  /* At each image pixel's centre the blend of its own estimate, on all three channels. */
  for (guint iy = 1; iy + 1 < v->height; iy += 3)
    for (guint ix = 1; ix + 1 < v->width; ix += 3)
      {
        double s = std[(gsize) iy * v->width + ix];
        double t = 0.8 * MIN (s / 0.2, 1.0); /* default opacity, full at sigma 0.2 */
        int x, y, a[3], b[3];

        image_to_window (ix + 0.5, iy + 0.5, &x, &y);
        shot_rgb (off, x, y, a);
        shot_rgb (on, x, y, b);
        if (abs (b[0] - (int) lrint (a[0] * (1 - t))) > 2 || abs (b[1] - (int) lrint (a[1] * (1 - t) + 0.9 * 255 * t)) > 2 ||
            abs (b[2] - (int) lrint (a[2] * (1 - t) + 255 * t)) > 2)
          g_test_message ("pixel %u,%u: hidden %d %d %d, shown %d %d %d, sigma %g", ix, iy, a[0], a[1], a[2], b[0],
                          b[1], b[2], s);
        g_assert_cmpint (abs (b[0] - (int) lrint (a[0] * (1 - t))), <=, 2);
        g_assert_cmpint (abs (b[1] - (int) lrint (a[1] * (1 - t) + 0.9 * 255 * t)), <=, 2);
        g_assert_cmpint (abs (b[2] - (int) lrint (a[2] * (1 - t) + 255 * t)), <=, 2);
        n_checked++;
        n_visible += b[2] > a[2] + 40 && b[0] <= a[0];
        n_agree += s == 0.0f && a[0] == b[0] && a[1] == b[1] && a[2] == b[2];
      }
  g_test_message ("uncertainty overlay: %u pixels checked, %u clearly cyan, %u untouched (sigma 0)",
                  n_checked, n_visible, n_agree);
  g_assert_cmpuint (n_checked, >, 3000);
  g_assert_cmpuint (n_visible, >, 0);

  /* The project kept the estimate: dropped from the volume (as its budget would), it is
   * back from the store when the slice is shown again, without new passes. */
  {
    g_autofree float *before = g_memdup2 (std, plane * sizeof (float));
    const float *again;
    double diff = 0.0;

    emseg_volume_clear_uncertainty (v);
    emseg_slice_view_set_slice (view, 1);
    g_assert_null (emseg_volume_uncertainty_plane (v, 1)); /* never estimated */
    emseg_slice_view_set_slice (view, 0);
    g_assert_false (emseg_window_is_estimating (window));
    again = emseg_volume_uncertainty_plane (v, 0);
    g_assert_nonnull (again);
    g_assert_nonnull (strstr (emseg_window_get_status (window), "stored with the model (8 dropout passes)"));
    for (gsize i = 0; i < plane; i++)
      diff = MAX (diff, fabs (again[i] - before[i]));
    g_assert_cmpfloat (diff, <=, 0.5 / 65535 + 1e-7); /* 16-bit quantized */
  }

  /* A long estimate shows how far it is on its button, which stops it; the slice keeps the
   * estimate it had. */
  {
    GtkButton *button = GTK_BUTTON (
        gtk_widget_get_template_child (GTK_WIDGET (window), EMSEG_TYPE_WINDOW, "uncertainty_button"));
    g_autofree float *kept = g_memdup2 (emseg_volume_uncertainty_plane (v, 0), plane * sizeof (float));

    g_assert_cmpstr (gtk_actionable_get_action_name (GTK_ACTIONABLE (button)), ==, "win.estimate-uncertainty");
    g_assert_nonnull (strstr (gtk_widget_get_tooltip_text (GTK_WIDGET (button)), "Ctrl+U"));
    g_assert_true (emseg_window_estimate_uncertainty (window, 100000, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (gtk_actionable_get_action_name (GTK_ACTIONABLE (button)), ==, "win.stop-uncertainty");
    spin_until (button_shows_percent, button, 60.0);
    g_assert_true (button_shows_percent (button));
    g_assert_nonnull (strstr (emseg_window_get_status (window), " %"));
    g_test_message ("while estimating: button \"%s\", status \"%s\"", gtk_button_get_label (button),
                    emseg_window_get_status (window));
    {
      g_autoptr (Shot) running = screenshot ("07d-uncertainty-running");
    }
    g_signal_emit_by_name (button, "clicked");
    spin_until (estimate_done, NULL, 60.0);
    g_assert_false (emseg_window_is_estimating (window));
    g_assert_nonnull (strstr (emseg_window_get_status (window), "stopped"));
    g_assert_cmpstr (gtk_actionable_get_action_name (GTK_ACTIONABLE (button)), ==, "win.estimate-uncertainty");
    g_assert_true (g_str_has_prefix (gtk_button_get_label (button), "Estimate uncertainty"));
    g_assert_cmpmem (emseg_volume_uncertainty_plane (v, 0), plane * sizeof (float), kept, plane * sizeof (float));
  }
  g_object_set (view, "prediction-visible", TRUE, NULL);
}

/* After reopening a project with two runs: the latest is the current one, the first is
 * offered in the "Earlier runs" popover and drawn dashed (red, the first comparison
 * colour) in both plots; unticking it removes it, ticking brings it back. */
static void
check_earlier_runs (EmsegTrainPanel *panel)
{
  EmsegLossPlot *loss = emseg_train_panel_get_loss_plot (panel);
  EmsegLossPlot *scores = emseg_train_panel_get_score_plot (panel);
  GtkPopover *popover = emseg_train_panel_get_earlier_runs_popover (panel);
  GtkCheckButton *check;
  guint n_loss, n_scores, red_shown, red_hidden;
  const double *x, *y;

  g_assert_cmpuint (emseg_train_panel_get_n_earlier_runs (panel), ==, 1);
  g_assert_true (emseg_train_panel_get_earlier_run_shown (panel, 0));
  n_loss = emseg_loss_plot_get_n_series (loss);
  n_scores = emseg_loss_plot_get_n_series (scores);
  /* run 1's train and validation curves before the current run's three; its scores
   * before the current two; all three epochs of run 1, from the store */
  g_assert_cmpuint (n_loss, ==, 5);
  g_assert_cmpuint (n_scores, ==, 4);
  g_assert_cmpuint (emseg_loss_plot_get_points (loss, 0, &x, &y), ==, 3);
  g_assert_cmpuint (emseg_loss_plot_get_n_points (scores, 0), ==, 3);
  {
    g_autoptr (Shot) shown = screenshot ("10-earlier-run-shown");

    red_shown = plot_pixels_like (shown, GTK_WIDGET (loss), 0.84, 0.15, 0.16) +
                plot_pixels_like (shown, GTK_WIDGET (scores), 0.84, 0.15, 0.16);
  }

  emseg_train_panel_popup_earlier_runs (panel);
  spin_until (view_allocated, popover, 5.0);
  g_assert_true (gtk_widget_get_mapped (GTK_WIDGET (popover)));
  {
    g_autoptr (Shot) pshot = screenshot_widget (GTK_WIDGET (popover), "11-earlier-runs-popover");

    g_assert_cmpint (pshot->width, >, 100);
  }
  check = find_check_button (GTK_WIDGET (popover), NULL);
  g_assert_nonnull (check);
  g_assert_nonnull (strstr (gtk_check_button_get_label (check), "run 1"));
  g_assert_true (gtk_check_button_get_active (check));
  gtk_check_button_set_active (check, FALSE); /* as a click does */
  gtk_popover_popdown (popover);
  g_assert_false (emseg_train_panel_get_earlier_run_shown (panel, 0));
  g_assert_cmpuint (emseg_loss_plot_get_n_series (loss), ==, n_loss - 2);
  g_assert_cmpuint (emseg_loss_plot_get_n_series (scores), ==, n_scores - 2);
  {
    g_autoptr (Shot) hidden = screenshot ("12-earlier-run-hidden");

    red_hidden = plot_pixels_like (hidden, GTK_WIDGET (loss), 0.84, 0.15, 0.16) +
                 plot_pixels_like (hidden, GTK_WIDGET (scores), 0.84, 0.15, 0.16);
  }
  g_test_message ("earlier run 1 in red: %u plot pixels shown, %u hidden", red_shown, red_hidden);
  g_assert_cmpuint (red_shown, >, 40);
  g_assert_cmpuint (red_hidden, ==, 0);
  emseg_train_panel_set_earlier_run_shown (panel, 0, TRUE);
  g_assert_true (gtk_check_button_get_active (check));
  g_assert_cmpuint (emseg_loss_plot_get_n_series (loss), ==, n_loss);
}

static void
test_window_train_export (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("train-test.emseg", &width, &height, &n);
  g_autofree char *isbi_path = g_build_filename (g_get_tmp_dir (), "isbi.tif", NULL);
  g_autofree char *labels_out = g_build_filename (g_get_tmp_dir (), "labels-out.tif", NULL);
  g_autofree char *isbi_gamma = g_build_filename (g_get_tmp_dir (), "isbi-gamma3.tif", NULL);
  g_autofree char *isbi_tta = g_build_filename (g_get_tmp_dir (), "isbi-tta.tif", NULL);
  g_autofree char *isbi_bf16 = g_build_filename (g_get_tmp_dir (), "isbi-bf16.tif", NULL);
  g_autofree char *isbi_dialog = g_build_filename (g_get_tmp_dir (), "isbi-dialog.tif", NULL);
  g_autofree char *bad_path = g_build_filename (g_get_tmp_dir (), "no-such-folder", "x.tif", NULL);
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);
  EmsegSliceView *view;
  Latency lat = { 0 };
  HeatWait wait = { panel, 1 };
  guint timer;
  g_autoptr (Shot) shot = NULL;
  g_autoptr (Shot) overlay = NULL;
  g_autoptr (EmsegStack) out = NULL;
  g_autofree float *page = NULL;
  double p99, worst;
  guint n_coloured;

  view = emseg_window_get_view (window);
  g_assert_nonnull (emseg_slice_view_get_volume (view));
  g_assert_cmpuint (emseg_volume_label_plane (emseg_slice_view_get_volume (view), 0)[0], !=, EMSEG_LABEL_UNLABELED);

  /* no model yet: fine-tune and prediction export are refused with a reason */
  g_assert_false (emseg_window_start_training (window, TRUE, NULL, &error));
  g_assert_nonnull (strstr (error->message, "Train first"));
  g_clear_error (&error);
  g_assert_false (emseg_window_start_export (window, EMSEG_EXPORT_ISBI, NULL, 1, FALSE, FALSE, 1.0, isbi_path, &error));
  g_clear_error (&error);

  emseg_window_show_page (window, "train");
  emseg_train_panel_set_epochs (panel, 3);
  /* validation slices as typed: refused with the reason when they are not a usable split */
  {
    GtkEditable *val = GTK_EDITABLE (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL,
                                                                     "val_entry"));
    const char *const bad[][2] = { { "7", "slice 7 is past the last slice (this stack has 4" },
                                   { "4", "Validation slice 4 has no labels" },
                                   { "all", "leaves none to train on" },
                                   { "1-3", "leave at least one to train on" },
                                   { "0", "numbered from 1 here" },
                                   { "2-x", "Validation slices \"2-x\"" } };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        gtk_editable_set_text (val, bad[i][0]);
        g_assert_false (emseg_window_start_training (window, FALSE, TINY_SPEC, &error));
        g_assert_nonnull (error);
        if (strstr (error->message, bad[i][1]) == NULL)
          g_error ("validation \"%s\": unexpected error \"%s\"", bad[i][0], error->message);
        g_clear_error (&error);
        g_assert_false (emseg_window_is_training (window));
      }
    gtk_editable_set_text (val, "");
  }
  g_assert_true (emseg_window_start_training (window, FALSE, TINY_SPEC, &error));
  g_assert_no_error (error);
  /* empty = automatic: of 3 labelled slices (of 4) the last validates */
  {
    GtkLabel *status = GTK_LABEL (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL,
                                                                 "status_label"));
    const char *text = gtk_label_get_text (status);

    if (strstr (text, "starting on 2 labelled slices, validating on slice 3") == NULL)
      g_error ("status after start: \"%s\"", text);
  }
  g_assert_cmpint (emseg_train_panel_get_state (panel), ==, EMSEG_TRAIN_RUNNING);
  spin_until (heatmap_and_curve, &wait, 120.0);
  g_assert_true (heatmap_and_curve (&wait));
  shot = screenshot ("06-training-live");
  n_coloured = heatmap_coloured (shot, emseg_train_panel_get_heatmap (panel));
  g_assert_cmpuint (n_coloured, >, 0);
  spin_until (training_done, NULL, 240.0);
  g_assert_false (emseg_window_is_training (window));
  g_assert_cmpint (emseg_train_panel_get_state (panel), ==, EMSEG_TRAIN_IDLE);
  g_assert_nonnull (emseg_window_get_best_model (window));
  /* V_rand / V_info of the validation slice, every epoch (metrics_every = 1) */
  {
    EmsegLossPlot *scores = emseg_train_panel_get_score_plot (panel);
    guint ns = emseg_loss_plot_get_n_series (scores);
    const double *x, *y;

    g_assert_cmpuint (ns, >=, 2);
    for (guint k = ns - 2; k < ns; k++)
      {
        g_assert_cmpuint (emseg_loss_plot_get_points (scores, k, &x, &y), ==, 3);
        for (guint i = 0; i < 3; i++)
          {
            g_assert_cmpfloat (x[i], ==, i + 1.0);
            g_assert_true (y[i] >= 0.0 && y[i] <= 1.0);
          }
      }
  }

  /* the overlay of the visible slice came from the best checkpoint */
  spin_until (overlay_shown, NULL, 60.0);
  g_assert_true (overlay_shown (NULL));
  emseg_window_show_page (window, "correct");
  g_object_set (view, "labels-visible", FALSE, NULL);
  overlay = screenshot ("07-prediction-overlay");
  {
    int x, y, c[3];
    guint n_tinted = 0;

    /* the magma-like overlay tints the grey image: look for colour anywhere on the slice */
    for (int k = 0; k < 100; k++)
      {
        image_to_window (5 + (k % 10) * 18.0, 5 + (k / 10) * 15.0, &x, &y);
        shot_rgb (overlay, x, y, c);
        n_tinted += abs (c[0] - c[1]) > 12 || abs (c[1] - c[2]) > 12;
      }
    g_assert_cmpuint (n_tinted, >, 50);
  }
  check_uncertainty (view);
  g_object_set (view, "labels-visible", TRUE, NULL);

  /* a fine-tune run, stopped: the run ends "cancelled" and the panel goes idle */
  emseg_window_show_page (window, "train");
  emseg_train_panel_set_epochs (panel, 5000); /* stopped long before */
  emseg_train_panel_set_dropout (panel, 0.0);
  /* with separation weights (the run's record says so below) */
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL,
                                                                             "border_spin")),
                             5.0);
  g_assert_true (emseg_window_start_training (window, TRUE, NULL, &error));
  g_assert_no_error (error);
  emseg_train_panel_set_dropout (panel, 0.2);
  spin_until (always_false_until_step, panel, 60.0);
  /* while it runs, another stack can be neither imported nor shown */
  g_assert_false (gtk_widget_get_sensitive (emseg_window_get_stack_chooser (window)));
  g_assert_false (emseg_window_show_stack (window, emseg_window_get_stack_id (window) + 1, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "Training is running"));
  g_clear_error (&error);
  g_assert_false (emseg_window_open_demo (window, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_true (emseg_window_is_training (window)); /* untouched by the refusals */
  /* closing the window asks first; "Keep Running" keeps it open and training */
  g_assert_null (emseg_window_get_close_question (window));
  gtk_window_close (GTK_WINDOW (window));
  g_assert_nonnull (emseg_window_get_close_question (window));
  spin_until (always_false, NULL, 0.3);
  {
    g_autoptr (Shot) question = screenshot_widget (emseg_window_get_close_question (window), "06b-close-question");
  }
  gtk_dialog_response (GTK_DIALOG (emseg_window_get_close_question (window)), GTK_RESPONSE_CANCEL);
  g_assert_null (emseg_window_get_close_question (window));
  g_assert_true (gtk_widget_get_visible (GTK_WIDGET (window)));
  g_assert_true (emseg_window_is_training (window));
  /* its weights have no dropout: an uncertainty estimate is refused, saying why */
  g_assert_false (emseg_window_estimate_uncertainty (window, 8, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_nonnull (strstr (error->message, "without dropout"));
  g_assert_false (emseg_window_is_estimating (window));
  g_clear_error (&error);
  /* Pause and Resume act between steps and come back as panel states */
  g_signal_emit_by_name (panel, "pause-requested");
  spin_until (panel_paused, panel, 60.0);
  g_assert_cmpint (emseg_train_panel_get_state (panel), ==, EMSEG_TRAIN_PAUSED);
  g_signal_emit_by_name (panel, "resume-requested");
  spin_until (panel_running, panel, 60.0);
  g_assert_cmpint (emseg_train_panel_get_state (panel), ==, EMSEG_TRAIN_RUNNING);
  /* Main-loop latency while it trains: a 10 ms timer's lateness over MEASURE_S seconds,
   * the loop sleeping in poll between events as the application's does. */
  lat.late_ms = g_array_new (FALSE, FALSE, sizeof (double));
  lat.expected_us = g_get_monotonic_time () + 10 * 1000;
  timer = g_timeout_add (10, latency_tick, &lat);
  {
    gint64 end = g_get_monotonic_time () + (gint64) (MEASURE_S * G_USEC_PER_SEC);

    while (g_get_monotonic_time () < end && emseg_window_is_training (window))
      g_main_context_iteration (NULL, TRUE);
  }
  g_source_remove (timer);
  g_assert_true (emseg_window_is_training (window));
  /* predictions are not exported from a moving target */
  g_assert_false (emseg_window_start_export (window, EMSEG_EXPORT_ISBI, NULL, 1, FALSE, FALSE, 1.0, isbi_path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_array_sort (lat.late_ms, cmp_double);
  g_assert_cmpuint (lat.late_ms->len, >, 10);
  p99 = g_array_index (lat.late_ms, double, (guint) floor (0.99 * (lat.late_ms->len - 1)));
  worst = g_array_index (lat.late_ms, double, lat.late_ms->len - 1);
  g_test_message ("main-loop latency while training: %u ticks, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                  lat.late_ms->len, g_array_index (lat.late_ms, double, lat.late_ms->len / 2), p99, worst);
  /* a figure to report, not a pass/fail threshold: CI machines are shared and noisy */
  g_assert_cmpfloat (worst, <, 5000.0);
  g_array_unref (lat.late_ms);

  g_signal_emit_by_name (panel, "stop-requested");
  spin_until (training_done, NULL, 60.0);
  g_assert_false (emseg_window_is_training (window));
  g_assert_cmpint (emseg_train_panel_get_state (panel), ==, EMSEG_TRAIN_IDLE);
  {
    g_autoptr (GArray) runs = emseg_project_list_runs (emseg_window_get_project (window), &error);
    const EmsegRun *last;

    g_assert_no_error (error);
    g_assert_cmpuint (runs->len, >=, 2);
    last = &g_array_index (runs, EmsegRun, runs->len - 1);
    g_assert_nonnull (strstr (last->params, "job=fine-tune\n"));
    g_assert_nonnull (strstr (last->params, "border_w0=5\nborder_sigma=5\n"));
  }
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL,
                                                                             "border_spin")),
                             0.0);

  /* the Export dialog lists the project's checkpoints, newest selected */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.export", NULL);
  {
    GtkWidget *dialog = find_toplevel ("EmsegExportDialog");

    g_assert_nonnull (dialog);
    spin_until (view_allocated, dialog, 5.0);
    {
      g_autoptr (Shot) dshot = screenshot_widget (dialog, "08a-export-dialog");
      g_assert_cmpint (dshot->width, >, 300);
    }
    gtk_window_destroy (GTK_WINDOW (dialog));
  }

  /* export: ISBI submission of every slice */
  g_assert_true (emseg_window_start_export (window, EMSEG_EXPORT_ISBI, NULL, 2, FALSE, FALSE, 1.0, isbi_path, &error));
  g_assert_no_error (error);
  spin_until (export_done, NULL, 120.0);
  g_assert_false (emseg_window_is_exporting (window));
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_INFO), ==, 1);
  g_assert_nonnull (strstr (emseg_window_get_status (window), "Exported 4 slices"));
  out = emseg_stack_open (isbi_path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (emseg_stack_get_n_slices (out), ==, n);
  g_assert_cmpuint (emseg_stack_get_width (out), ==, width);
  g_assert_cmpint (emseg_stack_get_sample_type (out), ==, EMSEG_SAMPLE_F32);
  page = g_new (float, width * height);
  for (guint z = 0; z < n; z++)
    {
      double lo = 1, hi = 0;

      g_assert_true (emseg_stack_read_float (out, z, page, &error));
      for (gsize i = 0; i < width * height; i++)
        {
          lo = MIN (lo, page[i]);
          hi = MAX (hi, page[i]);
        }
      g_assert_cmpfloat (lo, >=, 0.0);
      g_assert_cmpfloat (hi, <=, 1.0);
      g_assert_cmpfloat (hi - lo, >, 0.01); /* not a constant page */
    }
  g_clear_pointer (&out, emseg_stack_free);
  close_dialogs ();

  /* the membrane exponent: the same checkpoint exported with γ 3 is the γ 1 export cubed;
   * an exponent out of range is refused before anything runs; TTA changes the map */
  g_assert_false (emseg_window_start_export (window, EMSEG_EXPORT_ISBI, NULL, 1, FALSE, FALSE,
                                             0.0, isbi_gamma, &error));
  g_assert_nonnull (strstr (error->message, "Membrane exponent"));
  g_clear_error (&error);
  g_assert_false (emseg_window_is_exporting (window));
  for (guint k = 0; k < 4; k++)
    {
      const char *paths[] = { isbi_path, isbi_gamma, isbi_tta, isbi_bf16 };

      g_assert_true (emseg_window_start_export (window, EMSEG_EXPORT_ISBI, NULL, 1, k == 2, k == 3,
                                                k == 1 ? 3.0 : 1.0, paths[k], &error));
      g_assert_no_error (error);
      spin_until (export_done, NULL, 120.0);
      close_dialogs ();
    }
  {
    g_autoptr (EmsegStack) plain = emseg_stack_open (isbi_path, &error);
    g_autoptr (EmsegStack) cubed = emseg_stack_open (isbi_gamma, &error);
    g_autoptr (EmsegStack) tta = emseg_stack_open (isbi_tta, &error);
    g_autoptr (EmsegStack) bf16 = emseg_stack_open (isbi_bf16, &error);
    g_autofree float *q = g_new (float, width * height);
    g_autofree float *t = g_new (float, width * height);
    g_autofree float *b = g_new (float, width * height);
    double sum = 0, tta_diff = 0, bf16_diff = 0, bf16_sum = 0;

    g_assert_no_error (error);
    for (guint z = 0; z < n; z++)
      {
        g_assert_true (emseg_stack_read_float (plain, z, page, &error));
        g_assert_true (emseg_stack_read_float (cubed, z, q, &error));
        g_assert_true (emseg_stack_read_float (tta, z, t, &error));
        g_assert_true (emseg_stack_read_float (bf16, z, b, &error));
        for (gsize i = 0; i < width * height; i++)
          {
            bf16_diff = MAX (bf16_diff, fabs (b[i] - page[i]));
            bf16_sum += fabs (b[i] - page[i]);
            g_assert_cmpfloat_with_epsilon (q[i], pow (page[i], 3.0), 1e-6);
            sum += page[i] - q[i];
            g_assert_true (t[i] >= 0.0f && t[i] <= 1.0f);
            tta_diff += fabs (t[i] - page[i]);
          }
      }
    g_assert_cmpfloat (sum, >, 0.01); /* the exponent did something */
    /* the flips and turns were averaged: not the plain map (the engine-thread test checks
     * the values against eng_predict_tta) */
    g_assert_cmpfloat (tta_diff / (n * width * height), >, 1e-5);
    /* bfloat16 convolutions: close to float32 (the engine-thread test checks the values
     * against a bfloat16 eng_predict). This 3-epoch network's probabilities are steep
     * where they cross 0.5, so the largest difference is a few 1e-2 there. */
    g_test_message ("bfloat16 export against float32: mean difference %.3g, largest %.3g",
                    bf16_sum / (n * width * height), bf16_diff);
    g_assert_cmpfloat (bf16_sum / (n * width * height), <, 0.005);
    g_assert_cmpfloat (bf16_diff, <, 0.1);
  }

  /* the dialog's choices reach the export: TTA on and γ 2 through "export-requested" give
   * the TTA export squared */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.export", NULL);
  {
    GtkWidget *dialog = find_toplevel ("EmsegExportDialog");
    GType type = g_type_from_name ("EmsegExportDialog");
    g_autoptr (EmsegStack) tta = NULL;
    g_autoptr (EmsegStack) squared = NULL;
    g_autofree float *q = g_new (float, width * height);

    g_assert_nonnull (dialog);
    /* the dialog opens on the newest checkpoint with the γ its run chose on the (fully
     * labelled) validation slice */
    {
      g_autoptr (GArray) cks = emseg_project_list_checkpoints (emseg_window_get_project (window), &error);
      const EmsegCheckpointInfo *newest;

      g_assert_no_error (error);
      g_assert_cmpuint (cks->len, >, 0);
      newest = &g_array_index (cks, EmsegCheckpointInfo, cks->len - 1);
      g_assert_nonnull (strstr (newest->scores, "export_gamma="));
      g_assert_cmpfloat (gtk_spin_button_get_value (GTK_SPIN_BUTTON (gtk_widget_get_template_child (
                             dialog, type, "gamma_spin"))),
                         ==, emseg_gamma_from_meta (newest->scores));
    }
    /* bfloat16 is offered for a prediction export, off unless chosen */
    {
      GtkWidget *bf16_check = (GtkWidget *) gtk_widget_get_template_child (dialog, type, "bf16_check");

      g_assert_true (gtk_widget_get_sensitive (bf16_check));
      g_assert_false (gtk_check_button_get_active (GTK_CHECK_BUTTON (bf16_check)));
    }
    gtk_check_button_set_active (GTK_CHECK_BUTTON (gtk_widget_get_template_child (dialog, type, "tta_check")), TRUE);
    gtk_spin_button_set_value (GTK_SPIN_BUTTON (gtk_widget_get_template_child (dialog, type, "gamma_spin")), 2.0);
    gtk_editable_set_text (GTK_EDITABLE (gtk_widget_get_template_child (dialog, type, "path_entry")), isbi_dialog);
    g_signal_emit_by_name (gtk_widget_get_template_child (dialog, type, "export_button"), "clicked");
    g_assert_true (emseg_window_is_exporting (window));
    spin_until (export_done, NULL, 120.0);
    close_dialogs ();
    gtk_window_destroy (GTK_WINDOW (dialog));
    tta = emseg_stack_open (isbi_tta, &error);
    squared = emseg_stack_open (isbi_dialog, &error);
    g_assert_no_error (error);
    for (guint z = 0; z < n; z++)
      {
        g_assert_true (emseg_stack_read_float (tta, z, page, &error));
        g_assert_true (emseg_stack_read_float (squared, z, q, &error));
        for (gsize i = 0; i < width * height; i++)
          g_assert_cmpfloat_with_epsilon (q[i], page[i] * page[i], 1e-6);
      }
  }

  /* the label stack: the project's masks */
  g_assert_true (emseg_window_start_export (window, EMSEG_EXPORT_LABELS, NULL, 1, FALSE, FALSE,
                                            1.0, labels_out, &error));
  g_assert_no_error (error);
  out = emseg_stack_open (labels_out, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (emseg_stack_get_n_slices (out), ==, n);
  g_clear_pointer (&out, emseg_stack_free);
  close_dialogs ();

  /* a path that cannot be written: a failure message, nothing written */
  g_assert_true (emseg_window_start_export (window, EMSEG_EXPORT_PROBABILITIES, NULL, 1, FALSE, FALSE,
                                            1.0, bad_path, &error));
  spin_until (export_done, NULL, 120.0);
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 1);
  g_assert_false (g_file_test (bad_path, G_FILE_TEST_EXISTS));
  {
    g_autoptr (Shot) failed = screenshot ("08-export-failed");
    g_assert_cmpint (failed->width, >, 0);
  }
  close_dialogs ();

  /* reopen: the earlier runs' curves and heatmap come back from the store */
  restart_window (project_path);
  panel = emseg_window_get_train_panel (window);
  emseg_window_show_page (window, "train");
  g_assert_cmpuint (emseg_heatmap_get_n_epochs (emseg_train_panel_get_heatmap (panel)), >=, 1);
  g_assert_cmpuint (emseg_loss_plot_get_n_series (emseg_train_panel_get_loss_plot (panel)), >=, 3);
  g_assert_nonnull (emseg_window_get_best_model (window));
  spin_until (overlay_shown, NULL, 30.0);
  {
    g_autoptr (Shot) reopened = screenshot ("09-reopened-runs");

    g_assert_cmpuint (heatmap_coloured (reopened, emseg_train_panel_get_heatmap (panel)), >, 0);
  }
  check_earlier_runs (panel);
  /* a prediction the volume evicted comes back when its slice is shown again */
  view = emseg_window_get_view (window); /* the reopened window's */
  {
    EmsegVolume *v = emseg_slice_view_get_volume (view);

    v->pred_capacity = 1;
    emseg_slice_view_set_slice (view, 1);
    spin_until (slice1_predicted, NULL, 30.0);
    g_assert_true (slice1_predicted (NULL));
    g_assert_null (emseg_volume_prediction_plane (v, 0));
    emseg_slice_view_set_slice (view, 0);
    spin_until (overlay_shown, NULL, 30.0);
    g_assert_true (overlay_shown (NULL));
  }
  g_unlink (isbi_path);
  g_unlink (isbi_gamma);
  g_unlink (isbi_tta);
  g_unlink (isbi_bf16);
  g_unlink (isbi_dialog);
  g_unlink (labels_out);
}

/* ---- panning a 4096 x 4096 slice ---- */

#define PAN_SIZE 4096
#define PAN_FRAMES 90

/* A pattern whose value at any pixel the test can recompute: 64-px checker of two grey
 * levels plus a ramp, so a wrong pan shows as a wrong grey. */
static float
pan_pattern (guint x, guint y)
{
  return (((x / 64) + (y / 64)) % 2 ? 200.0f : 60.0f) + (float) ((x + y) % 64) * 0.5f;
}

typedef struct {
  EmsegSliceView *view;
  double dx, dy;          /* widget pixels per frame */
  guint frames;           /* frames panned so far */
  gint64 update_us;       /* when the current frame's update phase began */
  GArray *frame_ms;       /* double: update → after-paint of each panned frame */
  GArray *interval_ms;    /* double: between consecutive after-paints */
  GArray *draw_ms;        /* double: the view's own snapshot time in each painted frame */
  gint64 last_paint_us;
  gboolean panned_this_frame;
  guint n_paints;
  guint tiles;            /* tiles the view converted over the run */
} PanRun;

static void
pan_update_cb (GdkFrameClock *clock, PanRun *run)
{
  run->update_us = g_get_monotonic_time ();
}

static gboolean
pan_tick_cb (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  PanRun *run = data;

  if (run->frames >= PAN_FRAMES)
    return G_SOURCE_CONTINUE; /* removed by the test once it has seen the last frame */
  emseg_slice_view_pan (run->view, run->dx, run->dy);
  run->frames++;
  run->panned_this_frame = TRUE;
  return G_SOURCE_CONTINUE;
}

static void
pan_after_paint_cb (GdkFrameClock *clock, PanRun *run)
{
  gint64 now = g_get_monotonic_time ();

  run->n_paints++;
  if (run->panned_this_frame)
    {
      double ms = (now - run->update_us) / 1000.0;

      g_array_append_val (run->frame_ms, ms);
      guint tiles = 0;

      ms = emseg_slice_view_get_last_draw_ms (run->view, &tiles);
      g_array_append_val (run->draw_ms, ms);
      run->tiles += tiles;
      if (run->last_paint_us != 0)
        {
          double iv = (now - run->last_paint_us) / 1000.0;

          g_array_append_val (run->interval_ms, iv);
        }
      run->last_paint_us = now;
    }
  run->panned_this_frame = FALSE;
}

static gboolean
pan_finished (gpointer data)
{
  PanRun *run = data;

  return run->frames >= PAN_FRAMES && !run->panned_this_frame;
}

static double
percentile (GArray *values, double p)
{
  g_array_sort (values, cmp_double);
  return g_array_index (values, double, (guint) floor (p * (values->len - 1)));
}

/* Along the widget columns and rows around the first tile boundaries in view, every
 * pixel shows the sample under its centre (or, on a sample edge, a neighbour's), never
 * background or a blend. The view's own screenshot: its pixels are its widget
 * coordinates exactly (the window's have the frame's offset, a few pixels). */
static void
check_tile_seams (EmsegSliceView *view, EmsegVolume *v, const char *name)
{
    g_autoptr (Shot) shot = screenshot_widget (GTK_WIDGET (view), name);
    double w = gtk_widget_get_width (GTK_WIDGET (view)), h = gtk_widget_get_height (GTK_WIDGET (view));
    double ix0, iy0, ix1, iy1;
    long bx, by;
    guint n_checked = 0;

    emseg_slice_view_widget_to_image (view, 0, 0, &ix0, &iy0);
    emseg_slice_view_widget_to_image (view, w, h, &ix1, &iy1);
    bx = ((long) ix0 / 256 + 1) * 256; /* first tile boundaries inside the view */
    by = ((long) iy0 / 256 + 1) * 256;
    g_assert_cmpfloat (bx, <, ix1);
    g_assert_cmpfloat (by, <, iy1);
    for (int pass = 0; pass < 2; pass++)
        for (int along = 0; along < (pass ? (int) w : (int) h); along += 1)
        for (int d = -2; d <= 2; d++)
          {
            double bwx, bwy, ix, iy;
            int c[3];
            gboolean ok = FALSE;

            emseg_slice_view_image_to_widget (view, (double) bx, (double) by, &bwx, &bwy);
            /* a widget pixel's centre near the boundary column (pass 0) or row (pass 1) */
            bwx = pass ? along + 0.5 : floor (bwx) + d + 0.5;
            bwy = pass ? floor (bwy) + d + 0.5 : along + 0.5;
            shot_rgb (shot, (int) floor (bwx), (int) floor (bwy), c);
            emseg_slice_view_widget_to_image (view, bwx, bwy, &ix, &iy);
            for (int k = 0; k < 9 && !ok; k++)
              {
                long sx = (long) floor (ix) + k % 3 - 1, sy = (long) floor (iy) + k / 3 - 1;
                double e = 255.0 * (pan_pattern ((guint) sx, (guint) sy) - v->image_min) / (v->image_max - v->image_min);

                ok = abs (c[0] - (int) lrint (e)) <= 2 && c[0] == c[1] && c[1] == c[2];
              }
            if (!ok)
              g_test_message ("seam at widget %.1f,%.1f (image %.2f,%.2f): %d %d %d", bwx, bwy, ix, iy, c[0], c[1], c[2]);
            g_assert_true (ok);
            n_checked++;
          }
    g_test_message ("tile seams: %u pixels around the boundaries x=%ld, y=%ld checked at zoom %.3f", n_checked, bx, by,
                    emseg_slice_view_get_zoom (view));
  }

/* Pans a 4096² slice with every overlay on (labels, prediction, uncertainty) one step per
 * frame from a tick callback, as a drag does, at three zooms; reports the time from each
 * frame's update phase to its after-paint (the pan, our snapshot and GTK's rendering) and
 * the interval between painted frames. Timing is reported, not asserted (a shared 2-core
 * machine); what is asserted: every step painted a frame, the view moved by exactly the
 * steps, and after panning the screen shows the pattern at the image point it should. */
static void
test_window_pan_4096 (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (EmsegVolume) v = emseg_volume_new (PAN_SIZE, PAN_SIZE, 1, &error);
  EmsegSliceView *view = emseg_window_get_view (window);
  GdkFrameClock *clock;
  g_autofree float *std = NULL;
  g_autofree float *pred = NULL;
  const double zooms[] = { 0.0 /* fit */, 1.0, 4.0 };
  gsize plane;

  g_assert_no_error (error);
  plane = emseg_volume_plane_size (v);
  std = g_new (float, plane);
  pred = g_new (float, plane);
  for (guint y = 0; y < PAN_SIZE; y++)
    for (guint x = 0; x < PAN_SIZE; x++)
      {
        gsize i = (gsize) y * PAN_SIZE + x;

        v->image[i] = pan_pattern (x, y);
        v->labels[i] = x % 256 < 4 ? EMSEG_LABEL_MEMBRANE : y % 256 < 4 ? EMSEG_LABEL_CELL : EMSEG_LABEL_UNLABELED;
        pred[i] = (float) ((x * 7 + y * 3) % 1024) / 1024.0f;
        std[i] = (float) (x % 97) / 485.0f;
      }
  emseg_volume_set_prediction (v, 0, pred);
  emseg_volume_set_uncertainty (v, 0, std);
  emseg_volume_update_range (v);
  emseg_window_set_volume (window, v, "pan-4096");
  emseg_window_show_page (window, "correct");
  emseg_slice_view_set_tool (view, EMSEG_TOOL_PAN);
  g_object_set (view, "labels-visible", TRUE, "prediction-visible", TRUE, "uncertainty-visible", TRUE, NULL);
  spin_until (view_allocated, view, 5.0);
  clock = gtk_widget_get_frame_clock (GTK_WIDGET (view));
  g_assert_nonnull (clock);

  for (guint z = 0; z < G_N_ELEMENTS (zooms); z++)
    {
      PanRun run = { view, 12.0, 5.0, 0, 0, NULL, NULL, NULL, 0, FALSE, 0, 0 };
      double cx0, cy0, cx1, cy1;
      double w = gtk_widget_get_width (GTK_WIDGET (view)), h = gtk_widget_get_height (GTK_WIDGET (view));
      gulong id_update, id_paint;

      if (zooms[z] == 0.0)
        emseg_slice_view_zoom_fit (view);
      else
        {
          emseg_slice_view_zoom_at (view, zooms[z], w / 2, h / 2);
          /* start away from the edges, so no step is clamped */
          emseg_slice_view_pan (view, 0, 0);
        }
      if (zooms[z] == 0.0)
        run.dx = run.dy = 0.0; /* the whole slice is in view: pan would clamp; redraw only */
      wait_for_paint (GTK_WIDGET (window));
      emseg_slice_view_widget_to_image (view, w / 2, h / 2, &cx0, &cy0);
      run.frame_ms = g_array_new (FALSE, FALSE, sizeof (double));
      run.interval_ms = g_array_new (FALSE, FALSE, sizeof (double));
      run.draw_ms = g_array_new (FALSE, FALSE, sizeof (double));
      id_update = g_signal_connect (clock, "update", G_CALLBACK (pan_update_cb), &run);
      id_paint = g_signal_connect (clock, "after-paint", G_CALLBACK (pan_after_paint_cb), &run);
      if (zooms[z] == 0.0)
        {
          /* zoomed out, a pan changes nothing: time full redraws (brightness steps) instead */
          for (guint f = 0; f < PAN_FRAMES; f++)
            {
              gboolean painted = FALSE;
              gulong id = g_signal_connect (clock, "after-paint", G_CALLBACK (after_paint_cb), &painted);

              g_object_set (view, "brightness", (f % 2) ? 0.01 : 0.0, NULL);
              run.frames++;
              run.panned_this_frame = TRUE;
              run.update_us = g_get_monotonic_time ();
              spin_until (flag_set, &painted, 5.0);
              g_signal_handler_disconnect (clock, id);
            }
        }
      else
        {
          guint tick = gtk_widget_add_tick_callback (GTK_WIDGET (view), pan_tick_cb, &run, NULL);

          spin_until (pan_finished, &run, 60.0);
          /* before `run` goes out of scope (a later run reuses its stack slot) */
          gtk_widget_remove_tick_callback (GTK_WIDGET (view), tick);
        }
      g_signal_handler_disconnect (clock, id_update);
      g_signal_handler_disconnect (clock, id_paint);
      g_assert_cmpuint (run.frames, ==, PAN_FRAMES);
      /* the frames are the figure; painted at all is the assertion */
      g_assert_cmpuint (run.frame_ms->len, >=, PAN_FRAMES * 9 / 10);
      emseg_slice_view_widget_to_image (view, w / 2, h / 2, &cx1, &cy1);
      g_assert_cmpfloat_with_epsilon (cx1 - cx0, -PAN_FRAMES * run.dx / emseg_slice_view_get_zoom (view), 1e-6);
      g_assert_cmpfloat_with_epsilon (cy1 - cy0, -PAN_FRAMES * run.dy / emseg_slice_view_get_zoom (view), 1e-6);
      g_test_message ("pan 4096² at zoom %.3f: %u steps, %u painted frames, %u tiles converted; view snapshot "
                      "p50 %.1f ms, p95 %.1f ms, max %.1f ms; update→painted p50 %.1f ms, p95 %.1f ms, max %.1f ms; "
                      "frame interval p50 %.1f ms, p95 %.1f ms",
                      emseg_slice_view_get_zoom (view), run.frames, run.frame_ms->len, run.tiles,
                      percentile (run.draw_ms, 0.5),
                      percentile (run.draw_ms, 0.95), percentile (run.draw_ms, 1.0), percentile (run.frame_ms, 0.5),
                      percentile (run.frame_ms, 0.95), percentile (run.frame_ms, 1.0),
                      run.interval_ms->len ? percentile (run.interval_ms, 0.5) : 0.0,
                      run.interval_ms->len ? percentile (run.interval_ms, 0.95) : 0.0);
      g_array_unref (run.frame_ms);
      g_array_unref (run.interval_ms);
      g_array_unref (run.draw_ms);
    }

  {
    g_autoptr (Shot) overlays = screenshot ("13a-pan-4096-overlays");

    g_assert_cmpint (overlays->width, >, 0);
  }
  /* after the pans at zoom 4: the screen at the centre shows the pattern's pixel there */
  g_object_set (view, "labels-visible", FALSE, "prediction-visible", FALSE, "uncertainty-visible", FALSE,
                "brightness", 0.0, NULL);
  {
    g_autoptr (Shot) shot = screenshot ("13-pan-4096");
    double w = gtk_widget_get_width (GTK_WIDGET (view)), h = gtk_widget_get_height (GTK_WIDGET (view));
    guint n_ok = 0;

    for (int k = 0; k < 25; k++)
      {
        double ix, iy;
        int x, y, c[3];
        double expect;

        emseg_slice_view_widget_to_image (view, w * (0.1 + 0.8 * (k % 5) / 4.0), h * (0.1 + 0.8 * (k / 5) / 4.0),
                                          &ix, &iy);
        ix = floor (ix) + 0.5;
        iy = floor (iy) + 0.5;
        image_to_window (ix, iy, &x, &y);
        shot_rgb (shot, x + 1, y + 1, c); /* +1: inside the 4-px pixel, off its edge */
        expect = 255.0 * (pan_pattern ((guint) ix, (guint) iy) - v->image_min) / (v->image_max - v->image_min);
        n_ok += abs (c[0] - (int) lrint (expect)) <= 2 && c[0] == c[1] && c[1] == c[2];
      }
    g_assert_cmpuint (n_ok, ==, 25);
  }

  /* Tiles meet without seams, also where a tile edge falls on a pixel's centre (zoom 4
   * shifted by half an image pixel) and at fractional zooms. */
  {
    const double seam_zooms[] = { 1.37, 4.0, 4.0, 2.5, 0.7 };
    const double seam_pans[] = { 0.0, 0.0, 2.0, 1.0, 0.5 };

    for (guint k = 0; k < G_N_ELEMENTS (seam_zooms); k++)
      {
        g_autofree char *name = g_strdup_printf ("14-tile-seams-%u", k);

        emseg_slice_view_zoom_at (view, seam_zooms[k], gtk_widget_get_width (GTK_WIDGET (view)) / 2.0,
                                  gtk_widget_get_height (GTK_WIDGET (view)) / 2.0);
        emseg_slice_view_pan (view, seam_pans[k], seam_pans[k]);
        check_tile_seams (view, v, name);
      }
  }

  /* A brush stroke converts only the tiles under it, and shows at once: 1:1, a short
   * stroke inside one tile of the 4096² slice. */
  emseg_slice_view_zoom_at (view, 1.0, gtk_widget_get_width (GTK_WIDGET (view)) / 2.0,
                            gtk_widget_get_height (GTK_WIDGET (view)) / 2.0);
  g_object_set (view, "labels-visible", TRUE, NULL);
  wait_for_paint (GTK_WIDGET (window));
  {
    double cx, cy, xs[2], ys[2];
    guint tiles = 0, n_tiles_visible;
    int x, y, c[3];
    g_autoptr (Shot) shot = NULL;

    emseg_slice_view_widget_to_image (view, gtk_widget_get_width (GTK_WIDGET (view)) / 2.0,
                                      gtk_widget_get_height (GTK_WIDGET (view)) / 2.0, &cx, &cy);
    /* the middle of the tile under the centre */
    xs[0] = floor (cx / 256) * 256 + 100;
    xs[1] = xs[0] + 50;
    ys[0] = ys[1] = floor (cy / 256) * 256 + 128;
    n_tiles_visible = (guint) ((ceil (gtk_widget_get_width (GTK_WIDGET (view)) / 256.0) + 1) *
                               (ceil (gtk_widget_get_height (GTK_WIDGET (view)) / 256.0) + 1));
    emseg_slice_view_set_tool (view, EMSEG_TOOL_BRUSH);
    emseg_slice_view_set_brush_label (view, EMSEG_LABEL_MEMBRANE);
    emseg_slice_view_set_brush_radius (view, 3.0);
    emseg_slice_view_paint_stroke (view, xs, ys, 2);
    emseg_slice_view_set_tool (view, EMSEG_TOOL_PAN);
    shot = screenshot_widget (GTK_WIDGET (view), "15-stroke-4096");
    emseg_slice_view_get_last_draw_ms (view, &tiles);
    g_test_message ("a stroke on the 4096² slice: %u tile(s) converted again (%u in view)", tiles, n_tiles_visible);
    g_assert_cmpuint (tiles, >=, 1);
    g_assert_cmpuint (tiles, <=, 1);
    g_assert_cmpuint (emseg_volume_label_plane (v, 0)[(gsize) ys[0] * PAN_SIZE + (gsize) xs[0] + 25], ==,
                      EMSEG_LABEL_MEMBRANE);
    emseg_slice_view_image_to_widget (view, xs[0] + 25.5, ys[0] + 0.5, &cx, &cy);
    x = (int) floor (cx);
    y = (int) floor (cy);
    shot_rgb (shot, x, y, c);
    g_assert_cmpint (c[0], >, c[1] + 40); /* the membrane red, on screen */
  }
  emseg_window_set_volume (window, NULL, NULL);
}

/* The first-run demo: a synthetic EM stack whose first slices carry exact labels, so
 * both label colours show over the image. */
/* The export dialog shows the stored exponent of the chosen checkpoint: the newest by
 * default, another one's when it is picked, 1 for a checkpoint without one. */
static void
test_export_dialog_gamma (void)
{
  const char *models[] = { "run-1-best", "run-2-best", "run-3-best", NULL };
  const double gammas[] = { 3.0, 1.0, 6.0 };
  GtkWidget *dialog = emseg_export_dialog_new (NULL, models, gammas, g_get_tmp_dir ());
  GType type = EMSEG_TYPE_EXPORT_DIALOG;
  GtkSpinButton *spin = GTK_SPIN_BUTTON (gtk_widget_get_template_child (dialog, type, "gamma_spin"));
  GtkDropDown *drop = GTK_DROP_DOWN (gtk_widget_get_template_child (dialog, type, "model_dropdown"));

  g_assert_cmpuint (gtk_drop_down_get_selected (drop), ==, 2);
  g_assert_cmpfloat (gtk_spin_button_get_value (spin), ==, 6.0);
  gtk_drop_down_set_selected (drop, 0);
  g_assert_cmpfloat (gtk_spin_button_get_value (spin), ==, 3.0);
  gtk_drop_down_set_selected (drop, 1);
  g_assert_cmpfloat (gtk_spin_button_get_value (spin), ==, 1.0);
  gtk_window_destroy (GTK_WINDOW (dialog));

  /* no exponents given: 1 */
  dialog = emseg_export_dialog_new (NULL, models, NULL, g_get_tmp_dir ());
  spin = GTK_SPIN_BUTTON (gtk_widget_get_template_child (dialog, type, "gamma_spin"));
  g_assert_cmpfloat (gtk_spin_button_get_value (spin), ==, 1.0);
  gtk_window_destroy (GTK_WINDOW (dialog));
}

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

/* `emseg-workbench PROJECT`: GApplication's open opens the project in a new window. */
static void
test_app_open_project (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = emseg_window_demo_project_path ();
  g_autoptr (GFile) file = NULL;
  EmsegWindow *opened;
  GList *windows;

  /* the demo project file, made the way a first run makes it */
  g_assert_true (emseg_window_open_demo (window, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  file = g_file_new_for_path (path);
  g_application_open (G_APPLICATION (app), &file, 1, "");
  windows = gtk_application_get_windows (GTK_APPLICATION (app));
  g_assert_nonnull (windows);
  opened = EMSEG_WINDOW (windows->data); /* most recently focused first: the new one */
  g_assert_true (opened != window);
  g_assert_nonnull (emseg_window_get_project (opened));
  g_assert_cmpstr (emseg_project_get_path (emseg_window_get_project (opened)), ==, path);
  g_assert_nonnull (emseg_slice_view_get_volume (emseg_window_get_view (opened)));
  g_assert_cmpuint (emseg_slice_view_get_volume (emseg_window_get_view (opened))->n_slices, ==, 12);
  gtk_window_destroy (GTK_WINDOW (opened));
  for (int i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
}

/* Every action with an accelerator is listed in the shortcuts window (Ctrl+?), and
 * "Estimate uncertainty" has one (Ctrl+U). */
static void
test_app_shortcuts (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) ui = g_resources_lookup_data ("/org/emseg/Workbench/gtk/help-overlay.ui",
                                                   G_RESOURCE_LOOKUP_FLAGS_NONE, &error);
  g_assert_no_error (error);
  g_autofree char *text = g_strndup (g_bytes_get_data (ui, NULL), g_bytes_get_size (ui));
  g_auto (GStrv) actions = gtk_application_list_action_descriptions (GTK_APPLICATION (app));
  guint n = 0;

  for (guint i = 0; actions[i]; i++) {
    g_autofree char *needle = g_strdup_printf ("<property name=\"action-name\">%s</property>",
                                               actions[i]);
    g_test_message ("%s", actions[i]);
    g_assert_nonnull (strstr (text, needle));
    n++;
  }
  g_assert_cmpuint (n, >=, 14);

  g_auto (GStrv) accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app),
                                                                 "win.estimate-uncertainty");
  g_assert_cmpuint (g_strv_length (accels), ==, 1);
  g_assert_cmpstr (accels[0], ==, "<Control>u");
}

/* A project with two stacks: the stack chooser appears, lists both with their sizes and
 * shows the one chosen. */
static void
test_window_two_stacks (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *first = write_generated_stack (&width, &height, &n, 0, NULL);
  g_autofree char *second = g_build_filename (g_get_tmp_dir (), "emseg-gui-second.tif", NULL);
  g_autofree char *project_path = g_build_filename (g_get_user_data_dir (), "two-stacks.emseg", NULL);
  g_autofree guint8 *pixels = g_malloc (64 * 48 * 3);
  GtkDropDown *chooser = GTK_DROP_DOWN (emseg_window_get_stack_chooser (window));
  EmsegVolume *v;
  gint64 second_id;

  for (gsize i = 0; i < 64 * 48 * 3; i++)
    pixels[i] = (guint8) (i * 37);
  g_assert_true (emseg_tiff_write_u8_stack (second, pixels, 64, 48, 3, &error));
  g_mkdir_with_parents (g_get_user_data_dir (), 0755);
  g_assert_true (emseg_window_open_project (window, project_path, TRUE, &error));
  g_assert_true (emseg_window_import_stack (window, first, NULL, &error));
  g_assert_no_error (error);
  spin_until (import_finished, NULL, 60.0);
  g_assert_false (gtk_widget_get_visible (GTK_WIDGET (chooser))); /* one stack: nothing to choose */
  g_assert_true (emseg_window_import_stack (window, second, NULL, &error));
  g_assert_no_error (error);
  /* copying into the open project locks the window (one writer at a time) until it ends */
  g_assert_false (gtk_widget_get_sensitive (gtk_window_get_child (GTK_WINDOW (window))));
  g_assert_false (gtk_widget_is_sensitive (GTK_WIDGET (emseg_window_get_view (window))));
  /* and opening another project waits */
  g_assert_false (emseg_window_open_project (window, project_path, FALSE, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  close_dialogs ();
  /* the actions that write are off: Ctrl+L would otherwise refuse with a dialog (no model) */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.label-from-prediction", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.estimate-uncertainty", NULL);
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 0);
  /* so do training and an export asked for from an open export dialog */
  g_assert_false (emseg_window_start_training (window, FALSE, TINY_SPEC, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (emseg_window_start_export (window, EMSEG_EXPORT_LABELS, NULL, 1, FALSE, FALSE, 1.0, first, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  spin_until (import_finished, NULL, 60.0);
  g_assert_true (gtk_widget_get_sensitive (gtk_window_get_child (GTK_WINDOW (window))));
  g_unlink (first);
  g_unlink (second);
  second_id = emseg_window_get_stack_id (window);
  g_assert_true (gtk_widget_get_visible (GTK_WIDGET (chooser)));
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (chooser)));
  g_assert_cmpuint (g_list_model_get_n_items (gtk_drop_down_get_model (chooser)), ==, 2);
  g_assert_cmpuint (gtk_drop_down_get_selected (chooser), ==, 1); /* the imported one is shown */
  {
    GtkStringObject *item = g_list_model_get_item (gtk_drop_down_get_model (chooser), 1);

    g_assert_nonnull (strstr (gtk_string_object_get_string (item), "(64×48×3)"));
    g_object_unref (item);
  }
  v = emseg_slice_view_get_volume (emseg_window_get_view (window));
  g_assert_cmpuint (v->width, ==, 64);

  /* choosing the first stack shows it */
  gtk_drop_down_set_selected (chooser, 0);
  g_assert_cmpint (emseg_window_get_stack_id (window), !=, second_id);
  v = emseg_slice_view_get_volume (emseg_window_get_view (window));
  g_assert_cmpuint (v->width, ==, width);
  g_assert_cmpuint (v->n_slices, ==, n);
  {
    g_autofree char *size = g_strdup_printf ("(%u×%u×%u)", width, height, n);

    g_assert_nonnull (strstr (emseg_window_get_status (window), "Showing stack"));
    g_assert_nonnull (strstr (emseg_window_get_status (window), size));
  }
  spin_until (always_false, NULL, 0.2);
  {
    g_autoptr (Shot) shot = screenshot ("16-two-stacks");
  }
  /* and back, by the window's function */
  g_assert_true (emseg_window_show_stack (window, second_id, &error));
  g_assert_cmpuint (gtk_drop_down_get_selected (chooser), ==, 1);
  g_assert_cmpuint (emseg_slice_view_get_volume (emseg_window_get_view (window))->n_slices, ==, 3);
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
  /* a display text: in the user's locale (the suite also runs under a decimal comma) */
  g_autofree char *want = g_strdup_printf ("layer a · epoch 1: %g", 0.001);
  g_assert_cmpstr (hover, ==, want);
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
}

static gboolean
check_finished (gpointer data)
{
  return !emseg_window_is_checking (window);
}

/* The text of the first message dialog of that type, or NULL (owned). */
static char *
message_dialog_text (GtkMessageType type)
{
  GtkWidget *dialog = find_message_dialog (type);
  char *text = NULL;

  if (dialog != NULL)
    g_object_get (dialog, "secondary-text", &text, NULL);
  return text;
}

/* Check Project…: everything read back on a worker thread, the window responsive meanwhile;
 * a sound project gives "No problems found", a checkpoint whose bytes are not a model (its
 * checksum matches) a warning naming it. */
static void
test_window_check_project (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("check.emseg", &width, &height, &n);
  g_autofree char *text = NULL;

  gtk_widget_activate_action (GTK_WIDGET (window), "win.check-project", NULL);
  g_assert_true (emseg_window_is_checking (window));
  g_assert_false (emseg_window_check_project (window, &error)); /* one at a time */
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  close_dialogs ();
  spin_until (check_finished, NULL, 60.0);
  g_assert_false (emseg_window_is_checking (window));
  text = message_dialog_text (GTK_MESSAGE_INFO);
  g_assert_nonnull (text);
  if (strstr (text, "Read back 4 slices, 3 label masks, 0 strokes, 0 models") == NULL)
    g_error ("check of a sound project: \"%s\"", text);
  g_clear_pointer (&text, g_free);
  close_dialogs ();

  g_assert_true (emseg_project_save_checkpoint (emseg_window_get_project (window), "not-a-model", 0, 0, "spec", NULL,
                                                "junk", 4, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (emseg_window_check_project (window, &error));
  spin_until (check_finished, NULL, 60.0);
  text = message_dialog_text (GTK_MESSAGE_WARNING);
  g_assert_nonnull (text);
  if (strstr (text, "1 damaged:") == NULL || strstr (text, "not-a-model") == NULL ||
      strstr (text, "does not load as a model") == NULL)
    g_error ("check of a damaged project: \"%s\"", text);
  close_dialogs ();
}

/* Labels of one class only (strokes along membranes, no cell labelled anywhere) would teach
 * the network that every pixel is membrane and ruin the model: the run fails at once with
 * the reason in the status line, the bar says "failed", and no checkpoint is written. */
static void
test_window_one_class_refused (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("one-class.emseg", &width, &height, &n);
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);
  EmsegProject *project = emseg_window_get_project (window);
  gint64 stack = emseg_window_get_stack_id (window);
  g_autofree guint8 *mask = g_malloc ((gsize) width * height);

  for (guint s = 0; s < 3; s++)
    {
      memset (mask, EMSEG_LABEL_UNLABELED, (gsize) width * height);
      for (guint x = 10; x < 60; x++)
        mask[(gsize) 20 * width + x] = EMSEG_LABEL_MEMBRANE;
      g_assert_true (emseg_project_write_mask (project, stack, s, mask, &error));
      g_assert_no_error (error);
    }
  emseg_train_panel_set_epochs (panel, 3);
  g_assert_true (emseg_window_start_training (window, FALSE, TINY_SPEC, &error));
  g_assert_no_error (error);
  spin_until (training_done, NULL, 60.0);
  g_assert_false (emseg_window_is_training (window));
  if (strstr (emseg_train_panel_get_status (panel), "are all membrane (100 pixels) and none cell interior") == NULL)
    g_error ("status after a one-class run: \"%s\"", emseg_train_panel_get_status (panel));
  g_assert_cmpstr (emseg_train_panel_get_progress_text (panel), ==, "failed");
  g_assert_null (emseg_window_get_best_model (window));
  {
    g_autoptr (GArray) cps = emseg_project_list_checkpoints (project, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (cps->len, ==, 0);
  }
}

/* A project with a stack and no model shows the shipped model's predictions (the default
 * model for prediction): opening it imports the model as checkpoint "shipped-isbi2012", the
 * overlay shows its prediction and the Train panel says so; "Label the rest from the
 * prediction" labels a slice from it. Without a shipped model installed a project stays
 * without one and says Train makes the first. */
static void
test_window_open_shows_shipped (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *models = g_dir_make_tmp ("emseg-models-XXXXXX", NULL);
  g_autofree char *model_path = g_build_filename (models, "isbi2012-resfcn.emsegmodel", NULL);
  g_autofree char *project_path = NULL;
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);

  project_path = new_project_with_stack ("no-shipped.emseg", &width, &height, &n);
  g_assert_null (emseg_window_get_best_model (window));
  g_assert_cmpstr (emseg_train_panel_get_status (panel), ==, "Ready: Train starts a new model on the labelled slices.");
  g_assert_false (emseg_window_label_from_prediction (window, &error));
  g_assert_nonnull (strstr (error->message, "this project has no model: Train one first"));
  g_clear_error (&error);
  /* the suggested (blue) start button: Train without a model, Fine-tune with one */
  GtkWidget *train_button = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL, "train_button"));
  GtkWidget *finetune_button = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL, "finetune_button"));
  g_assert_true (gtk_widget_has_css_class (train_button, "suggested-action"));
  g_assert_false (gtk_widget_has_css_class (finetune_button, "suggested-action"));
  g_free (project_path);

  write_model_file (model_path, TINY_SPEC ",dropout=0.1", 5, ENG_DTYPE_F16, "export_gamma=2\n");
  project_path = new_project_with_stack ("open-shipped.emseg", &width, &height, &n);
  /* opened again with a shipped model installed: it is copied in on a worker, the window
   * usable meanwhile and saying so; what needs a model waits. A write transaction held
   * here keeps the worker waiting for the lock (the busy timeout, 5 s) while this looks. */
  {
    sqlite3 *db = NULL;

    g_assert_cmpint (sqlite3_open (project_path, &db), ==, SQLITE_OK);
    sqlite3_busy_timeout (db, 5000);
    g_setenv ("EMSEG_MODELS_DIR", models, TRUE);
    g_assert_true (emseg_window_open_project (window, project_path, FALSE, &error));
    g_assert_no_error (error);
    g_setenv ("EMSEG_MODELS_DIR", "/nonexistent/emseg-models", TRUE);
    g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
    g_assert_true (emseg_window_is_adopting (window));
    g_assert_null (emseg_window_get_best_model (window));
    g_assert_cmpstr (emseg_window_get_prediction_state (window), ==, "Copying the shipped model into the project…");
    g_assert_nonnull (strstr (emseg_window_get_status (window), "Copying the shipped ISBI 2012 model"));
    g_assert_false (emseg_window_start_training (window, TRUE, NULL, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
    g_clear_error (&error);
    g_assert_false (emseg_window_use_model (window, "shipped-isbi2012", &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
    g_clear_error (&error);
    g_assert_cmpint (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close (db);
  }
  spin_until (adopt_finished, NULL, 60.0);
  g_assert_false (emseg_window_is_adopting (window));
  g_assert_null (strstr (emseg_window_get_status (window), "Copying"));
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "shipped-isbi2012");
  g_assert_nonnull (strstr (emseg_train_panel_get_status (panel), "the overlay shows the shipped ISBI 2012 model"));
  g_assert_false (gtk_widget_has_css_class (train_button, "suggested-action"));
  g_assert_true (gtk_widget_has_css_class (finetune_button, "suggested-action"));
  spin_until (overlay_shown, NULL, 60.0);
  g_assert_true (overlay_shown (NULL));
  /* a slice no model predicted yet: the engine thread works on it, and the window says so
   * beside the slice slider until the overlay arrives (once slice 1's request has ended:
   * one request is in flight at a time) */
  spin_until (no_prediction_state, NULL, 60.0);
  emseg_slice_view_set_slice (emseg_window_get_view (window), 1);
  g_assert_false (slice1_predicted (NULL));
  g_assert_cmpstr (emseg_window_get_prediction_state (window), ==, "Predicting slice 2…");
  {
    g_autoptr (Shot) predicting = screenshot ("15b-predicting");

    g_assert_cmpint (predicting->width, >, 0);
  }
  spin_until (slice1_predicted, NULL, 30.0);
  g_assert_true (slice1_predicted (NULL));
  spin_until (no_prediction_state, NULL, 5.0);
  g_assert_null (emseg_window_get_prediction_state (window));
  emseg_slice_view_set_slice (emseg_window_get_view (window), 0);
  /* "Label the rest from the prediction" (Ctrl+L): unlabelled pixels of the slice take the
   * overlay's word at P(cell) = 0.5, painted ones stay; one undo step takes it back */
  {
    EmsegProject *project = emseg_window_get_project (window);
    gint64 stack = emseg_window_get_stack_id (window);
    gsize plane = (gsize) width * height;
    g_autofree guint8 *mask = g_malloc (plane);
    const float *prob = emseg_volume_prediction_plane (emseg_slice_view_get_volume (emseg_window_get_view (window)), 0);
    guint64 n_labeled = 0;
    guint n_membrane = 0;

    memset (mask, EMSEG_LABEL_UNLABELED, plane);
    mask[0] = prob[0] < 0.5f ? EMSEG_LABEL_CELL : EMSEG_LABEL_MEMBRANE; /* against the prediction */
    g_assert_true (emseg_project_write_mask (project, stack, 0, mask, &error));
    g_assert_no_error (error);
    gtk_widget_activate_action (GTK_WIDGET (window), "win.label-from-prediction", NULL);
    g_assert_true (emseg_project_read_mask (project, stack, 0, mask, &n_labeled, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (n_labeled, ==, plane);
    g_assert_cmpuint (mask[0], ==, prob[0] < 0.5f ? EMSEG_LABEL_CELL : EMSEG_LABEL_MEMBRANE);
    for (gsize i = 1; i < plane; i++)
      {
        g_assert_cmpuint (mask[i], ==, prob[i] < 0.5f ? EMSEG_LABEL_MEMBRANE : EMSEG_LABEL_CELL);
        n_membrane += mask[i] == EMSEG_LABEL_MEMBRANE;
      }
    g_test_message ("labelled from the prediction: %u membrane pixels of %zu", n_membrane, plane);
    g_assert_cmpuint (emseg_volume_label_plane (emseg_slice_view_get_volume (emseg_window_get_view (window)), 0)[1], ==,
                      mask[1]);
    gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
    g_assert_true (emseg_project_read_mask (project, stack, 0, mask, &n_labeled, &error));
    g_assert_cmpuint (n_labeled, ==, 1);
  }
  /* reopened: the project's own copy, with nothing installed */
  g_assert_true (emseg_window_open_project (window, project_path, FALSE, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "shipped-isbi2012");
  {
    g_autoptr (GArray) cps = emseg_project_list_checkpoints (emseg_window_get_project (window), &error);

    g_assert_no_error (error);
    g_assert_cmpuint (cps->len, ==, 1);
  }
  /* Adapt Model to This Stack: the shipped model's BN statistics over this stack become
   * the checkpoint "shipped-isbi2012-adapted-to-<stack>", the current model, with the
   * shipped model's exponent; the overlay is predicted again with it. Adapting the adapted
   * model replaces it rather than growing the name. */
  {
    EmsegProject *project = emseg_window_get_project (window);
    g_auto (EmsegProjectStack) st = { 0 };
    g_autofree char *want = NULL;

    g_assert_true (emseg_project_get_stack (project, emseg_window_get_stack_id (window), &st, &error));
    want = g_strconcat ("shipped-isbi2012-adapted-to-", st.name, NULL);
    spin_until (overlay_shown, NULL, 60.0);
    spin_until (no_prediction_state, NULL, 60.0);
    for (guint round = 0; round < 2; round++)
      {
        g_autoptr (GArray) cps = NULL;
        g_auto (EmsegCheckpointInfo) info = { 0 };
        g_autoptr (GBytes) stored = NULL;

        g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.adapt-model", NULL));
        g_assert_true (emseg_window_is_adapting (window));
        g_assert_nonnull (strstr (emseg_window_get_status (window), round == 0 ? "Adapting shipped-isbi2012 to "
                                                                                 : "Adapting shipped-isbi2012-adapted-to-"));
        /* busy: no second adaptation, no Use Model, no fine-tune (it would start from the
         * model before its adaptation) meanwhile */
        g_assert_false (emseg_window_adapt_model (window, &error));
        g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
        g_clear_error (&error);
        g_assert_false (emseg_window_use_model (window, "shipped-isbi2012", &error));
        g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
        g_clear_error (&error);
        g_assert_false (emseg_window_start_training (window, TRUE, NULL, &error));
        g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
        g_clear_error (&error);
        spin_until (adapt_done, NULL, 60.0);
        g_assert_false (emseg_window_is_adapting (window));
        g_assert_cmpstr (emseg_window_get_best_model (window), ==, want);
        g_assert_nonnull (strstr (emseg_window_get_status (window), "Use Model goes back to"));
        stored = emseg_project_load_checkpoint (project, want, &info, &error);
        g_assert_no_error (error);
        /* the overlay's model changed: the slice is predicted again, with it */
        spin_until (slice0_predicted_by, &info.id, 60.0);
        g_assert_true (slice0_predicted_by (&info.id));
        g_assert_cmpfloat (emseg_gamma_from_meta (info.scores), ==, 2.0);
        g_assert_nonnull (strstr (info.scores, "adapted_from=shipped-isbi2012"));
        cps = emseg_project_list_checkpoints (project, &error);
        g_assert_cmpuint (cps->len, ==, 2);
      }
    /* Esc stops an adaptation: nothing stored, the current model stays */
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.adapt-model", NULL));
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.stop-work", NULL));
    spin_until (adapt_done, NULL, 60.0);
    g_assert_cmpstr (emseg_window_get_status (window), ==, "Adapting the model stopped; nothing was stored.");
    g_assert_cmpstr (emseg_window_get_best_model (window), ==, want);
    {
      g_autoptr (GArray) cps = emseg_project_list_checkpoints (project, &error);

      g_assert_cmpuint (cps->len, ==, 2);
    }
    g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 0);
    g_assert_true (emseg_window_use_model (window, "shipped-isbi2012", &error));
    g_assert_cmpstr (emseg_window_get_best_model (window), ==, "shipped-isbi2012");
  }
  g_unlink (model_path);
  g_rmdir (models);
}

/* A project without a model fine-tunes the shipped model: it is imported as checkpoint
 * "shipped-isbi2012" and a run starts from it (a tiny stand-in file, found through
 * $EMSEG_MODELS_DIR). */
static void
test_window_finetune_shipped (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("shipped-test.emseg", &width, &height, &n);
  g_autofree char *models = g_dir_make_tmp ("emseg-models-XXXXXX", NULL);
  g_autofree char *model_path = g_build_filename (models, "isbi2012-resfcn.emsegmodel", NULL);
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);
  GBytes *stored;

  write_model_file (model_path, TINY_SPEC ",dropout=0.1", 3, ENG_DTYPE_F16, "export_gamma=3\n");

  g_setenv ("EMSEG_MODELS_DIR", models, TRUE);
  emseg_train_panel_set_epochs (panel, 5000); /* stopped long before */
  g_assert_true (emseg_window_start_training (window, TRUE, NULL, &error));
  g_assert_no_error (error);
  /* until the first step the bar says what the engine does: scoring the starting weights */
  g_assert_cmpstr (emseg_train_panel_get_progress_text (panel), ==, "validating the starting model…");
  g_setenv ("EMSEG_MODELS_DIR", "/nonexistent/emseg-models", TRUE);
  {
    g_auto (EmsegCheckpointInfo) info = { 0 };

    stored = emseg_project_load_checkpoint (emseg_window_get_project (window), "shipped-isbi2012", &info, &error);
    g_assert_no_error (error);
    g_assert_nonnull (stored);
    g_bytes_unref (stored);
    /* its export exponent came along (the Export dialog's default for it) */
    g_assert_nonnull (info.scores);
    g_assert_cmpfloat (emseg_gamma_from_meta (info.scores), ==, 3.0);
  }
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "shipped-isbi2012");
  /* fine-tuned at the rate it was trained with: the panel shows it, the run records it */
  {
    EmsegTrainParams params;

    emseg_train_panel_get_params (panel, &params);
    g_assert_cmpfloat_with_epsilon (params.dropout, 0.1, 1e-6);
  }
  /* the starting model shows on the overlay while the fine-tune runs */
  spin_until (overlay_shown, NULL, 60.0);
  g_assert_true (overlay_shown (NULL));
  spin_until (always_false_until_step, panel, 60.0);
  g_signal_emit_by_name (panel, "stop-requested");
  spin_until (training_done, NULL, 60.0);
  g_assert_false (emseg_window_is_training (window));
  {
    g_autoptr (GArray) runs = emseg_project_list_runs (emseg_window_get_project (window), &error);

    g_assert_no_error (error);
    g_assert_cmpuint (runs->len, >=, 1);
    g_assert_nonnull (strstr (g_array_index (runs, EmsegRun, runs->len - 1).params, "dropout=0.1\n"));
  }
  g_unlink (model_path);
  g_rmdir (models);
}

/* Import Model: a model file becomes the project's checkpoint named after the file and the
 * overlay's model (its dropout in the panel); a second import of the same file gets -2
 * (nothing replaced); Use Model goes back to the first (marked in the menu, kept when the
 * project is reopened); a file that is not a model, an import and a Use Model while
 * training are refused, and the project keeps its checkpoints. */
static void
test_window_import_model (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("import-model.emseg", &width, &height, &n);
  g_autofree char *dir = g_dir_make_tmp ("emseg-import-XXXXXX", NULL);
  g_autofree char *model_path = g_build_filename (dir, "from-server.emsegmodel", NULL);
  g_autofree char *junk_path = g_build_filename (dir, "junk.emsegmodel", NULL);
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);

  write_model_file (model_path, TINY_SPEC ",dropout=0.3", 5, ENG_DTYPE_F32, "export_gamma=2\n");
  g_assert_true (g_file_set_contents (junk_path, "not a model", -1, &error));

  g_assert_true (emseg_window_import_model (window, model_path, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "from-server");
  {
    EmsegTrainParams params;

    emseg_train_panel_get_params (panel, &params);
    g_assert_cmpfloat_with_epsilon (params.dropout, 0.3, 1e-6);
  }
  spin_until (overlay_shown, NULL, 60.0);
  g_assert_true (overlay_shown (NULL));
  g_assert_true (emseg_window_import_model (window, model_path, &error));
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "from-server-2");
  /* Use Model: back to the first, marked in the menu, kept when the project is reopened */
  {
    GMenuModel *menu = G_MENU_MODEL (gtk_widget_get_template_child (GTK_WIDGET (window), EMSEG_TYPE_WINDOW, "model_menu"));
    g_autofree char *first = NULL;
    g_autofree char *second = NULL;

    gtk_widget_activate_action (GTK_WIDGET (window), "win.use-model", "s", "from-server");
    g_assert_cmpstr (emseg_window_get_best_model (window), ==, "from-server");
    g_assert_cmpint (g_menu_model_get_n_items (menu), ==, 2);
    g_assert_true (g_menu_model_get_item_attribute (menu, 0, G_MENU_ATTRIBUTE_LABEL, "s", &first));
    g_assert_true (g_menu_model_get_item_attribute (menu, 1, G_MENU_ATTRIBUTE_LABEL, "s", &second));
    g_assert_cmpstr (first, ==, "from-server (imported) — current");
    g_assert_cmpstr (second, ==, "from-server-2 (imported)");
    g_assert_true (emseg_window_open_project (window, project_path, FALSE, &error));
    g_assert_no_error (error);
    g_assert_cmpstr (emseg_window_get_best_model (window), ==, "from-server");
    g_assert_false (emseg_window_use_model (window, "nope", &error));
    g_assert_nonnull (strstr (error->message, "no model named 'nope'"));
    g_clear_error (&error);
    g_assert_true (emseg_window_use_model (window, "from-server-2", &error));
    g_assert_cmpstr (emseg_window_get_best_model (window), ==, "from-server-2");
  }

  g_assert_false (emseg_window_import_model (window, junk_path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_nonnull (strstr (error->message, junk_path));
  g_clear_error (&error);
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 1);
  close_dialogs ();

  emseg_train_panel_set_epochs (panel, 5000); /* stopped long before */
  {
    GtkEditable *val = GTK_EDITABLE (gtk_widget_get_template_child (GTK_WIDGET (panel), EMSEG_TYPE_TRAIN_PANEL,
                                                                     "val_entry"));

    gtk_editable_set_text (val, "none");
    g_assert_true (emseg_window_start_training (window, TRUE, NULL, &error));
    g_assert_no_error (error);
    gtk_editable_set_text (val, "");
    /* nothing validates this fine-tune: the status says how to go back */
    if (strstr (emseg_train_panel_get_status (panel), "no validation (the last weights are kept; Use Model ▸ "
                                                      "from-server-2 goes back)") == NULL)
      g_error ("status of a fine-tune without validation: \"%s\"", emseg_train_panel_get_status (panel));
  }
  g_assert_false (emseg_window_import_model (window, model_path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  close_dialogs ();
  g_assert_false (emseg_window_use_model (window, "from-server", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_signal_emit_by_name (panel, "stop-requested");
  spin_until (training_done, NULL, 60.0);
  {
    g_autoptr (GArray) models = emseg_project_list_checkpoints (emseg_window_get_project (window), &error);
    guint imported = 0;

    g_assert_no_error (error);
    for (guint i = 0; i < models->len; i++)
      imported += g_str_has_prefix (g_array_index (models, EmsegCheckpointInfo, i).name, "from-server");
    g_assert_cmpuint (imported, ==, 2);
  }
  g_unlink (model_path);
  g_unlink (junk_path);
  g_rmdir (dir);
}

/* Delete Model asks first (Cancel keeps the model); deleting another model leaves the
 * current one; deleting the current one leaves none, and its overlay goes with it. Esc
 * stops a compaction; Compact Project… then asks, locks the window while a worker rewrites
 * the file (nothing else may delete meanwhile), and gives the deleted models' space back
 * to the disk. */
static gboolean
compact_finished (gpointer data)
{
  return !emseg_window_is_compacting (window);
}

static guint
n_menu_items (const char *menu_id)
{
  return (guint) g_menu_model_get_n_items (
    G_MENU_MODEL (gtk_widget_get_template_child (GTK_WIDGET (window), EMSEG_TYPE_WINDOW, menu_id)));
}

static void
test_window_delete_compact (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("delete-compact.emseg", &width, &height, &n);
  g_autofree char *dir = g_dir_make_tmp ("emseg-delete-XXXXXX", NULL);
  g_autofree char *model_path = g_build_filename (dir, "m.emsegmodel", NULL);
  g_autofree char *text = NULL;
  EmsegVolume *v = emseg_slice_view_get_volume (emseg_window_get_view (window));
  GtkWidget *question;
  GStatBuf st;
  goffset before;

  /* base_width 16: about a megabyte of weights, so compacting has something to give back */
  write_model_file (model_path, "base_width=16,down=1/1,across=1", 5, ENG_DTYPE_F32, NULL);
  g_assert_true (emseg_window_import_model (window, model_path, &error));
  g_assert_true (emseg_window_import_model (window, model_path, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "m-2");
  spin_until (overlay_shown, NULL, 60.0);
  g_assert_cmpuint (n_menu_items ("delete_model_menu"), ==, 2);

  /* Cancel keeps it; Delete deletes it, the current model stays */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.delete-model", "s", "m");
  question = find_message_dialog (GTK_MESSAGE_QUESTION);
  g_assert_nonnull (question);
  gtk_dialog_response (GTK_DIALOG (question), GTK_RESPONSE_CANCEL);
  g_assert_cmpuint (n_menu_items ("delete_model_menu"), ==, 2);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.delete-model", "s", "m");
  gtk_dialog_response (GTK_DIALOG (find_message_dialog (GTK_MESSAGE_QUESTION)), GTK_RESPONSE_ACCEPT);
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 0);
  g_assert_cmpuint (n_menu_items ("delete_model_menu"), ==, 1);
  g_assert_cmpuint (n_menu_items ("model_menu"), ==, 1);
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "m-2");
  text = g_strdup (emseg_window_get_status (window));
  if (!g_str_has_prefix (text, "Deleted m (and ") || strstr (text, "). Current model: m-2. ") == NULL ||
      strstr (text, " MB are free inside the project") == NULL)
    g_error ("status after deleting a model: \"%s\"", emseg_window_get_status (window));

  /* the current one: no model, no overlay */
  g_assert_true (emseg_window_delete_model (window, "m-2", &error));
  g_assert_no_error (error);
  g_assert_null (emseg_window_get_best_model (window));
  g_assert_null (emseg_volume_prediction_plane (v, 0));
  g_assert_cmpuint (n_menu_items ("delete_model_menu"), ==, 0);
  g_assert_nonnull (strstr (emseg_window_get_status (window), "No model left"));
  g_assert_false (emseg_window_delete_model (window, "m-2", &error));
  g_assert_error (error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Esc stops a compaction: a write transaction held here keeps the worker waiting for the
   * lock (SQLite's busy timeout, 5 s) until the flag is up, so VACUUM meets it at its first
   * step; the window is unlocked and nothing changed */
  {
    sqlite3 *db = NULL;

    g_assert_cmpint (sqlite3_open (project_path, &db), ==, SQLITE_OK);
    sqlite3_busy_timeout (db, 5000);
    g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
    g_assert_true (emseg_window_compact_project (window, &error));
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.stop-work", NULL));
    g_assert_cmpint (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close (db);
  }
  spin_until (compact_finished, NULL, 60.0);
  g_assert_cmpstr (emseg_window_get_status (window), ==, "Compacting stopped; the project is as it was.");
  g_assert_true (gtk_widget_get_sensitive (gtk_window_get_child (GTK_WINDOW (window))));
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 0);

  /* Compact Project…: asked, the window locked meanwhile, the file smaller after */
  g_assert_cmpint (g_stat (project_path, &st), ==, 0);
  before = st.st_size;
  {
    g_autofree char *wal = g_strconcat (project_path, "-wal", NULL);

    if (g_stat (wal, &st) == 0)
      before += st.st_size;
  }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.compact-project", NULL);
  g_free (text);
  text = message_dialog_text (GTK_MESSAGE_QUESTION);
  g_assert_nonnull (strstr (text, " MB inside "));
  gtk_dialog_response (GTK_DIALOG (find_message_dialog (GTK_MESSAGE_QUESTION)), GTK_RESPONSE_ACCEPT);
  g_assert_true (emseg_window_is_compacting (window));
  g_assert_false (gtk_widget_get_sensitive (gtk_window_get_child (GTK_WINDOW (window))));
  g_assert_false (emseg_window_compact_project (window, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  spin_until (compact_finished, NULL, 60.0);
  g_assert_true (gtk_widget_get_sensitive (gtk_window_get_child (GTK_WINDOW (window))));
  g_assert_cmpuint (count_message_dialogs (GTK_MESSAGE_ERROR), ==, 0);
  g_assert_nonnull (strstr (emseg_window_get_status (window), "Project compacted: "));
  g_assert_cmpint (g_stat (project_path, &st), ==, 0);
  g_assert_cmpint (st.st_size, <, before - 1000000);
  /* a second time there is nothing to give back: said, not asked */
  gtk_widget_activate_action (GTK_WIDGET (window), "win.compact-project", NULL);
  g_assert_null (find_message_dialog (GTK_MESSAGE_QUESTION));
  g_free (text);
  text = message_dialog_text (GTK_MESSAGE_INFO);
  g_assert_nonnull (strstr (text, "has no free space inside"));
  close_dialogs ();
  /* the window's own connection writes on after it */
  g_assert_true (emseg_window_import_model (window, model_path, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (emseg_window_get_best_model (window), ==, "m");
  spin_until (overlay_shown, NULL, 60.0);
  g_unlink (model_path);
  g_rmdir (dir);
}

/* "Stop and Close" while training: the window goes, its engine thread is joined, and the
 * project records the run as cancelled with its checkpoints kept; a new window opens it. */
static gboolean
pointer_cleared (gpointer data)
{
  return *(gpointer *) data == NULL;
}

static void
test_window_stop_and_close (void)
{
  g_autoptr (GError) error = NULL;
  guint width, height, n;
  g_autofree char *project_path = new_project_with_stack ("stop-close.emseg", &width, &height, &n);
  EmsegTrainPanel *panel = emseg_window_get_train_panel (window);
  g_autoptr (EmsegProject) p = NULL;
  g_autoptr (GArray) runs = NULL;
  g_autoptr (GArray) checkpoints = NULL;
  EmsegWindow *closing = window;
  HeatWait two_epochs = { panel, 2 }; /* epoch 1's checkpoint is stored before epoch 2 */
  EmsegRun *run;

  emseg_train_panel_set_epochs (panel, 5000); /* stopped long before */
  g_assert_true (emseg_window_start_training (window, FALSE, TINY_SPEC, &error));
  g_assert_no_error (error);
  spin_until (heatmap_and_curve, &two_epochs, 60.0);
  g_assert_true (emseg_window_is_training (window));

  g_object_add_weak_pointer (G_OBJECT (closing), (gpointer *) &closing);
  gtk_window_close (GTK_WINDOW (window));
  g_assert_nonnull (emseg_window_get_close_question (window));
  gtk_dialog_response (GTK_DIALOG (emseg_window_get_close_question (window)), GTK_RESPONSE_ACCEPT);
  spin_until (pointer_cleared, &closing, 30.0);
  g_assert_null (closing); /* destroyed and finalized: the engine thread was joined */

  p = emseg_project_open (project_path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_assert_no_error (error);
  runs = emseg_project_list_runs (p, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (runs->len, ==, 1);
  run = &g_array_index (runs, EmsegRun, 0);
  g_assert_cmpstr (run->status, ==, "cancelled");
  g_assert_nonnull (run->ended);
  checkpoints = emseg_project_list_checkpoints (p, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (checkpoints->len, >=, 1);
  g_clear_pointer (&p, emseg_project_close);

  /* the application goes on: a new window opens the project, idle */
  open_in_new_window (project_path);
  g_assert_false (emseg_window_is_training (window));
}

/* Fails when a file in dir starts with prefix. */
static void
assert_no_project_named (const char *dir, const char *prefix)
{
  GDir *d = g_dir_open (dir, 0, NULL);

  for (const char *name; d != NULL && (name = g_dir_read_name (d)) != NULL;)
    if (g_str_has_prefix (name, prefix))
      g_error ("a stopped import left %s behind", name);
  if (d != NULL)
    g_dir_close (d);
}

/* Opening a bare stack copies it into its new project on a worker: the window is usable
 * meanwhile and says how far it is; Esc stops the copy, and closing the window asks first,
 * then stops it and joins the worker; neither leaves a half-made project behind. */
static void
test_window_close_while_importing (void)
{
  enum { SIDE = 2048, SLICES = 24 };
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("emseg-gui-import-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "slow-to-copy.tif", NULL);
  g_autofree char *projects = g_build_filename (g_get_user_data_dir (), "emseg", "projects", NULL);
  g_autofree guint8 *bytes = g_malloc ((gsize) SIDE * SIDE * SLICES);
  EmsegWindow *closing = window;
  GRand *rand = g_rand_new_with_seed (7);

  /* noise does not compress: every slice costs the worker its full size */
  for (gsize i = 0; i < (gsize) SIDE * SIDE * SLICES; i++)
    bytes[i] = (guint8) g_rand_int (rand);
  g_rand_free (rand);
  g_assert_true (emseg_tiff_write_u8_stack (path, bytes, SIDE, SIDE, SLICES, &error));
  g_assert_no_error (error);
  /* Esc stops it: the status says so and nothing is kept */
  g_assert_true (emseg_window_open_path (window, path, &error));
  g_assert_true (emseg_window_is_importing (window));
  gtk_widget_activate_action (GTK_WIDGET (window), "win.stop-work", NULL);
  spin_until (import_finished, NULL, 60.0);
  g_assert_cmpstr (emseg_window_get_status (window), ==, "Stopped opening slow-to-copy.tif: nothing of it was kept.");
  assert_no_project_named (projects, "slow-to-copy");
  /* closing the window stops it too */
  g_assert_true (emseg_window_open_path (window, path, &error));
  g_assert_no_error (error);
  g_assert_true (emseg_window_is_importing (window));
  /* a second stack is refused while this one is copied */
  g_assert_false (emseg_window_open_path (window, path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "A stack is being opened"));
  g_clear_error (&error);
  close_dialogs ();

  g_object_add_weak_pointer (G_OBJECT (closing), (gpointer *) &closing);
  gtk_window_close (GTK_WINDOW (window));
  g_assert_true (emseg_window_is_importing (window)); /* still copying: the stack takes seconds */
  g_assert_nonnull (emseg_window_get_close_question (window));
  gtk_dialog_response (GTK_DIALOG (emseg_window_get_close_question (window)), GTK_RESPONSE_ACCEPT);
  spin_until (pointer_cleared, &closing, 30.0);
  g_assert_null (closing); /* finalized: the worker was joined */
  assert_no_project_named (projects, "slow-to-copy");
  g_unlink (path);
  g_rmdir (dir);

  window = emseg_window_new (GTK_APPLICATION (app));
  gtk_window_set_default_size (GTK_WINDOW (window), 1200, 960);
  gtk_window_present (GTK_WINDOW (window));
}

int
main (int argc, char *argv[])
{
  g_autoptr (GError) error = NULL;
  g_autofree char *recent_dir = NULL;
  g_autofree char *recent_file = NULL;
  g_autofree char *tmp_dir = NULL;
  int status;

  /* A temporary folder of our own: the tests write fixed names under g_get_tmp_dir (), and
   * meson runs this program twice at once (gui and gui-comma-locale). Set before anything
   * asks GLib for it, since g_get_tmp_dir () keeps its first answer (so not made with
   * g_dir_make_tmp, which asks). */
  tmp_dir = g_build_filename (g_getenv ("TMPDIR") ? g_getenv ("TMPDIR") : "/tmp",
                              "emseg-gui-XXXXXX", NULL);
  g_assert_nonnull (g_mkdtemp (tmp_dir));
  g_setenv ("TMPDIR", tmp_dir, TRUE);
  g_assert_cmpstr (g_get_tmp_dir (), ==, tmp_dir);

  /* GTK's recent-files singleton keeps the data folder it was created with: create it
   * first, in a folder that outlives the per-test ones of G_TEST_OPTION_ISOLATE_DIRS. */
  recent_dir = g_dir_make_tmp ("emseg-gui-recent-XXXXXX", &error);
  g_assert_no_error (error);
  g_setenv ("XDG_DATA_HOME", recent_dir, TRUE);
  gtk_init ();
  g_assert_nonnull (gtk_recent_manager_get_default ());
  /* The gui-comma-locale run: gtk_init took the locale from LC_ALL as the workbench does;
   * if that locale is missing, the run would pass in C and prove nothing. */
  if (g_getenv ("EMSEG_TEST_DECIMAL_COMMA") != NULL
      && strcmp (localeconv ()->decimal_point, ",") != 0)
    g_error ("EMSEG_TEST_DECIMAL_COMMA is set but the decimal point is '%s' (LC_ALL=%s): "
             "the locale is missing (tools/deps.sh test generates de_DE.UTF-8)",
             localeconv ()->decimal_point, g_getenv ("LC_ALL"));
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  /* A non-unique application: a workbench already running on this session must not
   * receive our windows. */
  app = emseg_application_new (G_APPLICATION_NON_UNIQUE);
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);
  window = emseg_window_new (GTK_APPLICATION (app));
  gtk_window_set_default_size (GTK_WINDOW (window), 1200, 960);
  gtk_window_present (GTK_WINDOW (window));

  /* No shipped model for these tests: "fine-tune without a model" must be refused. */
  g_setenv ("EMSEG_MODELS_DIR", "/nonexistent/emseg-models", TRUE);
  g_test_add_func ("/gui/history", test_history);
  g_test_add_func ("/gui/brush-matches-store", test_brush_matches_store);
  g_test_add_func ("/gui/volume-from-project", test_volume_from_project);
  g_test_add_func ("/gui/volume-prediction-budget", test_volume_prediction_budget);
  g_test_add_func ("/gui/volume-uncertainty-budget", test_volume_uncertainty_budget);
  g_test_add_func ("/gui/plot-offscreen", test_plot_offscreen);
  g_test_add_func ("/gui/window/paint-undo", test_window_paint_undo);
  g_test_add_func ("/gui/window/training-panel", test_window_training_panel);
  g_test_add_func ("/gui/window/train-export", test_window_train_export);
  g_test_add_func ("/gui/export-dialog-gamma", test_export_dialog_gamma);
  g_test_add_func ("/gui/window/two-stacks", test_window_two_stacks);
  g_test_add_func ("/gui/window/check-project", test_window_check_project);
  g_test_add_func ("/gui/window/one-class-refused", test_window_one_class_refused);
  g_test_add_func ("/gui/window/open-shows-shipped", test_window_open_shows_shipped);
  g_test_add_func ("/gui/window/finetune-shipped", test_window_finetune_shipped);
  g_test_add_func ("/gui/window/import-model", test_window_import_model);
  g_test_add_func ("/gui/window/delete-compact", test_window_delete_compact);
  g_test_add_func ("/gui/window/close-while-importing", test_window_close_while_importing);
  g_test_add_func ("/gui/window/stop-and-close", test_window_stop_and_close);
  g_test_add_func ("/gui/window/demo", test_window_demo);
  g_test_add_func ("/gui/window/pan-4096", test_window_pan_4096);
  g_test_add_func ("/gui/app/open-project", test_app_open_project);
  g_test_add_func ("/gui/app/shortcuts", test_app_shortcuts);
  status = g_test_run ();

  gtk_window_destroy (GTK_WINDOW (window));
  for (int i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
  g_object_unref (app);
  recent_file = g_build_filename (recent_dir, "recently-used.xbel", NULL);
  g_unlink (recent_file);
  g_rmdir (recent_dir);
  emseg_test_remove_tree (tmp_dir);
  return status;
}
