/* emseg-stack-writer.c — streaming TIFF stack writer: 8-bit labels and 32-bit float
 * probabilities, one uncompressed page per slice, no ImageJ description (see
 * emseg_stack_writer_append).
 *
 * Uncompressed strips because that is what every consumer (ImageJ without Bio-Formats,
 * tifffile, the ISBI evaluation scripts) reads. The file is written through our own
 * libtiff client procedures over a file descriptor: they give us a byte count for the
 * disk-full test hook and let finish() fsync before the rename that publishes the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "emseg-stack-private.h"

/* Classic TIFF addresses 4 GiB; stay clear of it by the IFDs' worth of slack. */
#define CLASSIC_TIFF_LIMIT (((guint64)1 << 32) - ((guint64)64 << 20))
#define TARGET_STRIP_BYTES ((gsize)256 << 10)

static _Atomic guint64 fail_after_bytes;
static _Atomic guint64 bigtiff_threshold;

void
emseg_stack_writer_set_fail_after_bytes_for_testing(guint64 bytes)
{
  atomic_store(&fail_after_bytes, bytes);
}

void
emseg_stack_writer_set_bigtiff_threshold_for_testing(guint64 bytes)
{
  atomic_store(&bigtiff_threshold, bytes);
}

typedef struct {
  int fd;
  guint64 written;    /* bytes handed to write(), for the fail-after hook */
  guint64 fail_after; /* 0: never */
  int saved_errno;    /* first write/sync failure, reported by finish() */
} Sink;

struct _EmsegStackWriter {
  char *path;     /* owned: final name */
  char *tmp_path; /* owned: where we write until finish() */
  EmsegSampleType type;
  guint width, height, n_slices, written_slices;
  gboolean bigtiff, finished;
  TIFF *tif;       /* owned until finish() */
  Sink sink;
  GString *tiff_message; /* owned: last libtiff error */
};

static tmsize_t
sink_read(thandle_t h, void *buf, tmsize_t size)
{
  Sink *s = (Sink *)h;
  ssize_t r = read(s->fd, buf, (size_t)size);
  return r;
}

static tmsize_t
sink_write(thandle_t h, void *buf, tmsize_t size)
{
  Sink *s = (Sink *)h;
  if (s->fail_after != 0 && s->written + (guint64)size > s->fail_after) {
    s->saved_errno = ENOSPC;
    errno = ENOSPC;
    return -1;
  }
  const guint8 *p = buf;
  tmsize_t left = size;
  while (left > 0) {
    ssize_t w = write(s->fd, p, (size_t)left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (s->saved_errno == 0)
        s->saved_errno = w < 0 ? errno : ENOSPC;
      return -1;
    }
    p += w;
    left -= w;
  }
  s->written += (guint64)size;
  return size;
}

static toff_t
sink_seek(thandle_t h, toff_t off, int whence)
{
  Sink *s = (Sink *)h;
  off_t r = lseek(s->fd, (off_t)off, whence);
  return r < 0 ? (toff_t)-1 : (toff_t)r;
}

static int
sink_close(thandle_t h)
{
  /* The descriptor is closed by the writer, after fsync, so failures can be reported. */
  return 0;
}

static toff_t
sink_size(thandle_t h)
{
  Sink *s = (Sink *)h;
  struct stat st;
  return fstat(s->fd, &st) == 0 ? (toff_t)st.st_size : 0;
}

static int
sink_map(thandle_t h, void **base, toff_t *size)
{
  return 0; /* no mapping: libtiff falls back to read/seek */
}

static void
sink_unmap(thandle_t h, void *base, toff_t size)
{
}

static int
on_tiff_error(TIFF *tif, void *user_data, const char *module, const char *fmt, va_list ap)
{
  GString *msg = user_data;
  g_string_truncate(msg, 0);
  if (module != NULL)
    g_string_append_printf(msg, "%s: ", module);
  g_string_append_vprintf(msg, fmt, ap);
  return 1;
}

static int
on_tiff_warning(TIFF *tif, void *user_data, const char *module, const char *fmt, va_list ap)
{
  return 1;
}

