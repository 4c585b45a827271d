/* cli-augment.c — `emseg augment-preview`: writes a few augmented image/label pairs as PNG
 * so that a person can check the training recipe by eye (issue 5): the same transform
 * must move image and labels together, membranes must stay thin and connected, and the
 * borders must be reflected, not black.
 *
 * Input is one slice of a stack read through app/io (any type the reader supports) and an
 * optional label stack, or a synthetic EM-like slice (eng-synth.h) when --images is absent.
 * app/io has no PNG writer (its writers produce TIFF stacks), so a small one is kept here:
 * 8-bit grey and RGB, with libpng's errors turned into a GError through its longjmp. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "cli-commands.h"
#include "emseg-labels.h"
#include "emseg-stack.h"
#include "eng-augment.h"
#include "eng-synth.h"

#define SYNTH_SIZE 512

/* Writes a width×height PNG of `channels` (1 = grey, 3 = RGB) 8-bit samples. */
static gboolean
write_png(const char *path, const guint8 *pixels, guint width, guint height, int channels,
          GError **error)
{
  FILE *f = g_fopen(path, "wb");
  if (!f) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot write %s: %s", path,
                g_strerror(e));
    return FALSE;
  }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOMEM, "%s: libpng could not start", path);
    return FALSE;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "%s: libpng failed while writing", path);
    return FALSE;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, width, height, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (guint y = 0; y < height; y++)
    png_write_row(png, (png_const_bytep) (pixels + (gsize) y * width * (gsize) channels));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  if (fclose(f) != 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot finish %s: %s", path,
                g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

/* The slice to augment, in display grey levels (0..255 as floats) so that bilinear output
 * maps straight back to 8 bits. */
typedef struct {
  guint width, height;
  float *image;  /* (height, width) */
  guint8 *labels; /* (height, width) 255 = cell, 0 = membrane; NULL if none */
} Input;

static void
input_clear(Input *in)
{
  g_free(in->image);
  g_free(in->labels);
}

static gboolean
load_input(Input *in, const char *images, const char *labels, guint slice, guint64 seed,
           GError **error)
{
  if (!images) {
    EngSynthParams sp;
    eng_synth_params_init(&sp, seed);
    EngError err = { 0 };
    in->width = in->height = SYNTH_SIZE;
    g_autofree guint8 *raw = g_malloc((gsize) SYNTH_SIZE * SYNTH_SIZE);
    in->labels = g_malloc((gsize) SYNTH_SIZE * SYNTH_SIZE);
    if (eng_synth_slice(raw, in->labels, &sp, slice, SYNTH_SIZE, SYNTH_SIZE, &err) != ENG_OK) {
      g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "synthetic slice: %s", err.message);
      return FALSE;
    }
    in->image = g_new(float, (gsize) SYNTH_SIZE * SYNTH_SIZE);
    for (gsize i = 0; i < (gsize) SYNTH_SIZE * SYNTH_SIZE; i++)
      in->image[i] = raw[i];
    return TRUE;
  }

  g_autoptr(EmsegStack) stack = emseg_stack_open(images, error);
  if (!stack)
    return FALSE;
  guint n = emseg_stack_get_n_slices(stack);
  if (slice >= n) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: slice %u requested, the stack has %u (0..%u)", images, slice, n, n - 1);
    return FALSE;
  }
  in->width = emseg_stack_get_width(stack);
  in->height = emseg_stack_get_height(stack);
  gsize npix = (gsize) in->width * in->height;
  in->image = g_new(float, npix);
  if (!emseg_stack_read_float(stack, slice, in->image, error))
    return FALSE;
  /* 8-bit slices are shown as they are; others are stretched from their own range */
  if (emseg_stack_get_sample_type(stack) != EMSEG_SAMPLE_U8) {
    float lo = in->image[0], hi = in->image[0];
    for (gsize i = 1; i < npix; i++) {
      lo = MIN(lo, in->image[i]);
      hi = MAX(hi, in->image[i]);
    }
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    for (gsize i = 0; i < npix; i++)
      in->image[i] = (in->image[i] - lo) * scale;
  }

  if (labels) {
    g_autoptr(EmsegStack) ls = emseg_stack_open(labels, error);
    if (!ls)
      return FALSE;
    if (emseg_stack_get_width(ls) != in->width || emseg_stack_get_height(ls) != in->height ||
        slice >= emseg_stack_get_n_slices(ls)) {
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH,
                  "%s is %ux%u with %u slices; expected %ux%u like %s with slice %u present",
                  labels, emseg_stack_get_width(ls), emseg_stack_get_height(ls),
                  emseg_stack_get_n_slices(ls), in->width, in->height, images, slice);
      return FALSE;
    }
    in->labels = g_malloc(npix);
    if (!emseg_labels_read(ls, slice, in->labels, error))
      return FALSE;
  }
  return TRUE;
}

