/* test-stack.c — app/io stack reader and writer: round trips for every pixel type, layout
 * and compression the reader claims (files generated here with libtiff / libpng directly,
 * so the reader is checked against an independent writer), the writer checked through
 * libtiff's own `tiffinfo`, and bad inputs that must fail with a message naming the file,
 * the page and the reason. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-labels.h"
#include "emseg-stack.h"
#include "emseg-test-util.h"

#define W 37 /* not a multiple of the 16-pixel tiles: edge tiles are partial */
#define H 29
#define PAGES 3

static char *scratch; /* per-process temporary folder, removed at exit */

static char *
scratch_path(const char *name)
{
  return g_build_filename(scratch, name, NULL);
}

/* A deterministic value per (page, pixel) that fits every type, signed ones negative. */
static double
pattern(EmsegSampleType type, guint page, gsize i)
{
  double v = (double)((i * 7 + page * 31) % 200);
  switch (type) {
  case EMSEG_SAMPLE_U8: return v;
  case EMSEG_SAMPLE_I8: return floor(v / 2) - 50;
  case EMSEG_SAMPLE_U16: return v * 300;
  case EMSEG_SAMPLE_I16: return v * 150 - 20000;
  case EMSEG_SAMPLE_U32: return v * 20000000.0;
  case EMSEG_SAMPLE_I32: return v * 10000000.0 - 1000000000.0;
  case EMSEG_SAMPLE_F32: return v / 199.0 - 0.25;
  }
  return 0;
}

static void
fill_page(EmsegSampleType type, guint page, void *buf, guint spp, gsize n)
{
  for (gsize i = 0; i < n; i++)
    for (guint c = 0; c < spp; c++) {
      double v = pattern(type, page, i);
      gsize k = i * spp + c;
      switch (type) {
      case EMSEG_SAMPLE_U8: ((guint8 *)buf)[k] = (guint8)v; break;
      case EMSEG_SAMPLE_I8: ((gint8 *)buf)[k] = (gint8)v; break;
      case EMSEG_SAMPLE_U16: ((guint16 *)buf)[k] = (guint16)v; break;
      case EMSEG_SAMPLE_I16: ((gint16 *)buf)[k] = (gint16)v; break;
      case EMSEG_SAMPLE_U32: ((guint32 *)buf)[k] = (guint32)v; break;
      case EMSEG_SAMPLE_I32: ((gint32 *)buf)[k] = (gint32)v; break;
      case EMSEG_SAMPLE_F32: ((float *)buf)[k] = (float)v; break;
      }
    }
}

typedef struct {
  EmsegSampleType type;
  gboolean tiled, bigtiff;
  guint16 compression;
} Layout;

static guint16
format_of(EmsegSampleType t)
{
  if (t == EMSEG_SAMPLE_F32)
    return SAMPLEFORMAT_IEEEFP;
  if (t == EMSEG_SAMPLE_I8 || t == EMSEG_SAMPLE_I16 || t == EMSEG_SAMPLE_I32)
    return SAMPLEFORMAT_INT;
  return SAMPLEFORMAT_UINT;
}

/* Writes a PAGES-page grayscale TIFF with libtiff in the given layout. */
static void
write_reference_tiff(const char *path, const Layout *l)
{
  TIFF *tif = TIFFOpen(path, l->bigtiff ? "w8" : "w");
  g_assert_nonnull(tif);
  gsize bytes = emseg_sample_type_size(l->type);
  guint8 *page = g_malloc(W * H * bytes);
  for (guint p = 0; p < PAGES; p++) {
    fill_page(l->type, p, page, 1, W * H);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, W);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, H);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (int)(bytes * 8));
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, format_of(l->type));
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, l->compression);
    if (l->compression == COMPRESSION_LZW || l->compression == COMPRESSION_ADOBE_DEFLATE)
      TIFFSetField(tif, TIFFTAG_PREDICTOR, l->type == EMSEG_SAMPLE_F32 ? 3 : 2);
    if (l->tiled) {
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, 16);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, 16);
      guint8 *tile = g_malloc0(16 * 16 * bytes);
      for (guint ty = 0; ty < H; ty += 16)
        for (guint tx = 0; tx < W; tx += 16) {
          memset(tile, 0, 16 * 16 * bytes);
          for (guint r = 0; r < 16 && ty + r < H; r++)
            memcpy(tile + r * 16 * bytes, page + ((ty + r) * W + tx) * bytes,
                   MIN(16, W - tx) * bytes);
          g_assert_cmpint(TIFFWriteTile(tif, tile, tx, ty, 0, 0), >, 0);
        }
      g_free(tile);
    } else {
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 5); /* several strips, last one short */
      for (guint y = 0; y < H; y++)
        g_assert_cmpint(TIFFWriteScanline(tif, page + y * W * bytes, y, 0), ==, 1);
    }
    g_assert_true(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
  g_free(page);
}

