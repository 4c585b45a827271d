/* eng-conv.c — k×k convolution (k ∈ {1, 3}, "same" padding, stride 1 or 2 with k = 1):
 * the entry points, the im2col path on OpenBLAS sgemm and the direct-loop oracle the tests
 * compare both paths with. In a build with oneDNN, shapes it takes go to eng-conv-dnnl.c
 * first (about 1.3× faster per training step, README Performance); the im2col path
 * serves the rest, builds without oneDNN, and EMSEG_CONV=im2col.
 *
 * im2col path, per image of the batch:
 * - 1×1 stride 1 is a plain GEMM on the NCHW planes: out (cout, hw) = W (cout, cin) · in.
 * - 1×1 stride 2 first decimates the input into the workspace, then the same GEMM.
 * - 3×3 goes through im2col in horizontal strips of output rows, so the workspace stays
 *   a few MB whatever the image size (a whole 512² image with 32 channels would need
 *   300 MB of col). Each strip is one GEMM whose C rows are strided by h*w.
 * Backward reuses the same workspace twice per strip: im2col of the input for
 * dW += dY · colᵀ, then col = Wᵀ · dY scattered back with col2im.
 * The packing loops (im2col, col2im, decimation, bias) and eng_sgemm's blocks run on the
 * engine pool. */
#include "eng-layers.h"

#include <string.h>

#include "eng-layers-private.h"
#include "eng-parallel.h"
#if EMSEG_HAVE_ONEDNN
#include "eng-conv-dnnl.h"
#endif

/* Target size of one im2col strip, in floats. */
#ifndef COL_BUDGET
#define COL_BUDGET ((size_t) 1 << 20)
#endif

static size_t
out_h(const EngConvShape *s)
{
  return s->h / (size_t) s->stride;
}

static size_t
out_w(const EngConvShape *s)
{
  return s->w / (size_t) s->stride;
}

static void
check_shape(const EngConvShape *s)
{
  assert(s->k == 1 || s->k == 3);
  assert(s->stride == 1 || s->stride == 2);
  assert(s->stride == 1 || (s->k == 1 && s->h % 2 == 0 && s->w % 2 == 0));
  (void) s;
}

/* Output rows per im2col strip for a 3×3 conv. */
static size_t
strip_rows(const EngConvShape *s)
{
  size_t per_row = s->cin * 9 * s->w;
  size_t rows = per_row ? COL_BUDGET / per_row : s->h;
  if (rows < 1)
    rows = 1;
  if (rows > s->h)
    rows = s->h;
  return rows;
}

static size_t
im2col_workspace_floats(const EngConvShape *s)
{
  if (s->k == 3)
    return s->cin * 9 * strip_rows(s) * s->w;
  if (s->stride == 2)
    return s->cin * out_h(s) * out_w(s);
  return 0;
}

static size_t
workspace_floats(const EngConvShape *s, int with_backward)
{
  check_shape(s);
  size_t floats = im2col_workspace_floats(s);
#if EMSEG_HAVE_ONEDNN
  /* Room for either path: oneDNN's blocked copies, or im2col strips should oneDNN
   * decline the shape. */
  size_t dnnl = eng_conv_dnnl_workspace_floats(s, with_backward);
  if (dnnl > floats)
    floats = dnnl;
#else
  (void) with_backward;
#endif
  return floats;
}

size_t
eng_conv2d_workspace_floats(const EngConvShape *s)
{
  return workspace_floats(s, 1);
}

size_t
eng_conv2d_forward_workspace_floats(const EngConvShape *s)
{
  return workspace_floats(s, 0);
}

const char *
eng_conv2d_backend(const EngConvShape *s)
{
  check_shape(s);
#if EMSEG_HAVE_ONEDNN
  const char *impl = eng_conv_dnnl_impl(s);
  if (impl)
    return impl;
#endif
  return "im2col";
}

/* ---- packing kernels (run on the engine pool) ---------------------------------------- */

