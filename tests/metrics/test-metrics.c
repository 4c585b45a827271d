/* test-metrics.c — engine/metrics: Fiji's thinning order, hand-computed V_rand / V_info
 * cases, identity, dilated/eroded labels, symmetry, thresholds and input errors.
 *
 * Every expected number below is derived in the comment above its check, from the rules
 * written at the top of engine/metrics/eng-metrics.c; images are tiny so the contingency
 * tables can be written out by hand. In the drawings 1 = cell, 0 = membrane, rows top to
 * bottom. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "eng-metrics.h"

#define EPS 1e-12

/* ---- helpers ---- */

/* Parses "110111" rows into a 0/255 label image or a 0/1 probability image. */
static void
draw(const char *const *rows, size_t h, size_t w, uint8_t *gt, float *prob)
{
  for (size_t y = 0; y < h; y++) {
    g_assert_cmpuint(strlen(rows[y]), ==, w);
    for (size_t x = 0; x < w; x++) {
      int c = rows[y][x] == '1';
      if (gt)
        gt[y * w + x] = c ? 255 : 0;
      if (prob)
        prob[y * w + x] = c ? 1.0f : 0.0f;
    }
  }
}

static EngMetricsResult
evaluate_ok(const float *prob, const uint8_t *gt, size_t n_slices, size_t h, size_t w)
{
  EngMetricsResult r;
  EngError err = { 0 };
  EngStatus st = eng_metrics_evaluate(prob, gt, n_slices, h, w, &r, &err);
  if (st != ENG_OK)
    g_error("eng_metrics_evaluate: %s: %s", eng_status_to_string(st), err.message);
  return r;
}

/* A binary proposal scores the same at all 11 thresholds: check that too. */
static void
assert_all_rows(const EngMetricsResult *r, double vrand, double vinfo, double pixel_error,
                double rand_index)
{
  for (size_t k = 0; k < ENG_METRICS_N_THRESHOLDS; k++) {
    g_assert_cmpfloat_with_epsilon(r->rows[k].vrand, vrand, EPS);
    g_assert_cmpfloat_with_epsilon(r->rows[k].vinfo, vinfo, EPS);
    g_assert_cmpfloat_with_epsilon(r->rows[k].pixel_error, pixel_error, EPS);
    g_assert_cmpfloat_with_epsilon(r->rows[k].rand_index, rand_index, EPS);
  }
  g_assert_cmpfloat_with_epsilon(r->vrand, vrand, EPS);
  g_assert_cmpfloat_with_epsilon(r->vinfo, vinfo, EPS);
  g_assert_cmpfloat_with_epsilon(r->pixel_error, pixel_error, EPS);
  g_assert_cmpfloat_with_epsilon(r->rand_index, rand_index, EPS);
}

static void
thin_rows(const char *const *rows, size_t h, size_t w, int32_t *labels)
{
  uint8_t cell[64];
  EngError err = { 0 };
  g_assert_cmpuint(h * w, <=, sizeof cell);
  draw(rows, h, w, cell, NULL);
  g_assert_cmpint(eng_metrics_thin(labels, cell, h, w, NULL, &err), ==, ENG_OK);
}

/* ---- thinning ---- */

/* 1 x 7, boundary 3 wide: 1 1 0 0 0 1 1. FIFO seeds x2 (left cell a) and x4 (right cell
 * b); x2 -> a and queues x3; x4 -> b; x3 sees a on its left, then b on its right -> dam.
 * Expected a a a 0 b b b. */
static void
test_thin_odd_width(void)
{
  const char *rows[] = { "1100011" };
  int32_t l[7];
  thin_rows(rows, 1, 7, l);
  g_assert_cmpint(l[0], >, 0);
  g_assert_cmpint(l[6], >, 0);
  g_assert_cmpint(l[0], !=, l[6]);
  for (int x = 0; x < 3; x++)
    g_assert_cmpint(l[x], ==, l[0]);
  g_assert_cmpint(l[3], ==, 0);
  for (int x = 4; x < 7; x++)
    g_assert_cmpint(l[x], ==, l[6]);
}

/* 1 x 8, boundary 4 wide: 1 1 0 0 0 0 1 1. Seeds x2 (a) and x5 (b). Pop x2 -> a, queues
 * x3. Pop x5: left x4 is untouched -> queued, right is b -> b. Pop x3: left a -> a, right
 * x4 is queued (ignored). Pop x4: left a -> a, right b -> dam. Fiji's order therefore puts
 * the dam right of centre: a a a a 0 b b b. */