static guint8
to_u8(float v)
{
  return (guint8) lrintf(CLAMP(v, 0.0f, 255.0f));
}

/* Writes <dir>/<stem>-image.png, and with labels <stem>-labels.png and <stem>-overlay.png
 * (the image with membrane pixels tinted red, to check that the two moved together). */
static gboolean
write_pair(const char *dir, const char *stem, const float *image, const guint8 *labels,
           guint width, guint height, GError **error)
{
  gsize npix = (gsize) width * height;
  g_autofree guint8 *grey = g_malloc(npix);
  for (gsize i = 0; i < npix; i++)
    grey[i] = to_u8(image[i]);
  g_autofree char *name = g_strdup_printf("%s-image.png", stem);
  g_autofree char *path = g_build_filename(dir, name, NULL);
  if (!write_png(path, grey, width, height, 1, error))
    return FALSE;
  if (!labels)
    return TRUE;
  g_autofree char *lname = g_strdup_printf("%s-labels.png", stem);
  g_autofree char *lpath = g_build_filename(dir, lname, NULL);
  if (!write_png(lpath, labels, width, height, 1, error))
    return FALSE;
  g_autofree guint8 *rgb = g_malloc(npix * 3);
  for (gsize i = 0; i < npix; i++) {
    guint8 g = grey[i];
    gboolean membrane = labels[i] < 128;
    rgb[3 * i] = membrane ? (guint8) (128 + g / 2) : g;
    rgb[3 * i + 1] = membrane ? (guint8) (g / 3) : g;
    rgb[3 * i + 2] = membrane ? (guint8) (g / 3) : g;
  }
  g_autofree char *oname = g_strdup_printf("%s-overlay.png", stem);
  g_autofree char *opath = g_build_filename(dir, oname, NULL);
  return write_png(opath, rgb, width, height, 3, error);
}

static float
max_displacement(const EngAugmentDraw *d)
{
  float m = 0.0f;
  for (int i = 0; i < d->grid * d->grid; i++)
    m = MAX(m, hypotf(d->disp_x[i], d->disp_y[i]));
  return m;
}

void
emseg_cli_augment_strengths_init(CliAugmentStrengths *s)
{
  EngAugmentParams d;
  eng_augment_params_init(&d);
  s->rotate = d.rotate_max_deg;
  s->shear = d.shear_max;
  s->elastic_sigma = d.elastic_sigma;
  g_snprintf(s->help[0], sizeof s->help[0],
             "Augmentation: rotations up to ±DEG degrees (default %g)", s->rotate);
  g_snprintf(s->help[1], sizeof s->help[1],
             "Augmentation: shear angles up to ±RAD radians (default %g)", s->shear);
  g_snprintf(s->help[2], sizeof s->help[2],
             "Augmentation: std of the elastic warp's 3×3 control-point displacements in "
             "pixels (default %g; 0 = no elastic warp)",
             s->elastic_sigma);
}

gboolean
emseg_cli_augment_strengths_apply(const char *cmd, const CliAugmentStrengths *s,
                                  EngAugmentParams *p)
{
  if (!(s->rotate >= 0 && s->rotate <= 180) || !(s->shear >= 0 && s->shear < 1.5) ||
      !(s->elastic_sigma >= 0 && s->elastic_sigma <= 100)) {
    fprintf(stderr, "emseg %s: --rotate must lie in 0-180 degrees, --shear in 0-1.5 radians "
                    "(exclusive) and --elastic-sigma in 0-100 px (got %g, %g and %g)\n",
            cmd, s->rotate, s->shear, s->elastic_sigma);
    return FALSE;
  }
  p->rotate_max_deg = (float) s->rotate;
  p->shear_max = (float) s->shear;
  p->elastic_sigma = (float) s->elastic_sigma;
  return TRUE;
}

