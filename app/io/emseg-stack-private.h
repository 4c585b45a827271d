/* emseg-stack-private.h — what the stack front end (emseg-stack.c) shares with its two
 * file back ends (emseg-stack-tiff.c, emseg-stack-png.c); a third, the caller's reader
 * function, lives in the front end. Not for use outside app/io. */
#pragma once

#include <tiffio.h>

#include "emseg-stack.h"

/* Upper bound on the pixels of one slice (32768 x 32768): beyond it we refuse rather than
 * trust a header that may be hostile or corrupt. */
#define EMSEG_STACK_MAX_PIXELS ((guint64)1 << 30)
#define EMSEG_STACK_MAX_SIDE ((guint32)1 << 20)
/* Upper bound on the pages we index, so a looping or absurd IFD chain cannot exhaust memory. */
#define EMSEG_STACK_MAX_PAGES 1000000u

typedef struct {
  guint index;    /* slice held, valid when data != NULL */
  guint64 stamp;  /* last use, for LRU eviction */
  void *data;     /* owned: width*height raw samples */
} EmsegStackCacheEntry;

struct _EmsegStack {
  GMutex lock; /* guards everything below after open */

  char *path;    /* owned */
  char *warning; /* owned, may be NULL */
  guint width, height, n_slices;
  EmsegSampleType type;

  /* TIFF back end */
  TIFF *tif;              /* owned */
  toff_t *ifd_offsets;    /* owned, n_slices directory offsets for direct seeks */
  GString *tiff_message;  /* owned: last libtiff error on this handle, for GErrors */
  /* ImageJ's layout for stacks past 4 GiB: one IFD, the description's images=N, and N
   * uncompressed slices back to back from imagej_offset. 0 when not such a file. */
  guint64 imagej_offset;
  gboolean imagej_swab; /* file byte order differs from the host's */

  /* PNG back end */
  char **png_files; /* owned, NULL-terminated, n_slices paths in slice order */

  /* Caller's back end (emseg_stack_new_from_reader) */
  EmsegStackReadFunc reader;
  gpointer reader_data;          /* released with reader_destroy at free */
  GDestroyNotify reader_destroy; /* may be NULL */

  EmsegStackCacheEntry *cache; /* owned, cache_len entries */
  guint cache_len;
  guint64 clock;
};

/* Back ends fill width/height/n_slices/type/warning and their own fields. */
gboolean emseg_stack_tiff_open(EmsegStack *stack, GError **error);
gboolean emseg_stack_tiff_read(EmsegStack *stack, guint index, void *out, GError **error);
void emseg_stack_tiff_close(EmsegStack *stack);

gboolean emseg_stack_png_open(EmsegStack *stack, GError **error);
gboolean emseg_stack_png_read(EmsegStack *stack, guint index, void *out, GError **error);

/* Checks width/height against our limits; names the source in the error. */
gboolean emseg_stack_check_dims(const char *what, guint64 width, guint64 height,
                                GError **error);
/* ITU-R BT.601 luma, the weighting ImageJ's "weighted RGB conversion" uses. */
static inline double
emseg_luma(double r, double g, double b)
{
  return 0.299 * r + 0.587 * g + 0.114 * b;
}
