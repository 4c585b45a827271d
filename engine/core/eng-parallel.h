/* eng-parallel.h — the engine's own static work split across threads, for the
 * memory-bound layers (BN, ReLU, pooling, im2col, ...) and for sgemm, which eng-gemm.c
 * splits here with OpenBLAS kept to one thread.
 *
 * One persistent pool (created on first use, one thread per core, the caller being one of
 * them) so no thread is created inside a training step. In a build with oneDNN the pool is
 * OpenMP's team, the one oneDNN's convolutions run on, so the two never compete for the
 * cores; without it, threads of our own (eng-parallel.c says why). */
#pragma once

#include <stddef.h>

/* Called once per worker with the half-open range [begin, end) of 0..n. */
typedef void (*EngRangeFn)(void *ctx, size_t begin, size_t end);

/* Splits 0..n into at most eng_parallel_threads() contiguous chunks and runs fn on each;
 * returns when all are done. Runs inline when n < min_chunk * 2 or the pool has one
 * thread. Not re-entrant: fn must not call eng_parallel_for. */
void eng_parallel_for(size_t n, size_t min_chunk, EngRangeFn fn, void *ctx);

/* Number of threads the pool uses (EMSEG_THREADS, else the number of online cores). */
int eng_parallel_threads(void);
