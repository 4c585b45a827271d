/* emseg-labels.c — label slices read in one of the accepted encodings (see the header),
 * chosen by the values the slice holds, and object-id slices turned into labels. */
#include "emseg-labels.h"

#include <math.h>

/* The readings a slice's values allow: each is ruled out by the first value it cannot
 * take, so one pass decides. */
enum {
  OWN = 1 << 0,     /* 0 / 128 / 255 */
  MASK01 = 1 << 1,  /* 0 / 1 */
  U16 = 1 << 2,     /* 0 / 65535 */
};

/* TRUE when v[0..n) are all whole numbers with three or more different non-zero ones. */
static gboolean
values_look_like_ids(const float *v, gsize n)
{
  float seen[2];
  guint n_seen = 0; /* 3: a third value was seen */
  for (gsize i = 0; i < n; i++) {
    float x = v[i];
    if (x != floorf(x))
      return FALSE;
    if (n_seen == 3 || x == 0.f || (n_seen > 0 && x == seen[0]) ||
        (n_seen > 1 && x == seen[1]))
      continue;
    if (n_seen < 2)
      seen[n_seen] = x;
    n_seen++;
  }
  return n_seen == 3;
}

gboolean
emseg_labels_read(EmsegStack *stack, guint index, guint8 *out, GError **error)
{
  gsize w = emseg_stack_get_width(stack), n = w * emseg_stack_get_height(stack);
  g_autofree float *v = g_try_new(float, n);
  if (v == NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s, slice %u: not enough memory to read the labels",
                emseg_stack_get_path(stack), index);
    return FALSE;
  }
  /* float holds 8- and 16-bit values exactly, so 65535 is not mistaken for 255 */
  if (!emseg_stack_read_float(stack, index, v, error))
    return FALSE;
  unsigned allowed = OWN | MASK01 | U16, fits = 0;
  gsize bad = n, first = n; /* first: the first non-zero pixel, which set the reading */
  for (gsize i = 0; i < n && allowed != 0; i++) {
    float x = v[i];
    if (x == 0.f)
      continue;
    fits = (x == 128.f || x == 255.f ? OWN : 0) | (x == 1.f ? MASK01 : 0) |
           (x == 65535.f ? U16 : 0);
    if (first == n)
      first = i;
    if ((allowed & fits) == 0)
      bad = i;
    allowed &= fits;
  }
  if (allowed == 0) {
    /* a value no reading takes, or one that another value of the slice rules out */
    g_autofree char *conflict =
        fits != 0 ? g_strdup_printf(" while pixel (x %" G_GSIZE_FORMAT ", y %" G_GSIZE_FORMAT
                                    ") is %g", first % w, first / w, (double)v[first])
                  : g_strdup("");
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s, slice %u: pixel (x %" G_GSIZE_FORMAT ", y %" G_GSIZE_FORMAT ") is %g%s; "
                "labels are 0 = membrane and 255 = cell (128 = unlabeled), or a 0/1 mask "
                "(1 = cell), one of the two per slice%s",
                emseg_stack_get_path(stack), index, bad % w, bad / w, (double)v[bad], conflict,
                values_look_like_ids(v, n)
                    ? ". The slice holds three or more different values, as object ids do (a "
                      "value per cell): `emseg labels-from-ids` turns such a stack into labels "
                      "with membrane where objects touch, and the workbench's Import Labels "
                      "offers to read it so"
                    : "");
    return FALSE;
  }
  for (gsize i = 0; i < n; i++)
    out[i] = v[i] == 0.f ? 0 : v[i] == 128.f ? 128 : 255;
  return TRUE;
}

gboolean
emseg_labels_look_like_ids(EmsegStack *stack, guint index)
{
  gsize n = (gsize)emseg_stack_get_width(stack) * emseg_stack_get_height(stack);
  g_autofree float *v = g_try_new(float, n);
  return v != NULL && emseg_stack_read_float(stack, index, v, NULL) &&
         values_look_like_ids(v, n);
}

