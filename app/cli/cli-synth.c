/* cli-synth.c — `emseg synth`: writes a generated EM-like stack and its labels
 * (engine/augment/eng-synth.h) so the demo job and tests need no downloaded data. */
#include <stdio.h>

#include "cli-commands.h"
#include "emseg-stack.h"
#include "eng-synth.h"

int
emseg_cli_synth(int argc, char **argv)
{
  g_autofree char *images_path = NULL, *labels_path = NULL;
  int size = 256, slices = 10;
  gint64 seed = 1;
  GOptionEntry entries[] = {
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack to write (8-bit TIFF)", "TIFF" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &labels_path, "Label stack to write (255 = cell, 0 = membrane)", "TIFF" },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, "Width and height (default 256)", "N" },
    { "slices", 0, 0, G_OPTION_ARG_INT, &slices, "Number of slices (default 10)", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed (default 1)", "S" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- write a synthetic EM-like stack");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg synth: %s\n", error->message);
    return 2;
  }
  if (!images_path || !labels_path || size < 16 || size > 8192 || slices < 1 || slices > 1000) {
    fprintf(stderr, "emseg synth: need --images and --labels, --size 16..8192, --slices 1..1000\n");
    return 2;
  }
  gsize plane = (gsize) size * (gsize) size;
  g_autofree guint8 *img = g_new(guint8, plane * (gsize) slices);
  g_autofree guint8 *lab = g_new(guint8, plane * (gsize) slices);
  EngSynthParams p;
  eng_synth_params_init(&p, (uint64_t) seed);
  EngError err;
  if (eng_synth_stack(img, lab, &p, 0, (size_t) slices, (size_t) size, (size_t) size, &err) != ENG_OK) {
    fprintf(stderr, "emseg synth: %s\n", err.message);
    return 1;
  }
  if (!emseg_tiff_write_u8_stack(images_path, img, (guint) size, (guint) size, (guint) slices, &error) ||
      !emseg_tiff_write_u8_stack(labels_path, lab, (guint) size, (guint) size, (guint) slices, &error)) {
    fprintf(stderr, "emseg synth: %s\n", error->message);
    return 1;
  }
  printf("wrote %s and %s (%d slices of %dx%d, seed %" G_GINT64_FORMAT ")\n", images_path,
         labels_path, slices, size, size, seed);
  return 0;
}
