/* test-layers.c — correctness of engine/layers: the fast convolution against its naive
 * oracle, central finite-difference gradients for every layer, BN running statistics by
 * hand, and dropout masks that do not depend on the thread count.
 *
 * Finite differences: loss L = sum_i r_i * out_i (r fixed, random), summed in double;
 * the analytic gradient is the layer's backward with dout = r. Inputs are built away from
 * ReLU kinks and max-pool ties so that a step of ±eps never crosses one. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng-layers.h"
#include "eng-parallel.h"
#include "eng-rng.h"

static float *
rand_buf(size_t count, uint64_t seed, float scale)
{
  EngRng rng;
  eng_rng_seed(&rng, seed);
  float *v = g_new(float, count ? count : 1);
  for (size_t i = 0; i < count; i++)
    v[i] = eng_rng_normal(&rng) * scale;
  return v;
}

static float *
dup_buf(const float *src, size_t count)
{
  return g_memdup2(src, (count ? count : 1) * sizeof(float));
}

/* Fails the test with the first index where |a - b| > atol + rtol * |b|. */
static void
assert_close(const char *what, const float *a, const float *b, size_t count, double atol,
             double rtol)
{
  for (size_t i = 0; i < count; i++) {
    double d = fabs((double) a[i] - (double) b[i]);
    if (!(d <= atol + rtol * fabs((double) b[i])))
      g_error("%s: index %zu: got %.9g, expected %.9g (|diff| %.3g > %.3g)", what, i, a[i],
              b[i], d, atol + rtol * fabs((double) b[i]));
  }
}

static double
dot_d(const float *a, const float *b, size_t count)
{
  double s = 0.0;
  for (size_t i = 0; i < count; i++)
    s += (double) a[i] * (double) b[i];
  return s;
}

/* ---- convolution: fast vs naive ------------------------------------------------------ */

static void
check_conv_case(size_t n, size_t cin, size_t cout, size_t h, size_t w, int k, int stride,
                int with_bias, uint64_t seed)
{
  EngConvShape s = {.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .k = k,
                    .stride = stride};
  size_t ho = h / (size_t) stride, wo = w / (size_t) stride;
  size_t nin = n * cin * h * w, nout = n * cout * ho * wo, nw = cout * cin * (size_t) (k * k);
  float *in = rand_buf(nin, seed, 1.0f);
  float *wt = rand_buf(nw, seed + 1, 0.5f);
  float *bias = with_bias ? rand_buf(cout, seed + 2, 1.0f) : NULL;
  float *dout = rand_buf(nout, seed + 3, 1.0f);
  size_t wsn = eng_conv2d_workspace_floats(&s);
  size_t wsf_n = eng_conv2d_forward_workspace_floats(&s);
  g_assert_cmpuint(wsf_n, <=, wsn);
  float *ws = g_new0(float, wsn ? wsn : 1);
  /* forward gets exactly its own (smaller) workspace, so ASan sees any overrun */
  float *wsf = g_new0(float, wsf_n ? wsf_n : 1);
  float *out_f = g_new(float, nout), *out_n = g_new(float, nout);
  /* garbage in the outputs proves forward overwrites them */
  for (size_t i = 0; i < nout; i++)
    out_f[i] = out_n[i] = 1e6f;

  eng_conv2d_forward(out_f, in, wt, bias, &s, wsf);
  eng_conv2d_forward_naive(out_n, in, wt, bias, &s);
  char what[160];
  g_snprintf(what, sizeof what, "conv fwd n%zu %zu->%zu %zux%zu k%d s%d bias%d", n, cin,
             cout, h, w, k, stride, with_bias);
  assert_close(what, out_f, out_n, nout, 2e-5, 2e-5);

  /* backward accumulates: start both from the same non-zero gradients */
  float *din_f = rand_buf(nin, seed + 4, 1.0f), *din_n = dup_buf(din_f, nin);
  float *dw_f = rand_buf(nw, seed + 5, 1.0f), *dw_n = dup_buf(dw_f, nw);
  float *db_f = rand_buf(cout, seed + 6, 1.0f), *db_n = dup_buf(db_f, cout);
  eng_conv2d_backward(din_f, dw_f, with_bias ? db_f : NULL, dout, in, wt, &s, ws);
  eng_conv2d_backward_naive(din_n, dw_n, with_bias ? db_n : NULL, dout, in, wt, &s);
  /* dW and db sum over n*ho*wo terms: scale the tolerance with that count */
  double terms = (double) (n * ho * wo);
  g_snprintf(what, sizeof what, "conv din n%zu %zu->%zu %zux%zu k%d s%d", n, cin, cout, h,
             w, k, stride);
  assert_close(what, din_f, din_n, nin, 2e-5, 2e-5);
  g_snprintf(what, sizeof what, "conv dweight n%zu %zu->%zu %zux%zu k%d s%d", n, cin, cout,
             h, w, k, stride);
  assert_close(what, dw_f, dw_n, nw, 1e-6 * sqrt(terms) * 4, 2e-5);
  g_snprintf(what, sizeof what, "conv dbias n%zu %zu->%zu %zux%zu k%d s%d", n, cin, cout, h,
             w, k, stride);
  assert_close(what, db_f, db_n, cout, 1e-6 * sqrt(terms) * 4, 2e-5);

  /* NULL gradients are skipped, the others still match */
  float *dw2 = g_new0(float, nw), *dw2n = g_new0(float, nw);
  eng_conv2d_backward(NULL, dw2, NULL, dout, in, wt, &s, ws);
  eng_conv2d_backward_naive(NULL, dw2n, NULL, dout, in, wt, &s);
  assert_close("conv dweight only", dw2, dw2n, nw, 1e-6 * sqrt(terms) * 4, 2e-5);

  g_free(in), g_free(wt), g_free(bias), g_free(dout), g_free(ws), g_free(wsf), g_free(out_f);
  g_free(out_n), g_free(din_f), g_free(din_n), g_free(dw_f), g_free(dw_n), g_free(db_f);
  g_free(db_n), g_free(dw2), g_free(dw2n);
}

