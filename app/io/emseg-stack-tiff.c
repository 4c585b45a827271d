/* emseg-stack-tiff.c — the TIFF back end of the stack reader (libtiff).
 *
 * Open walks the IFD chain once, checks every page's layout and records each directory's
 * offset, so a slice is later reached with one seek rather than a walk from page 0. Pixels
 * are decoded only in emseg_stack_tiff_read(). libtiff's messages are captured per handle
 * (TIFFOpenExt with our own handlers) and folded into GErrors; process-global handlers are
 * never touched, so other threads and libraries keep theirs. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include <glib/gstdio.h>

#include "emseg-stack-private.h"

/* Cap libtiff's single allocations: a hostile header must not make it reserve gigabytes. */
#define TIFF_MAX_SINGLE_ALLOC ((tmsize_t)1 << 31)

typedef struct {
  guint32 width, height;
  guint16 bps, spp, format, photometric, planar;
  gboolean tiled;
} PageLayout;

static int
on_tiff_error(TIFF *tif, void *user_data, const char *module, const char *fmt, va_list ap)
{
  EmsegStack *stack = user_data;
  g_string_truncate(stack->tiff_message, 0);
  if (module != NULL)
    g_string_append_printf(stack->tiff_message, "%s: ", module);
  g_string_append_vprintf(stack->tiff_message, fmt, ap);
  return 1; /* handled: do not call the global handler */
}

static int
on_tiff_warning(TIFF *tif, void *user_data, const char *module, const char *fmt, va_list ap)
{
  /* Unknown tags and the like are common in microscope files and harmless. */
  return 1;
}

/* The libtiff message for the current failure, or a fallback when it said nothing. */
static const char *
tiff_reason(EmsegStack *stack, const char *fallback)
{
  return stack->tiff_message->len > 0 ? stack->tiff_message->str : fallback;
}

static gboolean
sample_type_for(const PageLayout *l, EmsegSampleType *type)
{
  switch (l->format) {
  case SAMPLEFORMAT_UINT:
    if (l->bps == 8) { *type = EMSEG_SAMPLE_U8; return TRUE; }
    if (l->bps == 16) { *type = EMSEG_SAMPLE_U16; return TRUE; }
    if (l->bps == 32) { *type = EMSEG_SAMPLE_U32; return TRUE; }
    return FALSE;
  case SAMPLEFORMAT_INT:
    if (l->bps == 8) { *type = EMSEG_SAMPLE_I8; return TRUE; }
    if (l->bps == 16) { *type = EMSEG_SAMPLE_I16; return TRUE; }
    if (l->bps == 32) { *type = EMSEG_SAMPLE_I32; return TRUE; }
    return FALSE;
  case SAMPLEFORMAT_IEEEFP:
    if (l->bps == 32) { *type = EMSEG_SAMPLE_F32; return TRUE; }
    return FALSE;
  default:
    return FALSE;
  }
}

/* Reads the current directory's layout and says, in words, why it cannot be used. */
static gboolean
read_layout(EmsegStack *stack, guint page, PageLayout *l, EmsegSampleType *type,
            GError **error)
{
  TIFF *tif = stack->tif;
  memset(l, 0, sizeof *l);
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l->width) ||
      !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l->height)) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s, page %u: no image width/length tags", stack->path, page);
    return FALSE;
  }
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l->bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l->spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &l->format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l->planar);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l->photometric))
    l->photometric = l->spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  l->tiled = TIFFIsTiled(tif);

  g_autofree char *where = g_strdup_printf("%s, page %u", stack->path, page);
  if (!emseg_stack_check_dims(where, l->width, l->height, error))
    return FALSE;

  const char *reason = NULL;
  if (l->photometric == PHOTOMETRIC_PALETTE)
    reason = "palette (colour-mapped) images are not supported; save as 8-bit grayscale";
  else if (l->bps < 8)
    reason = "1-, 2- and 4-bit images are not supported; save as 8-bit grayscale";
  else if (l->photometric != PHOTOMETRIC_MINISBLACK && l->photometric != PHOTOMETRIC_MINISWHITE &&
           l->photometric != PHOTOMETRIC_RGB)
    reason = "only grayscale and RGB photometric interpretations are supported "
             "(YCbCr, CMYK, CIELab, masks are not)";
  else if (l->photometric == PHOTOMETRIC_RGB && l->spp < 3)
    reason = "RGB image with fewer than 3 samples per pixel";
  else if (l->spp < 1 || l->spp > 16)
    reason = "unusual number of samples per pixel";
  else if (!sample_type_for(l, type))
    reason = "sample format is not 8/16/32-bit integer or 32-bit float";
  else if (l->photometric == PHOTOMETRIC_MINISWHITE && *type != EMSEG_SAMPLE_U8 &&
           *type != EMSEG_SAMPLE_U16)
    reason = "min-is-white is supported for 8- and 16-bit unsigned images only";
  else if (l->planar != PLANARCONFIG_CONTIG && l->planar != PLANARCONFIG_SEPARATE)
    reason = "unknown planar configuration";
  if (reason != NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_UNSUPPORTED,
                "%s: %s (%u bits x %u samples, photometric %u, sample format %u)", where,
                reason, l->bps, l->spp, l->photometric, l->format);
    return FALSE;
  }
  return TRUE;
}