typedef struct {
  float *dst;
  const float *src;
  const float *bias;
  size_t cin, h, w;
  size_t y0, rows; /* output row strip */
} PackCtx;

/* col (cin*9, rows*w) from in (cin, h, w) for output rows [y0, y0+rows); col row
 * r = ci*9 + ky*3 + kx matches the weight layout (cout, cin, 3, 3). */
static void
im2col_range(void *vctx, size_t rb, size_t re)
{
  const PackCtx *c = vctx;
  size_t w = c->w, h = c->h, n = c->rows * w;
  for (size_t r = rb; r < re; r++) {
    size_t ci = r / 9, ky = (r / 3) % 3, kx = r % 3;
    const float *plane = c->src + ci * h * w;
    float *dst = c->dst + r * n;
    for (size_t yy = 0; yy < c->rows; yy++, dst += w) {
      size_t y = c->y0 + yy;
      /* source row y + ky - 1, out of range → zero padding */
      if (y + ky < 1 || y + ky - 1 >= h) {
        memset(dst, 0, w * sizeof *dst);
        continue;
      }
      const float *src = plane + (y + ky - 1) * w;
      if (kx == 0) {
        dst[0] = 0.0f;
        memcpy(dst + 1, src, (w - 1) * sizeof *dst);
      } else if (kx == 1) {
        memcpy(dst, src, w * sizeof *dst);
      } else {
        memcpy(dst, src + 1, (w - 1) * sizeof *dst);
        dst[w - 1] = 0.0f;
      }
    }
  }
}

/* din (cin, h, w) += col2im(col) for the strip; split over input channels so that each
 * din plane is written by one thread. */
static void
col2im_range(void *vctx, size_t cb, size_t ce)
{
  const PackCtx *c = vctx;
  size_t w = c->w, h = c->h, n = c->rows * w;
  for (size_t ci = cb; ci < ce; ci++) {
    float *plane = c->dst + ci * h * w;
    for (size_t k = 0; k < 9; k++) {
      size_t ky = k / 3, kx = k % 3;
      const float *col = c->src + (ci * 9 + k) * n;
      for (size_t yy = 0; yy < c->rows; yy++, col += w) {
        size_t y = c->y0 + yy;
        if (y + ky < 1 || y + ky - 1 >= h)
          continue;
        float *d = plane + (y + ky - 1) * w;
        if (kx == 0) {
          for (size_t x = 1; x < w; x++)
            d[x - 1] += col[x];
        } else if (kx == 1) {
          for (size_t x = 0; x < w; x++)
            d[x] += col[x];
        } else {
          for (size_t x = 0; x + 1 < w; x++)
            d[x + 1] += col[x];
        }
      }
    }
  }
}

/* dst (cin, h/2, w/2) = src (cin, h, w) at even rows and columns. */
static void
decimate_range(void *vctx, size_t cb, size_t ce)
{
  const PackCtx *c = vctx;
  size_t w = c->w, h = c->h, wo = w / 2, ho = h / 2;
  for (size_t ci = cb; ci < ce; ci++)
    for (size_t y = 0; y < ho; y++) {
      const float *src = c->src + ci * h * w + 2 * y * w;
      float *dst = c->dst + (ci * ho + y) * wo;
      for (size_t x = 0; x < wo; x++)
        dst[x] = src[2 * x];
    }
}

/* dst (cin, h, w) at even rows and columns += src (cin, h/2, w/2). */
static void
undecimate_add_range(void *vctx, size_t cb, size_t ce)
{
  const PackCtx *c = vctx;
  size_t w = c->w, h = c->h, wo = w / 2, ho = h / 2;
  for (size_t ci = cb; ci < ce; ci++)
    for (size_t y = 0; y < ho; y++) {
      float *dst = c->dst + ci * h * w + 2 * y * w;
      const float *src = c->src + (ci * ho + y) * wo;
      for (size_t x = 0; x < wo; x++)
        dst[2 * x] += src[x];
    }
}