static void
check_pages(EmsegStack *stack, EmsegSampleType type)
{
  g_assert_cmpuint(emseg_stack_get_width(stack), ==, W);
  g_assert_cmpuint(emseg_stack_get_height(stack), ==, H);
  g_assert_cmpuint(emseg_stack_get_n_slices(stack), ==, PAGES);
  g_assert_cmpint(emseg_stack_get_sample_type(stack), ==, type);
  gsize bytes = emseg_sample_type_size(type);
  g_autofree guint8 *want = g_malloc(W * H * bytes);
  g_autofree guint8 *got = g_malloc(W * H * bytes);
  g_autofree float *f = g_new(float, W * H);
  /* Backwards, so pages come from the recorded directory offsets, not a forward walk. */
  for (int p = PAGES - 1; p >= 0; p--) {
    g_autoptr(GError) error = NULL;
    fill_page(type, p, want, 1, W * H);
    g_assert_true(emseg_stack_read_raw(stack, p, got, &error));
    g_assert_no_error(error);
    g_assert_cmpmem(got, W * H * bytes, want, W * H * bytes);
    g_assert_true(emseg_stack_read_float(stack, p, f, &error));
    for (gsize i = 0; i < W * H; i += 17)
      g_assert_cmpfloat_with_epsilon(f[i], (float)pattern(type, p, i),
                                     fabs(pattern(type, p, i)) * 1e-6 + 1e-6);
  }
}

static void
test_tiff_round_trip_all_layouts(void)
{
  const EmsegSampleType types[] = { EMSEG_SAMPLE_U8, EMSEG_SAMPLE_I8, EMSEG_SAMPLE_U16,
                                    EMSEG_SAMPLE_I16, EMSEG_SAMPLE_U32, EMSEG_SAMPLE_I32,
                                    EMSEG_SAMPLE_F32 };
  const guint16 comps[] = { COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE,
                            COMPRESSION_PACKBITS };
  guint n = 0;
  for (guint t = 0; t < G_N_ELEMENTS(types); t++)
    for (guint c = 0; c < G_N_ELEMENTS(comps); c++)
      for (int tiled = 0; tiled < 2; tiled++)
        for (int big = 0; big < 2; big++) {
          Layout l = { types[t], tiled, big, comps[c] };
          g_autofree char *name = g_strdup_printf("rt-%s-c%u-%s-%s.tif",
                                                  emseg_sample_type_to_string(l.type),
                                                  l.compression, tiled ? "tiles" : "strips",
                                                  big ? "big" : "classic");
          g_autofree char *path = scratch_path(name);
          write_reference_tiff(path, &l);
          g_autoptr(GError) error = NULL;
          g_autoptr(EmsegStack) stack = emseg_stack_open(path, &error);
          g_assert_no_error(error);
          g_assert_null(emseg_stack_get_warning(stack));
          emseg_stack_set_cache_slices(stack, 1); /* every read is a decode */
          check_pages(stack, l.type);
          g_unlink(path);
          n++;
        }
  g_assert_cmpuint(n, ==, 7 * 4 * 2 * 2);
}

/* RGB (contiguous and planar) becomes luminance, with a warning; min-is-white is inverted. */
static void
test_tiff_rgb_and_miniswhite(void)
{
  for (int planar = 0; planar < 2; planar++) {
    g_autofree char *path = scratch_path(planar ? "rgb-planar.tif" : "rgb.tif");
    TIFF *tif = TIFFOpen(path, "w");
    guint8 rgb[W * H * 3];
    for (gsize i = 0; i < W * H; i++) {
      rgb[i * 3] = (guint8)(i % 256);
      rgb[i * 3 + 1] = (guint8)((i * 3) % 256);
      rgb[i * 3 + 2] = (guint8)((i * 5) % 256);
    }
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, W);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, H);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, planar ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, H);
    if (planar) {
      guint8 plane[W * H];
      for (guint c = 0; c < 3; c++) {
        for (gsize i = 0; i < W * H; i++) plane[i] = rgb[i * 3 + c];
        g_assert_cmpint(TIFFWriteEncodedStrip(tif, c, plane, W * H), ==, W * H);
      }
    } else {
      g_assert_cmpint(TIFFWriteEncodedStrip(tif, 0, rgb, sizeof rgb), ==, sizeof rgb);
    }
    TIFFClose(tif);

    g_autoptr(GError) error = NULL;
    g_autoptr(EmsegStack) stack = emseg_stack_open(path, &error);
    g_assert_no_error(error);
    g_assert_nonnull(strstr(emseg_stack_get_warning(stack), "RGB converted to luminance"));
    g_assert_cmpint(emseg_stack_get_sample_type(stack), ==, EMSEG_SAMPLE_U8);
    guint8 got[W * H];
    g_assert_true(emseg_stack_read_u8(stack, 0, got, &error));
    for (gsize i = 0; i < W * H; i++) {
      double want = 0.299 * rgb[i * 3] + 0.587 * rgb[i * 3 + 1] + 0.114 * rgb[i * 3 + 2];
      g_assert_cmpint(got[i], ==, (int)lround(want));
    }
  }

  g_autofree char *path = scratch_path("white.tif");
  TIFF *tif = TIFFOpen(path, "w");
  guint8 px[W * H];
  for (gsize i = 0; i < W * H; i++) px[i] = (guint8)i;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, W);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, H);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
  TIFFWriteEncodedStrip(tif, 0, px, sizeof px);
  TIFFClose(tif);
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) stack = emseg_stack_open(path, &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(emseg_stack_get_warning(stack), "min-is-white"));
  guint8 got[W * H];
  g_assert_true(emseg_stack_read_raw(stack, 0, got, &error));
  for (gsize i = 0; i < W * H; i++)
    g_assert_cmpint(got[i], ==, 255 - (guint8)i);
}

