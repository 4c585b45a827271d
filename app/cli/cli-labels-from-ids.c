/* cli-labels-from-ids.c — `emseg labels-from-ids`: an object-id stack (one value per cell,
 * as SNEMI3D and CREMI ship their ground truth) written as emseg labels (0 = membrane,
 * 255 = cell, 128 = unlabeled), membrane drawn where two objects touch. The result is an
 * ordinary label file: every command and the workbench take it, and a person can look at it
 * before training on it. */
#include <stdio.h>
#include <string.h>

#include "cli-commands.h"
#include "emseg-labels.h"

int
emseg_cli_labels_from_ids(int argc, char **argv)
{
  g_autofree char *ids_path = NULL, *out_path = NULL, *zero = NULL;
  gint membrane_px = EMSEG_LABELS_DEFAULT_MEMBRANE_PX;
  GOptionEntry entries[] = {
    { "ids", 0, 0, G_OPTION_ARG_FILENAME, &ids_path, "Object-id stack (TIFF or PNG folder; integer, or float holding whole numbers)", "STACK" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Label stack to write (8-bit TIFF)", "LABELS" },
    { "membrane-px", 0, 0, G_OPTION_ARG_INT, &membrane_px, "Membrane pixels on each side of a boundary between two objects (default 3: 6 pixels wide, as ISBI 2012's labels at 4 nm per pixel)", "N" },
    { "zero", 0, 0, G_OPTION_ARG_STRING, &zero, "What id 0 is: membrane (default) or unlabeled (left out of training)", "membrane|unlabeled" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new(
      "- turn object ids into labels: membrane where two objects touch, cell elsewhere");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg labels-from-ids: %s\n", error->message);
    return 2;
  }
  if (!ids_path || !out_path || argc > 1) {
    fprintf(stderr, "emseg labels-from-ids: --ids and --out are required, nothing else "
                    "(see --help)\n");
    return 2;
  }
  if (membrane_px < 1 || membrane_px > EMSEG_LABELS_MAX_MEMBRANE_PX) {
    fprintf(stderr, "emseg labels-from-ids: --membrane-px must be 1 to %d, not %d\n",
            EMSEG_LABELS_MAX_MEMBRANE_PX, membrane_px);
    return 2;
  }
  if (zero && strcmp(zero, "membrane") != 0 && strcmp(zero, "unlabeled") != 0) {
    fprintf(stderr, "emseg labels-from-ids: --zero is membrane or unlabeled, not %s\n", zero);
    return 2;
  }
  gboolean zero_unlabeled = zero && strcmp(zero, "unlabeled") == 0;
  g_autoptr(EmsegStack) ids = emseg_stack_open(ids_path, &error);
  if (ids == NULL) {
    fprintf(stderr, "emseg labels-from-ids: %s\n", error->message);
    return 1;
  }
  guint w = emseg_stack_get_width(ids), h = emseg_stack_get_height(ids);
  guint n = emseg_stack_get_n_slices(ids);
  gsize plane = (gsize)w * h;
  g_autofree guint8 *page = g_try_malloc(plane);
  g_autoptr(EmsegStackWriter) writer =
      page ? emseg_stack_writer_new(out_path, EMSEG_SAMPLE_U8, w, h, n, &error) : NULL;
  if (writer == NULL) {
    fprintf(stderr, "emseg labels-from-ids: %s\n",
            error ? error->message : "not enough memory for one slice");
    return 1;
  }
  guint64 counts[3] = { 0 }; /* membrane, unlabeled, cell */
  for (guint z = 0; z < n; z++) {
    if (!emseg_labels_read_ids(ids, z, (guint)membrane_px, zero_unlabeled, page, &error) ||
        !emseg_stack_writer_append(writer, page, &error)) {
      fprintf(stderr, "emseg labels-from-ids: %s\n", error->message);
      return 1; /* the writer's free removes its temporary file: no half stack */
    }
    for (gsize i = 0; i < plane; i++)
      counts[page[i] == 0 ? 0 : page[i] == 128 ? 1 : 2]++;
  }
  if (!emseg_stack_writer_finish(writer, &error)) {
    fprintf(stderr, "emseg labels-from-ids: %s\n", error->message);
    return 1;
  }
  /* the membrane share lets a person judge --membrane-px: ISBI 2012's labels are ~22 % */
  double total = (double)plane * n;
  printf("wrote %s: %u slices of %u×%u, %.1f %% membrane, %.1f %% cell", out_path, n, w, h,
         100.0 * counts[0] / total, 100.0 * counts[2] / total);
  if (zero_unlabeled)
    printf(", %.1f %% unlabeled", 100.0 * counts[1] / total);
  printf("\n");
  return 0;
}