static void
test_thin_even_width_order(void)
{
  const char *rows[] = { "11000011" };
  int32_t l[8];
  thin_rows(rows, 1, 8, l);
  for (int x = 0; x < 4; x++)
    g_assert_cmpint(l[x], ==, l[0]);
  g_assert_cmpint(l[4], ==, 0);
  for (int x = 5; x < 8; x++)
    g_assert_cmpint(l[x], ==, l[7]);
  g_assert_cmpint(l[0], !=, l[7]);
}

/* 6 x 3, two membrane rows y2, y3 between cells above (a) and below (b). Pixels are
 * visited column by column: (x0,y2), (x0,y3), (x1,y2), ... all seed the FIFO. (x0,y2) -> a.
 * (x0,y3): up a -> a, down b -> dam. (x1,y2) -> a. (x1,y3): left is a dam -> dam with the
 * flag set, up a -> relabelled a (the flag), down b -> dam again. Same for x2. So the
 * dam is row y3 (below centre), and the flag path is exercised. */
static void
test_thin_two_rows_flag(void)
{
  const char *rows[] = { "111", "111", "000", "000", "111", "111" };
  int32_t l[18];
  thin_rows(rows, 6, 3, l);
  int32_t a = l[0], b = l[17];
  g_assert_cmpint(a, >, 0);
  g_assert_cmpint(b, >, 0);
  g_assert_cmpint(a, !=, b);
  for (int x = 0; x < 3; x++) {
    for (int y = 0; y < 3; y++)
      g_assert_cmpint(l[y * 3 + x], ==, a);
    g_assert_cmpint(l[3 * 3 + x], ==, 0);
    for (int y = 4; y < 6; y++)
      g_assert_cmpint(l[y * 3 + x], ==, b);
  }
}

/* Two membrane columns x2, x3 (3 x 6): seeds are x2's pixels then x3's (column order);
 * x2 -> a; x3: left a, right b -> dam. Dam column x3 (right of centre). */
static void
test_thin_two_columns(void)
{
  const char *rows[] = { "110011", "110011", "110011" };
  int32_t l[18];
  thin_rows(rows, 3, 6, l);
  for (int y = 0; y < 3; y++) {
    g_assert_cmpint(l[y * 6 + 2], ==, l[0]);
    g_assert_cmpint(l[y * 6 + 3], ==, 0);
    g_assert_cmpint(l[y * 6 + 4], ==, l[5]);
  }
  g_assert_cmpint(l[0], !=, l[5]);
}

/* No cell at all: the whole image is one new minimum at level 255 -> one label, no dam. */
static void
test_thin_no_cells(void)
{
  const char *rows[] = { "000", "000" };
  int32_t l[6];
  thin_rows(rows, 2, 3, l);
  for (int i = 0; i < 6; i++)
    g_assert_cmpint(l[i], ==, 1);
}

/* Naive oracle: Fiji's WatershedTransform2D.apply() transcribed literally for a 0 / 255
 * image (pixel list in x-outer order, stable sort by value, level loop with its two
 * index cursors, bounds-checked neighbours), on plain x-major arrays without the frame. */
enum { O_MASK = -2, O_WSHED = 0, O_INIT = -1, O_INQUEUE = -3 };