static void
write_png(const char *path, guint w, guint h, int depth, int color_type, guint seed)
{
  FILE *fp = g_fopen(path, "wb");
  g_assert_nonnull(fp);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, fp);
  png_set_IHDR(png, info, w, h, depth, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[256];
    for (int i = 0; i < 256; i++)
      pal[i] = (png_color){ (png_byte)i, (png_byte)i, (png_byte)i };
    png_set_PLTE(png, info, pal, 256);
  }
  png_write_info(png, info);
  int channels = color_type == PNG_COLOR_TYPE_RGB ? 3 : 1;
  gsize row_bytes = ((gsize)w * channels * depth + 7) / 8;
  guint8 *row = g_malloc0(row_bytes);
  for (guint y = 0; y < h; y++) {
    for (gsize i = 0; i < row_bytes; i++)
      row[i] = (guint8)((y * w + i + seed * 13) % 251);
    png_write_row(png, row);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(fp);
  g_free(row);
}

static void
test_png_folder_numeric_order(void)
{
  g_autofree char *dir = scratch_path("pngs");
  g_mkdir(dir, 0755);
  /* Written in an order that is neither numeric nor lexical. */
  const guint ids[] = { 10, 2, 1, 12, 3 };
  for (guint k = 0; k < G_N_ELEMENTS(ids); k++) {
    g_autofree char *name = g_strdup_printf("slice%u.png", ids[k]);
    g_autofree char *p = g_build_filename(dir, name, NULL);
    write_png(p, W, H, 16, PNG_COLOR_TYPE_GRAY, ids[k]);
  }
  g_autofree char *other = g_build_filename(dir, "notes.txt", NULL);
  g_file_set_contents(other, "not a slice", -1, NULL);

  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) stack = emseg_stack_open(dir, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_n_slices(stack), ==, 5);
  g_assert_cmpint(emseg_stack_get_sample_type(stack), ==, EMSEG_SAMPLE_U16);
  const guint sorted[] = { 1, 2, 3, 10, 12 };
  for (guint k = 0; k < 5; k++) {
    guint16 px[W * H];
    g_assert_true(emseg_stack_read_raw(stack, k, px, &error));
    g_assert_no_error(error);
    /* Big-endian pairs in the file: first sample = bytes 0 and 1 of row 0. */
    guint8 b0 = (guint8)((0 + sorted[k] * 13) % 251), b1 = (guint8)((1 + sorted[k] * 13) % 251);
    g_assert_cmpuint(px[0], ==, (guint)(b0 << 8 | b1));
  }

  /* A glob selects a subset, also in numeric order; an 8-bit RGB folder warns. */
  g_autofree char *glob = g_build_filename(dir, "slice1*.png", NULL);
  g_autoptr(EmsegStack) sub = emseg_stack_open(glob, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_n_slices(sub), ==, 3); /* 1, 10, 12 */

  g_autofree char *rgbdir = scratch_path("rgbpngs");
  g_mkdir(rgbdir, 0755);
  g_autofree char *rp = g_build_filename(rgbdir, "0.png", NULL);
  write_png(rp, W, H, 8, PNG_COLOR_TYPE_RGB, 0);
  g_autoptr(EmsegStack) rgb = emseg_stack_open(rgbdir, &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(emseg_stack_get_warning(rgb), "luminance"));
  guint8 px[W * H];
  g_assert_true(emseg_stack_read_u8(rgb, 0, px, &error));
  g_assert_cmpint(px[0], ==, (int)lround(0.299 * 0 + 0.587 * 1 + 0.114 * 2));
}