static void
test_conv_fast_vs_naive(void)
{
  uint64_t seed = 100;
  for (size_t n = 1; n <= 2; n++)
    for (int bias = 0; bias <= 1; bias++) {
      check_conv_case(n, 3, 5, 7, 9, 3, 1, bias, seed += 10);
      check_conv_case(n, 1, 4, 8, 6, 3, 1, bias, seed += 10);
      check_conv_case(n, 5, 3, 6, 10, 1, 1, bias, seed += 10);
      check_conv_case(n, 7, 5, 8, 6, 1, 2, bias, seed += 10);
      check_conv_case(n, 4, 1, 2, 2, 1, 2, bias, seed += 10);
      check_conv_case(n, 2, 3, 1, 1, 3, 1, bias, seed += 10);
      check_conv_case(n, 3, 2, 5, 1, 3, 1, bias, seed += 10);
      /* widths of 16 and more: the shapes the oneDNN path takes when built in, including
       * a width that is not a multiple of its 16-channel blocks */
      check_conv_case(n, 16, 32, 9, 11, 3, 1, bias, seed += 10);
      check_conv_case(n, 24, 16, 6, 5, 3, 1, bias, seed += 10);
      check_conv_case(n, 32, 16, 8, 6, 1, 1, bias, seed += 10);
      check_conv_case(n, 16, 48, 8, 6, 1, 1, bias, seed += 10);
    }
}

/* A 3×3 conv big enough to be cut into several im2col strips, including a last partial
 * one, so strip edges (zero padding vs the neighbouring strip's rows) are exercised. */
static void
test_conv_strips(void)
{
  EngConvShape s = {.n = 2, .cin = 8, .h = 211, .w = 199, .cout = 3, .k = 3, .stride = 1};
  if (strcmp(eng_conv2d_backend(&s), "im2col") != 0) {
    /* the layers-im2col test runs this program again with EMSEG_CONV=im2col */
    g_test_skip("oneDNN runs this shape; strips are checked in the layers-im2col run");
    return;
  }
  size_t full = s.cin * 9 * s.h * s.w;
  size_t ws = eng_conv2d_workspace_floats(&s);
  g_assert_cmpuint(ws, <, full / 2);
  g_assert_cmpuint(full % ws, !=, 0);
  check_conv_case(s.n, s.cin, s.cout, s.h, s.w, 3, 1, 1, 7);
}

/* The build's oneDNN path must really be taken where oneDNN is built in, and must not be
 * when EMSEG_CONV=im2col asks for the fallback: otherwise the two test runs would check
 * the same code twice. EMSEG_EXPECT_CONV (set by meson) names what this run expects. */
static void
test_conv_backend(void)
{
  EngConvShape s = {.n = 1, .cin = 32, .h = 64, .w = 64, .cout = 32, .k = 3, .stride = 1};
  const char *expect = g_getenv("EMSEG_EXPECT_CONV");
  const char *got = eng_conv2d_backend(&s);
  g_test_message("3x3 32->32 at 64x64 runs on %s", got);
  if (!expect)
    g_test_fail_printf("EMSEG_EXPECT_CONV is not set (meson sets it to im2col or onednn)");
  else if (strcmp(expect, "im2col") == 0)
    g_assert_cmpstr(got, ==, "im2col");
  else
    g_assert_cmpstr(got, !=, "im2col");
}

/* ---- convolution with bfloat16 operands ---------------------------------------------- */

/* ||a - b|| / ||b||, in double. */
static double
rel_norm_err(const float *a, const float *b, size_t count)
{
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < count; i++) {
    double d = (double) a[i] - (double) b[i];
    num += d * d;
    den += (double) b[i] * (double) b[i];
  }
  return sqrt(num / fmax(den, 1e-300));
}

/* One shape with .bf16 set, against the float32 oracle. Where a bfloat16 kernel runs it
 * (its backend name says bf16), the outputs and gradients must be close to the oracle's at
 * bfloat16's precision (8 significant bits: each operand off by up to 2^-9 relative, sums
 * random in sign, so about 2^-9 relative to the result's norm; 1% allowed) and must *not*
 * equal the float32 path's, or the rounding never happened. Where no bfloat16 kernel runs
 * (im2col, or a CPU without AVX512-BF16), they must be the float32 path's bit for bit. */
