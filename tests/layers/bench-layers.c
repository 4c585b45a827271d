/* bench-layers.c — per-layer timings of engine/layers on the Table 1 shapes at 512²,
 * batch 1 (built, not run as a test; EMSEG_BENCH_BF16=1 times the bfloat16 convolutions).
 * Prints one line per layer: name, median ms of forward and backward, and GFLOP/s for the
 * convolutions, so that an optimization can be judged by its figures.
 * Usage: bench-layers [reps] [name-substring]. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng-layers.h"
#include "eng-parallel.h"
#include "eng-rng.h"

/* EMSEG_BENCH_CLOCK=cpu measures process CPU time instead of wall time: with one thread
 * (EMSEG_THREADS=1 OPENBLAS_NUM_THREADS=1) that stays comparable on a loaded machine. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static float *
rand_buf(size_t count, uint64_t seed)
{
  EngRng rng;
  eng_rng_seed(&rng, seed);
  float *v = malloc(count * sizeof *v);
  if (!v) {
    fprintf(stderr, "bench-layers: out of memory (%zu floats)\n", count);
    exit(1);
  }
  for (size_t i = 0; i < count; i++)
    v[i] = eng_rng_normal(&rng);
  return v;
}

static int reps = 5;
static const char *filter;
static int use_bf16; /* EMSEG_BENCH_BF16=1: convolutions with bfloat16 operands */

typedef void (*BenchFn)(void *ctx, int backward);

/* Minimum over reps of the last time_ms call: on a shared machine the least disturbed run
 * is the better estimate of the kernel's own speed; the median shows the typical one. */
static double last_min_ms;

/* Median over reps (after one warm-up) of fn, in ms. */
static double
time_ms(BenchFn fn, void *ctx, int backward)
{
  double t[64];
  int n = reps < 64 ? reps : 64;
  fn(ctx, backward);
  for (int i = 0; i < n; i++) {
    double t0 = now_s();
    fn(ctx, backward);
    t[i] = (now_s() - t0) * 1e3;
  }
  qsort(t, (size_t) n, sizeof *t, cmp_double);
  last_min_ms = t[0];
  return t[n / 2];
}

typedef struct {
  EngConvShape s;
  float *in, *out, *w, *b, *din, *dout, *dw, *db, *ws;
} ConvBench;

static void
conv_run(void *vctx, int backward)
{
  ConvBench *c = vctx;
  if (backward)
    eng_conv2d_backward(c->din, c->dw, c->db, c->dout, c->in, c->w, &c->s, c->ws);
  else
    eng_conv2d_forward(c->out, c->in, c->w, c->b, &c->s, c->ws);
}

/* need_din = 0 for the first conv, whose input (the image) needs no gradient. */
static void
bench_conv(const char *name, size_t cin, size_t cout, size_t hw, int k, int stride,
           int need_din)
{
  if (filter && !strstr(name, filter))
    return;
  ConvBench c = {.s = {.n = 1, .cin = cin, .h = hw, .w = hw, .cout = cout, .k = k,
                       .stride = stride, .bf16 = use_bf16}};
  size_t ho = hw / (size_t) stride, nin = cin * hw * hw, nout = cout * ho * ho;
  size_t nw = cin * cout * (size_t) (k * k), nws = eng_conv2d_workspace_floats(&c.s);
  c.in = rand_buf(nin, 1);
  c.out = rand_buf(nout, 2);
  c.w = rand_buf(nw, 3);
  c.b = rand_buf(cout, 4);
  c.din = need_din ? rand_buf(nin, 5) : NULL;
  c.dout = rand_buf(nout, 6);
  c.dw = rand_buf(nw, 7);
  c.db = rand_buf(cout, 8);
  c.ws = rand_buf(nws ? nws : 1, 9);
  double fw = time_ms(conv_run, &c, 0), fwmin = last_min_ms;
  double bw = time_ms(conv_run, &c, 1), bwmin = last_min_ms;
  double flop = 2.0 * (double) (cin * cout) * (double) (k * k) * (double) (ho * ho);
  printf("%-26s fwd %7.2f ms (min %7.2f, %5.1f GF/s)  bwd %7.2f ms (min %7.2f, %5.1f GF/s)"
         "  ws %5.1f MB  %s\n",
         name, fw, fwmin, flop / fwmin * 1e-6, bw, bwmin, 2 * flop / bwmin * 1e-6,
         (double) nws * 4e-6, eng_conv2d_backend(&c.s));
  free(c.in), free(c.out), free(c.w), free(c.b), free(c.din), free(c.dout), free(c.dw);
  free(c.db), free(c.ws);
}