static void
test_writer_round_trip(void)
{
  g_autofree float *prob = g_new(float, W * H * PAGES);
  g_autofree guint8 *labels = g_new(guint8, W * H * PAGES);
  for (gsize i = 0; i < W * H * PAGES; i++) {
    prob[i] = (float)((i * 37) % 1000) / 999.0f;
    labels[i] = (i % 3) ? 255 : 0;
  }
  g_autofree char *fp = scratch_path("prob.tif");
  g_autofree char *lp = scratch_path("labels.tif");
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_float_stack(fp, prob, W, H, PAGES, &error));
  g_assert_no_error(error);
  g_assert_true(emseg_tiff_write_u8_stack(lp, labels, W, H, PAGES, &error));
  g_assert_no_error(error);

  g_autoptr(EmsegStack) fs = emseg_stack_open(fp, &error);
  g_assert_no_error(error);
  g_assert_cmpint(emseg_stack_get_sample_type(fs), ==, EMSEG_SAMPLE_F32);
  g_autoptr(EmsegStack) ls = emseg_stack_open(lp, &error);
  g_assert_no_error(error);
  for (guint p = 0; p < PAGES; p++) {
    float f[W * H];
    guint8 u[W * H];
    g_assert_true(emseg_stack_read_float(fs, p, f, &error));
    g_assert_cmpmem(f, sizeof f, prob + p * W * H, sizeof f);
    g_assert_true(emseg_stack_read_raw(ls, p, u, &error));
    g_assert_cmpmem(u, sizeof u, labels + p * W * H, sizeof u);
  }

  /* No ImageJ description: with "images=3" ImageJ would read page 0's directory only and
   * take the slices as back to back pixels, which libtiff's page layout is not. Three
   * directories, one per slice, are what readers find. */
  TIFF *tif = TIFFOpen(fp, "r");
  char *desc = NULL;
  if (TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc))
    g_assert_null(strstr(desc, "images="));
  g_assert_cmpint(TIFFNumberOfDirectories(tif), ==, PAGES);
  TIFFClose(tif);

  /* Nothing but the finished file is left in the folder. */
  g_autoptr(GDir) d = g_dir_open(scratch, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL)
    g_assert_null(strstr(name, ".tmp-"));
}

static void
test_writer_bigtiff(void)
{
  emseg_stack_writer_set_bigtiff_threshold_for_testing(1000);
  g_autofree char *path = scratch_path("big.tif");
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStackWriter) w =
      emseg_stack_writer_new(path, EMSEG_SAMPLE_F32, W, H, PAGES, &error);
  emseg_stack_writer_set_bigtiff_threshold_for_testing(0);
  g_assert_no_error(error);
  g_assert_true(emseg_stack_writer_is_bigtiff(w));
  float slice[W * H];
  for (guint p = 0; p < PAGES; p++) {
    for (gsize i = 0; i < W * H; i++) slice[i] = (float)(p * 1000 + i);
    g_assert_true(emseg_stack_writer_append(w, slice, &error));
  }
  g_assert_true(emseg_stack_writer_finish(w, &error));
  g_assert_no_error(error);

  TIFF *tif = TIFFOpen(path, "r");
  g_assert_true(TIFFIsBigTIFF(tif));
  TIFFClose(tif);
  g_autoptr(EmsegStack) s = emseg_stack_open(path, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_n_slices(s), ==, PAGES);
  g_assert_true(emseg_stack_read_float(s, 2, slice, &error));
  g_assert_cmpfloat(slice[W * H - 1], ==, 2000.0f + W * H - 1);

  /* Too few slices: finish refuses and nothing appears at the path. */
  g_autofree char *short_path = scratch_path("short.tif");
  g_autoptr(EmsegStackWriter) sw =
      emseg_stack_writer_new(short_path, EMSEG_SAMPLE_U8, W, H, PAGES, &error);
  guint8 u[W * H] = { 0 };
  g_assert_true(emseg_stack_writer_append(sw, u, &error));
  g_assert_false(emseg_stack_writer_finish(sw, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "3 slices declared but 1 written"));
  g_assert_false(g_file_test(short_path, G_FILE_TEST_EXISTS));
}

/* Parses `tiffinfo` output: libtiff's own view of the pages we wrote. */
static void
test_writer_seen_by_tiffinfo(void)
{
  g_autofree char *tiffinfo = g_find_program_in_path("tiffinfo");
  if (tiffinfo == NULL) {
    g_test_skip("tiffinfo not installed (Debian package libtiff-tools; tools/deps.sh test)");
    return;
  }
  g_autofree float *prob = g_new0(float, W * H * PAGES);
  g_autofree char *path = scratch_path("seen.tif");
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_float_stack(path, prob, W, H, PAGES, &error));
  char *argv[] = { tiffinfo, path, NULL };
  g_autofree char *out = NULL;
  int status = 0;
  g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                             &out, NULL, &status, &error));
  g_assert_no_error(error);
  g_assert_true(g_spawn_check_wait_status(status, NULL));
  guint dirs = 0, sizes = 0, bits = 0, fmt = 0;
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (strstr(*l, "TIFF Directory at offset")) dirs++;
    if (strstr(*l, "Image Width: 37 Image Length: 29")) sizes++;
    if (strstr(*l, "Bits/Sample: 32")) bits++;
    if (strstr(*l, "Sample Format: IEEE floating point")) fmt++;
  }
  g_assert_cmpuint(dirs, ==, PAGES);
  g_assert_cmpuint(sizes, ==, PAGES);
  g_assert_cmpuint(bits, ==, PAGES);
  g_assert_cmpuint(fmt, ==, PAGES);
}

static void
expect_open_error(const char *path, int code, const char *const *fragments)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) s = emseg_stack_open(path, &error);
  g_assert_null(s);
  g_assert_nonnull(error);
  if (g_test_verbose())
    g_test_message("%s", error->message);
  g_assert_error(error, EMSEG_STACK_ERROR, code);
  for (const char *const *f = fragments; *f; f++)
    if (strstr(error->message, *f) == NULL)
      g_error("message \"%s\" lacks \"%s\"", error->message, *f);
}

