/* cli-evaluate.c — `emseg evaluate`: scores a probability stack against labels the way the
 * ISBI 2012 challenge did (engine/metrics), on the whole stack or a slice range.
 *
 *   emseg evaluate --labels GT.tif --pred PROB.tif [--slices A-B] [--json]
 *
 * Prints `vrand X`, `vinfo X`, `pixel_error X` (six decimals, one per line), or with
 * --json everything: maxima with their thresholds, the split/merge scores and the
 * per-threshold table. Stacks are read with app/io (any TIFF or PNG folder it accepts);
 * labels: 0 = membrane, non-zero = cell; predictions: 32-bit float probabilities (0 =
 * membrane), or 8/16-bit maps scaled by 1/255 or 1/65535. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib.h>

#include "cli-commands.h"
#include "emseg-stack.h"
#include "eng-metrics.h"

/* Parses "A-B" or "A" (0-based, inclusive) into [first, last]. */
static gboolean
parse_slices(const char *text, guint *first, guint *last)
{
  char *end = NULL;
  errno = 0;
  unsigned long a = strtoul(text, &end, 10), b = a;
  if (errno || end == text || text[0] == '-')
    return FALSE;
  if (*end == '-') {
    const char *rest = end + 1;
    b = strtoul(rest, &end, 10);
    if (errno || end == rest || rest[0] == '-')
      return FALSE;
  }
  if (*end != '\0' || a > b || b > G_MAXUINT)
    return FALSE;
  *first = (guint) a;
  *last = (guint) b;
  return TRUE;
}

static void
json_number(GString *s, double v)
{
  if (isfinite(v))
    g_string_append_printf(s, "%.9g", v);
  else
    g_string_append(s, "null"); /* Fiji's NaN V_info rows */
}

static void
json_field(GString *s, const char *name, double v, gboolean comma)
{
  g_string_append_printf(s, "\"%s\": ", name);
  json_number(s, v);
  if (comma)
    g_string_append(s, ", ");
}

static char *
result_to_json(const EngMetricsResult *r, const char *labels, const char *pred,
               guint first, guint last)
{
  GString *s = g_string_new("{\n");
  char *lq = g_strescape(labels, NULL), *pq = g_strescape(pred, NULL);
  g_string_append_printf(s, "  \"labels\": \"%s\",\n  \"pred\": \"%s\",\n", lq, pq);
  g_free(lq);
  g_free(pq);
  g_string_append_printf(s,
                         "  \"slices\": [%u, %u],\n  \"width\": %zu,\n  \"height\": %zu,\n",
                         first, last, r->w, r->h);
  const EngMetricsRow *bv = &r->rows[r->vrand_at], *bi = &r->rows[r->vinfo_at];
  g_string_append(s, "  ");
  json_field(s, "vrand", r->vrand, TRUE);
  json_field(s, "vrand_threshold", bv->threshold, TRUE);
  json_field(s, "rand_split", bv->rand_split, TRUE);
  json_field(s, "rand_merge", bv->rand_merge, FALSE);
  g_string_append(s, ",\n  ");
  json_field(s, "vinfo", r->vinfo, TRUE);
  json_field(s, "vinfo_threshold", bi->threshold, TRUE);
  json_field(s, "info_split", bi->info_split, TRUE);
  json_field(s, "info_merge", bi->info_merge, FALSE);
  g_string_append(s, ",\n  ");
  json_field(s, "pixel_error", r->pixel_error, TRUE);
  json_field(s, "pixel_error_threshold", r->rows[r->pixel_error_at].threshold, FALSE);
  g_string_append(s, ",\n  ");
  json_field(s, "rand_index_unthinned", r->rand_index, TRUE);
  json_field(s, "rand_index_threshold", r->rows[r->rand_index_at].threshold, FALSE);
  g_string_append(s, ",\n  \"thresholds\": [\n");
  for (size_t k = 0; k < ENG_METRICS_N_THRESHOLDS; k++) {
    const EngMetricsRow *w = &r->rows[k];
    g_string_append(s, "    {");
    json_field(s, "threshold", w->threshold, TRUE);
    json_field(s, "vrand", w->vrand, TRUE);
    json_field(s, "rand_split", w->rand_split, TRUE);
    json_field(s, "rand_merge", w->rand_merge, TRUE);
    json_field(s, "vinfo", w->vinfo, TRUE);
    json_field(s, "info_split", w->info_split, TRUE);
    json_field(s, "info_merge", w->info_merge, TRUE);
    json_field(s, "rand_index_unthinned", w->rand_index, TRUE);
    json_field(s, "pixel_error", w->pixel_error, FALSE);
    g_string_append(s, k + 1 < ENG_METRICS_N_THRESHOLDS ? "},\n" : "}\n");
  }
  g_string_append(s, "  ]\n}\n");
  return g_string_free(s, FALSE);
}

/* Reads slices [first, last] of the prediction as probabilities. */
static gboolean
read_prediction(EmsegStack *stack, guint first, guint last, float *out, GError **error)
{
  EmsegSampleType type = emseg_stack_get_sample_type(stack);
  float scale;
  switch (type) {
  case EMSEG_SAMPLE_F32: scale = 1.0f; break;
  case EMSEG_SAMPLE_U8: scale = 1.0f / 255.0f; break;
  case EMSEG_SAMPLE_U16: scale = 1.0f / 65535.0f; break;
  default:
    g_set_error(error, EMSEG_STACK_ERROR, EMSEG_STACK_ERROR_UNSUPPORTED,
                "%s: %s samples; expected 32-bit float probabilities (or 8/16-bit maps)",
                emseg_stack_get_path(stack), emseg_sample_type_to_string(type));
    return FALSE;
  }
  gsize n = (gsize) emseg_stack_get_width(stack) * emseg_stack_get_height(stack);
  for (guint z = first; z <= last; z++) {
    float *slice = out + (gsize) (z - first) * n;
    if (!emseg_stack_read_float(stack, z, slice, error))
      return FALSE;
    if (scale != 1.0f)
      for (gsize i = 0; i < n; i++)
        slice[i] *= scale;
  }
  return TRUE;
}

