/* emseg-labels.c — label slices read in one of the accepted encodings (see the header),
 * chosen by the values the slice holds. */
#include "emseg-labels.h"

/* The readings a slice's values allow: each is ruled out by the first value it cannot
 * take, so one pass decides. */
enum {
  OWN = 1 << 0,     /* 0 / 128 / 255 */
  MASK01 = 1 << 1,  /* 0 / 1 */
  U16 = 1 << 2,     /* 0 / 65535 */
};

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
                "(1 = cell), one of the two per slice",
                emseg_stack_get_path(stack), index, bad % w, bad / w, (double)v[bad], conflict);
    return FALSE;
  }
  for (gsize i = 0; i < n; i++)
    out[i] = v[i] == 0.f ? 0 : v[i] == 128.f ? 128 : 255;
  return TRUE;
}