/* dst (cout, hw): each plane filled with its bias. `cin` holds hw here. */
static void
fill_bias_range(void *vctx, size_t cb, size_t ce)
{
  const PackCtx *c = vctx;
  size_t hw = c->cin;
  for (size_t co = cb; co < ce; co++) {
    float b = c->bias[co];
    float *d = c->dst + co * hw;
    for (size_t i = 0; i < hw; i++)
      d[i] = b;
  }
}

/* Rows (or planes) per chunk so that a chunk moves at least ~32 K floats. */
static size_t
min_rows(size_t floats_per_row)
{
  size_t want = ((size_t) 1 << 15) / (floats_per_row ? floats_per_row : 1);
  return want ? want : 1;
}

/* ---- fast path ------------------------------------------------------------------------ */

void
eng_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                   const EngConvShape *s, float *workspace)
{
  check_shape(s);
#if EMSEG_HAVE_ONEDNN
  if (eng_conv_dnnl_forward(out, in, weight, bias, s, workspace))
    return;
#endif
  size_t ho = out_h(s), wo = out_w(s), hwi = s->h * s->w, hwo = ho * wo;
  size_t kk = (size_t) s->k * (size_t) s->k;
  blasint M = eng_blasint(s->cout), K = eng_blasint(s->cin * kk);
  for (size_t b = 0; b < s->n; b++) {
    const float *x = in + b * s->cin * hwi;
    float *y = out + b * s->cout * hwo;
    float beta = 0.0f;
    if (bias) {
      PackCtx fc = {.dst = y, .bias = bias, .cin = hwo};
      eng_parallel_for(s->cout, min_rows(hwo), fill_bias_range, &fc);
      beta = 1.0f;
    }
    if (s->k == 1) {
      const float *src = x;
      if (s->stride == 2) {
        PackCtx pc = {.dst = workspace, .src = x, .cin = s->cin, .h = s->h, .w = s->w};
        eng_parallel_for(s->cin, min_rows(hwo), decimate_range, &pc);
        src = workspace;
      }
      blasint N = eng_blasint(hwo);
      eng_sgemm(CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, weight, K, src,
                  N, beta, y, N);
      continue;
    }
    size_t rows = strip_rows(s);
    for (size_t y0 = 0; y0 < s->h; y0 += rows) {
      size_t r = s->h - y0 < rows ? s->h - y0 : rows;
      PackCtx pc = {.dst = workspace, .src = x, .cin = s->cin, .h = s->h, .w = s->w,
                    .y0 = y0, .rows = r};
      eng_parallel_for(s->cin * 9, min_rows(r * s->w), im2col_range, &pc);
      blasint N = eng_blasint(r * s->w);
      eng_sgemm(CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, weight, K,
                  workspace, N, beta, y + y0 * s->w, eng_blasint(hwo));
    }
  }
}

typedef struct {
  float *dbias;
  const float *dout;
  size_t n, cout, hw;
} BiasGradCtx;

static void
bias_grad_range(void *vctx, size_t cb, size_t ce)
{
  const BiasGradCtx *c = vctx;
  for (size_t co = cb; co < ce; co++) {
    double acc = 0.0;
    for (size_t b = 0; b < c->n; b++) {
      const float *d = c->dout + (b * c->cout + co) * c->hw;
      /* float lanes over short blocks, double across them (see eng-bn.c) */
      for (size_t i = 0; i < c->hw;) {
        size_t end = c->hw - i > 512 ? i + 512 : c->hw;
        float lane[8] = {0};
        for (; i + 8 <= end; i += 8)
          for (int j = 0; j < 8; j++)
            lane[j] += d[i + j];
        for (; i < end; i++)
          lane[0] += d[i];
        for (int j = 0; j < 8; j++)
          acc += lane[j];
      }
    }
    c->dbias[co] += (float) acc;
  }
}