static void
oracle_thin(const uint8_t *cell, size_t h, size_t w, int32_t *out)
{
  size_t n = h * w;
  int *tab = g_new(int, n);      /* tab[x * h + y] */
  int *val = g_new(int, n);      /* pixel list: values ... */
  size_t *pix = g_new(size_t, n); /* ... and x * h + y, sorted by value, stable */
  size_t *fifo = g_new(size_t, 4 * n + 4), fh = 0, ft = 0;
  size_t k = 0;
  for (int v = 0; v <= 255; v += 255)
    for (size_t x = 0; x < w; x++)
      for (size_t y = 0; y < h; y++)
        if ((cell[y * w + x] ? 0 : 255) == v) {
          val[k] = v;
          pix[k++] = x * h + y;
        }
  for (size_t i = 0; i < n; i++)
    tab[i] = O_INIT;
  const int dx[4] = { -1, 0, 1, 0 }, dy[4] = { 0, -1, 0, 1 };
  int label = 0, flag = 0;
  size_t cur = 0, h1 = 0, h2 = 0;
  int hv = 0;
  while (cur < n && hv <= 255) {
    hv = val[cur];
    for (size_t i = h1; i < n; i++) {
      if (val[i] != hv) {
        h1 = i;
        break;
      }
      size_t p = pix[i];
      long px = (long) (p / h), py = (long) (p % h);
      tab[p] = O_MASK;
      for (int d = 0; d < 4; d++) {
        long u = px + dx[d], v = py + dy[d];
        if (u >= 0 && u < (long) w && v >= 0 && v < (long) h && tab[u * (long) h + v] >= O_WSHED) {
          fifo[ft++] = p;
          tab[p] = O_INQUEUE;
          break;
        }
      }
    }
    while (fh < ft) {
      size_t p = fifo[fh++];
      long px = (long) (p / h), py = (long) (p % h);
      for (int d = 0; d < 4; d++) {
        long u = px + dx[d], v = py + dy[d];
        if (u < 0 || u >= (long) w || v < 0 || v >= (long) h)
          continue;
        size_t c = (size_t) (u * (long) h + v);
        if (tab[c] > 0) {
          if (tab[p] == O_INQUEUE || (tab[p] == O_WSHED && flag))
            tab[p] = tab[c];
          else if (tab[p] > 0 && tab[p] != tab[c]) {
            tab[p] = O_WSHED;
            flag = 0;
          }
        } else if (tab[c] == O_WSHED) {
          if (tab[p] == O_INQUEUE) {
            tab[p] = O_WSHED;
            flag = 1;
          }
        } else if (tab[c] == O_MASK) {
          tab[c] = O_INQUEUE;
          fifo[ft++] = c;
        }
      }
    }
    for (size_t i = h2; i < n; i++, cur++) {
      if (val[i] != hv) {
        h2 = i;
        break;
      }
      size_t p = pix[i];
      if (tab[p] == O_MASK) {
        tab[p] = ++label;
        fifo[ft++] = p;
        while (fh < ft) {
          size_t q = fifo[fh++];
          long qx = (long) (q / h), qy = (long) (q % h);
          for (int d = 0; d < 4; d++) {
            long u = qx + dx[d], v = qy + dy[d];
            if (u >= 0 && u < (long) w && v >= 0 && v < (long) h &&
                tab[u * (long) h + v] == O_MASK) {
              tab[u * (long) h + v] = label;
              fifo[ft++] = (size_t) (u * (long) h + v);
            }
          }
        }
      }
    }
  }
  for (size_t x = 0; x < w; x++)
    for (size_t y = 0; y < h; y++)
      out[y * w + x] = tab[x * h + y] == O_INIT ? 0 : tab[x * h + y];
  g_free(tab);
  g_free(val);
  g_free(pix);
  g_free(fifo);
}

/* The framed, specialised flood must give the oracle's labels pixel for pixel on random
 * binary images of many densities and shapes (including no cell and all cells). */
static void
test_thin_matches_oracle(void)
{
  GRand *rng = g_rand_new_with_seed(2012);
  for (int trial = 0; trial < 300; trial++) {
    size_t h = 1 + (size_t) g_rand_int_range(rng, 0, trial < 150 ? 24 : 64);
    size_t w = 1 + (size_t) g_rand_int_range(rng, 0, trial < 150 ? 24 : 64);
    /* sparse cells make thick, many-layered floods where queue order matters */
    double density = trial < 150 ? g_rand_double(rng) : 0.02 + 0.1 * g_rand_double(rng);
    uint8_t *cell = g_new(uint8_t, h * w);
    int32_t *got = g_new(int32_t, h * w), *want = g_new(int32_t, h * w);
    for (size_t i = 0; i < h * w; i++)
      cell[i] = g_rand_double(rng) < density;
    EngError err = { 0 };
    g_assert_cmpint(eng_metrics_thin(got, cell, h, w, NULL, &err), ==, ENG_OK);
    oracle_thin(cell, h, w, want);
    for (size_t i = 0; i < h * w; i++)
      if (got[i] != want[i])
        g_error("trial %d (%zu x %zu): pixel (%zu, %zu) is %d, Fiji's algorithm gives %d",
                trial, h, w, i / w, i % w, (int) got[i], (int) want[i]);
    g_free(cell);
    g_free(got);
    g_free(want);
  }
  g_rand_free(rng);
}