static void
check_conv_bf16_case(size_t cin, size_t cout, size_t hw, int k, uint64_t seed)
{
  EngConvShape s = {.n = 1, .cin = cin, .h = hw, .w = hw, .cout = cout, .k = k, .stride = 1,
                    .bf16 = 1};
  EngConvShape s32 = s;
  s32.bf16 = 0;
  size_t nin = cin * hw * hw, nout = cout * hw * hw, nw = cout * cin * (size_t) (k * k);
  float *in = rand_buf(nin, seed, 1.0f), *wt = rand_buf(nw, seed + 1, 0.5f);
  float *bias = rand_buf(cout, seed + 2, 1.0f), *dout = rand_buf(nout, seed + 3, 1.0f);
  size_t wsn = eng_conv2d_workspace_floats(&s), wsn32 = eng_conv2d_workspace_floats(&s32);
  float *ws = g_new0(float, wsn ? wsn : 1), *ws32 = g_new0(float, wsn32 ? wsn32 : 1);
  float *out = g_new(float, nout), *out32 = g_new(float, nout), *outn = g_new(float, nout);
  float *din = g_new0(float, nin), *din32 = g_new0(float, nin), *dinn = g_new0(float, nin);
  float *dw = g_new0(float, nw), *dw32 = g_new0(float, nw), *dwn = g_new0(float, nw);
  float *db = g_new0(float, cout), *db32 = g_new0(float, cout), *dbn = g_new0(float, cout);
  eng_conv2d_forward(out, in, wt, bias, &s, ws);
  eng_conv2d_forward(out32, in, wt, bias, &s32, ws32);
  eng_conv2d_forward_naive(outn, in, wt, bias, &s32);
  eng_conv2d_backward(din, dw, db, dout, in, wt, &s, ws);
  eng_conv2d_backward(din32, dw32, db32, dout, in, wt, &s32, ws32);
  eng_conv2d_backward_naive(dinn, dwn, dbn, dout, in, wt, &s32);

  const char *backend = eng_conv2d_backend(&s);
  g_test_message("bf16 %zu->%zu k%d at %zu^2 runs on %s", cin, cout, k, hw, backend);
  /* Which it must be: bfloat16 wherever oneDNN takes the shape and the CPU can, so that a
   * flag that stopped reaching the kernels fails here instead of passing as float32. */
  const char *expect = g_getenv("EMSEG_EXPECT_CONV");
  gboolean want_bf16 = expect && strcmp(expect, "onednn") == 0 && cin >= 16 && cout >= 16 &&
                       __builtin_cpu_supports("avx512bf16");
  g_assert_cmpint(strstr(backend, "bf16") != NULL, ==, want_bf16);
  const float *got[4] = {out, din, dw, db}, *f32[4] = {out32, din32, dw32, db32},
              *ref[4] = {outn, dinn, dwn, dbn};
  const size_t counts[4] = {nout, nin, nw, cout};
  const char *names[4] = {"out", "din", "dweight", "dbias"};
  for (int t = 0; t < 4; t++) {
    double e = rel_norm_err(got[t], ref[t], counts[t]);
    double e32 = rel_norm_err(f32[t], ref[t], counts[t]);
    g_test_message("  %s: relative error %.3g (float32 path %.3g)", names[t], e, e32);
    if (strstr(backend, "bf16")) {
      g_assert_cmpfloat(e, <, 1e-2);
      /* dbias sums diff_dst in float32 in both paths; the others read rounded operands */
      if (t != 3)
        g_assert_cmpfloat(e, >, 10 * e32 + 1e-6);
    } else {
      g_assert_cmpmem(got[t], counts[t] * sizeof(float), f32[t], counts[t] * sizeof(float));
    }
  }
  g_free(in), g_free(wt), g_free(bias), g_free(dout), g_free(ws), g_free(ws32), g_free(out);
  g_free(out32), g_free(outn), g_free(din), g_free(din32), g_free(dinn), g_free(dw);
  g_free(dw32), g_free(dwn), g_free(db), g_free(db32), g_free(dbn);
}

static void
test_conv_bf16(void)
{
  check_conv_bf16_case(16, 32, 12, 3, 500);
  check_conv_bf16_case(32, 32, 24, 3, 510);
  check_conv_bf16_case(24, 16, 10, 3, 520); /* not a multiple of the 16-channel blocks */
  check_conv_bf16_case(32, 64, 16, 1, 530);
  check_conv_bf16_case(64, 16, 16, 1, 540);
  check_conv_bf16_case(1, 32, 16, 3, 550); /* im2col's shapes ignore the flag */
}

/* ---- finite differences ------------------------------------------------------------- */

typedef void (*FwdFn)(void *ctx, float *out, const float *in);

/* Compares analytic din (for dout = r) with central differences of sum(r * out). */
static void
fd_check_input(const char *what, FwdFn fwd, void *ctx, float *in, size_t nin, size_t nout,
               const float *r, const float *din, float eps, double atol, double rtol)
{
  float *out = g_new(float, nout);
  for (size_t i = 0; i < nin; i++) {
    float keep = in[i];
    in[i] = keep + eps;
    fwd(ctx, out, in);
    double lp = dot_d(r, out, nout);
    in[i] = keep - eps;
    fwd(ctx, out, in);
    double lm = dot_d(r, out, nout);
    in[i] = keep;
    double num = (lp - lm) / (2.0 * (double) eps);
    if (!(fabs(num - din[i]) <= atol + rtol * fabs(num)))
      g_error("%s: d/din[%zu]: analytic %.7g, finite difference %.7g", what, i, din[i], num);
  }
  g_free(out);
}

/* conv: gradient with respect to the input, the weights and the bias */
typedef struct {
  EngConvShape s;
  float *w, *b, *ws;
  const float *x; /* for weight perturbation */
  int target;     /* 0 input, 1 weight, 2 bias */
} ConvFd;

static void
conv_fd_fwd(void *vctx, float *out, const float *v)
{
  ConvFd *c = vctx;
  if (c->target == 0)
    eng_conv2d_forward(out, v, c->w, c->b, &c->s, c->ws);
  else if (c->target == 1)
    eng_conv2d_forward(out, c->x, v, c->b, &c->s, c->ws);
  else
    eng_conv2d_forward(out, c->x, c->w, v, &c->s, c->ws);
}

static void
fd_conv_case(int k, int stride)
{
  ConvFd c = {.s = {.n = 2, .cin = 3, .h = 6, .w = 4, .cout = 2, .k = k, .stride = stride}};
  size_t nin = 2 * 3 * 6 * 4, nw = 2 * 3 * (size_t) (k * k);
  size_t nout = 2 * 2 * (6 / (size_t) stride) * (4 / (size_t) stride);
  float *x = rand_buf(nin, 11, 1.0f);
  c.w = rand_buf(nw, 12, 0.5f);
  c.b = rand_buf(2, 13, 1.0f);
  c.ws = g_new0(float, eng_conv2d_workspace_floats(&c.s) + 1);
  c.x = x;
  float *r = rand_buf(nout, 14, 1.0f);
  float *din = g_new0(float, nin), *dw = g_new0(float, nw), *db = g_new0(float, 2);
  eng_conv2d_backward(din, dw, db, r, x, c.w, &c.s, c.ws);
  c.target = 0;
  fd_check_input("conv input", conv_fd_fwd, &c, x, nin, nout, r, din, 1e-2f, 1e-3, 1e-3);
  c.target = 1;
  fd_check_input("conv weight", conv_fd_fwd, &c, c.w, nw, nout, r, dw, 1e-2f, 1e-3, 1e-3);
  c.target = 2;
  fd_check_input("conv bias", conv_fd_fwd, &c, c.b, 2, nout, r, db, 1e-2f, 1e-3, 1e-3);
  g_free(x), g_free(c.w), g_free(c.b), g_free(c.ws), g_free(r), g_free(din), g_free(dw);
  g_free(db);
}

