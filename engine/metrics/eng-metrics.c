/* eng-metrics.c — V_rand, V_info, pixel error and friends, per slice and per threshold.
 *
 * The rules, as read in fiji/Trainable_Segmentation (trainableSegmentation.metrics):
 *  - Thresholds: `for (double th = min; th <= max; th += step)` with 0.0, 1.0, 0.1
 *    (RandError.getForegroundRestrictedRandAfterThinningStats(min, max, step, perSlice),
 *    VariationOfInformation.getForegroundRestrictedScoresAfterThinning): 11 values, the
 *    last 0.9999999999999999. Both images are binarized with `value > th`; for 0/255
 *    labels that makes every non-zero label pixel a cell at every threshold.
 *  - Ground-truth segments: 4-connected components of its cells (Utils.connectedComponents
 *    (im, 4), i.e. FindConnectedRegions with values over 0); label 0 = membrane.
 *  - Proposal segments: the watershed thinning of eng-metrics-segment.c; dam pixels are 0.
 *  - Foreground restriction: only pixels inside ground-truth cells count (n of them); a
 *    proposal 0 pixel there is its own singleton segment, which is what the `aux = sum
 *    p_i0` terms add: + aux / n to the Rand sums, - aux * log(n) to the entropy sums.
 *  - Rand (RandError.getForegroundRestrictedRandIndexStatsN2, pairs with self-pairs):
 *    tp = sum_ij c_ij^2 + c_0, fp = sum_j b_j^2 + c_0 - tp, fn = sum_i a_i^2 - tp, where
 *    c_ij counts pixels in truth segment i and proposal segment j >= 1, c_0 the singletons,
 *    a_i / b_j the marginals inside the foreground. Rand index = 1 - (fp + fn) / n^2.
 *    Precision, recall and F-score as in ClassificationStatistics: precision = 1 when
 *    fp = 0, recall = 1 when fn = 0, F = 0 when precision + recall = 0.
 *  - Information (VariationOfInformation.foregroundRestrictedFscore, natural logs):
 *    precision = I / H(A), recall = I / H(B), F = 2 P R / (P + R) = 2 I / (H(A) + H(B));
 *    H(A) = 0 gives P = 0, R = 1; then H(B) = 0 gives P = 1, R = 0 (so F = 0); P + R = 0
 *    gives NaN, which Fiji carries into the slice average and skips in the maximum.
 *  - Per-slice (macro) average of the F-scores (perSliceAverage = true in the challenge's
 *    script), then the maximum over thresholds, starting from 0 with a strict `>`.
 *  - Pixel error (PixelError.getMetricValue): mismatching pixels / (w * h) per slice,
 *    averaged, minimised over thresholds (Metrics.getMinimumMetricValue).
 * Counts are exact 64-bit integers here where Fiji divides by n first, so results agree
 * with Fiji's to rounding (~1e-15), far below the six printed decimals. */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "eng-metrics-private.h"
#include "eng-metrics.h"
#include "eng-parallel.h"

double
eng_metrics_threshold(size_t i)
{
  double th = 0.0;
  for (size_t k = 0; k < i; k++)
    th += 0.1;
  return th;
}

/* Sums behind both scores for one pair of partitions (see the top of the file). */
typedef struct {
  int64_t n, c0, sum_a2, sum_b2, sum_c2;
  double plogp_a, plogp_b, plogp_ab; /* sums of p log p, p = count / n */
} Sums;

/* Fiji skips empty segments (`if (ai[i] != 0)`), which 0 * log 0 = NaN would poison. */
static inline double
plogp(int64_t count, double n)
{
  if (count == 0)
    return 0.0;
  double p = (double) count / n;
  return p * log(p);
}

