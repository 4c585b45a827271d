/* eng-bn.c — batch normalization over (N, H, W) per channel, fused with the ReLU that
 * follows it in every pre-activation block.
 *
 * Each thread owns whole channels, so statistics and the parameter gradients need no
 * reduction across threads. Statistics take one pass: sums of (x - pivot) and its square,
 * pivot = the channel's first element (which removes most of the cancellation of the
 * sum-of-squares formula), accumulated in float lanes over short blocks and in double
 * across blocks. The lanes let the compiler vectorize without reassociating (no
 * -ffast-math); the short blocks keep float round-off at the 1e-7 level. */
#include "eng-layers.h"

#include <math.h>
#include <string.h>

#include "eng-parallel.h"

#define LANES 8
#define BLOCK 512 /* elements per float-accumulated block (multiple of LANES) */

/* s1 += sum(x - piv) [* g], s2 += sum((x - piv)^2) over len elements. */
static void
sums_pivot(const float *x, size_t len, float piv, double *s1, double *s2)
{
  size_t i = 0;
  while (i < len) {
    size_t end = len - i > BLOCK ? i + BLOCK : len;
    float a1[LANES] = {0}, a2[LANES] = {0};
    for (; i + LANES <= end; i += LANES)
      for (int j = 0; j < LANES; j++) {
        float d = x[i + j] - piv;
        a1[j] += d;
        a2[j] += d * d;
      }
    for (; i < end; i++) {
      float d = x[i] - piv;
      a1[0] += d;
      a2[0] += d * d;
    }
    double b1 = 0.0, b2 = 0.0;
    for (int j = 0; j < LANES; j++) {
      b1 += a1[j];
      b2 += a2[j];
    }
    *s1 += b1;
    *s2 += b2;
  }
}

/* dy where y > 0, else +0, as a bitwise AND: gcc does not if-convert a select inside the
 * lane loop below, but vectorizes this (and it keeps NaN in dy, unlike dy * (y > 0)). */
static inline float
mask_pos(float d, float y)
{
  uint32_t bits, m = y > 0.0f ? 0xffffffffu : 0u;
  memcpy(&bits, &d, sizeof bits);
  bits &= m;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* sg += sum(g), sgx += sum(g * (x - mean)), g = dy masked by y > 0 when relu. Loads are
 * unconditional, which lets the compiler vectorize; RELU is a compile-time constant in
 * each caller so the two variants compile separately. */
static inline void
sums_grad_impl(const float *dy, const float *y, const float *x, size_t len, float mean,
               const int relu, double *sg, double *sgx)
{
  size_t i = 0;
  while (i < len) {
    size_t end = len - i > BLOCK ? i + BLOCK : len;
    float a1[LANES] = {0}, a2[LANES] = {0};
    for (; i + LANES <= end; i += LANES)
      for (int j = 0; j < LANES; j++) {
        float g = relu ? mask_pos(dy[i + j], y[i + j]) : dy[i + j];
        a1[j] += g;
        a2[j] += g * (x[i + j] - mean);
      }
    for (; i < end; i++) {
      float g = relu ? mask_pos(dy[i], y[i]) : dy[i];
      a1[0] += g;
      a2[0] += g * (x[i] - mean);
    }
    double b1 = 0.0, b2 = 0.0;
    for (int j = 0; j < LANES; j++) {
      b1 += a1[j];
      b2 += a2[j];
    }
    *sg += b1;
    *sgx += b2;
  }
}

static void
sums_grad(const float *dy, const float *y, const float *x, size_t len, float mean, int relu,
          double *sg, double *sgx)
{
  if (relu)
    sums_grad_impl(dy, y, x, len, mean, 1, sg, sgx);
  else
    sums_grad_impl(dy, y, x, len, mean, 0, sg, sgx);
}

/* out = x * a + b, then relu; the two loops keep each one branch-free to vectorize. */
static void
affine(float *out, const float *x, size_t len, float a, float b, int relu)
{
  if (relu) {
    for (size_t i = 0; i < len; i++) {
      float v = x[i] * a + b;
      out[i] = v > 0.0f ? v : 0.0f;
    }
  } else {
    for (size_t i = 0; i < len; i++)
      out[i] = x[i] * a + b;
  }
}

typedef struct {
  float *out;
  float *din;
  float *mean;
  float *invstd;
  float *running_mean;
  float *running_var;
  float *dgamma;
  float *dbeta;
  const float *in;
  const float *dout;
  const float *fwd_out;
  const float *cmean;
  const float *cinvstd;
  const float *gamma;
  const float *beta;
  const float *rmean;
  const float *rvar;
  size_t n, c, hw;
  float eps, momentum;
  int relu;
} BnCtx;

/* Channels per chunk so that a chunk covers at least ~32 K elements. */
static size_t
chan_chunk(const EngBnShape *s)
{
  size_t per = s->n * s->hw;
  size_t want = ((size_t) 1 << 15) / (per ? per : 1);
  return want ? want : 1;
}

static void
bn_train_range(void *vctx, size_t cb, size_t ce)
{
  const BnCtx *c = vctx;
  size_t m = c->n * c->hw;
  for (size_t ch = cb; ch < ce; ch++) {
    float piv = c->in[ch * c->hw];
    double s1 = 0.0, s2 = 0.0;
    for (size_t b = 0; b < c->n; b++)
      sums_pivot(c->in + (b * c->c + ch) * c->hw, c->hw, piv, &s1, &s2);
    double dm = s1 / (double) m;
    double var = s2 / (double) m - dm * dm;
    if (var < 0.0)
      var = 0.0;
    double mean = (double) piv + dm;
    double inv = 1.0 / sqrt(var + (double) c->eps);
    c->mean[ch] = (float) mean;
    c->invstd[ch] = (float) inv;
    if (c->running_mean) {
      double mom = c->momentum;
      c->running_mean[ch] = (float) (mom * c->running_mean[ch] + (1.0 - mom) * mean);
    }
    if (c->running_var) {
      double mom = c->momentum;
      double unbiased = m > 1 ? var * (double) m / (double) (m - 1) : var;
      c->running_var[ch] = (float) (mom * c->running_var[ch] + (1.0 - mom) * unbiased);
    }
    double a = (double) c->gamma[ch] * inv;
    float fa = (float) a;
    float fb = (float) ((double) c->beta[ch] - mean * a);
    for (size_t b = 0; b < c->n; b++) {
      size_t off = (b * c->c + ch) * c->hw;
      affine(c->out + off, c->in + off, c->hw, fa, fb, c->relu);
    }
  }
}

void
eng_bn_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                     float *running_var, const float *in, const float *gamma,
                     const float *beta, const EngBnShape *s, float eps, float momentum,
                     int relu)
{
  BnCtx c = {.out = out, .mean = mean, .invstd = invstd, .running_mean = running_mean,
             .running_var = running_var, .in = in, .gamma = gamma, .beta = beta,
             .n = s->n, .c = s->c, .hw = s->hw, .eps = eps, .momentum = momentum,
             .relu = relu};
  eng_parallel_for(s->c, chan_chunk(s), bn_train_range, &c);
}