static void
test_fd_conv(void)
{
  fd_conv_case(3, 1);
  fd_conv_case(1, 1);
  fd_conv_case(1, 2);
}

/* BN (train) */
typedef struct {
  EngBnShape s;
  float *gamma, *beta, *mean, *invstd;
  const float *x;
  int relu;
  int target; /* 0 input, 1 gamma, 2 beta */
} BnFd;

static void
bn_fd_fwd(void *vctx, float *out, const float *v)
{
  BnFd *c = vctx;
  const float *x = c->target == 0 ? v : c->x;
  const float *g = c->target == 1 ? v : c->gamma;
  const float *b = c->target == 2 ? v : c->beta;
  eng_bn_forward_train(out, c->mean, c->invstd, NULL, NULL, x, g, b, &c->s, 1e-5f, 0.9f,
                       c->relu);
}

/* Inputs in symmetric pairs ±v with |v| in [0.5, 1.5] around a per-channel offset, so
 * every normalized value is at least ~0.4 away from 0, while |beta| <= 0.05: no
 * pre-activation sits near the ReLU kink. */
static void
fill_bn_input(float *x, const EngBnShape *s, uint64_t seed)
{
  EngRng rng;
  eng_rng_seed(&rng, seed);
  for (size_t ch = 0; ch < s->c; ch++) {
    float offset = 3.0f * (float) ch - 2.0f;
    size_t m = s->n * s->hw;
    for (size_t j = 0; j < m; j += 2) {
      float v = 0.5f + eng_rng_uniform(&rng);
      size_t b0 = j / s->hw, i0 = j % s->hw, b1 = (j + 1) / s->hw, i1 = (j + 1) % s->hw;
      x[(b0 * s->c + ch) * s->hw + i0] = offset + v;
      if (j + 1 < m)
        x[(b1 * s->c + ch) * s->hw + i1] = offset - v;
    }
  }
}

static void
fd_bn_case(int relu)
{
  BnFd c = {.s = {.n = 2, .c = 3, .hw = 10}, .relu = relu};
  size_t cnt = 2 * 3 * 10;
  float *x = g_new(float, cnt);
  fill_bn_input(x, &c.s, 21);
  c.x = x;
  c.gamma = g_new(float, 3);
  c.beta = g_new(float, 3);
  float gv[3] = {0.7f, 1.3f, -0.9f}, bv[3] = {0.05f, -0.03f, 0.02f};
  memcpy(c.gamma, gv, sizeof gv);
  memcpy(c.beta, bv, sizeof bv);
  c.mean = g_new(float, 3);
  c.invstd = g_new(float, 3);
  float *r = rand_buf(cnt, 22, 1.0f);
  float *out = g_new(float, cnt);
  eng_bn_forward_train(out, c.mean, c.invstd, NULL, NULL, x, c.gamma, c.beta, &c.s, 1e-5f,
                       0.9f, relu);
  float *din = g_new0(float, cnt), *dg = g_new0(float, 3), *dbt = g_new0(float, 3);
  eng_bn_backward(din, dg, dbt, r, out, x, c.mean, c.invstd, c.gamma, &c.s, relu);
  const char *what = relu ? "bn+relu" : "bn";
  c.target = 0;
  fd_check_input(what, bn_fd_fwd, &c, x, cnt, cnt, r, din, 2e-3f, 2e-3, 2e-3);
  c.target = 1;
  fd_check_input(what, bn_fd_fwd, &c, c.gamma, 3, cnt, r, dg, 2e-3f, 2e-3, 2e-3);
  c.target = 2;
  fd_check_input(what, bn_fd_fwd, &c, c.beta, 3, cnt, r, dbt, 2e-3f, 2e-3, 2e-3);
  if (relu) {
    /* the data must really exercise the mask: some outputs are clipped, some are not */
    size_t zeros = 0;
    for (size_t i = 0; i < cnt; i++)
      zeros += out[i] == 0.0f;
    g_assert_cmpuint(zeros, >, 0);
    g_assert_cmpuint(zeros, <, cnt);
  }
  g_free(x), g_free(c.gamma), g_free(c.beta), g_free(c.mean), g_free(c.invstd), g_free(r);
  g_free(out), g_free(din), g_free(dg), g_free(dbt);
}

static void
test_fd_bn(void)
{
  fd_bn_case(0);
  fd_bn_case(1);
}

/* elementwise and resampling layers, each wrapped as FwdFn */
typedef struct {
  size_t nc, h, w, count;
  uint8_t *mask;
  float p;
} SimpleFd;

static void
relu_fwd(void *vctx, float *out, const float *in)
{
  eng_relu_forward(out, in, ((SimpleFd *) vctx)->count);
}

static void
maxpool_fwd(void *vctx, float *out, const float *in)
{
  SimpleFd *c = vctx;
  eng_maxpool2_forward(out, c->mask, in, c->nc, c->h, c->w);
}

static void
decimate_fwd(void *vctx, float *out, const float *in)
{
  SimpleFd *c = vctx;
  eng_decimate2_forward(out, in, c->nc, c->h, c->w);
}

static void
repeat_fwd(void *vctx, float *out, const float *in)
{
  SimpleFd *c = vctx;
  eng_repeat2_forward(out, in, c->nc, c->h, c->w);
}

static void
dropout_fwd(void *vctx, float *out, const float *in)
{
  SimpleFd *c = vctx;
  eng_dropout_forward(out, c->mask, in, c->count, c->p, 1234);
}

static void
test_fd_relu(void)
{
  SimpleFd c = {.count = 40};
  float *x = rand_buf(c.count, 31, 1.0f);
  for (size_t i = 0; i < c.count; i++) /* away from the kink at 0 */
    x[i] = x[i] >= 0.0f ? x[i] + 0.1f : x[i] - 0.1f;
  float *out = g_new(float, c.count), *r = rand_buf(c.count, 32, 1.0f);
  float *din = g_new0(float, c.count);
  eng_relu_forward(out, x, c.count);
  eng_relu_backward(din, r, out, c.count);
  fd_check_input("relu", relu_fwd, &c, x, c.count, c.count, r, din, 1e-2f, 1e-4, 1e-4);
  g_free(x), g_free(out), g_free(r), g_free(din);
}