static void
finish_scores(const Sums *s, EngPartitionScores *o)
{
  double n = (double) s->n;
  double tp = (double) (s->sum_c2 + s->c0);
  double fp = (double) (s->sum_b2 + s->c0) - tp;
  double fn = (double) s->sum_a2 - tp;
  memset(o, 0, sizeof *o);
  o->n = n;
  o->tp = tp;
  o->fp = fp;
  o->fn = fn;
  o->rand_index = 1.0 - (fp + fn) / (n * n);
  o->rand_precision = fp == 0 ? 1.0 : tp / (tp + fp);
  o->rand_recall = fn == 0 ? 1.0 : tp / (tp + fn);
  double pr = o->rand_precision + o->rand_recall;
  o->rand_fscore = pr > 0 ? 2.0 * o->rand_precision * o->rand_recall / pr : 0.0;

  double aux = (double) s->c0 / n, lnn = log(n);
  double sum_a = s->plogp_a;
  double sum_b = s->plogp_b - aux * lnn;
  double sum_ab = s->plogp_ab - aux * lnn;
  double ha = -sum_a, hb = -sum_b, hab = sum_b - sum_ab, hba = sum_a - sum_ab;
  double prec = (ha - hab) / ha, rec = (hb - hba) / hb;
  if (ha == 0) {
    prec = 0.0;
    rec = 1.0;
  }
  if (hb == 0) {
    prec = 1.0;
    rec = 0.0;
  }
  o->h_a = ha;
  o->h_b = hb;
  o->mutual_info = ha - hab;
  o->info_precision = prec;
  o->info_recall = rec;
  o->info_fscore = 2.0 * prec * rec / (prec + rec);
}

/* Scratch for one partition in accumulate(): per proposal label counts and the lists of
 * labels touched, so clearing costs what was used, not the number of labels. */
typedef struct {
  int32_t *cnt;      /* (n_labels_b) count in the current truth segment */
  int32_t *marg;     /* (n_labels_b) marginal b_j inside the foreground */
  int32_t *touched;  /* (n) labels with cnt > 0 */
  int32_t *mtouched; /* (n) labels with marg > 0 */
  size_t nt, nm;
} Tally;

static inline void
tally_add(Tally *w, int32_t j, Sums *s)
{
  if (j == 0)
    s->c0++;
  else if (w->cnt[j]++ == 0)
    w->touched[w->nt++] = j;
}

/* Closes truth segment i: folds its row of the contingency table into the sums. */
static inline void
tally_row(Tally *w, Sums *s, double n)
{
  for (size_t k = 0; k < w->nt; k++) {
    int32_t j = w->touched[k];
    int64_t c = w->cnt[j];
    s->sum_c2 += c * c;
    s->plogp_ab += plogp(c, n);
    if (w->marg[j] == 0)
      w->mtouched[w->nm++] = j;
    w->marg[j] += (int32_t) c;
    w->cnt[j] = 0;
  }
  w->nt = 0;
}

static inline void
tally_finish(Tally *w, Sums *s, double n)
{
  for (size_t k = 0; k < w->nm; k++) {
    int32_t j = w->mtouched[k];
    int64_t m = w->marg[j];
    s->sum_b2 += m * m;
    s->plogp_b += plogp(m, n);
    w->marg[j] = 0;
  }
  w->nm = 0;
}

/* Truth segments are given as pixel lists: order[start[i] .. start[i+1]) for i = 1..na;
 * a pixel's proposal label is b[t]. With `plain` set, a second partition is tallied in the
 * same pass: b[t] where keep[t], else 0 (the un-thinned components, see eval_slice). */
static void
accumulate(const int32_t *order, const int32_t *start, int32_t na, const int32_t *b,
           Tally *w, Sums *s, const uint8_t *keep, Tally *w2, Sums *plain)
{
  memset(s, 0, sizeof *s);
  s->n = start[na + 1] - start[1];
  if (plain)
    *plain = *s;
  double n = (double) s->n;
  for (int32_t i = 1; i <= na; i++) {
    if (plain) {
      for (int32_t k = start[i]; k < start[i + 1]; k++) {
        int32_t t = order[k], j = b[t];
        tally_add(w, j, s);
        tally_add(w2, keep[t] ? j : 0, plain);
      }
      tally_row(w2, plain, n);
    } else {
      for (int32_t k = start[i]; k < start[i + 1]; k++)
        tally_add(w, b[order[k]], s);
    }
    tally_row(w, s, n);
    int64_t a = start[i + 1] - start[i];
    double pa = plogp(a, n);
    s->sum_a2 += a * a;
    s->plogp_a += pa;
    if (plain) {
      plain->sum_a2 += a * a;
      plain->plogp_a += pa;
    }
  }
  tally_finish(w, s, n);
  if (plain)
    tally_finish(w2, plain, n);
}

/* Counting sort of the foreground pixels by truth label; start has na + 2 entries. The
 * pixels are t = x * stride + base + y for x < nx, y < ny (a framed image or a flat one). */
