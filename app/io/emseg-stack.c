/* emseg-stack.c — the stack reader's front end: picks the TIFF or PNG back end, owns the
 * slice cache and the conversions to float and 8-bit. Back ends only ever decode one slice
 * into the stack's raw type; everything shared lives here so both behave alike. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "emseg-stack-private.h"

G_DEFINE_QUARK(emseg-stack-error-quark, emseg_stack_error)

#define DEFAULT_CACHE_SLICES 4

gsize
emseg_sample_type_size(EmsegSampleType type)
{
  switch (type) {
  case EMSEG_SAMPLE_U8:
  case EMSEG_SAMPLE_I8:
    return 1;
  case EMSEG_SAMPLE_U16:
  case EMSEG_SAMPLE_I16:
    return 2;
  case EMSEG_SAMPLE_U32:
  case EMSEG_SAMPLE_I32:
  case EMSEG_SAMPLE_F32:
    return 4;
  }
  g_return_val_if_reached(0);
}

const char *
emseg_sample_type_to_string(EmsegSampleType type)
{
  switch (type) {
  case EMSEG_SAMPLE_U8: return "uint8";
  case EMSEG_SAMPLE_I8: return "int8";
  case EMSEG_SAMPLE_U16: return "uint16";
  case EMSEG_SAMPLE_I16: return "int16";
  case EMSEG_SAMPLE_U32: return "uint32";
  case EMSEG_SAMPLE_I32: return "int32";
  case EMSEG_SAMPLE_F32: return "float32";
  }
  return "unknown";
}

gboolean
emseg_stack_check_dims(const char *what, guint64 width, guint64 height, GError **error)
{
  if (width == 0 || height == 0) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s: image has zero size (%" G_GUINT64_FORMAT " x %" G_GUINT64_FORMAT ")",
                what, width, height);
    return FALSE;
  }
  if (width > EMSEG_STACK_MAX_SIDE || height > EMSEG_STACK_MAX_SIDE ||
      width * height > EMSEG_STACK_MAX_PIXELS) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s: %" G_GUINT64_FORMAT " x %" G_GUINT64_FORMAT
                " pixels per slice is beyond the supported maximum of %" G_GUINT64_FORMAT,
                what, width, height, (guint64)EMSEG_STACK_MAX_PIXELS);
    return FALSE;
  }
  return TRUE;
}

static gboolean
is_png_source(const char *path)
{
  if (g_file_test(path, G_FILE_TEST_IS_DIR))
    return TRUE;
  if (g_file_test(path, G_FILE_TEST_EXISTS)) {
    /* An existing file goes by its content, so "a?b.tif" is not mistaken for a glob. */
    guint8 head[8] = { 0 };
    FILE *fp = g_fopen(path, "rb");
    gboolean png = fp != NULL && fread(head, 1, 8, fp) == 8 &&
                   memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0;
    if (fp != NULL)
      fclose(fp);
    return png;
  }
  /* Not a file: a glob such as "dir/slice_*.png" goes to the PNG back end. */
  return strpbrk(path, "*?") != NULL;
}

/* An empty stack named `path` with the default cache, for a back end to fill. */
static EmsegStack *
stack_new(const char *path)
{
  EmsegStack *stack = g_new0(EmsegStack, 1);
  g_mutex_init(&stack->lock);
  stack->path = g_strdup(path);
  stack->cache_len = DEFAULT_CACHE_SLICES;
  stack->cache = g_new0(EmsegStackCacheEntry, stack->cache_len);
  return stack;
}

EmsegStack *
emseg_stack_open(const char *path, GError **error)
{
  g_return_val_if_fail(path != NULL, NULL);
  g_return_val_if_fail(error == NULL || *error == NULL, NULL);

  EmsegStack *stack = stack_new(path);
  gboolean ok = is_png_source(path) ? emseg_stack_png_open(stack, error)
                                    : emseg_stack_tiff_open(stack, error);
  if (!ok) {
    emseg_stack_free(stack);
    return NULL;
  }
  return stack;
}

