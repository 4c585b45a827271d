/* eng-gemm.c — sgemm split across the engine's own thread pool, OpenBLAS kept to one
 * thread.
 *
 * Why: OpenBLAS's pthread pool busy-waits (sched_yield) between calls. Our layers
 * alternate sgemm with packing and BN loops run on the engine pool, so its idle workers
 * spin against ours; on a shared 2-core machine that turned into more system time than
 * compute. Splitting the output matrix ourselves keeps one pool whose idle threads sleep.
 * EMSEG_BLAS_THREADS=openblas restores OpenBLAS's own threading (for comparison). */
#include <stdlib.h>
#include <string.h>

#include "eng-layers-private.h"
#include "eng-parallel.h"

typedef struct {
  CBLAS_TRANSPOSE ta, tb;
  blasint M, N, K;
  float alpha, beta;
  const float *A, *B;
  float *C;
  blasint lda, ldb, ldc;
  int split_n; /* split columns of C, else rows */
} GemmCtx;

#define BLOCK 64 /* columns or rows per work unit: whole cache lines */

static void
gemm_range(void *vctx, size_t begin, size_t end)
{
  const GemmCtx *g = vctx;
  blasint lo = (blasint) (begin * BLOCK), hi = (blasint) (end * BLOCK);
  if (g->split_n) {
    if (hi > g->N)
      hi = g->N;
    const float *B = g->tb == CblasNoTrans ? g->B + lo : g->B + (size_t) lo * (size_t) g->ldb;
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->M, hi - lo, g->K, g->alpha, g->A, g->lda, B,
                g->ldb, g->beta, g->C + lo, g->ldc);
  } else {
    if (hi > g->M)
      hi = g->M;
    const float *A = g->ta == CblasNoTrans ? g->A + (size_t) lo * (size_t) g->lda : g->A + lo;
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, hi - lo, g->N, g->K, g->alpha, A, g->lda, g->B,
                g->ldb, g->beta, g->C + (size_t) lo * (size_t) g->ldc, g->ldc);
  }
}

static int use_openblas_threads = -1;

void
eng_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K, float alpha,
          const float *A, blasint lda, const float *B, blasint ldb, float beta, float *C,
          blasint ldc)
{
  if (use_openblas_threads < 0) {
    /* Decided once; a benign race: every thread computes the same answer. */
    const char *env = getenv("EMSEG_BLAS_THREADS");
    use_openblas_threads = env && !strcmp(env, "openblas");
    if (!use_openblas_threads)
      openblas_set_num_threads(1);
  }
  double work = (double) M * (double) N * (double) K;
  int threads = eng_parallel_threads();
  if (use_openblas_threads || threads < 2 || work < 2e6) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  GemmCtx g = { ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, N >= M };
  size_t units = (size_t) ((g.split_n ? N : M) + BLOCK - 1) / BLOCK;
  eng_parallel_for(units, 1, gemm_range, &g);
}