static void
group_by_label(const int32_t *a, size_t nx, size_t ny, size_t stride, size_t base,
               int32_t na, int32_t *order, int32_t *start)
{
  memset(start, 0, (size_t) (na + 2) * sizeof *start);
  for (size_t x = 0; x < nx; x++)
    for (size_t t = x * stride + base; t < x * stride + base + ny; t++)
      start[a[t] + 1]++;
  for (int32_t i = 1; i <= na + 1; i++)
    start[i] += start[i - 1];
  /* start[i] is now the first slot of label i; fill, then shift back. */
  for (size_t x = 0; x < nx; x++)
    for (size_t t = x * stride + base; t < x * stride + base + ny; t++)
      order[start[a[t]]++] = (int32_t) t;
  for (int32_t i = na + 1; i > 0; i--)
    start[i] = start[i - 1];
  start[0] = 0;
}

static void
tally_free(Tally *w)
{
  free(w->cnt);
  free(w->marg);
  free(w->touched);
  free(w->mtouched);
}

static bool
tally_init(Tally *w, size_t n_labels_b, size_t n)
{
  w->cnt = calloc(n_labels_b, sizeof *w->cnt);
  w->marg = calloc(n_labels_b, sizeof *w->marg);
  w->touched = malloc(n * sizeof *w->touched);
  w->mtouched = malloc(n * sizeof *w->mtouched);
  w->nt = w->nm = 0;
  if (!w->cnt || !w->marg || !w->touched || !w->mtouched) {
    tally_free(w);
    return false;
  }
  return true;
}

EngStatus
eng_metrics_partition_scores(const int32_t *a, const int32_t *b, size_t n, int32_t n_labels_a,
                             int32_t n_labels_b, EngPartitionScores *out, EngError *err)
{
  if (!a || !b || !out || n == 0 || n_labels_a < 1 || n_labels_b < 1)
    return eng_error_set(err, ENG_ERR_INVALID, "partition scores: empty input");
  if (n > ENG_METRICS_MAX_PIXELS)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "partition scores: %zu pixels exceed the limit of %zu", n,
                         ENG_METRICS_MAX_PIXELS);
  size_t fg = 0;
  for (size_t t = 0; t < n; t++) {
    if (a[t] < 0 || a[t] >= n_labels_a || b[t] < 0 || b[t] >= n_labels_b)
      return eng_error_set(err, ENG_ERR_INVALID,
                           "partition scores: pixel %zu has labels (%d, %d), expected "
                           "0 <= a < %d and 0 <= b < %d",
                           t, (int) a[t], (int) b[t], (int) n_labels_a, (int) n_labels_b);
    fg += a[t] != 0;
  }
  if (fg == 0)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "partition scores: the ground truth has no foreground pixel");
  int32_t na = n_labels_a - 1;
  int32_t *order = malloc(n * sizeof *order);
  int32_t *start = malloc((size_t) (na + 2) * sizeof *start);
  Tally w;
  if (!order || !start || !tally_init(&w, (size_t) n_labels_b, n)) {
    free(order);
    free(start);
    return eng_error_set(err, ENG_ERR_NOMEM, "partition scores: no memory for %zu pixels",
                         n);
  }
  group_by_label(a, 1, n, n, 0, na, order, start);
  Sums s;
  accumulate(order, start, na, b, &w, &s, NULL, NULL, NULL);
  finish_scores(&s, out);
  free(order);
  free(start);
  tally_free(&w);
  return ENG_OK;
}

/* ---- the whole evaluation ---- */

typedef struct {
  const float *prob;
  const uint8_t *gt;
  size_t h, w;
  double th[ENG_METRICS_N_THRESHOLDS];
  EngMetricsRow *rows; /* (n_slices, N_THRESHOLDS) per-slice values */
  atomic_int nomem;
} EvalJob;

typedef struct {
  uint8_t *gt_t;  /* framed (w, h) x-major truth mask */
  uint8_t *cell;  /* framed (w, h) binarized proposal */
  float *prob_t;  /* framed (w, h) x-major probabilities */
  int32_t *gl;    /* framed (w, h) truth segments */
  int32_t *lab;   /* framed (w, h) thinned proposal segments */
  int32_t *fifo;  /* (w * h) flood queue */
  int32_t *order; /* (w * h) foreground pixels grouped by truth segment */
  int32_t *start; /* (w * h + 2) group offsets */
  Tally thin, plain; /* proposal labels < w * h + 1 */
} SliceWork;