EmsegStack *
emseg_stack_new_from_reader(const char *name, guint width, guint height, guint n_slices,
                            EmsegSampleType type, EmsegStackReadFunc read, gpointer user_data,
                            GDestroyNotify destroy, GError **error)
{
  g_return_val_if_fail(name != NULL && read != NULL, NULL);
  EmsegStack *stack = stack_new(name);
  stack->reader = read;
  stack->reader_data = user_data;
  stack->reader_destroy = destroy;
  stack->width = width;
  stack->height = height;
  stack->n_slices = n_slices;
  stack->type = type;
  if (!emseg_stack_check_dims(name, width, height, error)) {
    emseg_stack_free(stack);
    return NULL;
  }
  if (n_slices == 0 || n_slices > EMSEG_STACK_MAX_PAGES) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_FORMAT,
                "%s: %u slices (expected 1 to %u)", name, n_slices, EMSEG_STACK_MAX_PAGES);
    emseg_stack_free(stack);
    return NULL;
  }
  return stack;
}

static void
cache_clear(EmsegStack *stack)
{
  for (guint i = 0; i < stack->cache_len; i++)
    g_clear_pointer(&stack->cache[i].data, g_free);
}

void
emseg_stack_free(EmsegStack *stack)
{
  if (stack == NULL)
    return;
  emseg_stack_tiff_close(stack);
  if (stack->reader_destroy != NULL)
    stack->reader_destroy(stack->reader_data);
  cache_clear(stack);
  g_free(stack->cache);
  g_strfreev(stack->png_files);
  g_free(stack->path);
  g_free(stack->warning);
  g_mutex_clear(&stack->lock);
  g_free(stack);
}

const char *
emseg_stack_get_path(EmsegStack *stack)
{
  return stack->path;
}

guint
emseg_stack_get_width(EmsegStack *stack)
{
  return stack->width;
}

guint
emseg_stack_get_height(EmsegStack *stack)
{
  return stack->height;
}

guint
emseg_stack_get_n_slices(EmsegStack *stack)
{
  return stack->n_slices;
}

EmsegSampleType
emseg_stack_get_sample_type(EmsegStack *stack)
{
  return stack->type;
}

const char *
emseg_stack_get_warning(EmsegStack *stack)
{
  return stack->warning;
}

void
emseg_stack_set_cache_slices(EmsegStack *stack, guint n)
{
  n = MAX(n, 1);
  g_mutex_lock(&stack->lock);
  cache_clear(stack);
  stack->cache = g_renew(EmsegStackCacheEntry, stack->cache, n);
  memset(stack->cache, 0, n * sizeof *stack->cache);
  stack->cache_len = n;
  g_mutex_unlock(&stack->lock);
}

static gsize
slice_bytes(EmsegStack *stack)
{
  /* Cannot overflow: dims were checked against EMSEG_STACK_MAX_PIXELS at open. */
  return (gsize)stack->width * stack->height * emseg_sample_type_size(stack->type);
}

/* Returns the cached raw slice, decoding it first if needed. Called with the lock held;
 * the pointer stays valid until the lock is released. */
