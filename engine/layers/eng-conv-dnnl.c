/* eng-conv-dnnl.c — convolutions through oneDNN's C API in its blocked layout, with
 * copies from and to the engine's NCHW tensors (see eng-conv-dnnl.h for why and when).
 *
 * Per shape, built once: forward (with bias; a zero bias when the layer has none, so one
 * primitive serves both), backward-data and backward-weights primitives whose activation
 * and weight formats oneDNN picks ("any"), and the reorders plain → blocked for every
 * input and blocked → plain for every output. The reorders that return gradients carry a
 * sum post-op (dst += src), which is how this path keeps the layer contract "backward
 * accumulates" without an extra pass. A reorder is skipped when oneDNN picked the plain
 * layout itself (the 1-channel input and output convolutions). Activations in NHWC or
 * nChw16c are copied by eng-layout.c instead, on CPUs where that is faster (AVX-512). */
#include "eng-conv-dnnl.h"

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eng-layout.h"
#include "eng-parallel.h"

/* Blocked copies start on 64-byte boundaries inside the workspace. */
#define ALIGN_FLOATS 16
#define MAX_SHAPES 128

/* One tensor's blocked copy: the reorder into or out of it (NULL when oneDNN uses the
 * plain layout and the caller's buffer is passed as is), its descriptor and its place in
 * the workspace. */
typedef struct {
  dnnl_memory_desc_t md;
  dnnl_primitive_t reorder;
  size_t offset; /* floats from the workspace start */
  /* Activations in NHWC or nChw16c are copied by eng-layout.c; `reorder` is then NULL (no
   * oneDNN reorder is built for the slot). */
  int own_copy, bf16;
  EngLayout layout;
} Slot;

typedef struct {
  EngConvShape s;
  int ok; /* 1: oneDNN takes it; 0: im2col */
  dnnl_memory_desc_t src_plain, dst_plain, w_plain, bias_md;
  dnnl_primitive_t fwd, bwd_data, bwd_weights;
  const char *impl;
  /* forward */
  Slot f_src, f_w, f_dst;
  size_t f_zero_bias, f_floats;
  /* backward */
  Slot b_dst_for_data, b_w, b_dsrc, b_src, b_dst_for_weights, b_dw;
  int share_dst; /* backward-weights reads backward-data's copy of diff_dst */
  size_t b_floats;
} Entry;