static void
slice_work_free(SliceWork *s)
{
  free(s->gt_t);
  free(s->cell);
  free(s->prob_t);
  free(s->gl);
  free(s->lab);
  free(s->fifo);
  free(s->order);
  free(s->start);
  tally_free(&s->thin);
  tally_free(&s->plain);
  memset(s, 0, sizeof *s);
}

static bool
slice_work_init(SliceWork *s, size_t h, size_t w)
{
  size_t n = h * w, np = (h + 2) * (w + 2);
  memset(s, 0, sizeof *s);
  s->gt_t = calloc(np, 1);
  s->cell = calloc(np, 1);
  s->prob_t = calloc(np, sizeof *s->prob_t);
  s->gl = malloc(np * sizeof *s->gl);
  s->lab = malloc(np * sizeof *s->lab);
  s->fifo = malloc(n * sizeof *s->fifo);
  s->order = malloc(n * sizeof *s->order);
  s->start = malloc((n + 2) * sizeof *s->start);
  bool ok = s->gt_t && s->cell && s->prob_t && s->gl && s->lab && s->fifo && s->order &&
            s->start;
  ok = ok && tally_init(&s->thin, n + 1, n);
  ok = ok && tally_init(&s->plain, n + 1, n);
  if (!ok)
    slice_work_free(s);
  return ok;
}

static void
eval_slice(EvalJob *job, SliceWork *s, size_t z)
{
  size_t h = job->h, w = job->w, n = h * w, st = h + 2;
  const float *p = job->prob + z * n;
  const uint8_t *g = job->gt + z * n;
  /* Transpose once per slice so that all thresholds walk memory in Fiji's order. */
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      s->prob_t[ENG_METRICS_PAD(x, y, h)] = p[y * w + x];
      s->gt_t[ENG_METRICS_PAD(x, y, h)] = g[y * w + x] != 0;
    }
  int32_t na = eng_metrics_components4_xmajor(s->gl, s->gt_t, w, h, s->fifo);
  group_by_label(s->gl, w, h, st, st + 1, na, s->order, s->start);

  for (size_t k = 0; k < ENG_METRICS_N_THRESHOLDS; k++) {
    double th = job->th[k];
    size_t wrong = 0;
    for (size_t x = 0; x < w; x++) {
      size_t t0 = ENG_METRICS_PAD(x, 0, h);
      for (size_t t = t0; t < t0 + h; t++) {
        /* float promoted to double, as Java compares getPixelValue() with a double */
        uint8_t c = (double) s->prob_t[t] > th;
        s->cell[t] = c;
        wrong += c != s->gt_t[t];
      }
    }
    eng_metrics_thin_xmajor(s->lab, s->cell, w, h, s->fifo);

    /* Cell pixels keep their component label through the flood, so the un-thinned
     * components are the same labels with the membrane set to 0. */
    EngPartitionScores thinned, plain;
    Sums st_thin, st_plain;
    accumulate(s->order, s->start, na, s->lab, &s->thin, &st_thin, s->cell, &s->plain,
               &st_plain);
    finish_scores(&st_thin, &thinned);
    finish_scores(&st_plain, &plain);

    EngMetricsRow *r = &job->rows[z * ENG_METRICS_N_THRESHOLDS + k];
    r->threshold = th;
    r->vrand = thinned.rand_fscore;
    r->rand_split = thinned.rand_recall;
    r->rand_merge = thinned.rand_precision;
    r->vinfo = thinned.info_fscore;
    r->info_split = thinned.info_recall;
    r->info_merge = thinned.info_precision;
    r->rand_index = plain.rand_index;
    r->pixel_error = (double) wrong / (double) n;
  }
}

static void
eval_range(void *ctx, size_t begin, size_t end)
{
  EvalJob *job = ctx;
  SliceWork s;
  if (!slice_work_init(&s, job->h, job->w)) {
    atomic_store(&job->nomem, 1);
    return;
  }
  for (size_t z = begin; z < end; z++)
    eval_slice(job, &s, z);
  slice_work_free(&s);
}

/* Fiji's maximum: from 0, first strictly larger value wins, NaN never does. */
static void
take_max(double v, size_t k, double *best, size_t *at)
{
  if (v > *best) {
    *best = v;
    *at = k;
  }
}