static const void *
cache_get(EmsegStack *stack, guint index, GError **error)
{
  if (index >= stack->n_slices) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s: slice %u requested but the stack has %u slices (0–%u)", stack->path,
                index, stack->n_slices, stack->n_slices - 1);
    return NULL;
  }
  EmsegStackCacheEntry *victim = &stack->cache[0];
  for (guint i = 0; i < stack->cache_len; i++) {
    EmsegStackCacheEntry *e = &stack->cache[i];
    if (e->data != NULL && e->index == index) {
      e->stamp = ++stack->clock;
      return e->data;
    }
    if (e->data == NULL || (victim->data != NULL && e->stamp < victim->stamp))
      victim = e;
  }
  void *data = victim->data != NULL ? victim->data : g_try_malloc(slice_bytes(stack));
  victim->data = NULL;
  if (data == NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s: cannot allocate %" G_GSIZE_FORMAT " bytes for slice %u", stack->path,
                slice_bytes(stack), index);
    return NULL;
  }
  gboolean ok = stack->reader != NULL ? stack->reader(stack->reader_data, index, data, error)
                : stack->tif != NULL  ? emseg_stack_tiff_read(stack, index, data, error)
                                      : emseg_stack_png_read(stack, index, data, error);
  if (!ok) {
    g_free(data);
    return NULL;
  }
  victim->data = data;
  victim->index = index;
  victim->stamp = ++stack->clock;
  return data;
}

gboolean
emseg_stack_read_raw(EmsegStack *stack, guint index, void *out, GError **error)
{
  g_return_val_if_fail(stack != NULL && out != NULL, FALSE);
  g_mutex_lock(&stack->lock);
  const void *raw = cache_get(stack, index, error);
  if (raw != NULL)
    memcpy(out, raw, slice_bytes(stack));
  g_mutex_unlock(&stack->lock);
  return raw != NULL;
}

static void
convert_to_float(EmsegSampleType type, const void *raw, float *out, gsize n)
{
  switch (type) {
  case EMSEG_SAMPLE_U8:
    for (gsize i = 0; i < n; i++) out[i] = ((const guint8 *)raw)[i];
    break;
  case EMSEG_SAMPLE_I8:
    for (gsize i = 0; i < n; i++) out[i] = ((const gint8 *)raw)[i];
    break;
  case EMSEG_SAMPLE_U16:
    for (gsize i = 0; i < n; i++) out[i] = ((const guint16 *)raw)[i];
    break;
  case EMSEG_SAMPLE_I16:
    for (gsize i = 0; i < n; i++) out[i] = ((const gint16 *)raw)[i];
    break;
  case EMSEG_SAMPLE_U32:
    for (gsize i = 0; i < n; i++) out[i] = (float)((const guint32 *)raw)[i];
    break;
  case EMSEG_SAMPLE_I32:
    for (gsize i = 0; i < n; i++) out[i] = (float)((const gint32 *)raw)[i];
    break;
  case EMSEG_SAMPLE_F32:
    memcpy(out, raw, n * sizeof(float));
    break;
  }
}

gboolean
emseg_stack_read_float(EmsegStack *stack, guint index, float *out, GError **error)
{
  g_return_val_if_fail(stack != NULL && out != NULL, FALSE);
  g_mutex_lock(&stack->lock);
  const void *raw = cache_get(stack, index, error);
  if (raw != NULL)
    convert_to_float(stack->type, raw, out, (gsize)stack->width * stack->height);
  g_mutex_unlock(&stack->lock);
  return raw != NULL;
}

gboolean
emseg_stack_read_u8(EmsegStack *stack, guint index, guint8 *out, GError **error)
{
  g_return_val_if_fail(stack != NULL && out != NULL, FALSE);
  gsize n = (gsize)stack->width * stack->height;
  g_mutex_lock(&stack->lock);
  const void *raw = cache_get(stack, index, error);
  if (raw != NULL && stack->type == EMSEG_SAMPLE_U8) {
    memcpy(out, raw, n);
  } else if (raw != NULL) {
    /* Per pixel through float keeps one code path for every type; labels are small. */
    float *tmp = g_new(float, n);
    convert_to_float(stack->type, raw, tmp, n);
    for (gsize i = 0; i < n; i++) {
      float v = tmp[i];
      out[i] = isnan(v) ? 0 : v <= 0.f ? 0 : v >= 255.f ? 255 : (guint8)lrintf(v);
    }
    g_free(tmp);
  }
  g_mutex_unlock(&stack->lock);
  return raw != NULL;
}