/* Ground-truth segments are 4-connected: diagonal neighbours are different cells. */
static void
test_components_4_connected(void)
{
  const uint8_t mask[] = { 255, 0, 0, 255 };
  int32_t l[4], k = 0;
  EngError err = { 0 };
  g_assert_cmpint(eng_metrics_components4(l, mask, 2, 2, &k, &err), ==, ENG_OK);
  g_assert_cmpint(k, ==, 2);
  g_assert_cmpint(l[0], >, 0);
  g_assert_cmpint(l[3], >, 0);
  g_assert_cmpint(l[0], !=, l[3]);
  g_assert_cmpint(l[1], ==, 0);
  g_assert_cmpint(l[2], ==, 0);
}

/* ---- hand-computed scores ---- */

/* Split by a spurious boundary. GT 1 1 1 1 0 1 1 1 1: A1 = x0..3, A2 = x5..8, n = 8.
 * Proposal 1 0 1 1 0 1 1 1 1: x1 is a 1-pixel dam between {x0} and {x2,x3}; x4 a dam.
 * Inside GT cells: A1 -> {x0}: 1, dam: 1 (singleton), {x2,x3}: 2; A2 -> {x5..8}: 4.
 * Rand: sum c^2 = 1 + 4 + 16 = 21, c0 = 1, tp = 22; sum a^2 = 32 -> fn = 10;
 *   sum b^2 = 21 -> fp = 21 + 1 - 22 = 0. P = 1, R = 22/32, F = 2 tp / (2 tp + fp + fn)
 *   = 44/54 = 22/27. Rand index = 1 - 10/64 = 54/64 (same components without thinning).
 * Info (p = c/8, ln): H(A) = ln 2. sum b log b = -(1/8)3ln2 - (1/4)2ln2 - (1/2)ln2
 *   = -(11/8) ln2, minus aux ln n = (1/8) 3 ln2 -> H(B) = (14/8) ln2; the joint has the
 *   same cells -> H(AB) = (14/8) ln2; I = ln2. V_info = 2I / (H(A)+H(B)) = 2 / 2.75 = 8/11;
 *   split = I/H(B) = 4/7, merge = I/H(A) = 1. Pixel error: x1 only -> 1/9. */
static void
test_split(void)
{
  const char *g[] = { "111101111" }, *p[] = { "101101111" };
  uint8_t gt[9];
  float prob[9];
  draw(g, 1, 9, gt, NULL);
  draw(p, 1, 9, NULL, prob);
  EngMetricsResult r = evaluate_ok(prob, gt, 1, 1, 9);
  assert_all_rows(&r, 22.0 / 27.0, 8.0 / 11.0, 1.0 / 9.0, 54.0 / 64.0);
  g_assert_cmpfloat_with_epsilon(r.rows[0].rand_split, 22.0 / 32.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[0].rand_merge, 1.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[0].info_split, 4.0 / 7.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[0].info_merge, 1.0, EPS);
}

/* Merge. GT 1 1 0 1 1 0 1 1: A1 = x0,1, A2 = x3,4, A3 = x6,7, n = 6. Proposal
 * 1 1 1 1 1 0 1 1: S1 = x0..4, S2 = x6,7 (x5 a dam on GT membrane, not counted).
 * Rand: c = 2, 2, 2 -> tp = 12 = sum a^2 -> fn = 0; b = 4, 2 -> sum b^2 = 20, fp = 8;
 *   F = 24 / 32 = 0.75; split (R) = 1, merge (P) = 12/20.
 * Info: H(A) = ln3; H(B) = -(2/3)ln(2/3) - (1/3)ln(1/3) = ln3 - (2/3)ln2; H(AB) = ln3;
 *   I = H(B). V_info = 2 (ln3 - (2/3)ln2) / (2 ln3 - (2/3)ln2) ~ 0.7337. Pixel error 1/8;
 *   Rand index 1 - 8/36. */
static void
test_merge(void)
{
  const char *g[] = { "11011011" }, *p[] = { "11111011" };
  uint8_t gt[8];
  float prob[8];
  draw(g, 1, 8, gt, NULL);
  draw(p, 1, 8, NULL, prob);
  EngMetricsResult r = evaluate_ok(prob, gt, 1, 1, 8);
  double l2 = log(2.0), l3 = log(3.0);
  double vinfo = 2.0 * (l3 - 2.0 / 3.0 * l2) / (2.0 * l3 - 2.0 / 3.0 * l2);
  assert_all_rows(&r, 0.75, vinfo, 1.0 / 8.0, 1.0 - 8.0 / 36.0);
  g_assert_cmpfloat_with_epsilon(r.rows[3].rand_split, 1.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[3].rand_merge, 12.0 / 20.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[3].info_split, 1.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[3].info_merge, (l3 - 2.0 / 3.0 * l2) / l3, EPS);
}