static void
test_fd_maxpool(void)
{
  SimpleFd c = {.nc = 3, .h = 6, .w = 8};
  size_t nin = 3 * 6 * 8, nout = nin / 4;
  /* distinct values 0.05 apart in random order: no ties within ±eps */
  float *x = g_new(float, nin);
  EngRng rng;
  eng_rng_seed(&rng, 41);
  for (size_t i = 0; i < nin; i++)
    x[i] = 0.05f * (float) i;
  for (size_t i = nin - 1; i > 0; i--) {
    size_t j = eng_rng_u32(&rng) % (i + 1);
    float t = x[i];
    x[i] = x[j];
    x[j] = t;
  }
  c.mask = g_new(uint8_t, nout);
  float *out = g_new(float, nout), *r = rand_buf(nout, 42, 1.0f);
  float *din = g_new0(float, nin);
  eng_maxpool2_forward(out, c.mask, x, c.nc, c.h, c.w);
  eng_maxpool2_backward(din, r, c.mask, c.nc, c.h, c.w);
  fd_check_input("maxpool", maxpool_fwd, &c, x, nin, nout, r, din, 1e-2f, 1e-4, 1e-4);
  g_free(x), g_free(c.mask), g_free(out), g_free(r), g_free(din);
}

static void
test_maxpool_ties(void)
{
  /* all four equal: the first in row-major order (index 0) wins; then 1,2,3 in turn */
  float in[4 * 4] = {1, 1, 2, 5, 1, 1, 5, 5, 0, 3, 0, 0, 3, 3, 0, 3};
  float out[4];
  uint8_t am[4];
  eng_maxpool2_forward(out, am, in, 1, 4, 4);
  g_assert_cmpuint(am[0], ==, 0);
  g_assert_cmpuint(am[1], ==, 1);
  g_assert_cmpuint(am[2], ==, 1);
  g_assert_cmpuint(am[3], ==, 3);
  g_assert_cmpfloat(out[1], ==, 5.0f);
  g_assert_cmpfloat(out[3], ==, 3.0f);
}

static void
test_fd_decimate_repeat(void)
{
  SimpleFd c = {.nc = 3, .h = 4, .w = 6};
  size_t nbig = 3 * 4 * 6, nsmall = nbig / 4;
  float *x = rand_buf(nbig, 51, 1.0f), *r = rand_buf(nbig, 52, 1.0f);
  float *out = g_new(float, nbig), *din = g_new0(float, nbig);
  eng_decimate2_forward(out, x, c.nc, c.h, c.w);
  eng_decimate2_backward(din, r, c.nc, c.h, c.w);
  fd_check_input("decimate", decimate_fwd, &c, x, nbig, nsmall, r, din, 1e-2f, 1e-4, 1e-4);
  /* repeat: h, w are the small input's sizes */
  SimpleFd rc = {.nc = 3, .h = 2, .w = 3};
  memset(din, 0, nbig * sizeof *din);
  eng_repeat2_forward(out, x, rc.nc, rc.h, rc.w);
  for (size_t y = 0; y < 4; y++) /* out[y][x] = in[y/2][x/2] on plane 1 */
    for (size_t xx = 0; xx < 6; xx++)
      g_assert_cmpfloat(out[24 + y * 6 + xx], ==, x[6 + (y / 2) * 3 + xx / 2]);
  eng_repeat2_backward(din, r, rc.nc, rc.h, rc.w);
  fd_check_input("repeat", repeat_fwd, &rc, x, nsmall, nbig, r, din, 1e-2f, 1e-4, 1e-4);
  g_free(x), g_free(r), g_free(out), g_free(din);
}

static void
test_fd_dropout(void)
{
  SimpleFd c = {.count = 50, .p = 0.4f};
  c.mask = g_new(uint8_t, c.count);
  float *x = rand_buf(c.count, 61, 1.0f), *r = rand_buf(c.count, 62, 1.0f);
  float *out = g_new(float, c.count), *din = g_new0(float, c.count);
  eng_dropout_forward(out, c.mask, x, c.count, c.p, 1234);
  eng_dropout_backward(din, r, c.mask, c.count, c.p);
  fd_check_input("dropout", dropout_fwd, &c, x, c.count, c.count, r, din, 1e-2f, 1e-4, 1e-4);
  g_free(c.mask), g_free(x), g_free(r), g_free(out), g_free(din);
}

static void
test_sigmoid(void)
{
  float z[] = {-100.0f, -20.0f, -1.5f, -1e-3f, 0.0f, 2e-3f, 0.7f, 15.0f, 100.0f};
  size_t n = G_N_ELEMENTS(z);
  float o[G_N_ELEMENTS(z)];
  eng_sigmoid_forward(o, z, n);
  for (size_t i = 0; i < n; i++) {
    double ref = 1.0 / (1.0 + exp(-(double) z[i]));
    g_assert_true(isfinite(o[i]));
    g_assert_cmpfloat_with_epsilon(o[i], ref, 1e-6 * ref + 1e-30);
  }
  /* the derivative o(1-o) (used by the losses) against central differences */
  for (size_t i = 2; i < 8; i++) {
    float zp = z[i] + 1e-2f, zm = z[i] - 1e-2f, op, om;
    eng_sigmoid_forward(&op, &zp, 1);
    eng_sigmoid_forward(&om, &zm, 1);
    double num = ((double) op - (double) om) / 2e-2;
    g_assert_cmpfloat_with_epsilon(num, (double) o[i] * (1.0 - o[i]), 1e-4);
  }
}

/* ---- BN statistics by hand ----------------------------------------------------------- */