/* Slice `index` as 64-bit ids, exactly: raw samples, since float would merge ids past 2^24. */
static gboolean
read_ids(EmsegStack *stack, guint index, gint64 *ids, gsize n, GError **error)
{
  EmsegSampleType type = emseg_stack_get_sample_type(stack);
  g_autofree guint8 *raw = g_try_malloc(n * emseg_sample_type_size(type));
  if (raw == NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s, slice %u: not enough memory to read the object ids",
                emseg_stack_get_path(stack), index);
    return FALSE;
  }
  if (!emseg_stack_read_raw(stack, index, raw, error))
    return FALSE;
  for (gsize i = 0; i < n; i++) {
    switch (type) {
    case EMSEG_SAMPLE_U8: ids[i] = raw[i]; break;
    case EMSEG_SAMPLE_I8: ids[i] = ((const gint8 *)raw)[i]; break;
    case EMSEG_SAMPLE_U16: ids[i] = ((const guint16 *)raw)[i]; break;
    case EMSEG_SAMPLE_I16: ids[i] = ((const gint16 *)raw)[i]; break;
    case EMSEG_SAMPLE_U32: ids[i] = ((const guint32 *)raw)[i]; break;
    case EMSEG_SAMPLE_I32: ids[i] = ((const gint32 *)raw)[i]; break;
    case EMSEG_SAMPLE_F32: {
      float x = ((const float *)raw)[i];
      if (x != floorf(x) || fabsf(x) > 16777216.f) { /* NaN fails the first test */
        gsize w = emseg_stack_get_width(stack);
        g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                    "%s, slice %u: pixel (x %" G_GSIZE_FORMAT ", y %" G_GSIZE_FORMAT
                    ") is %g; object ids are whole numbers (up to 16777216 in a float file)",
                    emseg_stack_get_path(stack), index, i % w, i / w, (double)x);
        return FALSE;
      }
      ids[i] = (gint64)x;
      break;
    }
    }
  }
  return TRUE;
}

/* Separable maximum over a (2 r + 1)-square of a 0/1 mask, in place; tmp: n bytes. */
static void
dilate_square(guint8 *mask, guint8 *tmp, gsize w, gsize h, gsize r)
{
  for (gsize y = 0; y < h; y++)
    for (gsize x = 0; x < w; x++) {
      gsize lo = x >= r ? x - r : 0, hi = MIN(x + r, w - 1);
      guint8 m = 0;
      for (gsize k = lo; k <= hi && !m; k++)
        m = mask[y * w + k];
      tmp[y * w + x] = m;
    }
  for (gsize y = 0; y < h; y++) {
    gsize lo = y >= r ? y - r : 0, hi = MIN(y + r, h - 1);
    for (gsize x = 0; x < w; x++) {
      guint8 m = 0;
      for (gsize k = lo; k <= hi && !m; k++)
        m = tmp[k * w + x];
      mask[y * w + x] = m;
    }
  }
}

gboolean
emseg_labels_read_ids(EmsegStack *stack, guint index, guint membrane_px,
                      gboolean zero_unlabeled, guint8 *out, GError **error)
{
  g_return_val_if_fail(membrane_px >= 1 && membrane_px <= EMSEG_LABELS_MAX_MEMBRANE_PX, FALSE);
  gsize w = emseg_stack_get_width(stack), h = emseg_stack_get_height(stack), n = w * h;
  g_autofree gint64 *ids = g_try_new(gint64, n);
  g_autofree guint8 *edge = g_try_malloc0(n), *tmp = g_try_malloc(n);
  if (ids == NULL || edge == NULL || tmp == NULL) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_TOO_LARGE,
                "%s, slice %u: not enough memory to read the object ids",
                emseg_stack_get_path(stack), index);
    return FALSE;
  }
  if (!read_ids(stack, index, ids, n, error))
    return FALSE;
  /* both pixels of every side-by-side or stacked pair of different objects */
  for (gsize y = 0; y < h; y++)
    for (gsize x = 0; x < w; x++) {
      gsize i = y * w + x;
      gint64 a = ids[i];
      if (a == 0)
        continue;
      if (x + 1 < w && ids[i + 1] != 0 && ids[i + 1] != a)
        edge[i] = edge[i + 1] = 1;
      if (y + 1 < h && ids[i + w] != 0 && ids[i + w] != a)
        edge[i] = edge[i + w] = 1;
    }
  if (membrane_px > 1)
    dilate_square(edge, tmp, w, h, membrane_px - 1);
  for (gsize i = 0; i < n; i++)
    out[i] = ids[i] == 0 ? (zero_unlabeled ? 128 : 0) : edge[i] ? 0 : 255;
  return TRUE;
}