void
eng_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                    const float *in, const float *weight, const EngConvShape *s,
                    float *workspace)
{
  check_shape(s);
  size_t ho = out_h(s), wo = out_w(s), hwi = s->h * s->w, hwo = ho * wo;
  size_t kk = (size_t) s->k * (size_t) s->k;
  blasint M = eng_blasint(s->cout), K = eng_blasint(s->cin * kk);
  if (dbias) {
    BiasGradCtx bc = {.dbias = dbias, .dout = dout, .n = s->n, .cout = s->cout, .hw = hwo};
    eng_parallel_for(s->cout, min_rows(s->n * hwo), bias_grad_range, &bc);
  }
  if (!din && !dweight)
    return;
#if EMSEG_HAVE_ONEDNN
  if (eng_conv_dnnl_backward(din, dweight, dout, in, weight, s, workspace))
    return;
#endif
  for (size_t b = 0; b < s->n; b++) {
    const float *x = in + b * s->cin * hwi;
    const float *dy = dout + b * s->cout * hwo;
    float *dx = din ? din + b * s->cin * hwi : NULL;
    if (s->k == 1) {
      blasint N = eng_blasint(hwo);
      if (s->stride == 1) {
        if (dweight)
          eng_sgemm(CblasNoTrans, CblasTrans, M, K, N, 1.0f, dy, N, x, N,
                      1.0f, dweight, K);
        if (dx)
          eng_sgemm(CblasTrans, CblasNoTrans, K, N, M, 1.0f, weight, K, dy,
                      N, 1.0f, dx, N);
        continue;
      }
      PackCtx pc = {.dst = workspace, .src = x, .cin = s->cin, .h = s->h, .w = s->w};
      if (dweight) {
        eng_parallel_for(s->cin, min_rows(hwo), decimate_range, &pc);
        eng_sgemm(CblasNoTrans, CblasTrans, M, K, N, 1.0f, dy, N, workspace,
                    N, 1.0f, dweight, K);
      }
      if (dx) {
        eng_sgemm(CblasTrans, CblasNoTrans, K, N, M, 1.0f, weight, K, dy, N,
                    0.0f, workspace, N);
        PackCtx uc = {.dst = dx, .src = workspace, .cin = s->cin, .h = s->h, .w = s->w};
        eng_parallel_for(s->cin, min_rows(hwo), undecimate_add_range, &uc);
      }
      continue;
    }
    size_t rows = strip_rows(s);
    for (size_t y0 = 0; y0 < s->h; y0 += rows) {
      size_t r = s->h - y0 < rows ? s->h - y0 : rows;
      blasint N = eng_blasint(r * s->w);
      blasint ldy = eng_blasint(hwo);
      const float *dys = dy + y0 * s->w;
      PackCtx pc = {.dst = workspace, .src = x, .cin = s->cin, .h = s->h, .w = s->w,
                    .y0 = y0, .rows = r};
      if (dweight) {
        eng_parallel_for(s->cin * 9, min_rows(r * s->w), im2col_range, &pc);
        eng_sgemm(CblasNoTrans, CblasTrans, M, K, N, 1.0f, dys, ldy,
                    workspace, N, 1.0f, dweight, K);
      }
      if (dx) {
        eng_sgemm(CblasTrans, CblasNoTrans, K, N, M, 1.0f, weight, K, dys,
                    ldy, 0.0f, workspace, N);
        PackCtx cc = {.dst = dx, .src = workspace, .cin = s->cin, .h = s->h, .w = s->w,
                      .y0 = y0, .rows = r};
        eng_parallel_for(s->cin, min_rows(9 * r * s->w), col2im_range, &cc);
      }
    }
  }
}

/* ---- naive oracle: direct loops, double accumulators --------------------------------- */

/* Input coordinate for output (oy, ox) and tap (ky, kx); 0 when it falls in the padding. */
static int
tap(const EngConvShape *s, size_t oy, size_t ox, int ky, int kx, size_t *iy, size_t *ix)
{
  long pad = s->k / 2;
  long y = (long) oy * s->stride + ky - pad;
  long x = (long) ox * s->stride + kx - pad;
  if (y < 0 || x < 0 || y >= (long) s->h || x >= (long) s->w)
    return 0;
  *iy = (size_t) y;
  *ix = (size_t) x;
  return 1;
}

