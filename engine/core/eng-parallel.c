/* eng-parallel.c — a persistent fork-join pool for eng_parallel_for.
 *
 * Workers sleep on a condition variable and wake for each job (a generation counter
 * tells a new job from a spurious wake-up). Jobs are short (one layer), so the caller
 * runs the first chunk itself instead of waiting idle. */
#include "eng-parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 64

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
/* Serializes callers from different threads (the engine thread and a test, say). */
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;

static void
chunk_range(size_t n, int chunks, int i, size_t *begin, size_t *end)
{
  *begin = n * (size_t) i / (size_t) chunks;
  *end = n * (size_t) (i + 1) / (size_t) chunks;
}

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
  int n = 0;
  const char *env = getenv("EMSEG_THREADS");
  if (env)
    n = atoi(env);
  if (n <= 0)
    n = (int) sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0)
    n = 1;
  if (n > MAX_THREADS)
    n = MAX_THREADS;
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
  int threads = eng_parallel_threads();
  if (min_chunk < 1)
    min_chunk = 1;
  size_t want = n / min_chunk;
  int chunks = want < (size_t) threads ? (int) want : threads;
  if (chunks <= 1) {
    if (n > 0)
      fn(ctx, 0, n);
    return;
  }
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
