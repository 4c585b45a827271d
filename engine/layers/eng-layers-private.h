/* eng-layers-private.h — helpers shared by the layer sources in engine/layers/ only
 * (not installed, not for the model or the tests): the checked size_t -> blasint
 * narrowing that every sgemm call goes through, and eng_sgemm. */
#pragma once

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <stddef.h>

/* OpenBLAS takes 32-bit dimensions (blasint is int in Debian's build). A dimension that
 * does not fit is a programmer error (a shape no model of ours produces), so it asserts
 * instead of silently wrapping to a negative size. */
static inline blasint
eng_blasint(size_t v)
{
  assert(v <= (size_t) INT_MAX);
  return (blasint) v;
}

/* Row-major sgemm, C = alpha op(A) op(B) + beta C, split over the engine's thread pool
 * with OpenBLAS itself single-threaded (eng-gemm.c says why). Must not be called from
 * inside an eng_parallel_for callback. */
void eng_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K,
               float alpha, const float *A, blasint lda, const float *B, blasint ldb,
               float beta, float *C, blasint ldc);
