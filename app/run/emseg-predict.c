/* emseg-predict.c — stack prediction and the slice-list parser (see emseg-predict.h). */
#include "emseg-predict.h"

#include <stdlib.h>
#include <string.h>

#include "eng-preprocess.h"
#include "eng-tiles.h"
#include "eng-train.h"

G_DEFINE_QUARK(emseg-predict-error-quark, emseg_predict_error)

void
emseg_predict_options_init(EmsegPredictOptions *opts)
{
  memset(opts, 0, sizeof *opts);
  opts->mc_samples = 1;
  opts->seed = 1;
}

gboolean
emseg_read_standardized(EmsegStack *stack, guint index, float *out, GError **error)
{
  guint w = emseg_stack_get_width(stack), h = emseg_stack_get_height(stack);
  if (!emseg_stack_read_float(stack, index, out, error))
    return FALSE;
  EngError err;
  if (eng_standardize(out, out, ENG_PIXEL_F32, w, h, NULL, &err) != ENG_OK) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT, "%s, slice %u: %s",
                emseg_stack_get_path(stack), index, err.message);
    return FALSE;
  }
  return TRUE;
}

/* Tile origins along one side: the fewest tiles of `tile` covering `len`, spread evenly
 * (the last flush with the far edge). */
static guint
tile_origins(guint len, guint tile, guint *origin)
{
  guint k = (len + tile - 1) / tile;
  for (guint i = 0; i < k; i++)
    origin[i] = k == 1 ? 0 : (guint) ((guint64) i * (len - tile) / (k - 1));
  return k;
}

/* The graph's forward hook: one more tile done, said to the caller's progress function. */
typedef struct {
  EmsegTileProgress fn;
  gpointer data;
  guint done, total;
} TileCount;

static void
tile_done(void *data)
{
  TileCount *c = data;
  c->done++;
  c->fn(c->done, c->total, c->data);
}

gboolean
emseg_calibrate_bn_on_stack(EngModel *model, EmsegStack *stack, const guint *slices, guint n,
                            guint max_tiles, atomic_int *cancel, EmsegTileProgress progress,
                            gpointer progress_data, guint *n_tiles_out, GError **error)
{
  guint w = emseg_stack_get_width(stack), h = emseg_stack_get_height(stack);
  guint mult = (guint) MAX(eng_spec_size_multiple(eng_model_spec(model)), 1);
  /* tiles of at most EMSEG_BN_TILE, whole multiples of what the network takes */
  guint tw = MIN(w, EMSEG_BN_TILE) / mult * mult, th = MIN(h, EMSEG_BN_TILE) / mult * mult;
  if (tw == 0 || th == 0 || n == 0) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                n == 0 ? "%s: no slices to recompute BN statistics over"
                       : "%s: slices of %u×%u are smaller than the network's %u×%u minimum",
                emseg_stack_get_path(stack), w, h, mult, mult);
    return FALSE;
  }
  g_autofree guint *ox = g_new(guint, w / tw + 2), *oy = g_new(guint, h / th + 2);
  guint nx = tile_origins(w, tw, ox), ny = tile_origins(h, th, oy);
  guint64 all = (guint64) n * nx * ny;
  guint used = (guint) (max_tiles > 0 && all > max_tiles ? max_tiles : all);
  gsize plane = (gsize) w * h, tile = (gsize) tw * th;
  float *x = g_try_new(float, tile * used);
  float *page = g_try_new(float, plane);
  const float **planes = g_new(const float *, used);
  gboolean ok = x != NULL && page != NULL;
  if (!ok)
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE,
                "%s: not enough memory for %u tiles of %u×%u", emseg_stack_get_path(stack),
                used, tw, th);
  guint read_slice = G_MAXUINT;
  for (guint k = 0; k < used && ok; k++) {
    /* the k-th of `used` evenly spread over all tiles, slice by slice */
    guint64 t = used == all ? k : (guint64) k * all / used;
    guint s = (guint) (t / ((guint64) nx * ny)), r = (guint) (t % ((guint64) nx * ny));
    if (s != read_slice) {
      ok = emseg_read_standardized(stack, slices[s], page, error);
      read_slice = s;
    }
    float *dst = x + tile * k;
    for (guint y = 0; ok && y < th; y++)
      memcpy(dst + (gsize) y * tw, page + (gsize) (oy[r / nx] + y) * w + ox[r % nx],
             tw * sizeof(float));
    planes[k] = dst;
  }
  g_free(page);
  EngError err;
  EngGraph *graph = ok ? eng_graph_new(model, 1, th, tw, 0, &err) : NULL;
  if (ok && !graph) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE, "%s: %s",
                emseg_stack_get_path(stack), err.message);
    ok = FALSE;
  }
  TileCount count = { progress, progress_data, 0, used };
  if (ok) {
    eng_graph_set_cancel(graph, cancel);
    if (progress != NULL)
      eng_graph_set_forward_hook(graph, tile_done, &count);
  }
  EngStatus st = ok ? eng_model_calibrate_bn(model, graph, planes, used, &err) : ENG_OK;
  if (st != ENG_OK) {
    g_set_error(error, EMSEG_PREDICT_ERROR,
                st == ENG_ERR_CANCELLED ? EMSEG_PREDICT_ERROR_CANCELLED
                                        : EMSEG_PREDICT_ERROR_ENGINE,
                "recomputing BN statistics over %s: %s", emseg_stack_get_path(stack),
                st == ENG_ERR_CANCELLED ? "stopped" : err.message);
    ok = FALSE;
  }
  if (ok && n_tiles_out)
    *n_tiles_out = used;
  g_free(planes);
  g_free(x);
  eng_graph_free(graph);
  return ok;
}