typedef struct {
  EngBnShape s;
  float *in, *out, *din, *dout, *g, *bt, *mean, *inv, *rm, *rv, *dg, *db;
  int relu;
} BnBench;

static void
bn_run(void *vctx, int backward)
{
  BnBench *c = vctx;
  if (backward)
    eng_bn_backward(c->din, c->dg, c->db, c->dout, c->out, c->in, c->mean, c->inv, c->g,
                    &c->s, c->relu);
  else
    eng_bn_forward_train(c->out, c->mean, c->inv, c->rm, c->rv, c->in, c->g, c->bt, &c->s,
                         1e-5f, 0.9f, c->relu);
}

static void
bench_bn(const char *name, size_t ch, size_t hw, int relu)
{
  if (filter && !strstr(name, filter))
    return;
  BnBench c = {.s = {.n = 1, .c = ch, .hw = hw * hw}, .relu = relu};
  size_t cnt = ch * hw * hw;
  c.in = rand_buf(cnt, 1);
  c.out = rand_buf(cnt, 2);
  c.din = rand_buf(cnt, 3);
  c.dout = rand_buf(cnt, 4);
  c.g = rand_buf(ch, 5);
  c.bt = rand_buf(ch, 6);
  c.mean = rand_buf(ch, 7);
  c.inv = rand_buf(ch, 8);
  c.rm = rand_buf(ch, 9);
  c.rv = rand_buf(ch, 10);
  c.dg = rand_buf(ch, 11);
  c.db = rand_buf(ch, 12);
  for (size_t i = 0; i < ch; i++)
    c.rv[i] = 1.0f;
  double fw = time_ms(bn_run, &c, 0), fwmin = last_min_ms;
  double bw = time_ms(bn_run, &c, 1), bwmin = last_min_ms;
  printf("%-26s fwd %7.2f ms (min %7.2f)                bwd %7.2f ms (min %7.2f)\n", name,
         fw, fwmin, bw, bwmin);
  free(c.in), free(c.out), free(c.din), free(c.dout), free(c.g), free(c.bt), free(c.mean);
  free(c.inv), free(c.rm), free(c.rv), free(c.dg), free(c.db);
}

typedef struct {
  size_t nc, h;
  float *in, *out, *din, *dout;
  uint8_t *am;
  int kind; /* 0 maxpool, 1 repeat, 2 relu, 3 add, 4 dropout */
} MiscBench;

static void
misc_run(void *vctx, int backward)
{
  MiscBench *c = vctx;
  size_t big = c->nc * c->h * c->h;
  switch (c->kind) {
  case 0:
    if (backward)
      eng_maxpool2_backward(c->din, c->dout, c->am, c->nc, c->h, c->h);
    else
      eng_maxpool2_forward(c->out, c->am, c->in, c->nc, c->h, c->h);
    break;
  case 1:
    if (backward)
      eng_repeat2_backward(c->din, c->dout, c->nc, c->h / 2, c->h / 2);
    else
      eng_repeat2_forward(c->out, c->in, c->nc, c->h / 2, c->h / 2);
    break;
  case 2:
    if (backward)
      eng_relu_backward(c->din, c->dout, c->out, big);
    else
      eng_relu_forward(c->out, c->in, big);
    break;
  case 3:
    eng_add_inplace(c->out, c->in, big);
    break;
  default:
    if (backward)
      eng_dropout_backward(c->din, c->dout, c->am, big, 0.2f);
    else
      eng_dropout_forward(c->out, c->am, c->in, big, 0.2f, 42);
    break;
  }
}