static void
append_warning(EmsegStack *stack, const char *text)
{
  if (stack->warning == NULL) {
    stack->warning = g_strdup(text);
  } else if (strstr(stack->warning, text) == NULL) {
    char *joined = g_strconcat(stack->warning, "; ", text, NULL);
    g_free(stack->warning);
    stack->warning = joined;
  }
}

static gboolean
has_tiff_magic(const char *path)
{
  guint8 head[4] = { 0 };
  FILE *fp = g_fopen(path, "rb");
  if (fp == NULL)
    return FALSE;
  gboolean ok = fread(head, 1, 4, fp) == 4;
  fclose(fp);
  return ok && ((head[0] == 'I' && head[1] == 'I' && (head[2] == 42 || head[2] == 43)) ||
                (head[0] == 'M' && head[1] == 'M' && (head[3] == 42 || head[3] == 43)));
}

/* ImageJ writes stacks past 4 GiB with a single IFD: page 0's description says
 * "images=N" and the other N-1 slices follow page 0's pixels back to back, uncompressed.
 * Read from plain TIFF readers, such a file looks like one slice; we recognise it so the
 * whole stack opens. Only a fully consistent layout is accepted. */
static gboolean
detect_imagej_contiguous(EmsegStack *stack, const PageLayout *l, GError **error)
{
  if (!TIFFSetSubDirectory(stack->tif, stack->ifd_offsets[0]))
    return TRUE;
  const char *desc = NULL;
  if (!TIFFGetField(stack->tif, TIFFTAG_IMAGEDESCRIPTION, &desc) || desc == NULL ||
      !g_str_has_prefix(desc, "ImageJ="))
    return TRUE;
  const char *images = strstr(desc, "\nimages=");
  guint64 n = images != NULL ? g_ascii_strtoull(images + 8, NULL, 10) : 0;
  guint16 compression = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(stack->tif, TIFFTAG_COMPRESSION, &compression);
  if (n <= 1)
    return TRUE;
  if (l->tiled || l->spp != 1 || compression != COMPRESSION_NONE || n > EMSEG_STACK_MAX_PAGES ||
      l->photometric == PHOTOMETRIC_MINISWHITE) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_UNSUPPORTED,
                "%s: ImageJ description declares %" G_GUINT64_FORMAT " images but the file "
                "has one page directory and its pixels are not plain uncompressed gray",
                stack->path, n);
    return FALSE;
  }
  /* Strips must be back to back, holding exactly one slice. */
  const guint64 *offs = NULL, *counts = NULL;
  guint32 n_strips = TIFFNumberOfStrips(stack->tif);
  if (!TIFFGetField(stack->tif, TIFFTAG_STRIPOFFSETS, &offs) ||
      !TIFFGetField(stack->tif, TIFFTAG_STRIPBYTECOUNTS, &counts) || n_strips == 0)
    return TRUE;
  guint64 slice = (guint64)l->width * l->height * emseg_sample_type_size(stack->type);
  guint64 pos = offs[0];
  for (guint32 s = 0; s < n_strips; s++) {
    if (offs[s] != pos)
      return TRUE; /* not contiguous: not ImageJ's layout, keep the single page */
    pos += counts[s];
  }
  if (pos - offs[0] != slice)
    return TRUE;
  GStatBuf st;
  guint64 need = offs[0] + slice * n;
  if (g_stat(stack->path, &st) != 0 || (guint64)st.st_size < need) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s: ImageJ stack of %" G_GUINT64_FORMAT " images needs %" G_GUINT64_FORMAT
                " bytes but the file has %" G_GUINT64_FORMAT "; it is truncated",
                stack->path, n, need, (guint64)st.st_size);
    return FALSE;
  }
  stack->imagej_offset = offs[0];
  stack->imagej_swab = TIFFIsByteSwapped(stack->tif);
  stack->n_slices = (guint)n;
  return TRUE;
}