static void
test_bad_inputs(void)
{
  g_autoptr(GError) error = NULL;

  /* Random bytes. */
  g_autofree char *rnd = scratch_path("random.tif");
  guint8 junk[4096];
  GRand *rand = g_rand_new_with_seed(7);
  for (gsize i = 0; i < sizeof junk; i++) junk[i] = (guint8)g_rand_int(rand);
  g_rand_free(rand);
  g_file_set_contents(rnd, (char *)junk, sizeof junk, NULL);
  expect_open_error(rnd, EMSEG_STACK_ERROR_FORMAT,
                    (const char *[]){ rnd, "not a readable TIFF", NULL });

  /* Missing file. */
  g_autofree char *missing = scratch_path("missing.tif");
  expect_open_error(missing, EMSEG_STACK_ERROR_IO, (const char *[]){ "no such file", NULL });

  /* Zero pages: a valid header whose first IFD offset is 0. */
  g_autofree char *zero = scratch_path("zero.tif");
  g_file_set_contents(zero, "II*\0\0\0\0\0", 8, NULL);
  expect_open_error(zero, EMSEG_STACK_ERROR_FORMAT, (const char *[]){ zero, "no pages", NULL });

  /* Truncated: pages declared, pixels cut off. Open may pass (directories are at the
   * front in libtiff's layout only sometimes), but a read must fail with page named. */
  Layout l = { EMSEG_SAMPLE_U16, FALSE, FALSE, COMPRESSION_NONE };
  g_autofree char *full = scratch_path("full.tif");
  write_reference_tiff(full, &l);
  g_autofree char *contents = NULL;
  gsize len = 0;
  g_assert_true(g_file_get_contents(full, &contents, &len, NULL));
  g_autofree char *trunc = scratch_path("truncated.tif");
  g_file_set_contents(trunc, contents, len / 2, NULL);
  EmsegStack *ts = emseg_stack_open(trunc, &error);
  if (ts == NULL) {
    g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT);
    g_assert_nonnull(strstr(error->message, "truncated"));
  } else {
    guint16 px[W * H];
    gboolean all_ok = TRUE;
    for (guint p = 0; p < emseg_stack_get_n_slices(ts) && all_ok; p++)
      all_ok = emseg_stack_read_raw(ts, p, px, &error);
    g_assert_false(all_ok);
    g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT);
    g_assert_nonnull(strstr(error->message, "page"));
    emseg_stack_free(ts);
  }
  g_clear_error(&error);

  /* Mismatched page sizes. */
  g_autofree char *mism = scratch_path("mismatch.tif");
  TIFF *tif = TIFFOpen(mism, "w");
  guint8 px[W * H] = { 0 };
  for (guint p = 0; p < 2; p++) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, p == 0 ? W : W - 1);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, H);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFWriteEncodedStrip(tif, 0, px, (p == 0 ? W : W - 1) * H);
    TIFFWriteDirectory(tif);
  }
  TIFFClose(tif);
  expect_open_error(mism, EMSEG_STACK_ERROR_MISMATCH,
                    (const char *[]){ mism, "page 1", "36 x 29", "37 x 29", NULL });

  /* 1-bit and palette TIFFs. */
  g_autofree char *bilevel = scratch_path("bilevel.tif");
  tif = TIFFOpen(bilevel, "w");
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, W);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, H);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 1);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFWriteEncodedStrip(tif, 0, px, (W + 7) / 8 * H);
  TIFFClose(tif);
  expect_open_error(bilevel, EMSEG_STACK_ERROR_UNSUPPORTED,
                    (const char *[]){ bilevel, "page 0", "1-, 2- and 4-bit", NULL });

  g_autofree char *pal = scratch_path("palette.tif");
  tif = TIFFOpen(pal, "w");
  guint16 cmap[256] = { 0 };
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, W);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, H);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE);
  TIFFSetField(tif, TIFFTAG_COLORMAP, cmap, cmap, cmap);
  TIFFWriteEncodedStrip(tif, 0, px, W * H);
  TIFFClose(tif);
  expect_open_error(pal, EMSEG_STACK_ERROR_UNSUPPORTED,
                    (const char *[]){ pal, "page 0", "palette", NULL });

  /* PNG folder: palette, 1-bit, mismatched sizes, corrupt file. */
  const struct { const char *dir; int code; const char *frag; } cases[] = {
    { "png-palette", EMSEG_STACK_ERROR_UNSUPPORTED, "palette" },
    { "png-1bit", EMSEG_STACK_ERROR_UNSUPPORTED, "1-, 2- and 4-bit" },
    { "png-mismatch", EMSEG_STACK_ERROR_MISMATCH, "same size" },
    { "png-corrupt", EMSEG_STACK_ERROR_FORMAT, "truncated or corrupt" },
  };
  for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
    g_autofree char *dir = scratch_path(cases[c].dir);
    g_mkdir(dir, 0755);
    g_autofree char *a = g_build_filename(dir, "1.png", NULL);
    g_autofree char *b = g_build_filename(dir, "2.png", NULL);
    write_png(a, W, H, 8, PNG_COLOR_TYPE_GRAY, 0);
    if (c == 0) write_png(b, W, H, 8, PNG_COLOR_TYPE_PALETTE, 0);
    if (c == 1) write_png(b, W, H, 1, PNG_COLOR_TYPE_GRAY, 0);
    if (c == 2) write_png(b, W + 1, H, 8, PNG_COLOR_TYPE_GRAY, 0);
    if (c == 3) {
      /* Right signature, garbage afterwards. */
      static const char bad[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDRgarbage";
      g_file_set_contents(b, bad, sizeof bad - 1, NULL);
    }
    expect_open_error(dir, cases[c].code, (const char *[]){ b, "slice 1", cases[c].frag, NULL });
  }

  /* Out-of-range slice. */
  g_autoptr(EmsegStack) ok = emseg_stack_open(full, &error);
  g_assert_no_error(error);
  guint16 buf[W * H];
  g_assert_false(emseg_stack_read_raw(ok, PAGES, buf, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "slice 3 requested"));
}