static void
bench_misc(const char *name, size_t nc, size_t h, int kind)
{
  if (filter && !strstr(name, filter))
    return;
  MiscBench c = {.nc = nc, .h = h, .kind = kind};
  size_t cnt = nc * h * h;
  c.in = rand_buf(cnt, 1);
  c.out = rand_buf(cnt, 2);
  c.din = rand_buf(cnt, 3);
  c.dout = rand_buf(cnt, 4);
  c.am = calloc(cnt, 1);
  double fw = time_ms(misc_run, &c, 0), fwmin = last_min_ms;
  double bw = time_ms(misc_run, &c, 1), bwmin = last_min_ms;
  printf("%-26s fwd %7.2f ms (min %7.2f)                bwd %7.2f ms (min %7.2f)\n", name,
         fw, fwmin, bw, bwmin);
  free(c.in), free(c.out), free(c.din), free(c.dout), free(c.am);
}

static void
bench_sgemm(void)
{
  if (filter && !strstr("sgemm", filter))
    return;
  int n = 1024;
  float *a = rand_buf((size_t) n * n, 1), *b = rand_buf((size_t) n * n, 2);
  float *c = rand_buf((size_t) n * n, 3);
  double best = 1e30;
  for (int i = 0; i < reps + 1; i++) {
    double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                c, n);
    double t = now_s() - t0;
    best = t < best ? t : best;
  }
  printf("%-26s %8.2f ms (%5.1f GF/s, best of %d)\n", "sgemm 1024^3", best * 1e3,
         2.0 * n * n * (double) n / best * 1e-9, reps + 1);
  free(a), free(b), free(c);
}

int
main(int argc, char **argv)
{
  const char *clk = getenv("EMSEG_BENCH_CLOCK");
  if (clk && strcmp(clk, "cpu") == 0)
    bench_clock = CLOCK_PROCESS_CPUTIME_ID;
  const char *bf = getenv("EMSEG_BENCH_BF16");
  use_bf16 = bf && strcmp(bf, "1") == 0;
  if (argc > 1)
    reps = atoi(argv[1]) > 0 ? atoi(argv[1]) : 5;
  if (argc > 2)
    filter = argv[2];
  printf("# bench-layers: batch 1, median (and min) of %d, %d engine threads, %s time\n",
         reps, eng_parallel_threads(), bench_clock == CLOCK_MONOTONIC ? "wall" : "cpu");
  bench_sgemm();
  bench_conv("conv3 1->32 @512 (pre)", 1, 32, 512, 3, 1, 0);
  bench_conv("conv3 32->32 @512 (post)", 32, 32, 512, 3, 1, 1);
  bench_conv("conv3 32->32 @256", 32, 32, 256, 3, 1, 1);
  bench_conv("conv3 32->32 @128", 32, 32, 128, 3, 1, 1);
  bench_conv("conv3 64->64 @64", 64, 64, 64, 3, 1, 1);
  bench_conv("conv3 128->128 @32", 128, 128, 32, 3, 1, 1);
  bench_conv("conv3 256->256 @16", 256, 256, 16, 3, 1, 1);
  bench_conv("conv1 128->32 @128", 128, 32, 128, 1, 1, 1);
  bench_conv("conv1 32->128 @128", 32, 128, 128, 1, 1, 1);
  bench_conv("conv1s2 128->64 @128", 128, 64, 128, 1, 2, 1);
  bench_conv("conv1 32->1 @512 (class)", 32, 1, 512, 1, 1, 1);
  bench_bn("bn+relu 32 @512", 32, 512, 1);
  bench_bn("bn+relu 128 @128", 128, 128, 1);
  bench_bn("bn 32 @512", 32, 512, 0);
  bench_misc("maxpool 32 @512", 32, 512, 0);
  bench_misc("repeat 32 @256->512", 32, 512, 1);
  bench_misc("relu 32 @512", 32, 512, 2);
  bench_misc("add 32 @512", 32, 512, 3);
  bench_misc("dropout 32 @512", 32, 512, 4);
  return 0;
}
