/* emseg-stack.h — image stacks on disk: lazy readers and streaming writers.
 *
 * A stack is a sequence of equally sized single-channel slices. Readers open a multi-page
 * TIFF (libtiff: 8/16/32-bit integer and 32-bit float, strips or tiles, any compression
 * libtiff decodes, BigTIFF, ImageJ stacks) or a folder / glob of numbered PNG files, and
 * read only the directory at open; pixels are decoded per slice on demand through a small
 * cache. Raw values keep their type (normalization lives in the engine); RGB input is
 * converted to luminance and reported through emseg_stack_get_warning().
 *
 * Writers produce one page per slice, 8-bit (labels: 255 = cell, 0 = membrane) or 32-bit
 * float (probabilities), without an ImageJ description (its "images=N" would make
 * ImageJ/Fiji misread every slice after the first), so ImageJ/Fiji opens every page as a
 * slice of a stack. They write to a temporary file beside the target and rename it
 * on finish, so a reader never sees half a stack; BigTIFF is chosen when the classic 4 GiB
 * limit would be passed.
 *
 * Ownership: an EmsegStack owns its file handle, its cache and every string it returns;
 * callers own the buffers they pass in. A stack may be shared between threads: all access
 * to the handle and the cache is serialised by an internal mutex.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define EMSEG_STACK_ERROR (emseg_stack_error_quark())
GQuark emseg_stack_error_quark(void);

typedef enum {
  EMSEG_STACK_ERROR_IO,          /* cannot open, read, write or rename */
  EMSEG_STACK_ERROR_FORMAT,      /* not a TIFF/PNG, truncated, corrupt, zero pages */
  EMSEG_STACK_ERROR_UNSUPPORTED, /* 1-bit, palette, 64-bit, planar RGB, … (names the reason) */
  EMSEG_STACK_ERROR_MISMATCH,    /* slices of different size or type; labels vs images */
  EMSEG_STACK_ERROR_TOO_LARGE,   /* dimensions that would overflow or exceed our limits */
  EMSEG_STACK_ERROR_INVALID,     /* bad argument: slice out of range, wrong count written */
} EmsegStackError;

/* The type of the raw samples, as stored in the file (RGB input: the type of one channel). */
typedef enum {
  EMSEG_SAMPLE_U8,
  EMSEG_SAMPLE_I8,
  EMSEG_SAMPLE_U16,
  EMSEG_SAMPLE_I16,
  EMSEG_SAMPLE_U32,
  EMSEG_SAMPLE_I32,
  EMSEG_SAMPLE_F32,
} EmsegSampleType;

gsize emseg_sample_type_size(EmsegSampleType type);
const char *emseg_sample_type_to_string(EmsegSampleType type); /* "uint8", "float32", … */

typedef struct _EmsegStack EmsegStack;

/* Opens a TIFF file, a directory of PNG files, or a glob such as "dir/slice_*.png"
 * (PNG names sorted numerically: 2.png before 10.png). Reads headers only; every slice's
 * size and type is checked here, so a mismatch is reported at open with the file / page. */
EmsegStack *emseg_stack_open(const char *path, GError **error);
/* Reads slice `index` (< n_slices) into out: width*height samples of the stack's type. */
typedef gboolean (*EmsegStackReadFunc)(gpointer user_data, guint index, void *out,
                                       GError **error);
/* A stack whose slices come from `read` (a project's stored stack, say), with the same
 * cache and conversions as a file's. `name` stands for the path in messages and
 * emseg_stack_get_path. The stack owns user_data from here on, also when this fails:
 * destroy (may be NULL) releases it. NULL with error set for sizes beyond the limits. */
EmsegStack *emseg_stack_new_from_reader(const char *name, guint width, guint height,
                                        guint n_slices, EmsegSampleType type,
                                        EmsegStackReadFunc read, gpointer user_data,
                                        GDestroyNotify destroy, GError **error);
void emseg_stack_free(EmsegStack *stack);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegStack, emseg_stack_free)

const char *emseg_stack_get_path(EmsegStack *stack);
guint emseg_stack_get_width(EmsegStack *stack);
guint emseg_stack_get_height(EmsegStack *stack);
guint emseg_stack_get_n_slices(EmsegStack *stack);
EmsegSampleType emseg_stack_get_sample_type(EmsegStack *stack);
/* NULL, or a sentence for the user such as "RGB converted to luminance". */
const char *emseg_stack_get_warning(EmsegStack *stack);

/* Number of decoded slices kept (default 4, minimum 1); browsing memory stays bounded by
 * n * width * height * sample size. */
void emseg_stack_set_cache_slices(EmsegStack *stack, guint n);

/* Copies slice `index` into out, which holds width*height samples of the stack's raw
 * sample type (emseg_sample_type_size() bytes each), row-major, no padding. */
gboolean emseg_stack_read_raw(EmsegStack *stack, guint index, void *out, GError **error);
/* The same slice converted to float, values unchanged (no scaling). */
gboolean emseg_stack_read_float(EmsegStack *stack, guint index, float *out, GError **error);
/* The same slice converted to 8 bits: U8 as is, other types clamped to [0, 255] after
 * rounding. Meant for label stacks (255 = cell, 0 = membrane). */
gboolean emseg_stack_read_u8(EmsegStack *stack, guint index, guint8 *out, GError **error);

/* ---- writing ---- */

typedef struct _EmsegStackWriter EmsegStackWriter;

/* Starts a stack of n_slices pages of width x height. type must be EMSEG_SAMPLE_U8 or
 * EMSEG_SAMPLE_F32. Nothing appears at `path` until emseg_stack_writer_finish(). */
EmsegStackWriter *emseg_stack_writer_new(const char *path, EmsegSampleType type, guint width,
                                         guint height, guint n_slices, GError **error);
/* Appends the next page: width*height samples of the writer's type. */
gboolean emseg_stack_writer_append(EmsegStackWriter *writer, const void *slice,
                                   GError **error);
/* Checks that n_slices pages were written, closes and renames into place. */
gboolean emseg_stack_writer_finish(EmsegStackWriter *writer, GError **error);
/* Frees the writer; if it was not finished, the temporary file is removed. */
void emseg_stack_writer_free(EmsegStackWriter *writer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmsegStackWriter, emseg_stack_writer_free)
/* TRUE when this writer chose BigTIFF (the file would pass the classic 4 GiB limit). */
gboolean emseg_stack_writer_is_bigtiff(EmsegStackWriter *writer);

/* Whole-volume conveniences over the writer: data holds n_slices consecutive slices. */
gboolean emseg_tiff_write_u8_stack(const char *path, const guint8 *data, guint width,
                                   guint height, guint n_slices, GError **error);
gboolean emseg_tiff_write_float_stack(const char *path, const float *data, guint width,
                                      guint height, guint n_slices, GError **error);

/* Test hooks, process-wide, 0 restores the default. fail_after: every writer fails as if
 * the disk were full once it has written that many bytes, so tests can exercise the
 * disk-full path without a small filesystem. bigtiff_threshold: the file size past which
 * BigTIFF is chosen (default just under 4 GiB), so BigTIFF can be tested on small stacks. */
void emseg_stack_writer_set_fail_after_bytes_for_testing(guint64 bytes);
void emseg_stack_writer_set_bigtiff_threshold_for_testing(guint64 bytes);

G_END_DECLS