static void
bn_infer_range(void *vctx, size_t cb, size_t ce)
{
  const BnCtx *c = vctx;
  for (size_t ch = cb; ch < ce; ch++) {
    double inv = 1.0 / sqrt((double) c->rvar[ch] + (double) c->eps);
    double a = (double) c->gamma[ch] * inv;
    float fa = (float) a;
    float fb = (float) ((double) c->beta[ch] - (double) c->rmean[ch] * a);
    for (size_t b = 0; b < c->n; b++) {
      size_t off = (b * c->c + ch) * c->hw;
      affine(c->out + off, c->in + off, c->hw, fa, fb, c->relu);
    }
  }
}

void
eng_bn_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                     const float *running_mean, const float *running_var,
                     const EngBnShape *s, float eps, int relu)
{
  BnCtx c = {.out = out, .in = in, .gamma = gamma, .beta = beta, .rmean = running_mean,
             .rvar = running_var, .n = s->n, .c = s->c, .hw = s->hw, .eps = eps,
             .relu = relu};
  eng_parallel_for(s->c, chan_chunk(s), bn_infer_range, &c);
}

static void
bn_backward_range(void *vctx, size_t cb, size_t ce)
{
  const BnCtx *c = vctx;
  size_t m = c->n * c->hw;
  for (size_t ch = cb; ch < ce; ch++) {
    float mean = c->cmean[ch];
    double inv = c->cinvstd[ch];
    double sg = 0.0, sgx = 0.0;
    for (size_t b = 0; b < c->n; b++) {
      size_t off = (b * c->c + ch) * c->hw;
      sums_grad(c->dout + off, c->fwd_out + off, c->in + off, c->hw, mean, c->relu, &sg,
                &sgx);
    }
    double sgxhat = sgx * inv; /* sum(g * xhat) */
    if (c->dbeta)
      c->dbeta[ch] += (float) sg;
    if (c->dgamma)
      c->dgamma[ch] += (float) sgxhat;
    if (!c->din)
      continue;
    /* din = gamma*inv/m * (m*g - sum(g) - xhat*sum(g*xhat)), written as
     * din += k1*g - k2*(x - mean) + k0 so that the inner loop is one fused pass. */
    double a = (double) c->gamma[ch] * inv;
    float k1 = (float) a;
    double k2d = a * inv * sgxhat / (double) m;
    float k2 = (float) k2d;
    float k0 = (float) (-a * sg / (double) m);
    for (size_t b = 0; b < c->n; b++) {
      size_t off = (b * c->c + ch) * c->hw;
      float *din = c->din + off;
      const float *dy = c->dout + off;
      const float *x = c->in + off;
      const float *y = c->fwd_out + off;
      if (c->relu) {
        for (size_t i = 0; i < c->hw; i++) {
          float d = dy[i], yy = y[i];
          float g = yy > 0.0f ? d : 0.0f;
          din[i] += k1 * g - k2 * (x[i] - mean) + k0;
        }
      } else {
        for (size_t i = 0; i < c->hw; i++)
          din[i] += k1 * dy[i] - k2 * (x[i] - mean) + k0;
      }
    }
  }
}

void
eng_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                const float *out, const float *in, const float *mean, const float *invstd,
                const float *gamma, const EngBnShape *s, int relu)
{
  BnCtx c = {.din = din, .dgamma = dgamma, .dbeta = dbeta, .dout = dout, .fwd_out = out,
             .in = in, .cmean = mean, .cinvstd = invstd, .gamma = gamma, .n = s->n,
             .c = s->c, .hw = s->hw, .relu = relu};
  eng_parallel_for(s->c, chan_chunk(s), bn_backward_range, &c);
}
