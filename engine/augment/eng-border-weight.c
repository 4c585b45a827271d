/* eng-border-weight.c — separation weights for the loss mask (see the header): label the
 * cells, then for each cell a chamfer distance map over its bounding box grown by the
 * cutoff, keeping each membrane pixel's two smallest distances. Each cell's map covers
 * only its own neighbourhood, so a slice costs a few milliseconds, not one full-image
 * distance transform per cell. */
#include "eng-border-weight.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  size_t x0, y0, x1, y1; /* inclusive bounding box */
} Box;

static int
is_cell(const float *mask, const float *target, size_t i)
{
  return mask[i] > 0.0f && target[i] < 0.5f;
}

/* 4-connected labelling of the cells: comp[i] = cell index or -1. Returns the number of
 * cells, their boxes in *boxes_out (malloc'd), or -1 when out of memory. */
static long
label_cells(int32_t *comp, int32_t *queue, const float *mask, const float *target,
            size_t width, size_t height, Box **boxes_out)
{
  size_t n = width * height, cap = 64;
  long count = 0;
  Box *boxes = malloc(cap * sizeof *boxes);
  if (!boxes)
    return -1;
  for (size_t i = 0; i < n; i++)
    comp[i] = -1;
  for (size_t s = 0; s < n; s++) {
    if (comp[s] >= 0 || !is_cell(mask, target, s))
      continue;
    if ((size_t) count == cap) {
      Box *grown = realloc(boxes, 2 * cap * sizeof *boxes);
      if (!grown) {
        free(boxes);
        return -1;
      }
      boxes = grown;
      cap *= 2;
    }
    Box b = { s % width, s / width, s % width, s / width };
    size_t head = 0, tail = 0;
    comp[s] = (int32_t) count;
    queue[tail++] = (int32_t) s;
    while (head < tail) {
      size_t i = (size_t) queue[head++], x = i % width, y = i / width;
      b.x0 = x < b.x0 ? x : b.x0;
      b.x1 = x > b.x1 ? x : b.x1;
      b.y1 = y > b.y1 ? y : b.y1; /* y0 is the seed's row: the scan meets rows in order */
      size_t nb[4];
      int k = 0;
      if (x > 0)
        nb[k++] = i - 1;
      if (x + 1 < width)
        nb[k++] = i + 1;
      if (y > 0)
        nb[k++] = i - width;
      if (y + 1 < height)
        nb[k++] = i + width;
      for (int j = 0; j < k; j++)
        if (comp[nb[j]] < 0 && is_cell(mask, target, nb[j])) {
          comp[nb[j]] = (int32_t) count;
          queue[tail++] = (int32_t) nb[j];
        }
    }
    boxes[count++] = b;
  }
  *boxes_out = boxes;
  return count;
}

static inline float
min2(float a, float b)
{
  return a < b ? a : b;
}

/* Chamfer distance (steps 1 and sqrt 2) to cell c over the box, row-major in d. */
static void
box_distance(float *d, const int32_t *comp, int32_t c, size_t width, size_t bx0, size_t by0,
             size_t bw, size_t bh)
{
  const float inf = INFINITY, diag = (float) M_SQRT2;
  for (size_t y = 0; y < bh; y++)
    for (size_t x = 0; x < bw; x++)
      d[y * bw + x] = comp[(by0 + y) * width + bx0 + x] == c ? 0.0f : inf;
  for (size_t y = 0; y < bh; y++)
    for (size_t x = 0; x < bw; x++) {
      float v = d[y * bw + x];
      if (x > 0)
        v = min2(v, d[y * bw + x - 1] + 1.0f);
      if (y > 0) {
        v = min2(v, d[(y - 1) * bw + x] + 1.0f);
        if (x > 0)
          v = min2(v, d[(y - 1) * bw + x - 1] + diag);
        if (x + 1 < bw)
          v = min2(v, d[(y - 1) * bw + x + 1] + diag);
      }
      d[y * bw + x] = v;
    }
  for (size_t y = bh; y-- > 0;)
    for (size_t x = bw; x-- > 0;) {
      float v = d[y * bw + x];
      if (x + 1 < bw)
        v = min2(v, d[y * bw + x + 1] + 1.0f);
      if (y + 1 < bh) {
        v = min2(v, d[(y + 1) * bw + x] + 1.0f);
        if (x + 1 < bw)
          v = min2(v, d[(y + 1) * bw + x + 1] + diag);
        if (x > 0)
          v = min2(v, d[(y + 1) * bw + x - 1] + diag);
      }
      d[y * bw + x] = v;
    }
}

EngStatus
eng_border_weights(float *mask, const float *target, size_t width, size_t height, float w0,
                   float sigma, EngError *err)
{
  if (!(w0 >= 0.0f) || !(sigma > 0.0f) || !mask || !target || width == 0 || height == 0)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "border weights: need w0 >= 0 and sigma > 0 (got %g and %g) and a "
                         "non-empty slice",
                         (double) w0, (double) sigma);
  if (height > (size_t) INT32_MAX / width)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "border weights: a %zux%zu slice has more pixels than they can index",
                         width, height);
  size_t n = width * height;
  int32_t *comp = malloc(n * sizeof *comp), *queue = malloc(n * sizeof *queue);
  float *d1 = malloc(n * sizeof *d1), *d2 = malloc(n * sizeof *d2),
        *box = malloc(n * sizeof *box);
  Box *boxes = NULL;
  long cells = comp && queue && d1 && d2 && box
                   ? label_cells(comp, queue, mask, target, width, height, &boxes)
                   : -1;
  if (cells < 0) {
    free(comp), free(queue), free(d1), free(d2), free(box);
    return eng_error_set(err, ENG_ERR_NOMEM, "border weights: out of memory for a %zux%zu slice",
                         width, height);
  }
  const float reach = 3.0f * sigma; /* beyond it the weight is under 1.2% of w0 */
  const size_t margin = (size_t) ceilf(reach);
  for (size_t i = 0; i < n; i++)
    d1[i] = d2[i] = INFINITY;
  for (long c = 0; c < cells; c++) {
    const Box *b = &boxes[c];
    size_t bx0 = b->x0 > margin ? b->x0 - margin : 0, by0 = b->y0 > margin ? b->y0 - margin : 0;
    size_t bx1 = b->x1 + margin < width ? b->x1 + margin : width - 1;
    size_t by1 = b->y1 + margin < height ? b->y1 + margin : height - 1;
    size_t bw = bx1 - bx0 + 1, bh = by1 - by0 + 1;
    box_distance(box, comp, (int32_t) c, width, bx0, by0, bw, bh);
    for (size_t y = 0; y < bh; y++)
      for (size_t x = 0; x < bw; x++) {
        size_t i = (by0 + y) * width + bx0 + x;
        float v = box[y * bw + x];
        if (v > reach || !(mask[i] > 0.0f) || target[i] < 0.5f)
          continue;
        if (v < d1[i]) {
          d2[i] = d1[i];
          d1[i] = v;
        } else if (v < d2[i]) {
          d2[i] = v;
        }
      }
  }
  const double inv2s2 = 1.0 / (2.0 * (double) sigma * (double) sigma);
  for (size_t i = 0; i < n; i++)
    if (isfinite(d2[i])) {
      double s = (double) d1[i] + (double) d2[i];
      mask[i] *= (float) (1.0 + (double) w0 * exp(-s * s * inv2s2));
    }
  free(boxes);
  free(comp), free(queue), free(d1), free(d2), free(box);
  return ENG_OK;
}
