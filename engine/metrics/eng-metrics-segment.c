/* eng-metrics-segment.c — connected components and Fiji's watershed border thinning.
 *
 * The thinning follows trainableSegmentation.utils.WatershedTransform2D.apply() as called
 * by RandError.getForegroundRestrictedRandAfterThinningStatsN2 and
 * VariationOfInformation.foregroundRestrictedScoreAfterThinningN2: the proposal is
 * binarized to 0 (cell, prob > th) / 255 (membrane) and flooded level by level
 * (Soille & Vincent 1990) with 4-connectivity. With only two grey levels that is:
 *   level 0:   every cell component becomes a basin (FIFO flood in pixel order);
 *   level 255: membrane pixels touching a basin enter a FIFO in pixel order; popping p,
 *              its neighbours are read in Fiji's order (x-1, y-1, x+1, y+1): a labelled
 *              neighbour labels p, or turns it into a dam (0) when p already holds another
 *              label; a dam neighbour makes a still-unlabelled p a dam, which a later
 *              labelled neighbour may still overwrite (the algorithm's `flag`); an
 *              untouched membrane neighbour is queued. Membrane regions that touch no
 *              basin (only when a slice has no cell at all) become new labels.
 * Pixel order decides which pixel of an even-width boundary becomes the dam, which moves
 * scores by ~1e-4, so it is kept exactly (see the private header); neighbour order is kept
 * too, though tests/metrics' oracle comparison suggests it cannot change the result. */
#include <stdbool.h>
#include <stdlib.h>

#include "eng-metrics-private.h"
#include "eng-metrics.h"

enum { WS_WSHED = 0, WS_INIT = -1, WS_MASK = -2, WS_INQUEUE = -3 };

/* The one-pixel frame around the image holds WS_BORDER, which no test below matches, so
 * neighbours need no bounds checks and behave exactly like Fiji's out-of-range skip. */
#define WS_BORDER INT32_MIN

static void
set_border(int32_t *L, size_t nx, size_t ny)
{
  size_t s = ny + 2;
  for (size_t y = 0; y < s; y++) {
    L[y] = WS_BORDER;
    L[(nx + 1) * s + y] = WS_BORDER;
  }
  for (size_t x = 1; x <= nx; x++) {
    L[x * s] = WS_BORDER;
    L[x * s + ny + 1] = WS_BORDER;
  }
}

/* Gives `label` to seed and every WS_MASK pixel 4-connected to it, breadth first, the
 * neighbours in Fiji's Neighborhood2DC4 order: (x-1,y), (x,y-1), (x+1,y), (x,y+1). */
static void
flood_mask(int32_t *L, size_t seed, int32_t label, size_t stride, int32_t *fifo)
{
  const ptrdiff_t off[4] = { -(ptrdiff_t) stride, -1, (ptrdiff_t) stride, 1 };
  size_t head = 0, tail = 0;
  L[seed] = label;
  fifo[tail++] = (int32_t) seed;
  while (head < tail) {
    size_t p = (size_t) fifo[head++];
    for (int i = 0; i < 4; i++) {
      size_t c = p + (size_t) off[i];
      if (L[c] == WS_MASK) {
        L[c] = label;
        fifo[tail++] = (int32_t) c;
      }
    }
  }
}

int32_t
eng_metrics_components4_xmajor(int32_t *labels, const uint8_t *mask, size_t nx, size_t ny,
                               int32_t *fifo)
{
  size_t s = ny + 2;
  int32_t next = 0;
  set_border(labels, nx, ny);
  for (size_t x = 1; x <= nx; x++)
    for (size_t t = x * s + 1; t <= x * s + ny; t++)
      labels[t] = mask[t] ? WS_MASK : 0;
  for (size_t x = 1; x <= nx; x++)
    for (size_t t = x * s + 1; t <= x * s + ny; t++)
      if (labels[t] == WS_MASK)
        flood_mask(labels, t, ++next, s, fifo);
  return next;
}

