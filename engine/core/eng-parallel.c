/* eng-parallel.c — a persistent fork-join pool for eng_parallel_for.
 *
 * Two builds of the same contract (contiguous chunk i of n goes to thread i, the caller
 * runs chunk 0, callers from different threads are serialized):
 * - With oneDNN (EMSEG_HAVE_ONEDNN), the pool is OpenMP's team. oneDNN runs its
 *   convolutions on OpenMP threads; a second pool of our own beside them made the two
 *   fight for the cores (OpenMP's threads spin for a while after each convolution, right
 *   when our workers wake for the next BN or sum: measured 1.56 s against 1.27 s per
 *   training step). One team for both means the spinning threads are the ones that run
 *   the next job.
 * - Without it (and in the ThreadSanitizer build, which cannot follow OpenMP's
 *   uninstrumented runtime), workers of our own sleep on a condition variable and wake for
 *   each job (a generation counter tells a new job from a spurious wake-up). Jobs are
 *   short (one layer), so the caller runs the first chunk itself instead of waiting idle. */
#include "eng-parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#if EMSEG_HAVE_ONEDNN
#include <omp.h>
#endif

#define MAX_THREADS 64

static void
chunk_range(size_t n, int chunks, int i, size_t *begin, size_t *end)
{
  *begin = n * (size_t) i / (size_t) chunks;
  *end = n * (size_t) (i + 1) / (size_t) chunks;
}

/* Threads to use: EMSEG_THREADS, else the online cores, within [1, MAX_THREADS]. */
static int
threads_wanted(void)
{
  int n = 0;
  const char *env = getenv("EMSEG_THREADS");
  if (env)
    n = atoi(env);
  if (n <= 0)
    n = (int) sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0)
    n = 1;
  return n > MAX_THREADS ? MAX_THREADS : n;
}

/* Serializes callers from different threads (the engine thread and a test, say). */
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;

/* The number of chunks a job splits into; when that is one (or none), runs it here and
 * returns 0. */
static int
split_or_run_inline(size_t n, size_t min_chunk, EngRangeFn fn, void *ctx)
{
  if (min_chunk < 1)
    min_chunk = 1;
  size_t want = n / min_chunk;
  int threads = eng_parallel_threads();
  int chunks = want < (size_t) threads ? (int) want : threads;
  if (chunks > 1)
    return chunks;
  if (n > 0)
    fn(ctx, 0, n);
  return 0;
}

#if EMSEG_HAVE_ONEDNN

static pthread_once_t team_once = PTHREAD_ONCE_INIT;
static int team_threads;

static void
team_init(void)
{
  team_threads = threads_wanted();
}

int
eng_parallel_threads(void)
{
  pthread_once(&team_once, team_init);
  return team_threads;
}

void
eng_parallel_for(size_t n, size_t min_chunk, EngRangeFn fn, void *ctx)
{
  int chunks = split_or_run_inline(n, min_chunk, fn, ctx);
  if (chunks == 0)
    return;
  pthread_mutex_lock(&job_mu);
  /* OpenMP may grant fewer threads than asked; each then takes every nth chunk, so the
   * chunk boundaries (and so the results) never depend on what it granted. */
#pragma omp parallel num_threads(chunks)
  {
    int nth = omp_get_num_threads();
    for (int i = omp_get_thread_num(); i < chunks; i += nth) {
      size_t b, e;
      chunk_range(n, chunks, i, &b, &e);
      fn(ctx, b, e);
    }
  }
  pthread_mutex_unlock(&job_mu);
}

#else /* our own pthread pool */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t wake;
  pthread_cond_t done;
  unsigned long generation;
  int pending;
  int nthreads;
  /* the current job */
  EngRangeFn fn;
  void *ctx;
  size_t n;
  int chunks;
} Pool;

static Pool pool = {
  .mu = PTHREAD_MUTEX_INITIALIZER,
  .wake = PTHREAD_COND_INITIALIZER,
  .done = PTHREAD_COND_INITIALIZER,
};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void *
worker_main(void *arg)
{
  int id = (int) (size_t) arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    while (pool.generation == seen)
      pthread_cond_wait(&pool.wake, &pool.mu);
    seen = pool.generation;
    if (id < pool.chunks) {
      EngRangeFn fn = pool.fn;
      void *ctx = pool.ctx;
      size_t b, e;
      chunk_range(pool.n, pool.chunks, id, &b, &e);
      pthread_mutex_unlock(&pool.mu);
      fn(ctx, b, e);
      pthread_mutex_lock(&pool.mu);
      if (--pool.pending == 0)
        pthread_cond_signal(&pool.done);
    }
  }
  return NULL;
}

static void
pool_init(void)
{
  int n = threads_wanted();
  pool.nthreads = 1;
  for (int i = 1; i < n; i++) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, worker_main, (void *) (size_t) i) == 0)
      pool.nthreads++;
    pthread_attr_destroy(&attr);
  }
}

int
eng_parallel_threads(void)
{
  pthread_once(&pool_once, pool_init);
  return pool.nthreads;
}

void
eng_parallel_for(size_t n, size_t min_chunk, EngRangeFn fn, void *ctx)
{
  int chunks = split_or_run_inline(n, min_chunk, fn, ctx);
  if (chunks == 0)
    return;
  pthread_mutex_lock(&job_mu);
  pthread_mutex_lock(&pool.mu);
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.chunks = chunks;
  pool.pending = chunks - 1; /* chunk 0 is ours */
  pool.generation++;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);

  size_t b, e;
  chunk_range(n, chunks, 0, &b, &e);
  fn(ctx, b, e);

  pthread_mutex_lock(&pool.mu);
  while (pool.pending > 0)
    pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  pthread_mutex_unlock(&job_mu);
}

#endif