static void
test_bn_running_stats(void)
{
  EngBnShape s = {.n = 3, .c = 2, .hw = 7};
  size_t cnt = 3 * 2 * 7, m = 3 * 7;
  float *x = rand_buf(cnt, 71, 2.0f);
  for (size_t i = 0; i < cnt; i++)
    x[i] += 100.0f; /* a large common offset tests the cancellation handling */
  float gamma[2] = {1.5f, -0.5f}, beta[2] = {0.25f, 1.0f};
  float rm[2] = {0.3f, -0.2f}, rv[2] = {2.0f, 0.5f};
  float mean[2], invstd[2];
  float *out = g_new(float, cnt);
  float eps = 1e-5f, mom = 0.9f;
  eng_bn_forward_train(out, mean, invstd, rm, rv, x, gamma, beta, &s, eps, mom, 0);
  for (size_t ch = 0; ch < 2; ch++) {
    double sum = 0.0, sq = 0.0;
    for (size_t b = 0; b < 3; b++)
      for (size_t i = 0; i < 7; i++)
        sum += x[(b * 2 + ch) * 7 + i];
    double mu = sum / (double) m;
    for (size_t b = 0; b < 3; b++)
      for (size_t i = 0; i < 7; i++) {
        double d = x[(b * 2 + ch) * 7 + i] - mu;
        sq += d * d;
      }
    double var = sq / (double) m, inv = 1.0 / sqrt(var + eps);
    double rm0 = ch == 0 ? 0.3 : -0.2, rv0 = ch == 0 ? 2.0 : 0.5;
    g_assert_cmpfloat_with_epsilon(mean[ch], mu, 1e-5 * fabs(mu));
    g_assert_cmpfloat_with_epsilon(invstd[ch], inv, 1e-5 * inv);
    g_assert_cmpfloat_with_epsilon(rm[ch], mom * rm0 + (1 - mom) * mu, 1e-4);
    g_assert_cmpfloat_with_epsilon(rv[ch], mom * rv0 + (1 - mom) * var * m / (m - 1), 1e-5);
    for (size_t b = 0; b < 3; b++)
      for (size_t i = 0; i < 7; i++) {
        size_t j = (b * 2 + ch) * 7 + i;
        double y = (x[j] - mu) * inv * gamma[ch] + beta[ch];
        g_assert_cmpfloat_with_epsilon(out[j], y, 2e-5 * (1 + fabs(y)));
      }
  }
  /* inference with the updated running statistics, with ReLU */
  eng_bn_forward_infer(out, x, gamma, beta, rm, rv, &s, eps, 1);
  for (size_t j = 0; j < cnt; j++) {
    size_t ch = (j / 7) % 2;
    double y = (x[j] - rm[ch]) / sqrt((double) rv[ch] + eps) * gamma[ch] + beta[ch];
    y = y > 0 ? y : 0;
    g_assert_cmpfloat_with_epsilon(out[j], y, 1e-4 * (1 + fabs(y)));
  }
  g_free(x), g_free(out);
}

/* BN on a shape split across threads (several channels per chunk, hw not a multiple of
 * the 8 float lanes), forward and backward against a direct double-precision rendering
 * of the formulas. */
static void
test_bn_parallel_vs_double(void)
{
  EngBnShape s = {.n = 2, .c = 9, .hw = 63 * 65};
  size_t cnt = s.n * s.c * s.hw, m = s.n * s.hw;
  float *x = rand_buf(cnt, 101, 3.0f), *dy = rand_buf(cnt, 102, 1.0f);
  float *gamma = rand_buf(s.c, 103, 1.0f), *beta = rand_buf(s.c, 104, 1.0f);
  float *out = g_new(float, cnt), *din = rand_buf(cnt, 105, 1.0f), *din0 = dup_buf(din, cnt);
  float mean[9], invstd[9], dg[9] = {0}, db[9] = {0};
  for (int relu = 0; relu <= 1; relu++) {
    memcpy(din, din0, cnt * sizeof *din);
    memset(dg, 0, sizeof dg);
    memset(db, 0, sizeof db);
    eng_bn_forward_train(out, mean, invstd, NULL, NULL, x, gamma, beta, &s, 1e-5f, 0.9f,
                         relu);
    eng_bn_backward(din, dg, db, dy, out, x, mean, invstd, gamma, &s, relu);
    for (size_t ch = 0; ch < s.c; ch++) {
      double mu = 0.0, var = 0.0;
      for (size_t b = 0; b < s.n; b++)
        for (size_t i = 0; i < s.hw; i++)
          mu += x[(b * s.c + ch) * s.hw + i];
      mu /= (double) m;
      for (size_t b = 0; b < s.n; b++)
        for (size_t i = 0; i < s.hw; i++) {
          double d = x[(b * s.c + ch) * s.hw + i] - mu;
          var += d * d;
        }
      var /= (double) m;
      double inv = 1.0 / sqrt(var + 1e-5);
      g_assert_cmpfloat_with_epsilon(mean[ch], mu, 1e-5 * (1 + fabs(mu)));
      g_assert_cmpfloat_with_epsilon(invstd[ch], inv, 1e-5 * inv);
      double sg = 0.0, sgx = 0.0;
      for (size_t b = 0; b < s.n; b++)
        for (size_t i = 0; i < s.hw; i++) {
          size_t j = (b * s.c + ch) * s.hw + i;
          double xhat = (x[j] - mu) * inv, y = xhat * gamma[ch] + beta[ch];
          if (relu && y <= 0)
            y = 0;
          if (fabs(out[j] - y) > 1e-4 * (1 + fabs(y)))
            g_error("bn%s fwd [%zu]: %.7g vs %.7g", relu ? "+relu" : "", j, out[j], y);
          double g = relu && !(out[j] > 0) ? 0.0 : dy[j];
          sg += g;
          sgx += g * xhat;
        }
      g_assert_cmpfloat_with_epsilon(db[ch], sg, 1e-4 * (1 + fabs(sg)));
      g_assert_cmpfloat_with_epsilon(dg[ch], sgx, 1e-4 * (1 + fabs(sgx)));
      for (size_t b = 0; b < s.n; b++)
        for (size_t i = 0; i < s.hw; i++) {
          size_t j = (b * s.c + ch) * s.hw + i;
          double xhat = (x[j] - mu) * inv;
          double g = relu && !(out[j] > 0) ? 0.0 : dy[j];
          double want = din0[j] + gamma[ch] * inv / (double) m *
                                      ((double) m * g - sg - xhat * sgx);
          if (fabs(din[j] - want) > 1e-4 * (1 + fabs(want)))
            g_error("bn%s din [%zu]: %.7g vs %.7g", relu ? "+relu" : "", j, din[j], want);
        }
    }
  }
  g_free(x), g_free(dy), g_free(gamma), g_free(beta), g_free(out), g_free(din);
  g_free(din0);
}