static gboolean
read_imagej_contiguous(EmsegStack *stack, guint index, void *out, GError **error)
{
  gsize n = (gsize)stack->width * stack->height;
  gsize bytes = n * emseg_sample_type_size(stack->type);
  guint64 off = stack->imagej_offset + (guint64)index * bytes;
  int fd = TIFFFileno(stack->tif);
  gsize done = 0;
  while (done < bytes) {
    ssize_t r = pread(fd, (guint8 *)out + done, bytes - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      g_set_error(error, EMSEG_STACK_ERROR, r < 0 ? EMSEG_STACK_ERROR_IO : EMSEG_STACK_ERROR_FORMAT,
                  "%s, slice %u: %s", stack->path, index,
                  r < 0 ? g_strerror(errno) : "file ends inside the slice (truncated)");
      return FALSE;
    }
    done += (gsize)r;
  }
  if (stack->imagej_swab) {
    switch (emseg_sample_type_size(stack->type)) {
    case 2: TIFFSwabArrayOfShort(out, (tmsize_t)n); break;
    case 4: TIFFSwabArrayOfLong(out, (tmsize_t)n); break;
    default: break;
    }
  }
  return TRUE;
}

gboolean
emseg_stack_tiff_open(EmsegStack *stack, GError **error)
{
  stack->tiff_message = g_string_new(NULL);
  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, on_tiff_error, stack);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, on_tiff_warning, stack);
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, TIFF_MAX_SINGLE_ALLOC);
  /* "m": no memory mapping, so browsing a huge stack costs only the slices decoded, and
   * a file truncated under us yields a read error rather than SIGBUS. */
  stack->tif = TIFFOpenExt(stack->path, "rm", opts);
  TIFFOpenOptionsFree(opts);
  if (stack->tif == NULL) {
    if (!g_file_test(stack->path, G_FILE_TEST_EXISTS))
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO, "%s: no such file",
                  stack->path);
    else if (stack->tiff_message->len == 0 && has_tiff_magic(stack->path))
      /* libtiff refuses a header whose first directory offset is 0 without a word. */
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                  "%s: TIFF header but no pages (no image directory)", stack->path);
    else
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                  "%s: not a readable TIFF file (%s)", stack->path,
                  tiff_reason(stack, "libtiff could not open it"));
    return FALSE;
  }

  GArray *offsets = g_array_new(FALSE, FALSE, sizeof(toff_t));
  PageLayout first = { 0 };
  EmsegSampleType first_type = EMSEG_SAMPLE_U8;
  gboolean ok = TRUE;
  guint page = 0;
  for (;;) {
    PageLayout l;
    EmsegSampleType type;
    if (!read_layout(stack, page, &l, &type, error)) {
      ok = FALSE;
      break;
    }
    if (page == 0) {
      first = l;
      first_type = type;
    } else if (l.width != first.width || l.height != first.height || type != first_type) {
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH,
                  "%s, page %u: %u x %u %s, but page 0 is %u x %u %s; all slices of a "
                  "stack must have the same size and type",
                  stack->path, page, l.width, l.height, emseg_sample_type_to_string(type),
                  first.width, first.height, emseg_sample_type_to_string(first_type));
      ok = FALSE;
      break;
    }
    if (l.photometric == PHOTOMETRIC_RGB)
      append_warning(stack, "RGB converted to luminance (0.299 R + 0.587 G + 0.114 B)");
    else if (l.spp > 1)
      append_warning(stack, "extra channels ignored, first sample used as gray");
    if (l.photometric == PHOTOMETRIC_MINISWHITE)
      append_warning(stack, "min-is-white image inverted to min-is-black");
    toff_t off = TIFFCurrentDirOffset(stack->tif);
    g_array_append_val(offsets, off);
    page++;
    if (page >= EMSEG_STACK_MAX_PAGES) {
      g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                  "%s: more than %u pages", stack->path, EMSEG_STACK_MAX_PAGES);
      ok = FALSE;
      break;
    }
    g_string_truncate(stack->tiff_message, 0);
    if (!TIFFReadDirectory(stack->tif)) {
      /* 0 means either "no more pages" or a broken chain; only the latter says why. */
      if (stack->tiff_message->len > 0) {
        g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                    "%s, page %u: cannot read the page directory, the file may be truncated "
                    "(%s)",
                    stack->path, page, stack->tiff_message->str);
        ok = FALSE;
      }
      break;
    }
  }
  if (ok && page == 0) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT, "%s: no pages",
                stack->path);
    ok = FALSE;
  }
  stack->n_slices = offsets->len;
  stack->ifd_offsets = (toff_t *)g_array_free(offsets, FALSE);
  stack->width = first.width;
  stack->height = first.height;
  stack->type = first_type;
  if (ok && stack->n_slices == 1)
    ok = detect_imagej_contiguous(stack, &first, error);
  return ok;
}