static struct {
  pthread_mutex_t mu;
  pthread_once_t once;
  dnnl_engine_t engine;
  int disabled;       /* EMSEG_CONV=im2col, or no CPU engine */
  int onednn_reorders; /* EMSEG_CONV_COPY=onednn: every copy by oneDNN (for comparisons) */
  Entry entries[MAX_SHAPES];
  size_t n_entries;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static void
init_once(void)
{
  const char *copy = getenv("EMSEG_CONV_COPY");
  g.onednn_reorders = copy && strcmp(copy, "onednn") == 0;
  const char *env = getenv("EMSEG_CONV");
  if (env && strcmp(env, "im2col") == 0) {
    g.disabled = 1;
    return;
  }
  if (dnnl_engine_create(&g.engine, dnnl_cpu, 0) != dnnl_success)
    g.disabled = 1;
}

static size_t
md_floats(const dnnl_memory_desc_t *md)
{
  size_t f = (dnnl_memory_desc_get_size(md) + sizeof(float) - 1) / sizeof(float);
  return (f + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static const dnnl_memory_desc_t *
query(dnnl_primitive_desc_t pd, dnnl_query_t what)
{
  return dnnl_primitive_desc_query_md(pd, what, 0);
}

static void
pd_free(dnnl_primitive_desc_t pd)
{
  if (pd)
    dnnl_primitive_desc_destroy(pd);
}

/* A reorder from `from` to `to`, adding into the destination when accumulate is set. */
static int
make_reorder(dnnl_primitive_t *out, const dnnl_memory_desc_t *from,
             const dnnl_memory_desc_t *to, int accumulate)
{
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t ops = NULL;
  dnnl_primitive_desc_t pd = NULL;
  int ok = 1;
  if (accumulate) {
    ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
         dnnl_post_ops_create(&ops) == dnnl_success &&
         dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success &&
         dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
  }
  ok = ok && dnnl_reorder_primitive_desc_create(&pd, from, g.engine, to, g.engine, attr) ==
                 dnnl_success;
  ok = ok && dnnl_primitive_create(out, pd) == dnnl_success;
  pd_free(pd);
  if (ops)
    dnnl_post_ops_destroy(ops);
  if (attr)
    dnnl_primitive_attr_destroy(attr);
  return ok;
}

/* Whether the activation copy between `plain` (NCHW float32) and `blocked` is one
 * eng-layout.c makes, and with which parameters. oneDNN's own reorders for these ran at
 * 0.5–3 G elements/s on this project's machines (1x128x256x256 NHWC → NCHW: 13.8 ms), and
 * in a bfloat16 training step on AMX took more time than the convolutions. */
static void
detect_own_copy(Slot *slot, const dnnl_memory_desc_t *plain)
{
  const dnnl_memory_desc_t *b = &slot->md;
  slot->own_copy = 0;
  if (g.onednn_reorders || !eng_layout_fast() || plain->ndims != 4 ||
      (b->data_type != dnnl_f32 && b->data_type != dnnl_bf16))
    return;
  EngLayout l = {.n = (size_t) plain->dims[0], .c = (size_t) plain->dims[1],
                 .h = (size_t) plain->dims[2], .w = (size_t) plain->dims[3]};
  dnnl_memory_desc_t nhwc, c16;
  if (l.c % 16 == 0 &&
      dnnl_memory_desc_init_by_tag(&nhwc, 4, plain->dims, b->data_type, dnnl_nhwc) ==
          dnnl_success &&
      dnnl_memory_desc_equal(&nhwc, b)) {
    l.block = l.cpad = l.c;
  } else if (dnnl_memory_desc_init_by_tag(&c16, 4, plain->dims, b->data_type,
                                          dnnl_nChw16c) == dnnl_success &&
             dnnl_memory_desc_equal(&c16, b)) {
    l.block = 16;
    l.cpad = (l.c + 15) / 16 * 16;
  } else {
    return;
  }
  slot->layout = l;
  slot->bf16 = b->data_type == dnnl_bf16;
  slot->own_copy = 1;
}

/* Fills a slot for a tensor the primitive reads: a reorder plain → blocked unless the
 * primitive wants the plain layout. Advances *floats by the room the copy takes. */
static int
input_slot(Slot *slot, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
           size_t *floats)
{
  slot->md = *want;
  slot->reorder = NULL;
  slot->offset = *floats;
  if (dnnl_memory_desc_equal(plain, want))
    return 1;
  *floats += md_floats(want);
  detect_own_copy(slot, plain);
  return slot->own_copy || make_reorder(&slot->reorder, plain, want, 0);
}

/* A slot for a tensor the primitive writes. The primitive always writes into the
 * workspace; the reorder back to plain overwrites (forward) or adds (gradients). */
static int
output_slot(Slot *slot, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *have,
            size_t *floats, int accumulate)
{
  slot->md = *have;
  slot->reorder = NULL;
  slot->offset = *floats;
  *floats += md_floats(have);
  detect_own_copy(slot, plain);
  return slot->own_copy || make_reorder(&slot->reorder, have, plain, accumulate);
}

static int
make_primitive(dnnl_primitive_t *out, dnnl_primitive_desc_t pd)
{
  return dnnl_primitive_create(out, pd) == dnnl_success;
}

/* Whether oneDNN picked a generated bfloat16 kernel: without AVX512-BF16 it still builds
 * bfloat16 convolutions, but as reference loops (or a float32 kernel behind conversions) far
 * slower than the float32 path, so a bfloat16 shape that would land there is declined.
 * Generated kernels are named "jit…" (AVX512-BF16: "jit_bf16:avx512_core_bf16") or, on CPUs
 * with AMX tiles, "brgconv…" / "jit:avx512_core_amx_bf16"; the ISA part names bf16 in each. */
static int
jit_bf16_impl(dnnl_primitive_desc_t pd)
{
  const char *impl = NULL;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  return impl && (strncmp(impl, "jit", 3) == 0 || strncmp(impl, "brg", 3) == 0) &&
         strstr(impl, "bf16") != NULL;
}

/* Builds every primitive of one shape; returns 0 when oneDNN declines some part, so the
 * shape stays on im2col (what it did build is kept, see the end). */
static int
build(Entry *e)
{
  const EngConvShape *s = &e->s;
  int64_t ho = (int64_t) (s->h / (size_t) s->stride), wo = (int64_t) (s->w / (size_t) s->stride);
  dnnl_dims_t src = {(int64_t) s->n, (int64_t) s->cin, (int64_t) s->h, (int64_t) s->w};
  dnnl_dims_t dst = {(int64_t) s->n, (int64_t) s->cout, ho, wo};
  dnnl_dims_t wei = {(int64_t) s->cout, (int64_t) s->cin, s->k, s->k};
  dnnl_dims_t bias = {(int64_t) s->cout};
  dnnl_dims_t strides = {s->stride, s->stride};
  dnnl_dims_t pad = {s->k / 2, s->k / 2};
  /* What the primitives read (src, weights, diff_dst) is in `low`: bfloat16 when asked,
   * so the reorders in round it; what they write (dst, diff_src, diff_weights) stays
   * float32, so the sums and the optimizer see float32 as on the other paths. */
  dnnl_data_type_t low = s->bf16 ? dnnl_bf16 : dnnl_f32;
  dnnl_memory_desc_t src_any, dst_any, w_any, src_low, dst_low, w_low;
  if (dnnl_memory_desc_init_by_tag(&e->src_plain, 4, src, dnnl_f32, dnnl_nchw) ||
      dnnl_memory_desc_init_by_tag(&e->dst_plain, 4, dst, dnnl_f32, dnnl_nchw) ||
      dnnl_memory_desc_init_by_tag(&e->w_plain, 4, wei, dnnl_f32, dnnl_oihw) ||
      dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bias, dnnl_f32, dnnl_x) ||
      dnnl_memory_desc_init_by_tag(&src_any, 4, src, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&dst_any, 4, dst, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&w_any, 4, wei, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&src_low, 4, src, low, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&dst_low, 4, dst, low, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&w_low, 4, wei, low, dnnl_format_tag_any))
    return 0;

  dnnl_convolution_desc_t fd, dd, wd;
  dnnl_primitive_desc_t fpd = NULL, dpd = NULL, wpd = NULL;
  int ok =
      dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                         &src_low, &w_low, &e->bias_md, &dst_any, strides,
                                         pad, pad) == dnnl_success &&
      dnnl_primitive_desc_create(&fpd, &fd, NULL, g.engine, NULL) == dnnl_success &&
      dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &src_any,
                                               &w_low, &dst_low, strides, pad,
                                               pad) == dnnl_success &&
      dnnl_primitive_desc_create(&dpd, &dd, NULL, g.engine, fpd) == dnnl_success &&
      dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src_low,
                                                  &w_any, NULL, &dst_low, strides, pad,
                                                  pad) == dnnl_success &&
      dnnl_primitive_desc_create(&wpd, &wd, NULL, g.engine, fpd) == dnnl_success;

  if (ok && s->bf16)
    ok = jit_bf16_impl(fpd) && jit_bf16_impl(dpd) && jit_bf16_impl(wpd);
  if (ok) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &impl);
    e->impl = impl ? strdup(impl) : "oneDNN";
    /* Forward: src and weights in, dst out (overwritten), a zero bias when needed. */
    size_t f = 0;
    ok = input_slot(&e->f_src, &e->src_plain, query(fpd, dnnl_query_src_md), &f) &&
         input_slot(&e->f_w, &e->w_plain, query(fpd, dnnl_query_weights_md), &f) &&
         output_slot(&e->f_dst, &e->dst_plain, query(fpd, dnnl_query_dst_md), &f, 0);
    e->f_zero_bias = f;
    f += md_floats(&e->bias_md);
    e->f_floats = f;
    /* Backward: each primitive gets its own copy of diff_dst unless both want the same
     * layout (the usual case; the second reorder is then skipped at run time). */
    size_t b = 0;
    ok = ok &&
         input_slot(&e->b_dst_for_data, &e->dst_plain, query(dpd, dnnl_query_diff_dst_md),
                    &b) &&
         input_slot(&e->b_w, &e->w_plain, query(dpd, dnnl_query_weights_md), &b) &&
         output_slot(&e->b_dsrc, &e->src_plain, query(dpd, dnnl_query_diff_src_md), &b, 1) &&
         input_slot(&e->b_src, &e->src_plain, query(wpd, dnnl_query_src_md), &b) &&
         output_slot(&e->b_dw, &e->w_plain, query(wpd, dnnl_query_diff_weights_md), &b, 1);
    if (ok) {
      const dnnl_memory_desc_t *wdd = query(wpd, dnnl_query_diff_dst_md);
      e->share_dst = dnnl_memory_desc_equal(wdd, &e->b_dst_for_data.md);
      if (!e->share_dst)
        ok = input_slot(&e->b_dst_for_weights, &e->dst_plain, wdd, &b);
    }
    e->b_floats = b;
    ok = ok && make_primitive(&e->fwd, fpd) && make_primitive(&e->bwd_data, dpd) &&
         make_primitive(&e->bwd_weights, wpd);
  }
  pd_free(fpd);
  pd_free(dpd);
  pd_free(wpd);
  /* A shape oneDNN half-built stays in the table as "not taken"; the primitives it did
   * make are kept (reachable) rather than untangled, as this happens at most once per
   * shape and only if the library rejects one of the three passes. */
  return ok;
}