int
emseg_cli_augment_preview(int argc, char **argv)
{
  g_autofree char *images = NULL, *labels = NULL, *out = NULL;
  gint slice = 0, count = 4;
  gint64 seed = 1;
  CliAugmentStrengths strengths;
  emseg_cli_augment_strengths_init(&strengths);
  GOptionEntry entries[] = {
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images,
      "image stack (TIFF, PNG folder or glob); default: a synthetic EM-like slice", "STACK" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &labels,
      "label stack (255 = cell, 0 = membrane) of the same size", "LABELS" },
    { "slice", 0, 0, G_OPTION_ARG_INT, &slice, "slice to augment (default 0)", "N" },
    { "count", 0, 0, G_OPTION_ARG_INT, &count, "number of samples (default 4)", "K" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "augmentation seed (default 1)", "S" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "output folder (created if missing)", "DIR" },
    EMSEG_CLI_AUGMENT_ENTRIES(strengths),
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("— write augmented samples as PNG");
  g_autofree char *summary = g_strdup_printf(
      "Applies the training augmentation (flips, rotation ±%g°, shear ±%g rad, elastic\n"
      "spline warp σ = %g px on a 3×3 grid, or the strengths given as emseg train takes\n"
      "them) to one slice and writes, for each sample i,\n"
      "sample-i-image.png, sample-i-labels.png and sample-i-overlay.png (membranes in red),\n"
      "plus the untransformed original-*.png.",
      strengths.rotate, strengths.shear, strengths.elastic_sigma);
  g_option_context_set_summary(ctx, summary);
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg augment-preview: %s\n", error->message);
    return 2;
  }
  if (argc > 1) {
    fprintf(stderr, "emseg augment-preview: unexpected argument '%s'\n", argv[1]);
    return 2;
  }
  if (!out) {
    fprintf(stderr, "emseg augment-preview: --out DIR is required\n");
    return 2;
  }
  if (slice < 0 || count < 1 || count > 1000 || seed < 0) {
    fprintf(stderr, "emseg augment-preview: need --slice >= 0, 1 <= --count <= 1000, "
                    "--seed >= 0 (got %d, %d, %" G_GINT64_FORMAT ")\n",
            slice, count, seed);
    return 2;
  }
  if (labels && !images) {
    fprintf(stderr, "emseg augment-preview: --labels needs --images\n");
    return 2;
  }
  EngAugmentParams p;
  eng_augment_params_init(&p);
  if (!emseg_cli_augment_strengths_apply("augment-preview", &strengths, &p))
    return 2;

  Input in = { 0 };
  if (!load_input(&in, images, labels, (guint) slice, (guint64) seed, &error)) {
    fprintf(stderr, "emseg augment-preview: %s\n", error->message);
    input_clear(&in);
    return 1;
  }
  if (g_mkdir_with_parents(out, 0755) != 0) {
    fprintf(stderr, "emseg augment-preview: cannot create %s: %s\n", out, g_strerror(errno));
    input_clear(&in);
    return 1;
  }

  int status = 0;
  gsize npix = (gsize) in.width * in.height;
  EngAugment *aug = NULL;
  EngError err = { 0 };
  float *img_out = g_new(float, npix);
  guint8 *lab_out = in.labels ? g_malloc(npix) : NULL;
  if (eng_augment_create(&aug, in.width, in.height, &err) != ENG_OK) {
    fprintf(stderr, "emseg augment-preview: %s\n", err.message);
    status = 1;
    goto done;
  }
  if (!write_pair(out, "original", in.image, in.labels, in.width, in.height, &error)) {
    fprintf(stderr, "emseg augment-preview: %s\n", error->message);
    status = 1;
    goto done;
  }
  printf("%s slice %d, %ux%u, seed %" G_GINT64_FORMAT "\n",
         images ? images : "synthetic", slice, in.width, in.height, seed);
  for (int i = 0; i < count; i++) {
    EngAugmentDraw d;
    eng_augment_draw(&d, &p, (guint64) seed, (guint64) i);
    if (eng_augment_set(aug, &d, &err) != ENG_OK) {
      fprintf(stderr, "emseg augment-preview: sample %d: %s\n", i, err.message);
      status = 1;
      goto done;
    }
    eng_augment_apply(aug, img_out, lab_out, NULL, in.image, in.labels, NULL);
    g_autofree char *stem = g_strdup_printf("sample-%03d", i);
    if (!write_pair(out, stem, img_out, lab_out, in.width, in.height, &error)) {
      fprintf(stderr, "emseg augment-preview: %s\n", error->message);
      status = 1;
      goto done;
    }
    printf("%s: flip h %d v %d, rotation %+.1f°, shear %+.3f rad, elastic max %.1f px\n",
           stem, d.flip_h, d.flip_v, d.angle * 180.0 / G_PI, (double) d.shear,
           (double) max_displacement(&d));
  }
  printf("wrote %d samples to %s\n", count, out);

done:
  eng_augment_destroy(aug);
  g_free(img_out);
  g_free(lab_out);
  input_clear(&in);
  return status;
}