/* Missing boundary: a 1-pixel gap in a membrane column merges two cells.
 *   GT        proposal
 *   11011     11011
 *   11011     11111
 *   11011     11011
 * The two membrane pixels left in column 2 touch only the merged segment, so they are
 * flooded with it: one segment covers the slice. A1, A2 have 6 pixels each, n = 12.
 * Rand: tp = 36 + 36 = 72 = sum a^2 (fn = 0); sum b^2 = 144, fp = 72; F = 144/216 = 2/3.
 * Info: H(B) = 0 -> Fiji sets P = 1, R = 0 -> V_info = 0 (and I = 0 anyway).
 * Pixel error 1/15; Rand index 1 - 72/144 = 0.5. */
static void
test_missing_boundary(void)
{
  const char *g[] = { "11011", "11011", "11011" }, *p[] = { "11011", "11111", "11011" };
  uint8_t gt[15];
  float prob[15];
  draw(g, 3, 5, gt, NULL);
  draw(p, 3, 5, NULL, prob);
  EngMetricsResult r = evaluate_ok(prob, gt, 1, 3, 5);
  assert_all_rows(&r, 2.0 / 3.0, 0.0, 1.0 / 15.0, 0.5);
}

/* Spurious boundary that splits nothing: a membrane pixel at (x0, y1) inside A1.
 *   GT        proposal
 *   11011     11011
 *   11011     01011
 *   11011     11011
 * Thinning floods it from its cell (all its neighbours are S1), so the thinned proposal
 * equals the truth: V_rand = V_info = 1. Without thinning it is a singleton: A1 -> S1: 5,
 * 0: 1; A2 -> S2: 6. tp = 25 + 36 + 1 = 62, fn = 72 - 62 = 10, fp = 61 + 1 - 62 = 0;
 * Rand index = 1 - 10/144. Pixel error 1/15. */
static void
test_spurious_boundary(void)
{
  const char *g[] = { "11011", "11011", "11011" }, *p[] = { "11011", "01011", "11011" };
  uint8_t gt[15];
  float prob[15];
  draw(g, 3, 5, gt, NULL);
  draw(p, 3, 5, NULL, prob);
  EngMetricsResult r = evaluate_ok(prob, gt, 1, 3, 5);
  assert_all_rows(&r, 1.0, 1.0, 1.0 / 15.0, 1.0 - 10.0 / 144.0);
}

/* Swapping truth and proposal is not symmetric (foreground restriction and thinning
 * differ). Swapped split case: truth' = 1 0 1 1 0 1 1 1 1 (segments {x0}, {x2,x3},
 * {x5..8}, n = 7), proposal' = 1 1 1 1 0 1 1 1 1 (x4 a dam: S1 = x0..3, S2 = x5..8).
 * c: 1, 2 in S1; 4 in S2 -> tp = 21 = sum a^2 (fn = 0); b = 3, 4 -> fp = 25 - 21 = 4;
 * F = 42/46 = 21/23, not the 22/27 of test_split. */
static void
test_swap_asymmetric(void)
{
  const char *g[] = { "101101111" }, *p[] = { "111101111" };
  uint8_t gt[9];
  float prob[9];
  draw(g, 1, 9, gt, NULL);
  draw(p, 1, 9, NULL, prob);
  EngMetricsResult r = evaluate_ok(prob, gt, 1, 1, 9);
  g_assert_cmpfloat_with_epsilon(r.vrand, 21.0 / 23.0, EPS);
  g_assert_cmpfloat(fabs(r.vrand - 22.0 / 27.0), >, 0.05);
}

/* On full partitions (no background in a, no dams in b) both F-scores are symmetric and
 * precision and recall trade places; with dams (b = 0 singletons) they are not. */