/* The table entry of a shape, built on first use; NULL when oneDNN does not take it.
 * A bfloat16 shape oneDNN has no fast kernel for is served in float32. (Alone, some 1×1
 * shapes ran slower in bfloat16 — 128→32 at 128²: 1.48 against 0.96 ms forward — but a
 * whole training step with every shape in bfloat16 measured faster than with only the
 * 3×3 ones: 0.78–1.03 against 0.88–1.17 s, side by side in three rounds.) */
static const Entry *lookup_exact(const EngConvShape *s);

static const Entry *
lookup(const EngConvShape *s)
{
  const Entry *e = s->bf16 ? lookup_exact(s) : NULL;
  if (!e) {
    EngConvShape f32 = *s;
    f32.bf16 = 0;
    e = lookup_exact(&f32);
  }
  return e;
}

static const Entry *
lookup_exact(const EngConvShape *s)
{
  pthread_once(&g.once, init_once);
  if (g.disabled)
    return NULL;
  /* oneDNN blocks channels by 16; with a single input or output channel (the network's
   * first and last convolutions) the blocked copies are mostly padding and it ran those
   * slower than im2col (1→32 3×3 at 512²: 10.4 against 8.0 ms forward per call in a
   * training step). */
  if (s->cin < 16 || s->cout < 16)
    return NULL;
  /* Its strided 1×1 convolutions (the shortcuts on the way down) also lost, backward
   * most (128→64 at 128²: 3.7 against 1.75 ms per call in a training step). */
  if (s->stride != 1)
    return NULL;
  const Entry *found = NULL;
  pthread_mutex_lock(&g.mu);
  for (size_t i = 0; i < g.n_entries; i++) {
    const EngConvShape *t = &g.entries[i].s;
    if (t->n == s->n && t->cin == s->cin && t->h == s->h && t->w == s->w &&
        t->cout == s->cout && t->k == s->k && t->stride == s->stride && t->bf16 == s->bf16) {
      found = &g.entries[i];
      break;
    }
  }
  if (!found && g.n_entries < MAX_SHAPES) {
    Entry *e = &g.entries[g.n_entries++];
    memset(e, 0, sizeof *e);
    e->s = *s;
    e->ok = build(e);
    found = e;
  }
  pthread_mutex_unlock(&g.mu);
  return found && found->ok ? found : NULL;
}

