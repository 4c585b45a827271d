/* bench-stroke.c — how long one brush stroke takes to save in the project store (and to
 * undo) on big slices, on the GUI thread: one transaction that rewrites the compressed
 * 256 x 256 mask tiles under the stroke (until schema 3 it rewrote the slice's whole mask).
 * Also how long reading a whole mask takes (every tile), which opening a project does per
 * slice. A benchmark: prints figures, asserts nothing.
 *
 *   bench-stroke [SIDE [STROKES]]   default 4096 20
 *
 * Two slices: slice 0 fully labeled (an imported label page: left half membrane, right
 * half cell, plus noise-like speckle so it compresses like real labels), slice 1 without
 * labels before the strokes. Scratch files live in a temporary folder, removed at the end. */
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-project.h"
#include "emseg-stack.h"

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void
report(const char *what, double *ms, guint n)
{
  qsort(ms, n, sizeof *ms, cmp_double);
  printf("%-34s median %7.1f ms   min %7.1f   max %7.1f   (%u runs)\n", what, ms[n / 2], ms[0],
         ms[n - 1], n);
}

int
main(int argc, char **argv)
{
  guint side = argc > 1 ? (guint)atoi(argv[1]) : 4096;
  guint n_strokes = argc > 2 ? (guint)atoi(argv[2]) : 20;
  if (side < 64 || n_strokes < 1) {
    fprintf(stderr, "usage: bench-stroke [SIDE>=64 [STROKES>=1]]\n");
    return 2;
  }
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("emseg-bench-stroke-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *images = g_build_filename(dir, "images.tif", NULL);
  g_autofree char *labels = g_build_filename(dir, "labels.tif", NULL);
  g_autofree char *project = g_build_filename(dir, "bench.emseg", NULL);
  gsize plane = (gsize)side * side;
  g_autofree guint8 *pix = g_malloc(plane * 2);
  GRand *rng = g_rand_new_with_seed(1);
  for (gsize i = 0; i < plane * 2; i++)
    pix[i] = (guint8)g_rand_int_range(rng, 0, 256);
  g_autofree guint8 *lab = g_malloc(plane);
  for (gsize i = 0; i < plane; i++)
    lab[i] = (i % side) < side / 2 ? 0 : 255;
  for (guint k = 0; k < plane / 50; k++) /* speckle: 2 % of pixels flipped */
    lab[g_rand_int_range(rng, 0, (gint32)plane)] ^= 255;
  if (!emseg_tiff_write_u8_stack(images, pix, side, side, 2, &error) ||
      !emseg_tiff_write_u8_stack(labels, lab, side, side, 1, &error)) {
    fprintf(stderr, "bench-stroke: %s\n", error->message);
    return 1;
  }
  EmsegProject *p = emseg_project_open(project, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_autoptr(EmsegStack) is = p ? emseg_stack_open(images, &error) : NULL;
  g_autoptr(EmsegStack) ls = is ? emseg_stack_open(labels, &error) : NULL;
  gint64 id = 0;
  if (ls == NULL || !emseg_project_import_stack(p, "bench", is, ls, &id, &error)) {
    fprintf(stderr, "bench-stroke: %s\n", error->message);
    return 1;
  }
  printf("stroke save in a project, %u x %u slices (build with optimization for real figures)\n",
         side, side);
  double *ms = g_new(double, n_strokes);
  for (guint slice = 0; slice < 2; slice++) {
    for (guint s = 0; s < n_strokes; s++) {
      /* a 40-point stroke of radius 6 somewhere in the slice */
      float xy[80];
      float x0 = (float)g_rand_double_range(rng, 100, side - 300);
      float y0 = (float)g_rand_double_range(rng, 100, side - 300);
      for (guint k = 0; k < 40; k++) {
        xy[2 * k] = x0 + 5.0f * k;
        xy[2 * k + 1] = y0 + 2.0f * k;
      }
      gint64 t0 = g_get_monotonic_time();
      if (!emseg_project_apply_stroke(p, id, slice, EMSEG_LABEL_MEMBRANE, 6.0, xy, 40, NULL,
                                      &error)) {
        fprintf(stderr, "bench-stroke: %s\n", error->message);
        return 1;
      }
      ms[s] = (g_get_monotonic_time() - t0) / 1000.0;
    }
    report(slice == 0 ? "stroke, fully labeled slice" : "stroke, slice without labels", ms,
           n_strokes);
  }
  for (guint s = 0; s < n_strokes; s++) {
    gint64 t0 = g_get_monotonic_time();
    if (!emseg_project_undo(p, id, NULL, NULL, NULL, &error)) {
      fprintf(stderr, "bench-stroke: %s\n", error->message);
      return 1;
    }
    ms[s] = (g_get_monotonic_time() - t0) / 1000.0;
  }
  report("undo", ms, n_strokes);
  g_autofree guint8 *mask = g_malloc(plane);
  for (guint s = 0; s < n_strokes; s++) {
    gint64 t0 = g_get_monotonic_time();
    if (!emseg_project_read_mask(p, id, 0, mask, NULL, &error)) {
      fprintf(stderr, "bench-stroke: %s\n", error->message);
      return 1;
    }
    ms[s] = (g_get_monotonic_time() - t0) / 1000.0;
  }
  report("read whole mask, fully labeled", ms, n_strokes);
  g_free(ms);
  g_rand_free(rng);
  emseg_project_close(p);
  /* the project with its WAL side files, the two stacks, the folder */
  const char *suffixes[] = { "", "-wal", "-shm" };
  for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
    g_autofree char *f = g_strconcat(project, suffixes[i], NULL);
    g_unlink(f);
  }
  g_unlink(images);
  g_unlink(labels);
  g_rmdir(dir);
  return 0;
}