static void
test_partition_symmetry(void)
{
  enum { N = 400 };
  int32_t a[N], b[N];
  GRand *rng = g_rand_new_with_seed(4);
  for (int t = 0; t < N; t++) {
    a[t] = 1 + (t / 37) % 5;
    /* mostly agreeing with a, with 30% noise, so I(A;B) is well away from 0 */
    b[t] = g_rand_int_range(rng, 0, 10) < 3 ? 1 + g_rand_int_range(rng, 0, 7) : a[t] + 1;
  }
  g_rand_free(rng);
  EngPartitionScores ab, ba;
  EngError err = { 0 };
  g_assert_cmpint(eng_metrics_partition_scores(a, b, N, 6, 8, &ab, &err), ==, ENG_OK);
  g_assert_cmpint(eng_metrics_partition_scores(b, a, N, 8, 6, &ba, &err), ==, ENG_OK);
  g_assert_cmpfloat_with_epsilon(ab.rand_fscore, ba.rand_fscore, EPS);
  g_assert_cmpfloat_with_epsilon(ab.rand_precision, ba.rand_recall, EPS);
  g_assert_cmpfloat_with_epsilon(ab.rand_index, ba.rand_index, EPS);
  g_assert_cmpfloat_with_epsilon(ab.info_fscore, ba.info_fscore, 1e-9);
  g_assert_cmpfloat_with_epsilon(ab.info_precision, ba.info_recall, 1e-9);
  g_assert_cmpfloat_with_epsilon(ab.mutual_info, ba.mutual_info, 1e-9);
  g_assert_cmpfloat(ab.rand_fscore, <, 1.0);

  /* Put dams (0) in b where b was 1: as a proposal they are singletons, as a truth they
   * are pruned, so the two directions now disagree. */
  for (int t = 0; t < N; t++)
    if (b[t] == 1)
      b[t] = 0;
  g_assert_cmpint(eng_metrics_partition_scores(a, b, N, 6, 8, &ab, &err), ==, ENG_OK);
  g_assert_cmpint(eng_metrics_partition_scores(b, a, N, 8, 6, &ba, &err), ==, ENG_OK);
  g_assert_cmpfloat(fabs(ab.rand_fscore - ba.rand_fscore), >, 1e-3);
  g_assert_cmpfloat(fabs(ab.info_fscore - ba.info_fscore), >, 1e-3);
}

/* ---- synthetic stacks ---- */

/* Voronoi cells with membranes where any pixel within Chebyshev radius `r` belongs to
 * another cell: boundaries 2r+1 or 2r pixels wide. */
static void
voronoi_labels(uint8_t *gt, size_t n_slices, size_t h, size_t w, int cells, int r,
               guint32 seed)
{
  GRand *rng = g_rand_new_with_seed(seed);
  int *owner = g_new(int, h * w);
  double *sx = g_new(double, cells), *sy = g_new(double, cells);
  for (size_t z = 0; z < n_slices; z++) {
    for (int c = 0; c < cells; c++) {
      sx[c] = g_rand_double_range(rng, 0, (double) w);
      sy[c] = g_rand_double_range(rng, 0, (double) h);
    }
    for (size_t y = 0; y < h; y++)
      for (size_t x = 0; x < w; x++) {
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c < cells; c++) {
          double d = (sx[c] - (double) x) * (sx[c] - (double) x) +
                     (sy[c] - (double) y) * (sy[c] - (double) y);
          if (d < bd) {
            bd = d;
            best = c;
          }
        }
        owner[y * w + x] = best;
      }
    for (size_t y = 0; y < h; y++)
      for (size_t x = 0; x < w; x++) {
        int cell = 1;
        for (int dy = -r; dy <= r && cell; dy++)
          for (int dx = -r; dx <= r; dx++) {
            long yy = (long) y + dy, xx = (long) x + dx;
            if (yy < 0 || xx < 0 || yy >= (long) h || xx >= (long) w)
              continue;
            if (owner[yy * (long) w + xx] != owner[y * w + x]) {
              cell = 0;
              break;
            }
          }
        gt[z * h * w + y * w + x] = cell ? 255 : 0;
      }
  }
  g_free(owner);
  g_free(sx);
  g_free(sy);
  g_rand_free(rng);
}

/* Membrane grown (grow = 1) or shrunk (grow = 0) by one pixel, 4-neighbourhood. */
static void
morph_membrane(float *prob, const uint8_t *gt, size_t n_slices, size_t h, size_t w, int grow)
{
  for (size_t z = 0; z < n_slices; z++)
    for (size_t y = 0; y < h; y++)
      for (size_t x = 0; x < w; x++) {
        const uint8_t *g = gt + z * h * w;
        int mem = g[y * w + x] == 0;
        int any = mem, all = mem;
        const long d[4][2] = { { -1, 0 }, { 1, 0 }, { 0, -1 }, { 0, 1 } };
        for (int k = 0; k < 4; k++) {
          long yy = (long) y + d[k][0], xx = (long) x + d[k][1];
          if (yy < 0 || xx < 0 || yy >= (long) h || xx >= (long) w)
            continue;
          int m = g[yy * (long) w + xx] == 0;
          any |= m;
          all &= m;
        }
        int out_mem = grow ? any : all;
        prob[z * h * w + y * w + x] = out_mem ? 0.0f : 1.0f;
      }
}