size_t
eng_conv_dnnl_workspace_floats(const EngConvShape *s, int with_backward)
{
  const Entry *e = lookup(s);
  if (!e)
    return 0;
  return with_backward && e->b_floats > e->f_floats ? e->b_floats : e->f_floats;
}

const char *
eng_conv_dnnl_impl(const EngConvShape *s)
{
  const Entry *e = lookup(s);
  return e ? e->impl : NULL;
}

/* ---- execution ------------------------------------------------------------------------ */

typedef struct {
  dnnl_stream_t stream;
  dnnl_memory_t mems[16];
  int n_mems;
  int ok;
} Call;

static dnnl_memory_t
mem(Call *c, const dnnl_memory_desc_t *md, const void *data)
{
  dnnl_memory_t m = NULL;
  if (!c->ok || c->n_mems == 16 ||
      dnnl_memory_create(&m, md, g.engine, (void *) (uintptr_t) data) != dnnl_success) {
    c->ok = 0;
    return NULL;
  }
  c->mems[c->n_mems++] = m;
  return m;
}

static void
run(Call *c, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args)
{
  if (c->ok && dnnl_primitive_execute(p, c->stream, nargs, args) != dnnl_success)
    c->ok = 0;
}

static void
reorder(Call *c, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  run(c, r, 2, args);
}

/* The primitive's view of an input: a blocked copy in the workspace, or the caller's own
 * buffer when no reorder is needed. */
static dnnl_memory_t
input(Call *c, const Slot *slot, const dnnl_memory_desc_t *plain, const float *data,
      float *workspace)
{
  if (slot->own_copy) {
    eng_layout_pack(workspace + slot->offset, data, &slot->layout, slot->bf16);
    return mem(c, &slot->md, workspace + slot->offset);
  }
  if (!slot->reorder)
    return mem(c, &slot->md, data);
  dnnl_memory_t from = mem(c, plain, data);
  dnnl_memory_t to = mem(c, &slot->md, workspace + slot->offset);
  if (to)
    reorder(c, slot->reorder, from, to);
  return to;
}