void
eng_conv2d_forward_naive(float *out, const float *in, const float *weight,
                         const float *bias, const EngConvShape *s)
{
  check_shape(s);
  size_t ho = out_h(s), wo = out_w(s), k = (size_t) s->k;
  for (size_t b = 0; b < s->n; b++)
    for (size_t co = 0; co < s->cout; co++)
      for (size_t oy = 0; oy < ho; oy++)
        for (size_t ox = 0; ox < wo; ox++) {
          double acc = bias ? bias[co] : 0.0;
          for (size_t ci = 0; ci < s->cin; ci++)
            for (int ky = 0; ky < s->k; ky++)
              for (int kx = 0; kx < s->k; kx++) {
                size_t iy, ix;
                if (!tap(s, oy, ox, ky, kx, &iy, &ix))
                  continue;
                acc += (double) weight[((co * s->cin + ci) * k + (size_t) ky) * k +
                                       (size_t) kx] *
                       in[((b * s->cin + ci) * s->h + iy) * s->w + ix];
              }
          out[((b * s->cout + co) * ho + oy) * wo + ox] = (float) acc;
        }
}

void
eng_conv2d_backward_naive(float *din, float *dweight, float *dbias, const float *dout,
                          const float *in, const float *weight, const EngConvShape *s)
{
  check_shape(s);
  size_t ho = out_h(s), wo = out_w(s), k = (size_t) s->k;
  if (dbias)
    for (size_t co = 0; co < s->cout; co++) {
      double acc = 0.0;
      for (size_t b = 0; b < s->n; b++)
        for (size_t i = 0; i < ho * wo; i++)
          acc += dout[(b * s->cout + co) * ho * wo + i];
      dbias[co] += (float) acc;
    }
  if (dweight)
    for (size_t co = 0; co < s->cout; co++)
      for (size_t ci = 0; ci < s->cin; ci++)
        for (int ky = 0; ky < s->k; ky++)
          for (int kx = 0; kx < s->k; kx++) {
            double acc = 0.0;
            for (size_t b = 0; b < s->n; b++)
              for (size_t oy = 0; oy < ho; oy++)
                for (size_t ox = 0; ox < wo; ox++) {
                  size_t iy, ix;
                  if (!tap(s, oy, ox, ky, kx, &iy, &ix))
                    continue;
                  acc += (double) dout[((b * s->cout + co) * ho + oy) * wo + ox] *
                         in[((b * s->cin + ci) * s->h + iy) * s->w + ix];
                }
            dweight[((co * s->cin + ci) * k + (size_t) ky) * k + (size_t) kx] += (float) acc;
          }
  if (din)
    /* Gathered per input element (not scattered) so each din entry is one double sum. */
    for (size_t b = 0; b < s->n; b++)
      for (size_t ci = 0; ci < s->cin; ci++)
        for (size_t iy = 0; iy < s->h; iy++)
          for (size_t ix = 0; ix < s->w; ix++) {
            double acc = 0.0;
            for (int ky = 0; ky < s->k; ky++)
              for (int kx = 0; kx < s->k; kx++) {
                /* the output (oy, ox) whose tap (ky, kx) reads (iy, ix), if any */
                long ty = (long) iy - ky + s->k / 2, tx = (long) ix - kx + s->k / 2;
                if (ty < 0 || tx < 0 || ty % s->stride || tx % s->stride)
                  continue;
                size_t oy = (size_t) (ty / s->stride), ox = (size_t) (tx / s->stride);
                if (oy >= ho || ox >= wo)
                  continue;
                for (size_t co = 0; co < s->cout; co++)
                  acc += (double) dout[((b * s->cout + co) * ho + oy) * wo + ox] *
                         weight[((co * s->cin + ci) * k + (size_t) ky) * k + (size_t) kx];
              }
            din[((b * s->cin + ci) * s->h + iy) * s->w + ix] += (float) acc;
          }
}
