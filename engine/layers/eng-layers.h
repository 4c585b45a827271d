/* eng-layers.h — the engine's layers, each a forward/backward pair with one stem.
 *
 * Conventions (llm.c style):
 * - Tensors are float32 NCHW, passed as raw pointers with explicit sizes (size_t).
 * - Arguments: outputs first, then inputs and weights, then sizes/options.
 * - Forward *overwrites* its output. Backward *accumulates* (+=) into every gradient it
 *   is given (din, dweight, dbias, dgamma, dbeta); the caller zeroes them first. A NULL
 *   gradient pointer means "not needed" and is skipped.
 * - Buffers are owned by the caller (the model's arenas); no layer allocates, except the
 *   workspace the caller sizes with the matching *_workspace_floats() function. (oneDNN
 *   keeps its convolution primitives and their scratch memory itself, built once per
 *   shape and held for the life of the process; see eng-conv-dnnl.h.)
 * - Layers split their work across threads with eng_parallel_for (sgemm via eng_sgemm;
 *   oneDNN's convolutions run on the same threads); they never print, exit or touch GLib.
 * Every fast kernel has a naive oracle (suffix _naive) that the tests compare it with.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* ---- convolution: k×k, k ∈ {1, 3}, "same" zero padding, stride ∈ {1, 2} ------------- */
/* Stride 2 is allowed only with k = 1 and samples rows/cols 0, 2, 4, ... (h, w even). */
typedef struct {
  size_t n, cin, h, w; /* input (n, cin, h, w) */
  size_t cout;         /* output (n, cout, h/stride, w/stride) */
  int k;
  int stride;
  /* 1: bfloat16 operands on the oneDNN path (inputs, weights and incoming gradients are
   * rounded to bfloat16; sums, outputs and weight gradients stay float32), about twice the
   * arithmetic rate on CPUs with AVX512-BF16. Where oneDNN has no fast bfloat16 kernel for
   * the shape, or the shape goes to im2col, the layer computes in float32 as if unset. */
  int bf16;
} EngConvShape;

/* Floats of scratch memory the fast kernels need for this shape (0 is possible), for
 * forward and backward; the _forward variant is enough for eng_conv2d_forward alone
 * (inference graphs: oneDNN's backward copies need more). */
size_t eng_conv2d_workspace_floats(const EngConvShape *s);
size_t eng_conv2d_forward_workspace_floats(const EngConvShape *s);

/* Which implementation runs this shape: "im2col" (OpenBLAS sgemm) or oneDNN's name for
 * its kernel ("jit:avx512_core", ...) when the build has oneDNN (meson option onednn) and
 * EMSEG_CONV=im2col is not set. The string is static. For tests and benchmarks. */
const char *eng_conv2d_backend(const EngConvShape *s);

/* out (n, cout, ho, wo) = conv(in (n, cin, h, w), weight (cout, cin, k, k)) + bias (cout)
 * (bias may be NULL). workspace: eng_conv2d_forward_workspace_floats(s) floats (or more). */
void eng_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                        const EngConvShape *s, float *workspace);
/* din (n, cin, h, w) += ..., dweight (cout, cin, k, k) += ..., dbias (cout) += ... */
void eng_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                         const float *in, const float *weight, const EngConvShape *s,
                         float *workspace);
void eng_conv2d_forward_naive(float *out, const float *in, const float *weight,
                              const float *bias, const EngConvShape *s);
void eng_conv2d_backward_naive(float *din, float *dweight, float *dbias, const float *dout,
                               const float *in, const float *weight, const EngConvShape *s);

/* ---- batch normalization (per channel over N, H, W), fused with the ReLU after it ------ */
typedef struct {
  size_t n, c, hw;
} EngBnShape;

/* Training mode: out = relu((in - mean) * invstd * gamma + beta) with batch mean and biased
 * variance; saves mean (c) and invstd (c) for backward; updates running_mean/running_var
 * (c) as running = momentum * running + (1 - momentum) * batch, the variance unbiased
 * (n*hw/(n*hw-1)), as PyTorch does. relu = 0 gives plain BN. */
void eng_bn_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                          float *running_var, const float *in, const float *gamma,
                          const float *beta, const EngBnShape *s, float eps, float momentum,
                          int relu);
/* Inference mode with running statistics. */
void eng_bn_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                          const float *running_mean, const float *running_var,
                          const EngBnShape *s, float eps, int relu);
/* Backward of training mode. `out` is the forward output (its sign gives the ReLU mask
 * when relu = 1). */
void eng_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                     const float *out, const float *in, const float *mean,
                     const float *invstd, const float *gamma, const EngBnShape *s, int relu);

/* ---- elementwise ----------------------------------------------------------------------- */
void eng_relu_forward(float *out, const float *in, size_t count);
/* din += dout where out > 0 */
void eng_relu_backward(float *din, const float *dout, const float *out, size_t count);
/* y += x */
void eng_add_inplace(float *y, const float *x, size_t count);
void eng_sigmoid_forward(float *out, const float *in, size_t count);

/* Inverted dropout with rate p: mask[i] = 1 keeps (scaled by 1/(1-p)), 0 drops.
 * Deterministic for (seed, count) whatever the thread count: element i is kept when
 * eng_rng_uniform() of stream i / 4096 (eng_rng_derive(seed, i / 4096)), drawn in order
 * within the stream, is >= p. p = 0 copies. mask may be NULL when no backward follows
 * (Monte-Carlo inference). */
void eng_dropout_forward(float *out, uint8_t *mask, const float *in, size_t count, float p,
                         uint64_t seed);
void eng_dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t count,
                          float p);

/* ---- resolution changes on (nc = n*c) planes of h×w ------------------------------------ */
/* 2×2 max-pool, stride 2: out (nc, h/2, w/2); argmax (same size) holds 0..3, the first
 * maximum in row-major order. */
void eng_maxpool2_forward(float *out, uint8_t *argmax, const float *in, size_t nc, size_t h,
                          size_t w);
void eng_maxpool2_backward(float *din, const float *dout, const uint8_t *argmax, size_t nc,
                           size_t h, size_t w);
/* Decimation: out (nc, h/2, w/2) = in[.., 2y, 2x]. */
void eng_decimate2_forward(float *out, const float *in, size_t nc, size_t h, size_t w);
void eng_decimate2_backward(float *din, const float *dout, size_t nc, size_t h, size_t w);
/* Repetition (nearest ×2): out (nc, 2h, 2w), out[y][x] = in[y/2][x/2]. h, w are the
 * *input* sizes. */
void eng_repeat2_forward(float *out, const float *in, size_t nc, size_t h, size_t w);
void eng_repeat2_backward(float *din, const float *dout, size_t nc, size_t h, size_t w);