int32_t
eng_metrics_thin_xmajor(int32_t *L, const uint8_t *cell, size_t nx, size_t ny,
                        int32_t *fifo)
{
  size_t s = ny + 2;
  const ptrdiff_t off[4] = { -(ptrdiff_t) s, -1, (ptrdiff_t) s, 1 };
  int32_t next = 0;

  /* Level 0: basins. Membrane stays WS_INIT until its level is reached. */
  set_border(L, nx, ny);
  for (size_t x = 1; x <= nx; x++)
    for (size_t t = x * s + 1; t <= x * s + ny; t++)
      L[t] = cell[t] ? WS_MASK : WS_INIT;
  for (size_t x = 1; x <= nx; x++)
    for (size_t t = x * s + 1; t <= x * s + ny; t++)
      if (L[t] == WS_MASK)
        flood_mask(L, t, ++next, s, fifo);

  /* Level 255: seed the FIFO with membrane pixels that touch a basin, in pixel order.
   * Membrane pixels seen earlier at this level are MASK/INQUEUE (< 0), so only basins
   * count, exactly as in Fiji's `tabLabels[u][v] >= WSHED` test. */
  size_t head = 0, tail = 0;
  for (size_t x = 1; x <= nx; x++) {
    for (size_t t = x * s + 1; t <= x * s + ny; t++) {
      if (cell[t])
        continue;
      L[t] = WS_MASK;
      for (int i = 0; i < 4; i++) {
        if (L[t + (size_t) off[i]] >= WS_WSHED) {
          fifo[tail++] = (int32_t) t;
          L[t] = WS_INQUEUE;
          break;
        }
      }
    }
  }

  /* One flag for the whole flood, as in Fiji: it is set exactly when the pixel being
   * processed became a dam because of a dam neighbour. */
  bool flag = false;
  while (head < tail) {
    size_t p = (size_t) fifo[head++];
    for (int i = 0; i < 4; i++) {
      size_t c = p + (size_t) off[i];
      int32_t lc = L[c];
      if (lc > 0) {
        if (L[p] == WS_INQUEUE || (L[p] == WS_WSHED && flag)) {
          L[p] = lc;
        } else if (L[p] > 0 && L[p] != lc) {
          L[p] = WS_WSHED;
          flag = false;
        }
      } else if (lc == WS_WSHED) {
        if (L[p] == WS_INQUEUE) {
          L[p] = WS_WSHED;
          flag = true;
        }
      } else if (lc == WS_MASK) {
        L[c] = WS_INQUEUE;
        fifo[tail++] = (int32_t) c;
      }
    }
  }

  /* New minima at level 255: membrane that no basin reached. */
  for (size_t x = 1; x <= nx; x++)
    for (size_t t = x * s + 1; t <= x * s + ny; t++)
      if (!cell[t] && L[t] == WS_MASK)
        flood_mask(L, t, ++next, s, fifo);
  return next;
}

/* ---- row-major wrappers (tests, GUI overlays): transpose, run, transpose back ---- */

typedef int32_t (*XmajorFn)(int32_t *, const uint8_t *, size_t, size_t, int32_t *);

static EngStatus
run_rowmajor(XmajorFn fn, int32_t *labels, const uint8_t *mask, size_t h, size_t w,
             int32_t *n_labels, EngError *err)
{
  if (!labels || !mask || h == 0 || w == 0)
    return eng_error_set(err, ENG_ERR_INVALID, "segmentation: empty image (%zu x %zu)", h,
                         w);
  if (w > ENG_METRICS_MAX_PIXELS / h)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "segmentation: %zu x %zu pixels exceed the limit of %zu", h, w,
                         ENG_METRICS_MAX_PIXELS);
  size_t n = h * w, np = (h + 2) * (w + 2);
  uint8_t *mt = calloc(np, 1);
  int32_t *lt = malloc(np * sizeof *lt);
  int32_t *fifo = malloc(n * sizeof *fifo);
  if (!mt || !lt || !fifo) {
    free(mt);
    free(lt);
    free(fifo);
    return eng_error_set(err, ENG_ERR_NOMEM, "segmentation: no memory for %zu pixels", n);
  }
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++)
      mt[ENG_METRICS_PAD(x, y, h)] = mask[y * w + x] != 0;
  int32_t k = fn(lt, mt, w, h, fifo);
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++)
      labels[y * w + x] = lt[ENG_METRICS_PAD(x, y, h)];
  if (n_labels)
    *n_labels = k;
  free(mt);
  free(lt);
  free(fifo);
  return ENG_OK;
}

EngStatus
eng_metrics_components4(int32_t *labels, const uint8_t *mask, size_t h, size_t w,
                        int32_t *n_labels, EngError *err)
{
  return run_rowmajor(eng_metrics_components4_xmajor, labels, mask, h, w, n_labels, err);
}

EngStatus
eng_metrics_thin(int32_t *labels, const uint8_t *cell, size_t h, size_t w,
                 int32_t *n_labels, EngError *err)
{
  return run_rowmajor(eng_metrics_thin_xmajor, labels, cell, h, w, n_labels, err);
}
