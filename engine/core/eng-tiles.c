/* eng-tiles.c — overlap-tile prediction of planes larger than the graph (see header). */
#include "eng-tiles.h"

#include <stdlib.h>
#include <string.h>

#include "eng-mirror.h"
#include "eng-train.h"

size_t
eng_tiles_plan(size_t len, size_t win, size_t margin, EngTile *tiles, size_t cap)
{
  if (len == 0 || win == 0)
    return 0;
  if (win >= len) {
    if (tiles && cap >= 1)
      tiles[0] = (EngTile) { 0, 0, len };
    return 1;
  }
  if (2 * margin >= win)
    return 0;
  size_t core = win - 2 * margin;
  size_t count = (len + core - 1) / core;
  for (size_t k = 0; tiles && k < count && k < cap; k++) {
    size_t c0 = k * core, c1 = c0 + core < len ? c0 + core : len;
    /* the core sits margin pixels into its window, except where the plane ends first */
    size_t start = c0 >= margin ? c0 - margin : 0;
    if (start + win > len)
      start = len - win;
    tiles[k] = (EngTile) { start, c0, c1 };
  }
  return count;
}

/* The plane predict_windows runs for an (h, w) plane: each side rounded up to the model's
 * size multiple and to at least the graph's side. FALSE for a graph of several planes or
 * an empty plane. */
static int
padded_size(const EngGraph *graph, size_t h, size_t w, size_t *n, size_t *ph, size_t *pw)
{
  size_t th, tw;
  eng_graph_size(graph, n, &th, &tw);
  if (*n != 1 || h == 0 || w == 0)
    return 0;
  size_t mult = (size_t) eng_spec_size_multiple(eng_model_spec(eng_graph_model(graph)));
  *ph = (h + mult - 1) / mult * mult;
  *pw = (w + mult - 1) / mult * mult;
  *ph = *ph > th ? *ph : th;
  *pw = *pw > tw ? *pw : tw;
  return 1;
}

static EngStatus predict_windows(EngGraph *graph, const float *image, size_t h, size_t w,
                                 size_t margin, int tta, EngMode mode, int samples,
                                 uint64_t seed, float *prob_out, float *std_out, EngError *err);

EngStatus
eng_predict_tiled(EngGraph *graph, const float *image, size_t h, size_t w, size_t margin,
                  int tta, EngMode mode, int samples, uint64_t seed, float *prob_out,
                  float *std_out, EngError *err)
{
  size_t n, ph, pw;
  if (!padded_size(graph, h, w, &n, &ph, &pw))
    return eng_error_set(err, ENG_ERR_INVALID, "tiled prediction: a graph of %zu planes "
                         "cannot predict a %zu x %zu plane", n, h, w);
  if (ph == h && pw == w)
    return predict_windows(graph, image, h, w, margin, tta, mode, samples, seed, prob_out,
                           std_out, err);
  /* A side that is no multiple of the network's decimation, or shorter than the graph:
   * the plane is mirrored at its bottom and right up to the padded size, predicted, and
   * cropped. Top and left stay where they were and every window starts on the decimation
   * grid, as for a plane of a multiple size (windows at other offsets see another phase
   * of the grid: on ISBI slices cut to 457 x 301, 4% of pixels then moved by more than
   * 0.1 between 256² windows and the whole plane, against none when aligned). */
  float *padded = malloc(ph * pw * sizeof(float)), *p = malloc(ph * pw * sizeof(float));
  float *s = std_out ? malloc(ph * pw * sizeof(float)) : NULL;
  EngStatus st = ENG_OK;
  if (!padded || !p || (std_out && !s))
    st = eng_error_set(err, ENG_ERR_NOMEM, "out of memory for a %zu x %zu padded plane", ph, pw);
  for (size_t y = 0; st == ENG_OK && y < ph; y++) {
    const float *row = image + eng_mirror((long) y, (long) h) * w;
    for (size_t x = 0; x < pw; x++)
      padded[y * pw + x] = row[eng_mirror((long) x, (long) w)];
  }
  if (st == ENG_OK)
    st = predict_windows(graph, padded, ph, pw, margin, tta, mode, samples, seed, p, s, err);
  for (size_t y = 0; st == ENG_OK && y < h; y++) {
    memcpy(prob_out + y * w, p + y * pw, w * sizeof(float));
    if (std_out)
      memcpy(std_out + y * w, s + y * pw, w * sizeof(float));
  }
  free(padded);
  free(p);
  free(s);
  return st;
}