/* Resampling layers on enough planes to be split across threads, against direct loops. */
static void
test_resample_parallel(void)
{
  size_t nc = 45, h = 64, w = 48, big = nc * h * w, small = big / 4; /* 2 chunks of >= 21 planes */
  float *x = rand_buf(big, 111, 1.0f), *d = rand_buf(big, 112, 1.0f);
  float *out = g_new(float, big), *din = rand_buf(big, 113, 1.0f), *din0 = dup_buf(din, big);
  uint8_t *am = g_new(uint8_t, small);
  eng_maxpool2_forward(out, am, x, nc, h, w);
  eng_maxpool2_backward(din, d, am, nc, h, w);
  for (size_t p = 0; p < nc; p++)
    for (size_t y = 0; y < h / 2; y++)
      for (size_t xx = 0; xx < w / 2; xx++) {
        size_t o = (p * (h / 2) + y) * (w / 2) + xx, best = 0;
        float v[4];
        for (size_t k = 0; k < 4; k++)
          v[k] = x[(p * h + 2 * y + k / 2) * w + 2 * xx + k % 2];
        for (size_t k = 1; k < 4; k++)
          if (v[k] > v[best])
            best = k;
        g_assert_cmpfloat(out[o], ==, v[best]);
        g_assert_cmpuint(am[o], ==, best);
        for (size_t k = 0; k < 4; k++) {
          size_t j = (p * h + 2 * y + k / 2) * w + 2 * xx + k % 2;
          g_assert_cmpfloat(din[j], ==, din0[j] + (k == best ? d[o] : 0.0f));
        }
      }
  memcpy(din, din0, big * sizeof *din);
  eng_decimate2_forward(out, x, nc, h, w);
  eng_decimate2_backward(din, d, nc, h, w);
  for (size_t p = 0; p < nc; p++)
    for (size_t y = 0; y < h; y++)
      for (size_t xx = 0; xx < w; xx++) {
        size_t j = (p * h + y) * w + xx, o = (p * (h / 2) + y / 2) * (w / 2) + xx / 2;
        int even = y % 2 == 0 && xx % 2 == 0;
        if (even)
          g_assert_cmpfloat(out[o], ==, x[j]);
        g_assert_cmpfloat(din[j], ==, din0[j] + (even ? d[o] : 0.0f));
      }
  /* repeat: input (nc, h/2, w/2) -> (nc, h, w) */
  memcpy(din, din0, big * sizeof *din);
  eng_repeat2_forward(out, x, nc, h / 2, w / 2);
  eng_repeat2_backward(din, d, nc, h / 2, w / 2);
  for (size_t p = 0; p < nc; p++)
    for (size_t y = 0; y < h / 2; y++)
      for (size_t xx = 0; xx < w / 2; xx++) {
        size_t j = (p * (h / 2) + y) * (w / 2) + xx;
        float sum = 0.0f;
        for (size_t k = 0; k < 4; k++) {
          size_t o = (p * h + 2 * y + k / 2) * w + 2 * xx + k % 2;
          g_assert_cmpfloat(out[o], ==, x[j]);
          sum += d[o];
        }
        g_assert_cmpfloat_with_epsilon(din[j], din0[j] + sum, 1e-5f * (4 + fabsf(din[j])));
      }
  g_free(x), g_free(d), g_free(out), g_free(din), g_free(din0), g_free(am);
}

/* ---- dropout statistics and determinism ----------------------------------------------- */

#define DROP_COUNT ((size_t) 300007) /* many RNG blocks, last one partial */
#define DROP_P 0.3f
#define DROP_SEED 987654321u

static guint64
dropout_mask_hash(void)
{
  uint8_t *mask = g_new(uint8_t, DROP_COUNT);
  float *x = g_new(float, DROP_COUNT), *y = g_new(float, DROP_COUNT);
  for (size_t i = 0; i < DROP_COUNT; i++)
    x[i] = 1.0f;
  eng_dropout_forward(y, mask, x, DROP_COUNT, DROP_P, DROP_SEED);
  guint64 hsh = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < DROP_COUNT; i++)
    hsh = (hsh ^ mask[i]) * 1099511628211ull;
  g_free(mask), g_free(x), g_free(y);
  return hsh;
}

static void
test_dropout_rate_and_scale(void)
{
  uint8_t *mask = g_new(uint8_t, DROP_COUNT);
  float *x = rand_buf(DROP_COUNT, 81, 1.0f), *y = g_new(float, DROP_COUNT);
  eng_dropout_forward(y, mask, x, DROP_COUNT, DROP_P, DROP_SEED);
  size_t kept = 0;
  for (size_t i = 0; i < DROP_COUNT; i++) {
    g_assert_cmpuint(mask[i], <=, 1);
    kept += mask[i];
    float want = mask[i] ? x[i] / (1.0f - DROP_P) : 0.0f;
    g_assert_cmpfloat_with_epsilon(y[i], want, 1e-6f * (1.0f + fabsf(want)));
  }
  double rate = (double) kept / (double) DROP_COUNT;
  /* binomial std is ~8e-4 here: 5 sigma */
  g_assert_cmpfloat_with_epsilon(rate, 1.0 - DROP_P, 4e-3);
  /* another seed gives another mask; p = 0 copies */
  uint8_t *mask2 = g_new(uint8_t, DROP_COUNT);
  eng_dropout_forward(y, mask2, x, DROP_COUNT, DROP_P, DROP_SEED + 1);
  g_assert_true(memcmp(mask, mask2, DROP_COUNT) != 0);
  eng_dropout_forward(y, mask2, x, DROP_COUNT, 0.0f, DROP_SEED);
  g_assert_true(memcmp(x, y, DROP_COUNT * sizeof *x) == 0);
  g_free(mask), g_free(mask2), g_free(x), g_free(y);
}