static void
set_write_error(EmsegStackWriter *w, GError **error, const char *what)
{
  int e = w->sink.saved_errno;
  g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO, "%s: %s failed after slice %u: %s",
              w->path, what, w->written_slices,
              e != 0 ? g_strerror(e)
                     : (w->tiff_message->len > 0 ? w->tiff_message->str : "libtiff error"));
}

EmsegStackWriter *
emseg_stack_writer_new(const char *path, EmsegSampleType type, guint width, guint height,
                       guint n_slices, GError **error)
{
  g_return_val_if_fail(path != NULL, NULL);
  if (type != EMSEG_SAMPLE_U8 && type != EMSEG_SAMPLE_F32) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: stacks are written as uint8 or float32, not %s", path,
                emseg_sample_type_to_string(type));
    return NULL;
  }
  if (!emseg_stack_check_dims(path, width, height, error))
    return NULL;
  if (n_slices == 0 || n_slices > EMSEG_STACK_MAX_PAGES) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: cannot write a stack of %u slices", path, n_slices);
    return NULL;
  }

  EmsegStackWriter *w = g_new0(EmsegStackWriter, 1);
  w->path = g_strdup(path);
  w->type = type;
  w->width = width;
  w->height = height;
  w->n_slices = n_slices;
  w->sink.fd = -1;
  w->sink.fail_after = atomic_load(&fail_after_bytes);
  w->tiff_message = g_string_new(NULL);

  guint64 pixels = (guint64)width * height * emseg_sample_type_size(type) * n_slices;
  guint64 threshold = atomic_load(&bigtiff_threshold);
  /* Pixels plus per page an IFD and its strip tables: a generous estimate is fine. */
  guint64 estimate = pixels + (guint64)n_slices * (4096 + 16 * (height + 1));
  w->bigtiff = estimate > (threshold != 0 ? threshold : CLASSIC_TIFF_LIMIT);

  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *base = g_path_get_basename(path);
  w->tmp_path = g_strdup_printf("%s/.%s.tmp-XXXXXX", dir, base);
  w->sink.fd = g_mkstemp_full(w->tmp_path, O_RDWR | O_CLOEXEC, 0644);
  if (w->sink.fd < 0) {
    int e = errno;
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO,
                "%s: cannot create a file in %s: %s", path, dir, g_strerror(e));
    g_clear_pointer(&w->tmp_path, g_free);
    emseg_stack_writer_free(w);
    return NULL;
  }
  /* mkstemp makes 0600; a stack is a document, readable like any other the user saves. */
  fchmod(w->sink.fd, 0644);

  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, on_tiff_error, w->tiff_message);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, on_tiff_warning, w->tiff_message);
  w->tif = TIFFClientOpenExt(w->tmp_path, w->bigtiff ? "w8" : "w", (thandle_t)&w->sink,
                             sink_read, sink_write, sink_seek, sink_close, sink_size, sink_map,
                             sink_unmap, opts);
  TIFFOpenOptionsFree(opts);
  if (w->tif == NULL) {
    set_write_error(w, error, "starting the TIFF");
    emseg_stack_writer_free(w);
    return NULL;
  }
  return w;
}

gboolean
emseg_stack_writer_is_bigtiff(EmsegStackWriter *writer)
{
  return writer->bigtiff;
}