enum { SZ = 3, SH = 96, SW = 112 };

static void
test_identity(void)
{
  uint8_t *gt = g_new(uint8_t, SZ * SH * SW);
  float *prob = g_new(float, SZ * SH * SW);
  voronoi_labels(gt, SZ, SH, SW, 25, 1, 7);
  for (size_t i = 0; i < (size_t) SZ * SH * SW; i++)
    prob[i] = gt[i] ? 1.0f : 0.0f;
  EngMetricsResult r = evaluate_ok(prob, gt, SZ, SH, SW);
  assert_all_rows(&r, 1.0, 1.0, 0.0, 1.0);
  g_assert_cmpfloat_with_epsilon(r.rows[0].rand_split, 1.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.rows[0].info_merge, 1.0, EPS);
  g_free(gt);
  g_free(prob);
}

static void
test_dilated_eroded(void)
{
  uint8_t *gt = g_new(uint8_t, SZ * SH * SW);
  float *prob = g_new(float, SZ * SH * SW);
  /* r = 2: boundaries 4-5 pixels wide, so eroding by one keeps every wall closed. */
  voronoi_labels(gt, SZ, SH, SW, 25, 2, 11);
  for (int grow = 0; grow <= 1; grow++) {
    morph_membrane(prob, gt, SZ, SH, SW, grow);
    EngMetricsResult r = evaluate_ok(prob, gt, SZ, SH, SW);
    g_test_message("%s membrane: vrand %.6f vinfo %.6f pixel_error %.6f",
                   grow ? "dilated" : "eroded", r.vrand, r.vinfo, r.pixel_error);
    g_assert_cmpfloat(r.vrand, >, 0.9);
    g_assert_cmpfloat(r.vrand, <=, 1.0);
    g_assert_cmpfloat(r.vinfo, >, 0.9);
    g_assert_cmpfloat(r.vinfo, <=, 1.0);
    g_assert_cmpfloat(r.pixel_error, >, 0.0); /* the pixels did change */
  }
  g_free(gt);
  g_free(prob);
}

/* ---- thresholds ---- */

/* Fiji's thresholds come from adding 0.1 in doubles: 0.30000000000000004 and a last value
 * just below 1. A 0.5 membrane pixel is cell for th = 0 .. 0.4 (0.5 > th) and membrane from
 * th = 0.5 on (0.5 > 0.5 is false). GT 1 1 0 1 1 -> pixel error 1/5 then 0; V_rand:
 * with x2 as cell one segment covers both cells (P = 0.5, R = 1, F = 2/3), else 1. */
static void
test_thresholds(void)
{
  g_assert_cmpfloat(eng_metrics_threshold(0), ==, 0.0);
  g_assert_cmpfloat(eng_metrics_threshold(3), >, 0.3);
  g_assert_cmpfloat(eng_metrics_threshold(5), ==, 0.5);
  g_assert_cmpfloat(eng_metrics_threshold(10), <, 1.0);
  g_assert_cmpfloat(eng_metrics_threshold(10), >, 0.9999999);

  const uint8_t gt[5] = { 255, 255, 0, 255, 255 };
  const float prob[5] = { 1.0f, 1.0f, 0.5f, 1.0f, 1.0f };
  EngMetricsResult r = evaluate_ok(prob, gt, 1, 1, 5);
  for (size_t k = 0; k < ENG_METRICS_N_THRESHOLDS; k++) {
    int merged = k < 5;
    g_assert_cmpfloat(r.rows[k].threshold, ==, eng_metrics_threshold(k));
    g_assert_cmpfloat_with_epsilon(r.rows[k].pixel_error, merged ? 0.2 : 0.0, EPS);
    g_assert_cmpfloat_with_epsilon(r.rows[k].vrand, merged ? 2.0 / 3.0 : 1.0, EPS);
  }
  g_assert_cmpuint(r.vrand_at, ==, 5);
  g_assert_cmpuint(r.pixel_error_at, ==, 5);
  g_assert_cmpfloat_with_epsilon(r.vrand, 1.0, EPS);
}