static EngStatus
predict_windows(EngGraph *graph, const float *image, size_t h, size_t w, size_t margin,
                int tta, EngMode mode, int samples, uint64_t seed, float *prob_out,
                float *std_out, EngError *err)
{
  size_t n, th, tw;
  eng_graph_size(graph, &n, &th, &tw);
  if (n != 1 || th > h || tw > w)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "tiled prediction: a graph of %zu x %zu x %zu windows cannot tile a "
                         "%zu x %zu plane", n, th, tw, h, w);
  size_t ny = eng_tiles_plan(h, th, margin, NULL, 0), nx = eng_tiles_plan(w, tw, margin, NULL, 0);
  if (ny == 0 || nx == 0)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "tiled prediction: a margin of %zu leaves no core in %zu x %zu windows",
                         margin, th, tw);
  if (ny == 1 && nx == 1)
    return tta ? eng_predict_tta(graph, image, mode, samples, seed, prob_out, std_out, err)
               : eng_predict(graph, image, mode, samples, seed, prob_out, std_out, err);
  EngTile *ty = malloc(ny * sizeof *ty), *tx = malloc(nx * sizeof *tx);
  size_t plane = th * tw;
  float *win = malloc(plane * sizeof(float)), *p = malloc(plane * sizeof(float));
  float *s = std_out ? malloc(plane * sizeof(float)) : NULL;
  EngStatus st = ENG_OK;
  if (!ty || !tx || !win || !p || (std_out && !s))
    st = eng_error_set(err, ENG_ERR_NOMEM, "out of memory for tiled prediction");
  if (st == ENG_OK) {
    eng_tiles_plan(h, th, margin, ty, ny);
    eng_tiles_plan(w, tw, margin, tx, nx);
  }
  for (size_t i = 0; st == ENG_OK && i < ny; i++)
    for (size_t j = 0; st == ENG_OK && j < nx; j++) {
      const EngTile *a = &ty[i], *b = &tx[j];
      for (size_t y = 0; y < th; y++)
        memcpy(win + y * tw, image + (a->start + y) * w + b->start, tw * sizeof(float));
      /* a window of its own dropout masks (a large odd stride keeps the seeds apart) */
      uint64_t ws = seed + (uint64_t) (i * nx + j) * 0x9E3779B97F4A7C15ull;
      st = tta ? eng_predict_tta(graph, win, mode, samples, ws, p, s, err)
               : eng_predict(graph, win, mode, samples, ws, p, s, err);
      for (size_t y = a->core0; st == ENG_OK && y < a->core1; y++) {
        size_t wy = y - a->start, wx = b->core0 - b->start, len = b->core1 - b->core0;
        memcpy(prob_out + y * w + b->core0, p + wy * tw + wx, len * sizeof(float));
        if (std_out)
          memcpy(std_out + y * w + b->core0, s + wy * tw + wx, len * sizeof(float));
      }
    }
  free(ty);
  free(tx);
  free(win);
  free(p);
  free(s);
  return st;
}

size_t
eng_predict_tiled_passes(const EngGraph *graph, size_t h, size_t w, size_t margin, int tta,
                         int samples)
{
  size_t n, th, tw;
  eng_graph_size(graph, &n, &th, &tw);
  /* the plane eng_predict_tiled pads this one to */
  if (samples < 1 || !padded_size(graph, h, w, &n, &h, &w))
    return 0;
  size_t windows = eng_tiles_plan(h, th, margin, NULL, 0) * eng_tiles_plan(w, tw, margin, NULL, 0);
  /* eng_predict_tta skips the odd transforms (the transposing ones) of non-square windows */
  size_t transforms = !tta ? 1 : th == tw ? 8 : 4;
  return windows * transforms * (size_t) samples;
}