gboolean
emseg_stack_writer_append(EmsegStackWriter *w, const void *slice, GError **error)
{
  g_return_val_if_fail(w != NULL && slice != NULL, FALSE);
  if (w->tif == NULL || w->finished) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: writer already finished or failed", w->path);
    return FALSE;
  }
  if (w->written_slices >= w->n_slices) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: %u slices declared, slice %u is one too many", w->path, w->n_slices,
                w->written_slices);
    return FALSE;
  }
  TIFF *tif = w->tif;
  gsize bytes = emseg_sample_type_size(w->type);
  gsize row_bytes = (gsize)w->width * bytes;
  guint32 rps = (guint32)CLAMP(TARGET_STRIP_BYTES / row_bytes, 1, w->height);

  TIFFSetField(tif, TIFFTAG_SUBFILETYPE, 0);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (guint32)w->width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (guint32)w->height);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (guint16)(bytes * 8));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (guint16)1);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT,
               (guint16)(w->type == EMSEG_SAMPLE_F32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (guint16)PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (guint16)PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, (guint16)COMPRESSION_NONE);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps);
  /* No ImageJ description ("ImageJ=… images=N"): ImageJ, and so Fiji, then reads only
   * page 0's directory and takes the N slices as back to back pixels, but libtiff puts each
   * page's directory between its pixels and the next page's, so every slice after the
   * first would be read shifted (tests/data/tifffile-crosscheck.py models that reader).
   * Without it ImageJ opens every page as a slice of a stack. */
  const guint8 *src = slice;
  for (guint32 y = 0, s = 0; y < w->height; y += rps, s++) {
    guint32 rows = MIN(rps, w->height - y);
    /* libtiff takes a non-const buffer but does not modify it for uncompressed data. */
    if (TIFFWriteEncodedStrip(tif, s, (void *)(guintptr)(src + (gsize)y * row_bytes),
                              (tmsize_t)(rows * row_bytes)) < 0) {
      set_write_error(w, error, "writing pixels");
      return FALSE;
    }
  }
  if (!TIFFWriteDirectory(tif)) {
    set_write_error(w, error, "writing the page directory");
    return FALSE;
  }
  w->written_slices++;
  return TRUE;
}

gboolean
emseg_stack_writer_finish(EmsegStackWriter *w, GError **error)
{
  g_return_val_if_fail(w != NULL, FALSE);
  if (w->tif == NULL || w->finished) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: writer already finished or failed", w->path);
    return FALSE;
  }
  if (w->written_slices != w->n_slices) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: %u slices declared but %u written; nothing saved", w->path, w->n_slices,
                w->written_slices);
    return FALSE;
  }
  TIFFClose(w->tif);
  w->tif = NULL;
  if (w->sink.saved_errno != 0) {
    set_write_error(w, error, "closing the TIFF");
    return FALSE;
  }
  if (fsync(w->sink.fd) != 0) {
    w->sink.saved_errno = errno;
    set_write_error(w, error, "syncing to disk");
    return FALSE;
  }
  int fd = w->sink.fd;
  w->sink.fd = -1;
  if (close(fd) != 0) {
    w->sink.saved_errno = errno;
    set_write_error(w, error, "closing");
    return FALSE;
  }
  if (g_rename(w->tmp_path, w->path) != 0) {
    int e = errno;
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_IO,
                "%s: cannot move the finished file into place: %s", w->path, g_strerror(e));
    return FALSE;
  }
  w->finished = TRUE;
  return TRUE;
}

void
emseg_stack_writer_free(EmsegStackWriter *w)
{
  if (w == NULL)
    return;
  if (w->tif != NULL) {
    /* Abandoned mid-stack: stop libtiff from writing further, then drop the partial file. */
    TIFFCleanup(w->tif);
    w->tif = NULL;
  }
  if (w->sink.fd >= 0)
    close(w->sink.fd);
  if (!w->finished && w->tmp_path != NULL)
    g_unlink(w->tmp_path);
  g_free(w->tmp_path);
  g_free(w->path);
  g_string_free(w->tiff_message, TRUE);
  g_free(w);
}

static gboolean
write_whole(const char *path, EmsegSampleType type, const void *data, guint width,
            guint height, guint n_slices, GError **error)
{
  g_autoptr(EmsegStackWriter) w =
      emseg_stack_writer_new(path, type, width, height, n_slices, error);
  if (w == NULL)
    return FALSE;
  gsize slice = (gsize)width * height * emseg_sample_type_size(type);
  for (guint i = 0; i < n_slices; i++)
    if (!emseg_stack_writer_append(w, (const guint8 *)data + slice * i, error))
      return FALSE;
  return emseg_stack_writer_finish(w, error);
}

gboolean
emseg_tiff_write_u8_stack(const char *path, const guint8 *data, guint width, guint height,
                          guint n_slices, GError **error)
{
  return write_whole(path, EMSEG_SAMPLE_U8, data, width, height, n_slices, error);
}

gboolean
emseg_tiff_write_float_stack(const char *path, const float *data, guint width, guint height,
                             guint n_slices, GError **error)
{
  return write_whole(path, EMSEG_SAMPLE_F32, data, width, height, n_slices, error);
}