/* Per-slice (macro) averaging: slice 0 is test_split's case, slice 1 an exact copy. */
static void
test_slice_average(void)
{
  const char *g[] = { "111101111" }, *p[] = { "101101111" };
  uint8_t gt[18];
  float prob[18];
  draw(g, 1, 9, gt, NULL);
  draw(p, 1, 9, NULL, prob);
  draw(g, 1, 9, gt + 9, prob + 9);
  EngMetricsResult r = evaluate_ok(prob, gt, 2, 1, 9);
  g_assert_cmpfloat_with_epsilon(r.vrand, (22.0 / 27.0 + 1.0) / 2.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.vinfo, (8.0 / 11.0 + 1.0) / 2.0, EPS);
  g_assert_cmpfloat_with_epsilon(r.pixel_error, (1.0 / 9.0) / 2.0, EPS);
}

/* ---- invalid input ---- */

static void
expect_invalid(const float *prob, const uint8_t *gt, size_t n, size_t h, size_t w,
               const char *needle)
{
  EngMetricsResult r;
  EngError err = { 0 };
  EngStatus st = eng_metrics_evaluate(prob, gt, n, h, w, &r, &err);
  g_assert_cmpint(st, ==, ENG_ERR_INVALID);
  g_test_message("refused: %s", err.message);
  if (!strstr(err.message, needle))
    g_error("message '%s' does not mention '%s'", err.message, needle);
}

static void
test_invalid(void)
{
  uint8_t gt[8] = { 255, 255, 0, 255, 255, 255, 0, 255 };
  float prob[8] = { 1, 1, 0, 1, 1, 1, 0, 1 };
  expect_invalid(prob, gt, 0, 2, 2, "empty");
  expect_invalid(prob, gt, 1, 0, 2, "empty");
  expect_invalid(NULL, gt, 1, 2, 2, "missing");
  expect_invalid(prob, gt, 1, (size_t) 1 << 16, (size_t) 1 << 16, "exceed");

  prob[5] = NAN; /* slice 1, row 0, column 1 of (2, 1, 4) */
  expect_invalid(prob, gt, 2, 1, 4, "slice 1, row 0, column 1");
  prob[5] = 1.5f;
  expect_invalid(prob, gt, 2, 1, 4, "[0, 1]");
  prob[5] = -0.25f;
  expect_invalid(prob, gt, 2, 1, 4, "-0.25");
  prob[5] = 1.0f;

  memset(gt + 4, 0, 4);
  expect_invalid(prob, gt, 2, 1, 4, "ground-truth slice 1 has no cell");

  int32_t a[2] = { 0, 0 }, b[2] = { 1, 1 };
  EngPartitionScores s;
  EngError err = { 0 };
  g_assert_cmpint(eng_metrics_partition_scores(a, b, 2, 2, 2, &s, &err), ==,
                  ENG_ERR_INVALID);
  a[0] = 5;
  g_assert_cmpint(eng_metrics_partition_scores(a, b, 2, 2, 2, &s, &err), ==,
                  ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "pixel 0"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/metrics/thin/odd-width", test_thin_odd_width);
  g_test_add_func("/metrics/thin/even-width-order", test_thin_even_width_order);
  g_test_add_func("/metrics/thin/two-rows-flag", test_thin_two_rows_flag);
  g_test_add_func("/metrics/thin/two-columns", test_thin_two_columns);
  g_test_add_func("/metrics/thin/no-cells", test_thin_no_cells);
  g_test_add_func("/metrics/thin/matches-oracle", test_thin_matches_oracle);
  g_test_add_func("/metrics/components/4-connected", test_components_4_connected);
  g_test_add_func("/metrics/hand/split", test_split);
  g_test_add_func("/metrics/hand/merge", test_merge);
  g_test_add_func("/metrics/hand/missing-boundary", test_missing_boundary);
  g_test_add_func("/metrics/hand/spurious-boundary", test_spurious_boundary);
  g_test_add_func("/metrics/symmetry/swap-asymmetric", test_swap_asymmetric);
  g_test_add_func("/metrics/symmetry/partition", test_partition_symmetry);
  g_test_add_func("/metrics/identity", test_identity);
  g_test_add_func("/metrics/dilated-eroded", test_dilated_eroded);
  g_test_add_func("/metrics/thresholds", test_thresholds);
  g_test_add_func("/metrics/slice-average", test_slice_average);
  g_test_add_func("/metrics/invalid", test_invalid);
  return g_test_run();
}