gboolean
emseg_calibrate_bn_on_slices(EngModel *model, const char *images_path, const char *slices_text,
                             guint *n_out, GError **error)
{
  g_autoptr(EmsegStack) stack = emseg_stack_open(images_path, error);
  if (!stack)
    return FALSE;
  guint n = 0;
  g_autofree guint *slices =
      emseg_parse_slices(slices_text, emseg_stack_get_n_slices(stack), &n, error);
  if (!slices)
    return FALSE;
  *n_out = n;
  return emseg_calibrate_bn_on_stack(model, stack, slices, n, 0, NULL, NULL, NULL, NULL, error);
}

void
emseg_predict_window(guint h, guint w, guint mult, guint *gh, guint *gw, guint *margin)
{
  guint side = EMSEG_PREDICT_WINDOW;
  const char *env = g_getenv("EMSEG_PREDICT_WINDOW");
  if (env && g_ascii_strtoull(env, NULL, 10) > 0)
    side = (guint) g_ascii_strtoull(env, NULL, 10);
  mult = MAX(mult, 1u);
  side = MAX(side / mult * mult, mult);
  *margin = (EMSEG_PREDICT_MARGIN + mult - 1) / mult * mult;
  /* a core of at least half the window, so small windows still make progress (windows of
   * under 4 multiples, for tests, get no margin at all) */
  while (*margin > 0 && 4 * *margin > side)
    *margin -= mult;
  /* a side that is no multiple rounds up: eng_predict_tiled mirrors the slice out to it */
  guint64 ph = ((guint64) h + mult - 1) / mult * mult, pw = ((guint64) w + mult - 1) / mult * mult;
  if (ph * pw <= (guint64) side * side) {
    *gh = (guint) ph;
    *gw = (guint) pw;
  } else {
    *gh = (guint) MIN(ph, side);
    *gw = (guint) MIN(pw, side);
  }
}

static void
pass_done(void *data)
{
  EmsegPassCount *c = data;
  if (++c->done < c->total)
    c->report((double) c->done / (double) c->total, c->data);
}

void
emseg_pass_count_attach(EmsegPassCount *c, EngGraph *graph, EmsegPassProgressFunc report,
                        gpointer data)
{
  c->report = report;
  c->data = data;
  c->done = c->total = 0;
  eng_graph_set_forward_hook(graph, pass_done, c);
}

void
emseg_pass_count_start(EmsegPassCount *c, const EngGraph *graph, guint h, guint w,
                       guint margin, gboolean tta, int samples)
{
  c->done = 0;
  c->total = eng_predict_tiled_passes(graph, h, w, margin, tta, samples);
}