static void
test_writer_disk_full(void)
{
  g_autofree char *path = scratch_path("full-disk.tif");
  g_autofree float *prob = g_new0(float, W * H * PAGES);
  g_autoptr(GError) error = NULL;
  /* Fail somewhere inside page 1. */
  emseg_stack_writer_set_fail_after_bytes_for_testing(W * H * 4 + 500);
  gboolean ok = emseg_tiff_write_float_stack(path, prob, W, H, PAGES, &error);
  emseg_stack_writer_set_fail_after_bytes_for_testing(0);
  g_assert_false(ok);
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO);
  g_assert_nonnull(strstr(error->message, path));
  g_assert_nonnull(strstr(error->message, g_strerror(28 /* ENOSPC */)));
  g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

  /* And into a folder that does not exist. */
  g_autofree char *nowhere = scratch_path("no/such/dir/x.tif");
  g_clear_error(&error);
  g_assert_false(emseg_tiff_write_float_stack(nowhere, prob, W, H, PAGES, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO);
  g_assert_nonnull(strstr(error->message, "cannot create"));
}

/* Appends a 16- or 32-bit value in the file's byte order. */
static void
put(GByteArray *b, gboolean be, guint64 v, guint size)
{
  for (guint i = 0; i < size; i++) {
    guint shift = be ? 8 * (size - 1 - i) : 8 * i;
    guint8 byte = (guint8)(v >> shift);
    g_byte_array_append(b, &byte, 1);
  }
}

/* Builds the layout ImageJ uses for stacks past 4 GiB, by hand: one IFD whose
 * description says images=3, and three uint16 slices back to back. */
static GByteArray *
imagej_contiguous_file(gboolean be, guint images_declared, guint images_written)
{
  const char *desc = "ImageJ=1.53t\nimages=3\nslices=3\nloop=false\n";
  g_autofree char *d = g_strdup(desc);
  d[20] = (char)('0' + images_declared); /* the digit after "images=" */
  guint desc_len = (guint)strlen(d) + 1;
  guint ifd = 8, n_entries = 10, desc_off = ifd + 2 + n_entries * 12 + 4;
  guint data = (desc_off + desc_len + 7) & ~7u;
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, (const guint8 *)(be ? "MM" : "II"), 2);
  put(b, be, 42, 2);
  put(b, be, ifd, 4);
  put(b, be, n_entries, 2);
  const guint32 e[10][4] = {
    /* tag, type (3 SHORT, 4 LONG, 2 ASCII), count, value */
    { 256, 4, 1, W }, { 257, 4, 1, H }, { 258, 3, 1, 16 }, { 259, 3, 1, 1 },
    { 262, 3, 1, 1 }, { 270, 2, desc_len, desc_off }, { 273, 4, 1, data },
    { 277, 3, 1, 1 }, { 278, 4, 1, H }, { 279, 4, 1, W * H * 2 },
  };
  for (guint i = 0; i < 10; i++) {
    put(b, be, e[i][0], 2);
    put(b, be, e[i][1], 2);
    put(b, be, e[i][2], 4);
    if (e[i][1] == 3) {
      put(b, be, e[i][3], 2); /* a SHORT sits left-justified in the 4-byte field */
      put(b, be, 0, 2);
    } else {
      put(b, be, e[i][3], 4);
    }
  }
  put(b, be, 0, 4); /* no next IFD */
  g_byte_array_append(b, (const guint8 *)d, desc_len);
  while (b->len < data) put(b, be, 0, 1);
  for (guint p = 0; p < images_written; p++)
    for (gsize i = 0; i < W * H; i++)
      put(b, be, (guint64)pattern(EMSEG_SAMPLE_U16, p, i), 2);
  return b;
}

static void
test_imagej_contiguous(void)
{
  for (int be = 0; be < 2; be++) {
    g_autofree char *path = scratch_path(be ? "ij-be.tif" : "ij-le.tif");
    GByteArray *b = imagej_contiguous_file(be, 3, 3);
    g_assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));
    g_byte_array_unref(b);
    g_autoptr(GError) error = NULL;
    g_autoptr(EmsegStack) s = emseg_stack_open(path, &error);
    g_assert_no_error(error);
    check_pages(s, EMSEG_SAMPLE_U16);
  }
  /* Declared 3, only 2 present: refused as truncated, not silently shortened. */
  g_autofree char *path = scratch_path("ij-short.tif");
  GByteArray *b = imagej_contiguous_file(FALSE, 3, 2);
  g_file_set_contents(path, (const char *)b->data, b->len, NULL);
  g_byte_array_unref(b);
  expect_open_error(path, EMSEG_STACK_ERROR_FORMAT,
                    (const char *[]){ path, "ImageJ stack of 3 images", "truncated", NULL });
}