void
emseg_stack_tiff_close(EmsegStack *stack)
{
  g_clear_pointer(&stack->tif, TIFFClose);
  g_clear_pointer(&stack->ifd_offsets, g_free);
  if (stack->tiff_message != NULL)
    g_string_free(stack->tiff_message, TRUE);
  stack->tiff_message = NULL;
}

/* Decodes plane `plane` (0 for contiguous data) of the current page into dst, which holds
 * height rows of row_bytes bytes. */
static gboolean
read_plane(EmsegStack *stack, guint page, const PageLayout *l, guint plane, guint8 *dst,
           gsize row_bytes, GError **error)
{
  TIFF *tif = stack->tif;
  gsize pixel_bytes = row_bytes / l->width;
  if (!l->tiled) {
    guint32 rps = l->height;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    rps = CLAMP(rps, 1, l->height);
    guint32 strips_per_plane = (l->height + rps - 1) / rps;
    for (guint32 s = 0; s < strips_per_plane; s++) {
      guint32 rows = MIN(rps, l->height - s * rps);
      tmsize_t want = (tmsize_t)(rows * row_bytes);
      tmsize_t got = TIFFReadEncodedStrip(tif, plane * strips_per_plane + s,
                                          dst + (gsize)s * rps * row_bytes, want);
      if (got != want) {
        g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                    "%s, page %u: strip %u could not be decoded, the file may be truncated "
                    "or corrupt (%s)",
                    stack->path, page, s, tiff_reason(stack, "short read"));
        return FALSE;
      }
    }
    return TRUE;
  }

  guint32 tw = 0, th = 0;
  TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
  TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
  if (tw == 0 || th == 0 || tw > EMSEG_STACK_MAX_SIDE || th > EMSEG_STACK_MAX_SIDE ||
      (guint64)tw * th > EMSEG_STACK_MAX_PIXELS) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s, page %u: invalid tile size %u x %u", stack->path, page, tw, th);
    return FALSE;
  }
  gsize tile_row = (gsize)tw * pixel_bytes;
  tmsize_t tile_bytes = (tmsize_t)(tile_row * th);
  guint8 *tile = g_try_malloc(tile_bytes);
  if (tile == NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s, page %u: cannot allocate a %u x %u tile", stack->path, page, tw, th);
    return FALSE;
  }
  gboolean ok = TRUE;
  for (guint32 y = 0; ok && y < l->height; y += th) {
    for (guint32 x = 0; ok && x < l->width; x += tw) {
      ttile_t t = TIFFComputeTile(tif, x, y, 0, (tsample_t)plane);
      if (TIFFReadEncodedTile(tif, t, tile, tile_bytes) != tile_bytes) {
        g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                    "%s, page %u: tile at (%u, %u) could not be decoded, the file may be "
                    "truncated or corrupt (%s)",
                    stack->path, page, x, y, tiff_reason(stack, "short read"));
        ok = FALSE;
        break;
      }
      guint32 rows = MIN(th, l->height - y);
      gsize copy = (gsize)MIN(tw, l->width - x) * pixel_bytes;
      for (guint32 r = 0; r < rows; r++)
        memcpy(dst + (gsize)(y + r) * row_bytes + (gsize)x * pixel_bytes,
               tile + (gsize)r * tile_row, copy);
    }
  }
  g_free(tile);
  return ok;
}

/* Reads sample `c` of an interleaved pixel as double, for the RGB→luma path. */
static double
sample_at(EmsegSampleType type, const guint8 *base, gsize i)
{
  switch (type) {
  case EMSEG_SAMPLE_U8: return ((const guint8 *)base)[i];
  case EMSEG_SAMPLE_I8: return ((const gint8 *)base)[i];
  case EMSEG_SAMPLE_U16: { guint16 v; memcpy(&v, base + 2 * i, 2); return v; }
  case EMSEG_SAMPLE_I16: { gint16 v; memcpy(&v, base + 2 * i, 2); return v; }
  case EMSEG_SAMPLE_U32: { guint32 v; memcpy(&v, base + 4 * i, 4); return v; }
  case EMSEG_SAMPLE_I32: { gint32 v; memcpy(&v, base + 4 * i, 4); return v; }
  case EMSEG_SAMPLE_F32: { float v; memcpy(&v, base + 4 * i, 4); return v; }
  }
  return 0;
}