/* Copies a primitive's output back to the caller's plain buffer (adding into it when the
 * slot was built to accumulate). */
static void
output(Call *c, const Slot *slot, dnnl_memory_t blocked, const dnnl_memory_desc_t *plain,
       float *data, const float *workspace, int accumulate)
{
  if (!slot->own_copy) {
    reorder(c, slot->reorder, blocked, mem(c, plain, data));
    return;
  }
  /* the primitive must have finished writing the blocked copy */
  if (c->ok && dnnl_stream_wait(c->stream) != dnnl_success)
    c->ok = 0;
  if (c->ok)
    eng_layout_unpack(data, workspace + slot->offset, &slot->layout, accumulate);
}

static int
call_begin(Call *c)
{
  memset(c, 0, sizeof *c);
  /* oneDNN parallelizes over OpenMP; keep its team the size of the engine's pool. */
  omp_set_num_threads(eng_parallel_threads());
  c->ok = dnnl_stream_create(&c->stream, g.engine, dnnl_stream_default_flags) == dnnl_success;
  return c->ok;
}

static int
call_end(Call *c)
{
  if (c->stream) {
    if (dnnl_stream_wait(c->stream) != dnnl_success)
      c->ok = 0;
    dnnl_stream_destroy(c->stream);
  }
  for (int i = 0; i < c->n_mems; i++)
    dnnl_memory_destroy(c->mems[i]);
  return c->ok;
}

/* The shape's entry with a call begun on it, or NULL (nothing left open) when the caller
 * must use its own path: oneDNN does not take the shape, or no stream could be made. */
static const Entry *
begin(const EngConvShape *s, Call *c)
{
  const Entry *e = lookup(s);
  if (e && !call_begin(c)) {
    call_end(c);
    return NULL;
  }
  return e;
}

int
eng_conv_dnnl_forward(float *out, const float *in, const float *weight, const float *bias,
                      const EngConvShape *s, float *workspace)
{
  Call c;
  const Entry *e = begin(s, &c);
  if (!e)
    return 0;
  if (!bias) {
    float *zero = workspace + e->f_zero_bias;
    memset(zero, 0, s->cout * sizeof *zero);
    bias = zero;
  }
  dnnl_memory_t x = input(&c, &e->f_src, &e->src_plain, in, workspace);
  dnnl_memory_t w = input(&c, &e->f_w, &e->w_plain, weight, workspace);
  dnnl_memory_t b = mem(&c, &e->bias_md, bias);
  dnnl_memory_t y = mem(&c, &e->f_dst.md, workspace + e->f_dst.offset);
  dnnl_exec_arg_t args[4] = {
      {DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}};
  run(&c, e->fwd, 4, args);
  output(&c, &e->f_dst, y, &e->dst_plain, out, workspace, 0);
  /* A failure here is a library fault, not a shape it declined: nothing sensible is left
   * to fall back to after out may have been half written, so it is not hidden. */
  if (!call_end(&c))
    abort();
  return 1;
}

int
eng_conv_dnnl_backward(float *din, float *dweight, const float *dout, const float *in,
                       const float *weight, const EngConvShape *s, float *workspace)
{
  Call c;
  const Entry *e = begin(s, &c);
  if (!e)
    return 0;
  dnnl_memory_t dy = input(&c, &e->b_dst_for_data, &e->dst_plain, dout, workspace);
  if (din) {
    dnnl_memory_t w = input(&c, &e->b_w, &e->w_plain, weight, workspace);
    dnnl_memory_t dx = mem(&c, &e->b_dsrc.md, workspace + e->b_dsrc.offset);
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}};
    run(&c, e->bwd_data, 3, args);
    output(&c, &e->b_dsrc, dx, &e->src_plain, din, workspace, 1); /* din += */
  }
  if (dweight) {
    dnnl_memory_t x = input(&c, &e->b_src, &e->src_plain, in, workspace);
    dnnl_memory_t dyw = e->share_dst ? dy
                                     : input(&c, &e->b_dst_for_weights, &e->dst_plain,
                                             dout, workspace);
    dnnl_memory_t dw = mem(&c, &e->b_dw.md, workspace + e->b_dw.offset);
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dyw}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
    run(&c, e->bwd_weights, 3, args);
    output(&c, &e->b_dw, dw, &e->w_plain, dweight, workspace, 1); /* dweight += */
  }
  if (!call_end(&c))
    abort();
  return 1;
}
