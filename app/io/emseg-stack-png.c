/* emseg-stack-png.c — the PNG-folder back end of the stack reader (libpng).
 *
 * A stack is every *.png in a folder, or every file matching a glob, ordered by the
 * numbers in their names (2.png before 10.png), so exports from Fiji or scripts that do not
 * zero-pad still come in slice order. Open reads every header to check that the slices
 * agree; pixels are decoded per slice. libpng reports errors by longjmp: each function that
 * calls it keeps its own jmp_buf and frees what it owns on the way out. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "emseg-stack-private.h"

typedef struct {
  char message[256]; /* libpng's error text for the current file */
} PngErrorCtx;

static void
on_png_error(png_structp png, png_const_charp msg)
{
  PngErrorCtx *ctx = png_get_error_ptr(png);
  g_strlcpy(ctx->message, msg, sizeof ctx->message);
  png_longjmp(png, 1);
}

static void
on_png_warning(png_structp png, png_const_charp msg)
{
  /* Ancillary-chunk complaints (iCCP profiles and the like) do not affect pixels. */
}

/* Compares file names chunk by chunk: digit runs by value, the rest bytewise. */
static int
natural_compare(const char *a, const char *b)
{
  while (*a && *b) {
    if (g_ascii_isdigit(*a) && g_ascii_isdigit(*b)) {
      while (*a == '0' && g_ascii_isdigit(a[1])) a++;
      while (*b == '0' && g_ascii_isdigit(b[1])) b++;
      gsize la = 0, lb = 0;
      while (g_ascii_isdigit(a[la])) la++;
      while (g_ascii_isdigit(b[lb])) lb++;
      if (la != lb)
        return la < lb ? -1 : 1;
      int c = strncmp(a, b, la);
      if (c != 0)
        return c;
      a += la;
      b += lb;
    } else {
      if (*a != *b)
        return (guchar)*a < (guchar)*b ? -1 : 1;
      a++;
      b++;
    }
  }
  return (guchar)*a - (guchar)*b;
}

static int
compare_paths(gconstpointer pa, gconstpointer pb)
{
  const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
  g_autofree char *ba = g_path_get_basename(a);
  g_autofree char *bb = g_path_get_basename(b);
  return natural_compare(ba, bb);
}

static char **
list_files(const char *path, GError **error)
{
  g_autofree char *dir = NULL;
  g_autoptr(GPatternSpec) pattern = NULL;
  if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
    dir = g_strdup(path);
  } else if (strpbrk(path, "*?") != NULL) {
    dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    pattern = g_pattern_spec_new(base);
  } else {
    char **one = g_new0(char *, 2);
    one[0] = g_strdup(path);
    return one;
  }
  GError *local = NULL;
  GDir *d = g_dir_open(dir, 0, &local);
  if (d == NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO, "%s: cannot list folder (%s)",
                dir, local->message);
    g_error_free(local);
    return NULL;
  }
  GPtrArray *files = g_ptr_array_new();
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL) {
    gboolean match = pattern != NULL ? g_pattern_spec_match_string(pattern, name)
                                     : (g_str_has_suffix(name, ".png") ||
                                        g_str_has_suffix(name, ".PNG"));
    if (match)
      g_ptr_array_add(files, g_build_filename(dir, name, NULL));
  }
  g_dir_close(d);
  g_ptr_array_sort(files, compare_paths);
  g_ptr_array_add(files, NULL);
  return (char **)g_ptr_array_free(files, FALSE);
}

typedef struct {
  guint32 width, height;
  int bit_depth, color_type;
} PngHeader;

/* Reads the header of one file, or decodes its pixels into out (raw, `type`) when out is
 * non-NULL. Returns FALSE with the file named in the error. */
