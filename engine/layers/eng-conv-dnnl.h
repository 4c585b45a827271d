/* eng-conv-dnnl.h — the convolution layer's oneDNN path (private to engine/layers).
 *
 * Why: oneDNN's direct JIT convolutions in its blocked channel layout run this network's
 * shapes about twice as fast as im2col + sgemm on the same cores (README, Performance),
 * and reordering our NCHW tensors into that layout and back costs a few percent of that.
 * So eng_conv2d_forward/backward hand a shape to oneDNN when the build has it (meson
 * option `onednn`) and fall back to im2col + sgemm when it does not, when oneDNN declines
 * the shape, or when EMSEG_CONV=im2col is set (side-by-side benchmarks and the tests of
 * both paths).
 *
 * With EngConvShape.bf16 the copies into the blocked layout round src, weights and
 * diff_dst to bfloat16 and the kernels (AVX512-BF16 dot products, or AMX tiles in NHWC on
 * CPUs that have them) write float32 dst, diff_src and diff_weights; such shapes are entries
 * of their own in the table, and one oneDNN has no generated bfloat16 kernel for is served
 * by the float32 entry instead.
 *
 * The copies of activations between NCHW and NHWC / nChw16c are eng-layout.c's on CPUs
 * with AVX-512 (faster than oneDNN's reorders there); weights and every other layout go
 * through oneDNN reorders. EMSEG_CONV_COPY=onednn makes every copy oneDNN's.
 *
 * Same contract as eng-layers.h: forward overwrites out; backward accumulates into din
 * and dweight (the copies back to NCHW add instead of overwrite). Blocked copies live in
 * the caller's workspace, sized by eng_conv_dnnl_workspace_floats. Primitives are built
 * once per shape and kept for the life of the process in a table guarded by a mutex;
 * every call makes its own stream and memory handles, so threads may call concurrently
 * with distinct buffers. oneDNN runs on OpenMP threads; each call sets their number to
 * eng_parallel_threads() so EMSEG_THREADS governs both pools (they never run together). */
#pragma once

#include "eng-layers.h"

/* Floats of workspace the oneDNN path needs for this shape (forward and, when
 * with_backward is set, backward), 0 when it does not take it.
 * It takes stride-1 shapes with at least 16 input and output channels: on the others
 * (1-channel input and output, strided 1×1) im2col measured faster. */
size_t eng_conv_dnnl_workspace_floats(const EngConvShape *s, int with_backward);

/* Each returns 1 when oneDNN did the work, 0 when the caller must use its own path
 * (nothing was written then). A primitive that was built but then fails to run (oneDNN
 * out of memory for its scratchpad) aborts the process: by then din or dweight may hold
 * a partial sum that no fallback could undo, and a silently wrong gradient is worse. */
int eng_conv_dnnl_forward(float *out, const float *in, const float *weight,
                          const float *bias, const EngConvShape *s, float *workspace);
int eng_conv_dnnl_backward(float *din, float *dweight, const float *dout, const float *in,
                           const float *weight, const EngConvShape *s, float *workspace);

/* Implementation oneDNN chose for the forward pass of this shape ("jit:avx512_core", ...),
 * or NULL when the shape goes to im2col. The string is static. For benchmarks. */
const char *eng_conv_dnnl_impl(const EngConvShape *s);
