/* emseg-isbi.c — ISBI 2012 submission export: validate every slice, then write through
 * the shared float stack writer. Validation is per slice and happens before the slice is
 * appended; since the writer publishes only on finish, an invalid slice anywhere means no
 * file at all rather than a submission that fails on the challenge server. */
#include <math.h>

#include "emseg-isbi.h"
#include "emseg-gamma.h"

gboolean
emseg_isbi_validate_slice(const float *prob, guint width, guint height, const char *what,
                          guint slice, GError **error)
{
  gsize n = (gsize)width * height;
  for (gsize i = 0; i < n; i++) {
    float v = prob[i];
    if (isfinite(v) && v >= 0.f && v <= 1.f)
      continue;
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_INVALID,
                "%s, slice %u, pixel (x %" G_GSIZE_FORMAT ", y %" G_GSIZE_FORMAT "): value %g "
                "is %s; an ISBI submission needs finite probabilities in [0, 1]",
                what, slice, i % width, i / width, (double)v,
                isnan(v) ? "NaN" : isinf(v) ? "infinite" : "out of range");
    return FALSE;
  }
  return TRUE;
}

gboolean
emseg_isbi_validate_shape(guint width, guint height, guint n_slices, guint expected_width,
                          guint expected_height, guint expected_n_slices, const char *what,
                          GError **error)
{
  if (width == expected_width && height == expected_height && n_slices == expected_n_slices)
    return TRUE;
  g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_MISMATCH,
              "%s: expected %u slices of %u x %u (the input stack), found %u slices of %u x %u",
              what, expected_n_slices, expected_width, expected_height, n_slices, width, height);
  return FALSE;
}

gboolean
emseg_isbi_export(EmsegStack *images, EmsegIsbiPredictFunc predict, gpointer predict_data,
                  EmsegIsbiProgressFunc progress, gpointer progress_data, const char *out_path,
                  GError **error)
{
  g_return_val_if_fail(images != NULL && predict != NULL && out_path != NULL, FALSE);
  guint w = emseg_stack_get_width(images), h = emseg_stack_get_height(images);
  guint n = emseg_stack_get_n_slices(images);
  g_autoptr(EmsegStackWriter) writer =
      emseg_stack_writer_new(out_path, EMSEG_SAMPLE_F32, w, h, n, error);
  if (writer == NULL)
    return FALSE;
  g_autofree float *image = g_new(float, (gsize)w * h);
  g_autofree float *prob = g_new(float, (gsize)w * h);
  g_autofree char *what = g_strdup_printf("prediction for %s", emseg_stack_get_path(images));
  for (guint i = 0; i < n; i++) {
    if (!emseg_stack_read_float(images, i, image, error))
      return FALSE;
    if (!predict(predict_data, i, image, w, h, prob, error))
      return FALSE;
    if (!emseg_isbi_validate_slice(prob, w, h, what, i, error))
      return FALSE;
    if (!emseg_stack_writer_append(writer, prob, error))
      return FALSE;
    if (progress != NULL)
      progress(progress_data, i + 1, n);
  }
  return emseg_stack_writer_finish(writer, error);
}

typedef struct {
  EmsegStack *probabilities; /* borrowed */
  double gamma;
} CopyCtx;

static gboolean
copy_probabilities(gpointer user_data, guint index, const float *image, guint width,
                   guint height, float *prob_out, GError **error)
{
  CopyCtx *c = user_data;
  if (!emseg_stack_read_float(c->probabilities, index, prob_out, error))
    return FALSE;
  /* validate first: a NaN or a negative value must be reported as read, not as powf made it */
  if (!emseg_isbi_validate_slice(prob_out, width, height, emseg_stack_get_path(c->probabilities),
                                 index, error))
    return FALSE;
  emseg_gamma_apply(prob_out, (gsize) width * height, c->gamma);
  return TRUE;
}

gboolean
emseg_isbi_export_from_probabilities(EmsegStack *images, EmsegStack *probabilities,
                                     double gamma, const char *out_path, GError **error)
{
  if (!emseg_gamma_check(gamma, "export exponent", error))
    return FALSE;
  if (!emseg_isbi_validate_shape(
          emseg_stack_get_width(probabilities), emseg_stack_get_height(probabilities),
          emseg_stack_get_n_slices(probabilities), emseg_stack_get_width(images),
          emseg_stack_get_height(images), emseg_stack_get_n_slices(images),
          emseg_stack_get_path(probabilities), error))
    return FALSE;
  if (emseg_stack_get_sample_type(probabilities) != EMSEG_SAMPLE_F32) {
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_UNSUPPORTED,
                "%s: probabilities must be 32-bit float, found %s",
                emseg_stack_get_path(probabilities),
                emseg_sample_type_to_string(emseg_stack_get_sample_type(probabilities)));
    return FALSE;
  }
  CopyCtx c = { probabilities, gamma };
  return emseg_isbi_export(images, copy_probabilities, &c, NULL, NULL, out_path, error);
}