/* ---- label encodings (emseg-labels.h) ---- */

typedef struct {
  EmsegSampleType type;
  const double *values; /* LW * LH per slice, LN slices */
} LabelPages;

#define LW 4
#define LH 2

static gboolean
read_label_page(gpointer user_data, guint index, void *out, GError **error)
{
  (void)error;
  const LabelPages *lp = user_data;
  const double *v = lp->values + index * LW * LH;
  for (gsize i = 0; i < LW * LH; i++) {
    if (lp->type == EMSEG_SAMPLE_U8)
      ((guint8 *)out)[i] = (guint8)v[i];
    else if (lp->type == EMSEG_SAMPLE_U16)
      ((guint16 *)out)[i] = (guint16)v[i];
    else if (lp->type == EMSEG_SAMPLE_U32)
      ((guint32 *)out)[i] = (guint32)v[i];
    else
      ((float *)out)[i] = (float)v[i];
  }
  return TRUE;
}

/* One slice of the given type and values, read through emseg_labels_read. */
static gboolean
labels_of(EmsegSampleType type, const double *values, guint8 *out, GError **error)
{
  LabelPages lp = { type, values };
  g_autoptr(EmsegStack) s = emseg_stack_new_from_reader("labels.tif", LW, LH, 1, type,
                                                        read_label_page, g_memdup2(&lp, sizeof lp),
                                                        g_free, error);
  g_assert_nonnull(s);
  return emseg_labels_read(s, 0, out, error);
}

static void
test_label_encodings(void)
{
  guint8 out[LW * LH];
  g_autoptr(GError) error = NULL;
  /* emseg's own: 0 / 128 / 255 as they are */
  const double own[] = { 0, 255, 128, 0, 255, 255, 0, 128 };
  const guint8 own_want[] = { 0, 255, 128, 0, 255, 255, 0, 128 };
  g_assert_true(labels_of(EMSEG_SAMPLE_U8, own, out, &error));
  g_assert_cmpmem(out, sizeof out, own_want, sizeof own_want);
  /* a 0/1 mask, 8-bit or float: 1 = cell (was all membrane on import, unlabeled in train) */
  const double mask[] = { 0, 1, 1, 0, 0, 0, 1, 1 };
  const guint8 mask_want[] = { 0, 255, 255, 0, 0, 0, 255, 255 };
  g_assert_true(labels_of(EMSEG_SAMPLE_U8, mask, out, &error));
  g_assert_cmpmem(out, sizeof out, mask_want, sizeof mask_want);
  g_assert_true(labels_of(EMSEG_SAMPLE_F32, mask, out, &error));
  g_assert_cmpmem(out, sizeof out, mask_want, sizeof mask_want);
  /* 16-bit 0 / 65535 */
  const double wide[] = { 0, 65535, 65535, 0, 0, 0, 65535, 65535 };
  g_assert_true(labels_of(EMSEG_SAMPLE_U16, wide, out, &error));
  g_assert_cmpmem(out, sizeof out, mask_want, sizeof mask_want);
  /* refused, naming the slice, the pixel and the value: a value no reading takes ... */
  const double odd[] = { 0, 255, 200, 0, 0, 0, 0, 0 };
  g_assert_false(labels_of(EMSEG_SAMPLE_U8, odd, out, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "labels.tif, slice 0: pixel (x 2, y 0) is 200;"));
  g_clear_error(&error);
  /* ... two encodings in one slice (1 and 255), and another tool's 1 / 2 classes */
  const double mixed[] = { 0, 1, 0, 0, 0, 255, 0, 0 };
  g_assert_false(labels_of(EMSEG_SAMPLE_U8, mixed, out, &error));
  g_assert_nonnull(strstr(error->message, "pixel (x 1, y 1) is 255 while pixel (x 1, y 0) is 1"));
  g_clear_error(&error);
  const double classes[] = { 1, 2, 2, 1, 1, 1, 2, 2 };
  g_assert_false(labels_of(EMSEG_SAMPLE_U16, classes, out, &error));
  g_assert_nonnull(strstr(error->message, "is 2"));
  /* two classes are no object ids: the refusal does not point to labels-from-ids */
  g_assert_null(strstr(error->message, "object ids"));
  g_clear_error(&error);
  /* three ids do, and emseg_labels_look_like_ids agrees */
  const double three[] = { 5, 5, 9, 9, 5, 7, 7, 9 };
  g_assert_false(labels_of(EMSEG_SAMPLE_U16, three, out, &error));
  g_assert_nonnull(strstr(error->message, "labels-from-ids"));
}