int
emseg_cli_evaluate(int argc, char **argv)
{
  g_autofree char *labels_path = NULL, *pred_path = NULL, *slices = NULL;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &labels_path,
      "ground-truth labels (0 = membrane, non-zero = cell)", "GT.tif" },
    { "pred", 'p', 0, G_OPTION_ARG_FILENAME, &pred_path,
      "probabilities, 0 = membrane, 1 = cell (ISBI convention)", "PROB.tif" },
    { "slices", 's', 0, G_OPTION_ARG_STRING, &slices,
      "score only slices A to B (0-based, inclusive) of both stacks", "A-B" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "print every score and the per-threshold table as JSON", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- score a prediction: V_rand, "
                                                       "V_info, pixel error (ISBI 2012)");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg evaluate: %s\n", error->message);
    return 2;
  }
  if (argc > 1) {
    fprintf(stderr, "emseg evaluate: unexpected argument '%s'\n", argv[1]);
    return 2;
  }
  if (!labels_path || !pred_path) {
    fprintf(stderr, "emseg evaluate: --labels and --pred are both required "
                    "(emseg evaluate --help)\n");
    return 2;
  }
  guint first = 0, last = 0;
  if (slices && !parse_slices(slices, &first, &last)) {
    fprintf(stderr, "emseg evaluate: --slices '%s' is not A-B or A (0-based, A <= B)\n",
            slices);
    return 2;
  }

  g_autoptr(EmsegStack) gt = emseg_stack_open(labels_path, &error);
  if (!gt) {
    fprintf(stderr, "emseg evaluate: labels: %s\n", error->message);
    return 1;
  }
  g_autoptr(EmsegStack) pred = emseg_stack_open(pred_path, &error);
  if (!pred) {
    fprintf(stderr, "emseg evaluate: prediction: %s\n", error->message);
    return 1;
  }
  guint w = emseg_stack_get_width(gt), h = emseg_stack_get_height(gt);
  guint ng = emseg_stack_get_n_slices(gt), np = emseg_stack_get_n_slices(pred);
  if (emseg_stack_get_width(pred) != w || emseg_stack_get_height(pred) != h) {
    fprintf(stderr, "emseg evaluate: size mismatch: labels %s are %u x %u, prediction %s "
                    "is %u x %u\n",
            labels_path, w, h, pred_path, emseg_stack_get_width(pred),
            emseg_stack_get_height(pred));
    return 1;
  }
  if (!slices) {
    if (ng != np) {
      fprintf(stderr, "emseg evaluate: labels have %u slices, prediction %u; choose the "
                      "common ones with --slices A-B\n",
              ng, np);
      return 1;
    }
    last = ng - 1;
  } else if (last >= ng || last >= np) {
    fprintf(stderr, "emseg evaluate: --slices %u-%u is out of range: labels have %u slices "
                    "(0-%u), prediction %u (0-%u)\n",
            first, last, ng, ng - 1, np, np - 1);
    return 1;
  }
  const char *warning = emseg_stack_get_warning(pred);
  if (warning)
    fprintf(stderr, "emseg evaluate: prediction: %s\n", warning);

  gsize n = (gsize) w * h, count = last - first + 1;
  g_autofree guint8 *labels = g_try_malloc(count * n);
  g_autofree float *prob = g_try_malloc(count * n * sizeof *prob);
  if (!labels || !prob) {
    fprintf(stderr, "emseg evaluate: not enough memory for %zu slices of %u x %u\n",
            (size_t) count, w, h);
    return 1;
  }
  for (guint z = first; z <= last; z++)
    if (!emseg_stack_read_u8(gt, z, labels + (gsize) (z - first) * n, &error)) {
      fprintf(stderr, "emseg evaluate: labels: %s\n", error->message);
      return 1;
    }
  /* 128 is "unlabeled" in emseg's own label files (project export-labels); the ISBI scores
   * know no such pixel and read it as cell, which a person should hear about */
  gsize n128 = 0;
  for (gsize i = 0; i < count * n; i++)
    n128 += labels[i] == 128;
  if (n128 > 0)
    fprintf(stderr, "emseg evaluate: %s: %zu pixels are 128, which emseg's label files use "
                    "for unlabeled; the ISBI scores count them as cell\n",
            labels_path, (size_t) n128);
  if (!read_prediction(pred, first, last, prob, &error)) {
    fprintf(stderr, "emseg evaluate: prediction: %s\n", error->message);
    return 1;
  }

  EngMetricsResult r;
  EngError err = { 0 };
  if (eng_metrics_evaluate(prob, labels, count, h, w, &r, &err) != ENG_OK) {
    /* Engine slice numbers count from the first scored slice. */
    fprintf(stderr, "emseg evaluate: %s (slice numbers counted from %u)\n", err.message,
            first);
    return 1;
  }
  if (json) {
    g_autofree char *text = result_to_json(&r, labels_path, pred_path, first, last);
    fputs(text, stdout);
  } else {
    printf("vrand %.6f\nvinfo %.6f\npixel_error %.6f\n", r.vrand, r.vinfo, r.pixel_error);
  }
  return 0;
}