/* The mask's definition (eng-layers.h): element i kept when the i % 4096-th draw of
 * eng_rng_uniform on stream eng_rng_derive(seed, i / 4096) is >= p. Also p = 1 and a
 * NULL mask. */
static void
test_dropout_definition(void)
{
  uint8_t *mask = g_new(uint8_t, DROP_COUNT);
  float *x = rand_buf(DROP_COUNT, 82, 1.0f), *y = g_new(float, DROP_COUNT);
  float *y2 = g_new(float, DROP_COUNT);
  eng_dropout_forward(y, mask, x, DROP_COUNT, DROP_P, DROP_SEED);
  EngRng rng;
  for (size_t i = 0; i < DROP_COUNT; i++) {
    if (i % 4096 == 0)
      eng_rng_derive(&rng, DROP_SEED, i / 4096);
    uint8_t want = eng_rng_uniform(&rng) >= DROP_P;
    if (mask[i] != want)
      g_error("dropout mask[%zu] = %u, definition gives %u", i, mask[i], want);
  }
  eng_dropout_forward(y2, NULL, x, DROP_COUNT, DROP_P, DROP_SEED);
  g_assert_true(memcmp(y, y2, DROP_COUNT * sizeof *y) == 0);
  eng_dropout_forward(y, mask, x, DROP_COUNT, 1.0f, DROP_SEED);
  for (size_t i = 0; i < DROP_COUNT; i++) {
    g_assert_cmpuint(mask[i], ==, 0);
    g_assert_cmpfloat(y[i], ==, 0.0f);
  }
  g_free(mask), g_free(x), g_free(y), g_free(y2);
}

/* Runs this program again with EMSEG_THREADS = 1 and 2 (the pool reads it once per
 * process) and compares the printed mask hashes with the one computed here. */
static void
test_dropout_thread_independent(void)
{
  guint64 here = dropout_mask_hash();
  /* this very executable, wherever meson or a person runs it from */
  char *self = g_file_read_link("/proc/self/exe", NULL);
  g_assert_nonnull(self);
  for (int t = 1; t <= 2; t++) {
    char threads[8];
    g_snprintf(threads, sizeof threads, "%d", t);
    char **envp = g_environ_setenv(g_get_environ(), "EMSEG_THREADS", threads, TRUE);
    char *flag = g_strdup("--dropout-mask-hash");
    char *argv[] = {self, flag, NULL};
    char *out = NULL;
    int status = 0;
    GError *error = NULL;
    g_spawn_sync(NULL, argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status, &error);
    g_assert_no_error(error);
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    int got_threads = 0;
    guint64 hsh = 0;
    g_assert_cmpint(sscanf(out, "%d %" G_GUINT64_FORMAT, &got_threads, &hsh), ==, 2);
    g_assert_cmpint(got_threads, ==, t);
    g_assert_cmpuint(hsh, ==, here);
    g_free(out), g_free(flag);
    g_strfreev(envp);
  }
  g_free(self);
}

/* ---- elementwise on sizes that go through the pool ------------------------------------ */

static void
test_elementwise_parallel(void)
{
  size_t n = 200003;
  float *x = rand_buf(n, 91, 1.0f), *y = rand_buf(n, 92, 1.0f), *y0 = dup_buf(y, n);
  float *o = g_new(float, n), *d = rand_buf(n, 93, 1.0f), *d0 = dup_buf(d, n);
  eng_add_inplace(y, x, n);
  eng_relu_forward(o, x, n);
  eng_relu_backward(d, y0, o, n);
  for (size_t i = 0; i < n; i++) {
    g_assert_cmpfloat(y[i], ==, y0[i] + x[i]);
    g_assert_cmpfloat(o[i], ==, x[i] > 0 ? x[i] : 0.0f);
    g_assert_cmpfloat(d[i], ==, x[i] > 0 ? d0[i] + y0[i] : d0[i]);
  }
  g_free(x), g_free(y), g_free(y0), g_free(o), g_free(d), g_free(d0);
}

int
main(int argc, char **argv)
{
  if (argc == 2 && strcmp(argv[1], "--dropout-mask-hash") == 0) {
    guint64 hsh = dropout_mask_hash();
    printf("%d %" G_GUINT64_FORMAT "\n", eng_parallel_threads(), hsh);
    return 0;
  }
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/layers/conv/fast-vs-naive", test_conv_fast_vs_naive);
  g_test_add_func("/layers/conv/strips", test_conv_strips);
  g_test_add_func("/layers/conv/backend", test_conv_backend);
  g_test_add_func("/layers/conv/bf16", test_conv_bf16);
  g_test_add_func("/layers/fd/conv", test_fd_conv);
  g_test_add_func("/layers/fd/bn", test_fd_bn);
  g_test_add_func("/layers/fd/relu", test_fd_relu);
  g_test_add_func("/layers/fd/maxpool", test_fd_maxpool);
  g_test_add_func("/layers/maxpool/ties", test_maxpool_ties);
  g_test_add_func("/layers/fd/decimate-repeat", test_fd_decimate_repeat);
  g_test_add_func("/layers/fd/dropout", test_fd_dropout);
  g_test_add_func("/layers/sigmoid", test_sigmoid);
  g_test_add_func("/layers/bn/running-stats", test_bn_running_stats);
  g_test_add_func("/layers/bn/parallel-vs-double", test_bn_parallel_vs_double);
  g_test_add_func("/layers/resample/parallel", test_resample_parallel);
  g_test_add_func("/layers/dropout/rate-and-scale", test_dropout_rate_and_scale);
  g_test_add_func("/layers/dropout/definition", test_dropout_definition);
  g_test_add_func("/layers/dropout/thread-independent", test_dropout_thread_independent);
  g_test_add_func("/layers/elementwise/parallel", test_elementwise_parallel);
  return g_test_run();
}