EngStatus
eng_metrics_evaluate(const float *prob, const uint8_t *gt, size_t n_slices, size_t h,
                     size_t w, EngMetricsResult *out, EngError *err)
{
  if (!prob || !gt || !out)
    return eng_error_set(err, ENG_ERR_INVALID, "evaluate: missing prediction, labels or "
                                               "result");
  if (n_slices == 0 || h == 0 || w == 0)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "evaluate: empty stack (%zu slices of %zu x %zu)", n_slices, h, w);
  if (w > ENG_METRICS_MAX_PIXELS / h)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "evaluate: slices of %zu x %zu pixels exceed the limit of %zu", h,
                         w, ENG_METRICS_MAX_PIXELS);
  size_t n = h * w;
  if (n_slices > SIZE_MAX / n)
    return eng_error_set(err, ENG_ERR_INVALID, "evaluate: %zu slices of %zu pixels overflow",
                         n_slices, n);

  /* Inputs are checked up front so the parallel part cannot fail on them. */
  for (size_t z = 0; z < n_slices; z++) {
    const float *p = prob + z * n;
    const uint8_t *g = gt + z * n;
    size_t cells = 0;
    for (size_t t = 0; t < n; t++) {
      float v = p[t];
      if (!(v >= 0.0f && v <= 1.0f))
        return eng_error_set(err, ENG_ERR_INVALID,
                             "evaluate: prediction slice %zu, row %zu, column %zu is %g; "
                             "expected a probability in [0, 1] (0 = membrane)",
                             z, t / w, t % w, (double) v);
      cells += g[t] != 0;
    }
    if (cells == 0)
      return eng_error_set(err, ENG_ERR_INVALID,
                           "evaluate: ground-truth slice %zu has no cell pixel (all 0 = "
                           "membrane); V_rand and V_info are undefined there",
                           z);
  }

  EvalJob job = { .prob = prob, .gt = gt, .h = h, .w = w };
  for (size_t k = 0; k < ENG_METRICS_N_THRESHOLDS; k++)
    job.th[k] = eng_metrics_threshold(k);
  atomic_init(&job.nomem, 0);
  job.rows = calloc(n_slices * ENG_METRICS_N_THRESHOLDS, sizeof *job.rows);
  if (!job.rows)
    return eng_error_set(err, ENG_ERR_NOMEM, "evaluate: no memory for %zu slices", n_slices);
  eng_parallel_for(n_slices, 1, eval_range, &job);
  if (atomic_load(&job.nomem)) {
    free(job.rows);
    return eng_error_set(err, ENG_ERR_NOMEM,
                         "evaluate: no memory for the work buffers of %zu x %zu slices", h,
                         w);
  }

  memset(out, 0, sizeof *out);
  out->n_slices = n_slices;
  out->h = h;
  out->w = w;
  out->pixel_error = INFINITY;
  for (size_t k = 0; k < ENG_METRICS_N_THRESHOLDS; k++) {
    EngMetricsRow m = { .threshold = job.th[k] };
    /* Summed in slice order, so the result does not depend on the thread split. */
    for (size_t z = 0; z < n_slices; z++) {
      const EngMetricsRow *r = &job.rows[z * ENG_METRICS_N_THRESHOLDS + k];
      m.vrand += r->vrand;
      m.rand_split += r->rand_split;
      m.rand_merge += r->rand_merge;
      m.vinfo += r->vinfo;
      m.info_split += r->info_split;
      m.info_merge += r->info_merge;
      m.rand_index += r->rand_index;
      m.pixel_error += r->pixel_error;
    }
    double d = (double) n_slices;
    m.vrand /= d;
    m.rand_split /= d;
    m.rand_merge /= d;
    m.vinfo /= d;
    m.info_split /= d;
    m.info_merge /= d;
    m.rand_index /= d;
    m.pixel_error /= d;
    out->rows[k] = m;
    take_max(m.vrand, k, &out->vrand, &out->vrand_at);
    take_max(m.vinfo, k, &out->vinfo, &out->vinfo_at);
    take_max(m.rand_index, k, &out->rand_index, &out->rand_index_at);
    if (m.pixel_error < out->pixel_error) {
      out->pixel_error = m.pixel_error;
      out->pixel_error_at = k;
    }
  }
  free(job.rows);
  return ENG_OK;
}