gboolean
emseg_predict_slices(EngModel *model, EmsegStack *stack, const guint *slices, guint n_slices,
                     const EmsegPredictOptions *opts, float *prob, float *std, GError **error)
{
  guint w = emseg_stack_get_width(stack), h = emseg_stack_get_height(stack);
  const EngSpec *spec = eng_model_spec(model);
  int mult = eng_spec_size_multiple(spec); /* sizes that are not multiples get padded */
  int samples = opts->mc_samples < 1 ? 1 : opts->mc_samples;
  if (samples > 1 && spec->dropout <= 0.0f) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                "Monte-Carlo sampling needs a model trained with dropout; this one has none");
    return FALSE;
  }
  EngError err;
  guint gh, gw, margin;
  emseg_predict_window(h, w, (guint) mult, &gh, &gw, &margin);
  EngGraph *graph = eng_graph_new(model, 1, gh, gw, 0, &err);
  if (!graph) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE, "%s", err.message);
    return FALSE;
  }
  EmsegPassCount count;
  if (opts->pass_progress)
    emseg_pass_count_attach(&count, graph, opts->pass_progress, opts->progress_data);
  size_t plane = (size_t) w * h;
  float *x = g_new(float, plane);
  gboolean ok = TRUE;
  for (guint i = 0; i < n_slices && ok; i++) {
    if (slices[i] >= emseg_stack_get_n_slices(stack)) {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                  "%s: slice %u does not exist (the stack has %u)", emseg_stack_get_path(stack),
                  slices[i], emseg_stack_get_n_slices(stack));
      ok = FALSE;
      break;
    }
    ok = emseg_read_standardized(stack, slices[i], x, error);
    if (!ok)
      break;
    EngMode mode = samples > 1 ? ENG_MODE_MC : ENG_MODE_INFER;
    guint64 seed = opts->seed + (guint64) slices[i] * 1000003u;
    emseg_pass_count_start(&count, graph, h, w, margin, opts->tta, samples);
    float *p_i = opts->sink ? prob : prob + i * plane;
    float *s_i = !std ? NULL : opts->sink ? std : std + i * plane;
    EngStatus st = eng_predict_tiled(graph, x, h, w, margin, opts->tta, mode, samples, seed,
                                     p_i, s_i, &err);
    if (st != ENG_OK) {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_ENGINE, "slice %u: %s",
                  slices[i], err.message);
      ok = FALSE;
      break;
    }
    if (opts->sink && !opts->sink(i, slices[i], p_i, s_i, opts->sink_data, error)) {
      ok = FALSE;
      break;
    }
    if (opts->progress && !opts->progress(i + 1, n_slices, opts->progress_data)) {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_CANCELLED,
                  "prediction cancelled after %u of %u slices", i + 1, n_slices);
      ok = FALSE;
    }
  }
  g_free(x);
  eng_graph_free(graph);
  return ok;
}

static int
cmp_uint(const void *a, const void *b)
{
  guint x = *(const guint *) a, y = *(const guint *) b;
  return x < y ? -1 : x > y;
}

guint *
emseg_parse_slices(const char *text, guint n_slices, guint *n_out, GError **error)
{
  GArray *out = g_array_new(FALSE, FALSE, sizeof(guint));
  if (!text || !strcmp(text, "all")) {
    for (guint i = 0; i < n_slices; i++)
      g_array_append_val(out, i);
  } else {
    g_auto(GStrv) parts = g_strsplit(text, ",", -1);
    for (int k = 0; parts[k]; k++) {
      char *end;
      const char *p = parts[k];
      guint64 a = g_ascii_strtoull(p, &end, 10), b = a;
      if (end == p)
        goto bad;
      if (*end == '-') {
        const char *q = end + 1;
        b = g_ascii_strtoull(q, &end, 10);
        if (end == q)
          goto bad;
      }
      if (*end || b < a)
        goto bad;
      if (b >= n_slices) {
        g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                    "slice range '%s' goes past the last slice (%u slices, numbered 0 to %u)",
                    parts[k], n_slices, n_slices ? n_slices - 1 : 0);
        g_array_free(out, TRUE);
        return NULL;
      }
      for (guint64 i = a; i <= b; i++) {
        guint v = (guint) i;
        g_array_append_val(out, v);
      }
    }
  }
  g_array_sort(out, cmp_uint);
  /* drop duplicates */
  guint n = 0;
  for (guint i = 0; i < out->len; i++)
    if (i == 0 || g_array_index(out, guint, i) != g_array_index(out, guint, n - 1))
      g_array_index(out, guint, n++) = g_array_index(out, guint, i);
  if (n == 0) {
    g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT, "no slices selected");
    g_array_free(out, TRUE);
    return NULL;
  }
  *n_out = n;
  return (guint *) g_array_free(out, FALSE);
bad:
  g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
              "cannot read slice list '%s': expected e.g. 0-19 or 0,3,5-7", text);
  g_array_free(out, TRUE);
  return NULL;
}