/* One slice of ids through emseg_labels_read_ids, or emseg_labels_look_like_ids of it. */
static gboolean
ids_of(EmsegSampleType type, const double *values, guint membrane_px, gboolean zero_unlabeled,
       guint8 *out, gboolean *looks_like_ids, GError **error)
{
  LabelPages lp = { type, values };
  g_autoptr(EmsegStack) s = emseg_stack_new_from_reader("ids.tif", LW, LH, 1, type,
                                                        read_label_page, g_memdup2(&lp, sizeof lp),
                                                        g_free, error);
  g_assert_nonnull(s);
  *looks_like_ids = emseg_labels_look_like_ids(s, 0);
  return emseg_labels_read_ids(s, 0, membrane_px, zero_unlabeled, out, error);
}

static void
test_label_ids(void)
{
  guint8 out[LW * LH];
  gboolean like = FALSE;
  g_autoptr(GError) error = NULL;
  /* 4×2: ids A = 16777216 and B = 16777217 (one float: read as floats they would be one
   * object) touching side by side and one above the other: both pixels of each contact are
   * membrane; 0 is membrane, or unlabeled when asked */
  const double ids[] = { 16777216, 16777217, 16777217, 0,
                         16777216, 16777216, 16777217, 16777217 };
  const guint8 want[] = { 0, 0, 255, 0,
                          255, 0, 0, 255 };
  g_assert_true(ids_of(EMSEG_SAMPLE_U32, ids, 1, FALSE, out, &like, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(out, sizeof out, want, sizeof want);
  const guint8 want_unl[] = { 0, 0, 255, 128,
                              255, 0, 0, 255 };
  g_assert_true(ids_of(EMSEG_SAMPLE_U32, ids, 1, TRUE, out, &like, &error));
  g_assert_cmpmem(out, sizeof out, want_unl, sizeof want_unl);
  /* three ids look like ids */
  const double three[] = { 5, 5, 9, 9, 5, 7, 7, 9 };
  g_assert_true(ids_of(EMSEG_SAMPLE_U16, three, 1, FALSE, out, &like, &error));
  g_assert_true(like);
  /* wider membrane: within membrane_px - 1 of a contact pixel (a square) */
  const double halves[] = { 4, 4, 8, 8,
                            4, 4, 8, 8 };
  const guint8 want1[] = { 255, 0, 0, 255, 255, 0, 0, 255 };
  const guint8 want2[] = { 0, 0, 0, 0, 0, 0, 0, 0 };
  g_assert_true(ids_of(EMSEG_SAMPLE_U16, halves, 1, FALSE, out, &like, &error));
  g_assert_cmpmem(out, sizeof out, want1, sizeof want1);
  g_assert_false(like); /* two values: another tool's classes as much as two objects */
  g_assert_true(ids_of(EMSEG_SAMPLE_U16, halves, 2, FALSE, out, &like, &error));
  g_assert_cmpmem(out, sizeof out, want2, sizeof want2);
  /* one object touching only id 0 keeps its pixels */
  const double alone[] = { 0, 6, 6, 0, 0, 6, 6, 0 };
  const guint8 want_alone[] = { 0, 255, 255, 0, 0, 255, 255, 0 };
  g_assert_true(ids_of(EMSEG_SAMPLE_F32, alone, 1, FALSE, out, &like, &error));
  g_assert_cmpmem(out, sizeof out, want_alone, sizeof want_alone);
  /* floats that are no whole numbers are refused, naming the pixel */
  const double frac[] = { 1, 2, 3, 4.5, 1, 2, 3, 4 };
  g_assert_false(ids_of(EMSEG_SAMPLE_F32, frac, 1, FALSE, out, &like, &error));
  g_assert_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "ids.tif, slice 0: pixel (x 3, y 0) is 4.5"));
  g_assert_false(like);
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks the per-test dir strings, which fails
   * the ASan run; these tests touch only their own scratch folder. */
  g_test_init(&argc, &argv, NULL);
  scratch = g_dir_make_tmp("emseg-test-stack-XXXXXX", NULL);
  g_assert_nonnull(scratch);
  g_test_add_func("/stack/tiff-round-trip-all-layouts", test_tiff_round_trip_all_layouts);
  g_test_add_func("/stack/tiff-rgb-and-miniswhite", test_tiff_rgb_and_miniswhite);
  g_test_add_func("/stack/png-folder-numeric-order", test_png_folder_numeric_order);
  g_test_add_func("/stack/writer-round-trip", test_writer_round_trip);
  g_test_add_func("/stack/writer-bigtiff", test_writer_bigtiff);
  g_test_add_func("/stack/writer-seen-by-tiffinfo", test_writer_seen_by_tiffinfo);
  g_test_add_func("/stack/bad-inputs", test_bad_inputs);
  g_test_add_func("/stack/writer-disk-full", test_writer_disk_full);
  g_test_add_func("/stack/imagej-contiguous", test_imagej_contiguous);
  g_test_add_func("/stack/label-encodings", test_label_encodings);
  g_test_add_func("/stack/label-ids", test_label_ids);
  int rc = g_test_run();
  emseg_test_remove_tree(scratch);
  g_free(scratch);
  return rc;
}