static void
store_sample(EmsegSampleType type, guint8 *out, gsize i, double v)
{
  switch (type) {
  case EMSEG_SAMPLE_U8: ((guint8 *)out)[i] = (guint8)CLAMP(lround(v), 0, G_MAXUINT8); break;
  case EMSEG_SAMPLE_I8: ((gint8 *)out)[i] = (gint8)CLAMP(lround(v), G_MININT8, G_MAXINT8); break;
  case EMSEG_SAMPLE_U16: { guint16 s = (guint16)CLAMP(lround(v), 0, G_MAXUINT16); memcpy(out + 2 * i, &s, 2); break; }
  case EMSEG_SAMPLE_I16: { gint16 s = (gint16)CLAMP(lround(v), G_MININT16, G_MAXINT16); memcpy(out + 2 * i, &s, 2); break; }
  case EMSEG_SAMPLE_U32: { guint32 s = (guint32)CLAMP(llround(v), 0, (long long)G_MAXUINT32); memcpy(out + 4 * i, &s, 4); break; }
  case EMSEG_SAMPLE_I32: { gint32 s = (gint32)CLAMP(llround(v), G_MININT32, G_MAXINT32); memcpy(out + 4 * i, &s, 4); break; }
  case EMSEG_SAMPLE_F32: { float s = (float)v; memcpy(out + 4 * i, &s, 4); break; }
  }
}

gboolean
emseg_stack_tiff_read(EmsegStack *stack, guint index, void *out, GError **error)
{
  if (stack->imagej_offset != 0)
    return read_imagej_contiguous(stack, index, out, error);
  g_string_truncate(stack->tiff_message, 0);
  if (!TIFFSetSubDirectory(stack->tif, stack->ifd_offsets[index])) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s, page %u: cannot read the page directory (%s)", stack->path, index,
                tiff_reason(stack, "unknown reason"));
    return FALSE;
  }
  PageLayout l;
  EmsegSampleType type;
  if (!read_layout(stack, index, &l, &type, error))
    return FALSE;
  if (l.width != stack->width || l.height != stack->height || type != stack->type) {
    /* The file changed since it was opened. */
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH,
                "%s, page %u: layout changed since the stack was opened", stack->path, index);
    return FALSE;
  }
  gsize bytes = emseg_sample_type_size(type);
  gsize n = (gsize)l.width * l.height;

  if (l.spp == 1) {
    if (!read_plane(stack, index, &l, 0, out, l.width * bytes, error))
      return FALSE;
  } else {
    /* Multi-sample: decode into an interleaved buffer (one plane per sample when planar
     * separate, only the planes we need), then reduce to one gray value per pixel. */
    guint need = l.photometric == PHOTOMETRIC_RGB ? 3 : 1;
    gboolean separate = l.planar == PLANARCONFIG_SEPARATE;
    guint stride = separate ? 1 : l.spp;
    guint8 *planes[3] = { NULL, NULL, NULL };
    gboolean ok = TRUE;
    for (guint p = 0; ok && p < (separate ? need : 1); p++) {
      planes[p] = g_try_malloc(n * bytes * stride);
      if (planes[p] == NULL) {
        g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                    "%s, page %u: cannot allocate the decoding buffer", stack->path, index);
        ok = FALSE;
        break;
      }
      ok = read_plane(stack, index, &l, p, planes[p], (gsize)l.width * bytes * stride, error);
    }
    if (ok) {
      guint8 *o = out;
      for (gsize i = 0; i < n; i++) {
        double v;
        if (need == 1)
          v = sample_at(type, planes[0], i * stride);
        else if (separate)
          v = emseg_luma(sample_at(type, planes[0], i), sample_at(type, planes[1], i),
                         sample_at(type, planes[2], i));
        else
          v = emseg_luma(sample_at(type, planes[0], i * stride),
                         sample_at(type, planes[0], i * stride + 1),
                         sample_at(type, planes[0], i * stride + 2));
        store_sample(type, o, i, v);
      }
    }
    for (guint p = 0; p < 3; p++)
      g_free(planes[p]);
    if (!ok)
      return FALSE;
  }

  if (l.photometric == PHOTOMETRIC_MINISWHITE) {
    if (type == EMSEG_SAMPLE_U8) {
      guint8 *o = out;
      for (gsize i = 0; i < n; i++) o[i] = 255 - o[i];
    } else {
      guint16 *o = out;
      for (gsize i = 0; i < n; i++) o[i] = 65535 - o[i];
    }
  }
  return TRUE;
}