static gboolean
png_process(const char *file, guint page, PngHeader *hdr, EmsegSampleType type, void *out,
            GError **error)
{
  FILE *fp = g_fopen(file, "rb");
  if (fp == NULL) {
    int e = errno;
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO, "%s (slice %u): %s", file, page,
                g_strerror(e));
    return FALSE;
  }
  guint8 sig[8];
  if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
    fclose(fp);
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s (slice %u): not a PNG file", file, page);
    return FALSE;
  }
  PngErrorCtx ctx = { "" };
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error,
                                           on_png_warning);
  png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
  /* Everything touched after setjmp and read after a longjmp is volatile or set before. */
  guint8 **volatile rows = NULL;
  guint8 *volatile rgb_buf = NULL;
  if (png == NULL || info == NULL) {
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s: cannot allocate the PNG decoder", file);
    return FALSE;
  }
  if (setjmp(png_jmpbuf(png))) {
    g_free(rows);
    g_free(rgb_buf);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s (slice %u): the PNG is truncated or corrupt (%s)", file, page, ctx.message);
    return FALSE;
  }
  /* Refuse absurd headers before libpng allocates anything for them. */
  png_set_user_limits(png, EMSEG_STACK_MAX_SIDE, EMSEG_STACK_MAX_SIDE);
  png_init_io(png, fp);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  hdr->width = png_get_image_width(png, info);
  hdr->height = png_get_image_height(png, info);
  hdr->bit_depth = png_get_bit_depth(png, info);
  hdr->color_type = png_get_color_type(png, info);

  if (out != NULL) {
    gboolean rgb = (hdr->color_type & PNG_COLOR_MASK_COLOR) != 0;
    if (hdr->color_type & PNG_COLOR_MASK_ALPHA)
      png_set_strip_alpha(png);
    if (hdr->bit_depth == 16 && G_BYTE_ORDER == G_LITTLE_ENDIAN)
      png_set_swap(png);
    png_read_update_info(png, info);
    gsize bytes = hdr->bit_depth == 16 ? 2 : 1;
    gsize channels = rgb ? 3 : 1;
    gsize row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != hdr->width * bytes * channels)
      png_error(png, "unexpected row size after transformations");
    if (rgb)
      rgb_buf = g_malloc(row_bytes * hdr->height);
    guint8 *pix = rgb ? rgb_buf : out;
    rows = g_new(guint8 *, hdr->height);
    for (guint32 y = 0; y < hdr->height; y++)
      rows[y] = pix + (gsize)y * row_bytes;
    png_read_image(png, (png_bytepp)rows);
    png_read_end(png, NULL);
    if (rgb) {
      gsize n = (gsize)hdr->width * hdr->height;
      for (gsize i = 0; i < n; i++) {
        if (type == EMSEG_SAMPLE_U16) {
          guint16 c[3];
          memcpy(c, pix + i * 6, 6);
          ((guint16 *)out)[i] = (guint16)CLAMP(lround(emseg_luma(c[0], c[1], c[2])), 0, 65535);
        } else {
          const guint8 *c = pix + i * 3;
          ((guint8 *)out)[i] = (guint8)CLAMP(lround(emseg_luma(c[0], c[1], c[2])), 0, 255);
        }
      }
      g_free(rgb_buf);
      rgb_buf = NULL;
    }
  }
  g_free(rows);
  rows = NULL;
  png_destroy_read_struct(&png, &info, NULL);
  fclose(fp);
  return TRUE;
}

gboolean
emseg_stack_png_open(EmsegStack *stack, GError **error)
{
  stack->png_files = list_files(stack->path, error);
  if (stack->png_files == NULL)
    return FALSE;
  guint n = g_strv_length(stack->png_files);
  if (n == 0) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s: no PNG files found", stack->path);
    return FALSE;
  }
  PngHeader first = { 0 };
  for (guint i = 0; i < n; i++) {
    const char *file = stack->png_files[i];
    PngHeader h;
    if (!png_process(file, i, &h, EMSEG_SAMPLE_U8, NULL, error))
      return FALSE;
    const char *reason = NULL;
    if (h.color_type == PNG_COLOR_TYPE_PALETTE)
      reason = "palette (colour-mapped) PNGs are not supported; save as 8-bit grayscale";
    else if (h.bit_depth < 8)
      reason = "1-, 2- and 4-bit PNGs are not supported; save as 8-bit grayscale";
    if (reason != NULL) {
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_UNSUPPORTED,
                  "%s (slice %u): %s (bit depth %d, colour type %d)", file, i, reason,
                  h.bit_depth, h.color_type);
      return FALSE;
    }
    g_autofree char *where = g_strdup_printf("%s (slice %u)", file, i);
    if (!emseg_stack_check_dims(where, h.width, h.height, error))
      return FALSE;
    if (i == 0) {
      first = h;
    } else if (h.width != first.width || h.height != first.height ||
               h.bit_depth != first.bit_depth) {
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH,
                  "%s (slice %u): %u x %u, %d-bit, but %s is %u x %u, %d-bit; all slices of "
                  "a stack must have the same size and depth",
                  file, i, h.width, h.height, h.bit_depth, stack->png_files[0], first.width,
                  first.height, first.bit_depth);
      return FALSE;
    }
    if (h.color_type & PNG_COLOR_MASK_COLOR) {
      g_free(stack->warning);
      stack->warning = g_strdup("RGB converted to luminance (0.299 R + 0.587 G + 0.114 B)");
    }
  }
  stack->n_slices = n;
  stack->width = first.width;
  stack->height = first.height;
  stack->type = first.bit_depth == 16 ? EMSEG_SAMPLE_U16 : EMSEG_SAMPLE_U8;
  return TRUE;
}

gboolean
emseg_stack_png_read(EmsegStack *stack, guint index, void *out, GError **error)
{
  PngHeader h;
  const char *file = stack->png_files[index];
  if (!png_process(file, index, &h, stack->type, NULL, error))
    return FALSE;
  if (h.width != stack->width || h.height != stack->height ||
      (h.bit_depth == 16) != (stack->type == EMSEG_SAMPLE_U16) ||
      h.color_type == PNG_COLOR_TYPE_PALETTE || h.bit_depth < 8) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH,
                "%s (slice %u): file changed since the stack was opened", file, index);
    return FALSE;
  }
  return png_process(file, index, &h, stack->type, out, error);
}
