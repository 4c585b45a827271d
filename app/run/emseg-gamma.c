/* emseg-gamma.c — the export exponent γ (why: emseg-gamma.h): applying it, reading it from
 * a model's metadata, and choosing it on labelled slices by the ISBI scorer's V_rand. */
#include "emseg-gamma.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emseg-model-meta.h"

gboolean
emseg_gamma_check(double gamma, const char *what, GError **error)
{
  if (isfinite(gamma) && gamma >= EMSEG_GAMMA_MIN && gamma <= EMSEG_GAMMA_MAX)
    return TRUE;
  g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
              "%s: %g is not an exponent from %g to %g (1 writes the probabilities as they are)",
              what, gamma, EMSEG_GAMMA_MIN, EMSEG_GAMMA_MAX);
  return FALSE;
}

void
emseg_gamma_apply(float *prob, gsize n, double gamma)
{
  if (gamma == 1.0)
    return;
  const float g = (float) gamma;
  for (gsize i = 0; i < n; i++)
    prob[i] = powf(prob[i], g);
}

double
emseg_gamma_from_meta(const char *meta)
{
  g_autoptr(GHashTable) t = emseg_model_meta_parse(meta);
  const char *v = g_hash_table_lookup(t, "export_gamma");
  if (v == NULL || *v == '\0')
    return 1.0;
  char *end = NULL;
  double g = g_ascii_strtod(v, &end);
  return *end == '\0' && emseg_gamma_check(g, "", NULL) ? g : 1.0;
}

char *
emseg_gamma_meta_lines(double gamma, const char *how)
{
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr(num, sizeof num, gamma);
  return how ? g_strdup_printf("export_gamma=%s\nexport_gamma_chosen_by=%s\n", num, how)
             : g_strdup_printf("export_gamma=%s\n", num);
}

gboolean
emseg_gamma_sweep(const float *prob, const guint8 *gt, gsize n_slices, gsize h, gsize w,
                  const double *gammas, guint n_gammas, EngMetricsResult *results,
                  guint *best, GError **error)
{
  gsize n = n_slices * h * w;
  float *q = g_try_new(float, n);
  if (q == NULL) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE,
                "not enough memory to score %zu slices of %zu x %zu", n_slices, w, h);
    return FALSE;
  }
  gboolean ok = TRUE;
  *best = 0;
  for (guint k = 0; k < n_gammas && ok; k++) {
    ok = emseg_gamma_check(gammas[k], "exponent", error);
    if (!ok)
      break;
    memcpy(q, prob, n * sizeof *q);
    emseg_gamma_apply(q, n, gammas[k]);
    EngError err;
    if (eng_metrics_evaluate(q, gt, n_slices, h, w, &results[k], &err) != ENG_OK) {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT, "%s", err.message);
      ok = FALSE;
    } else if (results[k].vrand > results[*best].vrand) {
      *best = k;
    }
  }
  g_free(q);
  return ok;
}

static int
compare_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

double *
emseg_gamma_parse_list(const char *text, guint *n_out, GError **error)
{
  g_auto(GStrv) parts = g_strsplit(text != NULL ? text : "", ",", -1);
  guint n = g_strv_length(parts);
  double *g = g_new(double, MAX(n, 1));
  for (guint k = 0; k < n; k++) {
    char *end = NULL;
    const char *s = g_strstrip(parts[k]);
    g[k] = g_ascii_strtod(s, &end);
    if (*s == '\0' || *end != '\0') {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                  "exponent list '%s': '%s' is not a number (expected e.g. 1,2,3,4,6,8)",
                  text, s);
      g_free(g);
      return NULL;
    }
    if (!emseg_gamma_check(g[k], "exponent list", error)) {
      g_free(g);
      return NULL;
    }
  }
  if (n == 0) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                "exponent list is empty (expected e.g. 1,2,3,4,6,8)");
    g_free(g);
    return NULL;
  }
  qsort(g, n, sizeof *g, compare_double);
  guint m = 1;
  for (guint k = 1; k < n; k++)
    if (g[k] != g[m - 1])
      g[m++] = g[k];
  *n_out = m;
  return g;
}
