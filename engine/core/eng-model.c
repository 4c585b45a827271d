/* eng-model.c — builds the residual FCN of engine/MODEL.md from its spec, owns the
 * parameter table, and runs it as a flat tape of layer ops (EngGraph).
 *
 * Construction is done twice with the same code: once to build the parameter table
 * (EngModel, size independent), once per input size to lay out activation buffers and
 * ops (EngGraph). The second pass looks parameters up by name, so the tape and the table
 * can never disagree. Residual sums are done in place (y += x): every op that writes a
 * sum target is one whose backward does not need its own output (conv, dropout, repeat),
 * which is what makes this safe. */
#include "eng-model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng-layers.h"
#include "eng-parallel.h"
#include "eng-rng.h"

/* ---- the model (parameters) ------------------------------------------------------------ */
struct EngModel {
  EngSpec spec;
  EngParam *params;
  size_t n_params, cap_params;
  char (*layer_names)[64];
  size_t n_layers, cap_layers;
  float *data;  /* all parameters and buffers, table order */
  float *grad;  /* same layout; running-stat slots stay zero */
  size_t total; /* floats in each arena */
  int conv_bf16; /* graphs made from now on convolve in bfloat16 (eng_model_set_conv_bf16) */
};

/* ---- the graph ------------------------------------------------------------------------- */
typedef enum { OP_CONV, OP_BN, OP_RELU, OP_MAXPOOL, OP_DECIMATE, OP_REPEAT, OP_DROPOUT, OP_ADD } OpKind;

typedef struct {
  size_t c, h, w;
  float *data; /* (n, c, h, w) */
  float *grad; /* same, or NULL if no gradient is needed */
  int needs_grad;
  int zeroed; /* per backward pass: grad cleared yet? */
  /* Training graphs do not keep a BN+ReLU output (a conv input) through the step: it is
   * recomputed from the BN input and saved statistics just before its backward, into
   * memory of its own lifetime. data_fwd / data_bwd are its two homes; data points at the
   * one in use. */
  int recompute;
  int bn_op;   /* the producing BN op, when recompute */
  int recomputed; /* in this backward pass (the two homes may coincide) */
  float *data_fwd, *data_bwd;
} Buf;

typedef struct {
  OpKind kind;
  int in, out;             /* buffer ids; OP_ADD: out += in */
  int pw, pb, prm, prv;    /* parameter ids (-1 when unused) */
  EngConvShape conv;
  float *mean, *invstd;    /* BN saved statistics (c) */
  uint8_t *mask;           /* dropout mask or max-pool argmax */
} Op;

struct EngGraph {
  EngModel *model;
  size_t n, h, w;
  int with_backward;
  Buf *bufs;
  size_t n_bufs, cap_bufs;
  Op *ops;
  size_t n_ops, cap_ops;
  int logits_buf;
  float *workspace;
  size_t workspace_floats;
  void *arena; /* one allocation holding activations, grads, saved stats, masks */
  size_t arena_bytes;
  atomic_int *cancel;
  void (*forward_hook)(void *data); /* eng_graph_set_forward_hook; may be NULL */
  void *forward_hook_data;
  EngMode last_mode;
  int have_forward;
  double macs;
  /* Optional per-op-kind timing (eng_graph_set_profiling): forward and backward seconds. */
  int profiling;
  double prof_fwd[8], prof_bwd[8];
};

/* The builder walks the architecture once; with model == NULL in graph it only records
 * parameters (model pass), otherwise it records ops and buffers (graph pass). */
typedef struct {
  EngModel *model;
  EngGraph *graph; /* NULL in the model pass */
  int fail;
  /* model pass bookkeeping */
  size_t offset;
  /* sizes tracked in both passes: current channels/height/width per buffer id */
} Builder;

static void *
grow(void *ptr, size_t *cap, size_t need, size_t elem)
{
  if (need <= *cap)
    return ptr;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need)
    ncap *= 2;
  void *p = realloc(ptr, ncap * elem);
  if (p)
    *cap = ncap;
  return p;
}

/* Names are "a.b" or "a.N". They are far shorter than the buffers (the deepest is
 * "down.3.9.conv3.running_mean"); checking snprintf's result keeps that a proof, not a
 * hope, and truncation would only shorten a name, which the lookups then miss loudly. */
static void
join_name(char *dst, size_t size, const char *a, const char *b)
{
  int n = b ? snprintf(dst, size, "%s.%s", a, b) : snprintf(dst, size, "%s", a);
  if (n < 0 || (size_t) n >= size)
    dst[size - 1] = 0;
}

static void
join_index(char *dst, size_t size, const char *a, int i)
{
  int n = snprintf(dst, size, "%s.%d", a, i);
  if (n < 0 || (size_t) n >= size)
    dst[size - 1] = 0;
}

/* ---- model pass helpers ---------------------------------------------------------------- */
static int
add_layer_name(EngModel *m, const char *name)
{
  char (*p)[64] = grow(m->layer_names, &m->cap_layers, m->n_layers + 1, sizeof *m->layer_names);
  if (!p)
    return -1;
  m->layer_names = p;
  join_name(m->layer_names[m->n_layers], 64, name, NULL);
  return (int) m->n_layers++;
}

static int
add_param(Builder *b, const char *layer, const char *suffix, EngParamKind kind, int layer_idx,
          int ndim, size_t d0, size_t d1, size_t d2, size_t d3)
{
  EngModel *m = b->model;
  EngParam *p = grow(m->params, &m->cap_params, m->n_params + 1, sizeof *m->params);
  if (!p) {
    b->fail = 1;
    return -1;
  }
  m->params = p;
  EngParam *e = &m->params[m->n_params];
  memset(e, 0, sizeof *e);
  join_name(e->name, sizeof e->name, layer, suffix);
  e->kind = kind;
  e->ndim = ndim;
  size_t dims[4] = { d0, d1, d2, d3 };
  e->count = 1;
  for (int i = 0; i < ndim; i++) {
    e->shape[i] = dims[i];
    e->count *= dims[i];
  }
  e->offset = b->offset;
  e->layer = layer_idx;
  e->trainable = kind != ENG_PARAM_BN_MEAN && kind != ENG_PARAM_BN_VAR;
  b->offset += e->count;
  return (int) m->n_params++;
}

static int
find_param_id(const EngModel *m, const char *layer, const char *suffix)
{
  char name[64];
  join_name(name, sizeof name, layer, suffix);
  for (size_t i = 0; i < m->n_params; i++)
    if (!strcmp(m->params[i].name, name))
      return (int) i;
  return -1;
}

/* ---- graph pass helpers ---------------------------------------------------------------- */
static int
new_buf(Builder *b, size_t c, size_t h, size_t w)
{
  EngGraph *g = b->graph;
  Buf *p = grow(g->bufs, &g->cap_bufs, g->n_bufs + 1, sizeof *g->bufs);
  if (!p) {
    b->fail = 1;
    return 0;
  }
  g->bufs = p;
  Buf *e = &g->bufs[g->n_bufs];
  memset(e, 0, sizeof *e);
  e->c = c;
  e->h = h;
  e->w = w;
  e->needs_grad = g->n_bufs > 0; /* buffer 0 is the network input */
  return (int) g->n_bufs++;
}

static Op *
new_op(Builder *b, OpKind kind, int in, int out)
{
  EngGraph *g = b->graph;
  Op *p = grow(g->ops, &g->cap_ops, g->n_ops + 1, sizeof *g->ops);
  if (!p) {
    b->fail = 1;
    return NULL;
  }
  g->ops = p;
  Op *op = &g->ops[g->n_ops++];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->in = in;
  op->out = out;
  op->pw = op->pb = op->prm = op->prv = -1;
  return op;
}

/* Channels / size of a buffer in either pass. In the model pass buffers are virtual: we
 * track them in a small side table of (c, h, w). */
typedef struct {
  size_t c, h, w;
} Dims;

typedef struct {
  Builder *b;
  Dims *dims; /* model pass only */
  size_t n_dims, cap_dims;
} Net;

static int
buf_new(Net *net, size_t c, size_t h, size_t w)
{
  if (net->b->graph)
    return new_buf(net->b, c, h, w);
  Dims *p = grow(net->dims, &net->cap_dims, net->n_dims + 1, sizeof *net->dims);
  if (!p) {
    net->b->fail = 1;
    return 0;
  }
  net->dims = p;
  net->dims[net->n_dims] = (Dims) { c, h, w };
  return (int) net->n_dims++;
}

static Dims
buf_dims(Net *net, int id)
{
  if (net->b->graph) {
    Buf *e = &net->b->graph->bufs[id];
    return (Dims) { e->c, e->h, e->w };
  }
  return net->dims[id];
}

/* ---- layers as builder calls ----------------------------------------------------------- */
static int
L_conv(Net *net, int in, size_t cout, int k, int stride, const char *name)
{
  Builder *b = net->b;
  if (b->fail)
    return in;
  Dims d = buf_dims(net, in);
  size_t ho = d.h / (size_t) stride, wo = d.w / (size_t) stride;
  int out = buf_new(net, cout, ho, wo);
  if (!b->graph) {
    int layer = add_layer_name(b->model, name);
    if (layer < 0) {
      b->fail = 1;
      return out;
    }
    add_param(b, name, "weight", ENG_PARAM_CONV_WEIGHT, layer, 4, cout, d.c, (size_t) k,
              (size_t) k);
    add_param(b, name, "bias", ENG_PARAM_CONV_BIAS, layer, 1, cout, 0, 0, 0);
    return out;
  }
  Op *op = new_op(b, OP_CONV, in, out);
  if (!op)
    return out;
  op->pw = find_param_id(b->model, name, "weight");
  op->pb = find_param_id(b->model, name, "bias");
  op->conv = (EngConvShape) { b->graph->n, d.c, d.h, d.w, cout, k, stride, b->model->conv_bf16 };
  b->graph->macs += (double) b->graph->n * (double) cout * (double) d.c * (double) (k * k) *
                    (double) ho * (double) wo;
  if (op->pw < 0 || op->pb < 0)
    b->fail = 1;
  return out;
}

/* BN followed by ReLU (pre-activation); ReLU alone when the spec has no batch norm. */
static int
L_bnrelu(Net *net, int in, const char *name)
{
  Builder *b = net->b;
  if (b->fail)
    return in;
  Dims d = buf_dims(net, in);
  int out = buf_new(net, d.c, d.h, d.w);
  int bn = b->model->spec.batchnorm;
  if (!b->graph) {
    if (bn) {
      int layer = add_layer_name(b->model, name);
      if (layer < 0) {
        b->fail = 1;
        return out;
      }
      add_param(b, name, "weight", ENG_PARAM_BN_GAMMA, layer, 1, d.c, 0, 0, 0);
      add_param(b, name, "bias", ENG_PARAM_BN_BETA, layer, 1, d.c, 0, 0, 0);
      add_param(b, name, "running_mean", ENG_PARAM_BN_MEAN, layer, 1, d.c, 0, 0, 0);
      add_param(b, name, "running_var", ENG_PARAM_BN_VAR, layer, 1, d.c, 0, 0, 0);
    }
    return out;
  }
  Op *op = new_op(b, bn ? OP_BN : OP_RELU, in, out);
  if (op && bn) {
    op->pw = find_param_id(b->model, name, "weight");
    op->pb = find_param_id(b->model, name, "bias");
    op->prm = find_param_id(b->model, name, "running_mean");
    op->prv = find_param_id(b->model, name, "running_var");
    if (op->pw < 0 || op->pb < 0 || op->prm < 0 || op->prv < 0)
      b->fail = 1;
  }
  return out;
}

static int
L_resize(Net *net, int in, OpKind kind)
{
  Builder *b = net->b;
  if (b->fail)
    return in;
  Dims d = buf_dims(net, in);
  int out = kind == OP_REPEAT ? buf_new(net, d.c, d.h * 2, d.w * 2)
                              : buf_new(net, d.c, d.h / 2, d.w / 2);
  if (b->graph)
    new_op(b, kind, in, out);
  return out;
}

static int
L_dropout(Net *net, int in)
{
  Builder *b = net->b;
  if (b->fail || b->model->spec.dropout <= 0.0f)
    return in;
  Dims d = buf_dims(net, in);
  int out = buf_new(net, d.c, d.h, d.w);
  if (b->graph)
    new_op(b, OP_DROPOUT, in, out);
  return out;
}

/* y += x (in place). */
static void
L_add(Net *net, int y, int x)
{
  if (net->b->fail || !net->b->graph)
    return;
  new_op(net->b, OP_ADD, x, y);
}

/* ---- blocks and stages ----------------------------------------------------------------- */
static int
block(Net *net, EngBlockType type, int x, size_t cout, size_t inner, int sub, int up,
      const char *prefix)
{
  char name[64];
  Dims d = buf_dims(net, x);
  int r;
  if (type == ENG_BLOCK_BOTTLENECK) {
    join_name(name, sizeof name, prefix, "bn1");
    r = L_bnrelu(net, x, name);
    join_name(name, sizeof name, prefix, "conv1");
    r = L_conv(net, r, inner, 1, sub ? 2 : 1, name);
    join_name(name, sizeof name, prefix, "bn2");
    r = L_bnrelu(net, r, name);
    join_name(name, sizeof name, prefix, "conv2");
    r = L_conv(net, r, inner, 3, 1, name);
    join_name(name, sizeof name, prefix, "bn3");
    r = L_bnrelu(net, r, name);
    join_name(name, sizeof name, prefix, "conv3");
    r = L_conv(net, r, cout, 1, 1, name);
  } else {
    int xp = sub ? L_resize(net, x, OP_MAXPOOL) : x;
    join_name(name, sizeof name, prefix, "bn1");
    r = L_bnrelu(net, xp, name);
    join_name(name, sizeof name, prefix, "conv1");
    r = L_conv(net, r, cout, 3, 1, name);
    if (type == ENG_BLOCK_BASIC) {
      join_name(name, sizeof name, prefix, "bn2");
      r = L_bnrelu(net, r, name);
      join_name(name, sizeof name, prefix, "conv2");
      r = L_conv(net, r, cout, 3, 1, name);
    }
  }
  r = L_dropout(net, r);
  /* An upsampling block adds its shortcut before the repetition: repeat(r) + repeat(s) =
   * repeat(r + s), and the sum at low resolution moves a quarter of the data. */
  if (net->b->model->spec.short_skip) {
    int s = x;
    if (sub)
      s = L_resize(net, s, OP_DECIMATE);
    if (d.c != cout) {
      join_name(name, sizeof name, prefix, "shortcut");
      s = L_conv(net, s, cout, 1, 1, name);
    }
    L_add(net, r, s);
  }
  if (up)
    r = L_resize(net, r, OP_REPEAT);
  return r;
}

static int
stage(Net *net, EngBlockType type, int x, int reps, size_t cout, size_t inner, int sub_first,
      int up_last, const char *prefix)
{
  char name[64];
  for (int i = 0; i < reps; i++) {
    join_index(name, sizeof name, prefix, i);
    x = block(net, type, x, cout, inner, sub_first && i == 0, up_last && i == reps - 1, name);
  }
  return x;
}

static void
long_skip(Net *net, int target, int source, int k)
{
  if (!net->b->model->spec.long_skip)
    return;
  char name[64];
  join_index(name, sizeof name, "long", k);
  Dims dt = buf_dims(net, target), ds = buf_dims(net, source);
  int s = source;
  if (ds.c != dt.c)
    s = L_conv(net, source, dt.c, 1, 1, name);
  L_add(net, target, s);
}

static size_t
level_inner(const EngSpec *s, int level)
{
  return (size_t) s->base_width << level;
}

/* Walks the architecture of engine/MODEL.md; returns the logits buffer. */
static int
build(Net *net, int input)
{
  const EngSpec *s = &net->b->model->spec;
  const int L = s->n_levels;
  size_t b = (size_t) s->base_width;
  size_t init_inner = s->init_block == ENG_BLOCK_BOTTLENECK ? b / 4 : b;
  char name[32];
  int D[ENG_MAX_LEVELS + 1];

  int P = L_conv(net, input, b, 3, 1, "pre");
  D[0] = stage(net, s->init_block, P, s->init_reps, b, init_inner, 1, 0, "down.0");
  for (int i = 0; i < L; i++) {
    join_index(name, sizeof name, "down", i + 1);
    D[i + 1] = stage(net, s->main_block, D[i], s->down_reps[i], (size_t) eng_spec_level_out(s, i),
                     level_inner(s, i), 1, 0, name);
  }
  int U = stage(net, s->main_block, D[L], s->across_reps, (size_t) eng_spec_level_out(s, L),
                level_inner(s, L), 1, 1, "across");
  long_skip(net, U, D[L], 0);
  for (int j = 0; j < L; j++) {
    int level = L - 1 - j;
    join_index(name, sizeof name, "up", j);
    U = stage(net, s->main_block, U, s->up_reps[j], (size_t) eng_spec_level_out(s, level),
              level_inner(s, level), 0, 1, name);
    long_skip(net, U, D[L - 1 - j], j + 1);
  }
  join_index(name, sizeof name, "up", L);
  U = stage(net, s->init_block, U, s->init_reps, b, init_inner, 0, 1, name);
  long_skip(net, U, P, L + 1);
  int a = L_bnrelu(net, U, "post.bn");
  a = L_conv(net, a, b, 3, 1, "post.conv");
  return L_conv(net, a, 1, 1, 1, "classifier");
}

/* ---- EngModel -------------------------------------------------------------------------- */
EngModel *
eng_model_new_zeroed(const EngSpec *spec, EngError *err)
{
  if (eng_spec_validate(spec, err) != ENG_OK)
    return NULL;
  EngModel *m = calloc(1, sizeof *m);
  if (!m) {
    eng_error_set(err, ENG_ERR_NOMEM, "out of memory creating the model");
    return NULL;
  }
  m->spec = *spec;
  Builder b = { .model = m };
  Net net = { .b = &b };
  int in = buf_new(&net, (size_t) spec->in_channels, 1024, 1024);
  build(&net, in);
  free(net.dims);
  m->total = b.offset;
  if (!b.fail) {
    m->data = calloc(m->total ? m->total : 1, sizeof(float));
    m->grad = calloc(m->total ? m->total : 1, sizeof(float));
  }
  if (b.fail || !m->data || !m->grad) {
    eng_model_free(m);
    eng_error_set(err, ENG_ERR_NOMEM, "out of memory allocating %zu parameters", b.offset);
    return NULL;
  }
  return m;
}

EngModel *
eng_model_new(const EngSpec *spec, uint64_t seed, EngError *err)
{
  EngModel *m = eng_model_new_zeroed(spec, err);
  if (!m)
    return NULL;
  /* He-normal weights in table order from one stream: reproducible from the seed. */
  EngRng rng;
  eng_rng_seed(&rng, seed);
  for (size_t i = 0; i < m->n_params; i++) {
    EngParam *p = &m->params[i];
    float *d = m->data + p->offset;
    switch (p->kind) {
    case ENG_PARAM_CONV_WEIGHT: {
      float std = sqrtf(2.0f / (float) (p->shape[1] * p->shape[2] * p->shape[3]));
      for (size_t j = 0; j < p->count; j++)
        d[j] = std * eng_rng_normal(&rng);
      break;
    }
    case ENG_PARAM_BN_GAMMA:
    case ENG_PARAM_BN_VAR:
      for (size_t j = 0; j < p->count; j++)
        d[j] = 1.0f;
      break;
    default:
      break; /* biases, beta and running mean start at zero */
    }
  }
  return m;
}

void
eng_model_free(EngModel *m)
{
  if (!m)
    return;
  free(m->params);
  free(m->layer_names);
  free(m->data);
  free(m->grad);
  free(m);
}

const EngSpec *
eng_model_spec(const EngModel *m)
{
  return &m->spec;
}

size_t
eng_model_n_params(const EngModel *m)
{
  return m->n_params;
}

const EngParam *
eng_model_param(const EngModel *m, size_t i)
{
  return i < m->n_params ? &m->params[i] : NULL;
}

const EngParam *
eng_model_find_param(const EngModel *m, const char *name)
{
  for (size_t i = 0; i < m->n_params; i++)
    if (!strcmp(m->params[i].name, name))
      return &m->params[i];
  return NULL;
}

float *
eng_model_param_data(EngModel *m, size_t i)
{
  return m->data + m->params[i].offset;
}

float *
eng_model_param_grad(EngModel *m, size_t i)
{
  return m->grad + m->params[i].offset;
}

float *
eng_model_params_arena(EngModel *m, size_t *count)
{
  if (count)
    *count = m->total;
  return m->data;
}

const float *
eng_model_params_const(const EngModel *m, size_t *count)
{
  if (count)
    *count = m->total;
  return m->data;
}

float *
eng_model_grads_arena(EngModel *m, size_t *count)
{
  if (count)
    *count = m->total;
  return m->grad;
}

size_t
eng_model_count_trainable(const EngModel *m)
{
  size_t n = 0;
  for (size_t i = 0; i < m->n_params; i++)
    if (m->params[i].trainable)
      n += m->params[i].count;
  return n;
}

void
eng_model_zero_grad(EngModel *m)
{
  memset(m->grad, 0, m->total * sizeof(float));
}

size_t
eng_model_n_layers(const EngModel *m)
{
  return m->n_layers;
}

const char *
eng_model_layer_name(const EngModel *m, size_t layer)
{
  return layer < m->n_layers ? m->layer_names[layer] : NULL;
}

void
eng_model_set_bn_momentum(EngModel *m, float momentum)
{
  m->spec.bn_momentum = momentum;
}

void
eng_model_set_dropout(EngModel *m, float rate)
{
  m->spec.dropout = rate;
}

void
eng_model_set_conv_bf16(EngModel *m, int on)
{
  m->conv_bf16 = on != 0;
}

int
eng_model_conv_bf16(const EngModel *m)
{
  return m->conv_bf16;
}

EngStatus
eng_model_copy_params(EngModel *dst, const EngModel *src, EngError *err)
{
  if (dst->total != src->total || dst->n_params != src->n_params)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "cannot copy parameters between models of different specs");
  memcpy(dst->data, src->data, src->total * sizeof(float));
  return ENG_OK;
}

/* A BN+ReLU output read only by convolutions is cheap to recompute and expensive to keep
 * (it is as large as the BN input): mark it for recomputation in backward. */
static void
mark_recomputable(EngGraph *g)
{
  for (size_t k = 0; k < g->n_ops; k++) {
    const Op *op = &g->ops[k];
    if (op->kind != OP_BN)
      continue;
    int only_convs = 1;
    for (size_t j = 0; j < g->n_ops && only_convs; j++) {
      const Op *o = &g->ops[j];
      if (j != k && (o->in == op->out || o->out == op->out) && o->kind != OP_CONV)
        only_convs = 0;
      if (o->kind == OP_CONV && o->out == op->out)
        only_convs = 0;
    }
    if (only_convs && op->out != g->logits_buf) {
      g->bufs[op->out].recompute = 1;
      g->bufs[op->out].bn_op = (int) k;
    }
  }
}

/* ---- memory planning ------------------------------------------------------------------ */
static size_t
align_up(size_t x)
{
  return (x + 63) & ~(size_t) 63;
}

/* A buffer's data or gradient with the time span (in op steps) it must survive. */
typedef struct {
  size_t buf;
  int is_grad; /* 0 data, 1 gradient, 2 recomputed data in backward */
  long start, end; /* inclusive */
  size_t size;     /* bytes, aligned; 0 = not placed */
  size_t offset;   /* into the pooled region */
} Interval;

static int
cmp_interval(const void *a, const void *b)
{
  const Interval *x = a, *y = b;
  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  return x->size > y->size ? -1 : x->size < y->size; /* larger first */
}

static int
cmp_offset(const void *a, const void *b)
{
  const Interval *const *x = a, *const *y = b;
  return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

/* Lifetimes: forward time runs 0..n_ops-1 (op index); backward time runs n_ops..2*n_ops-1
 * with op k at 2*n_ops-1-k. Training keeps every activation for the whole step (backward
 * reads them); inference lets an activation die after its last reader. A gradient lives
 * from the backward of its buffer's last reader to the backward of its first writer.
 * Placement is first-fit by start time over the live set: optimal enough for a chain. */
static Interval *
plan_memory(EngGraph *g, size_t *pooled)
{
  size_t nb = g->n_bufs;
  long nops = (long) g->n_ops;
  long *first = malloc(nb * sizeof(long)), *last = malloc(nb * sizeof(long));
  Interval *iv = calloc(3 * nb, sizeof *iv);
  Interval **live = malloc(3 * nb * sizeof *live);
  if (!first || !last || !iv || !live) {
    free(first);
    free(last);
    free(iv);
    free(live);
    return NULL;
  }
  for (size_t b = 0; b < nb; b++) {
    first[b] = nops;
    last[b] = -1;
  }
  for (long k = 0; k < nops; k++) {
    const Op *op = &g->ops[k];
    int ids[2] = { op->in, op->out };
    for (int j = 0; j < 2; j++) {
      if (k < first[ids[j]])
        first[ids[j]] = k;
      if (k > last[ids[j]])
        last[ids[j]] = k;
    }
  }
  first[0] = -1;                  /* the input is copied in before the first op */
  last[g->logits_buf] = 2 * nops; /* the logits are read after the forward */
  /* Which data must survive into backward: conv and BN inputs, BN and ReLU outputs. */
  char *keep = calloc(nb, 1);
  if (!keep) {
    free(first);
    free(last);
    free(iv);
    free(live);
    return NULL;
  }
  for (long k = 0; k < nops; k++) {
    const Op *op = &g->ops[k];
    if (op->kind == OP_CONV || op->kind == OP_BN)
      keep[op->in] = 1;
    if (op->kind == OP_BN || op->kind == OP_RELU)
      keep[op->out] = 1;
  }
  size_t n = 0;
  for (size_t b = 0; b < nb; b++) {
    Buf *e = &g->bufs[b];
    size_t bytes = align_up(g->n * e->c * e->h * e->w * sizeof(float));
    Interval a = { .buf = b, .size = bytes, .start = first[b], .end = last[b] };
    if (g->with_backward && e->recompute) {
      Interval r = { .buf = b, .is_grad = 2, .size = bytes };
      r.start = 2 * nops - 1 - last[b];
      r.end = 2 * nops - 1 - first[b];
      iv[n++] = r;
    } else if (g->with_backward && keep[b]) {
      a.start = -1;
      a.end = 2 * nops;
    }
    iv[n++] = a;
    if (g->with_backward && e->needs_grad) {
      Interval d = { .buf = b, .is_grad = 1, .size = bytes };
      d.start = b == (size_t) g->logits_buf ? nops - 1 : 2 * nops - 1 - last[b];
      d.end = 2 * nops - 1 - first[b];
      iv[n++] = d;
    }
  }
  free(keep);
  qsort(iv, n, sizeof *iv, cmp_interval);
  size_t top = 0;
  for (size_t i = 0; i < n; i++) {
    size_t nlive = 0;
    for (size_t j = 0; j < i; j++)
      if (iv[j].end >= iv[i].start)
        live[nlive++] = &iv[j];
    qsort(live, nlive, sizeof *live, cmp_offset);
    size_t at = 0;
    for (size_t j = 0; j < nlive; j++) {
      if (live[j]->offset >= at + iv[i].size)
        break;
      size_t endj = live[j]->offset + live[j]->size;
      if (endj > at)
        at = endj;
    }
    iv[i].offset = at;
    if (at + iv[i].size > top)
      top = at + iv[i].size;
  }
  /* The plan is cheap to prove (pairs of ~2000 intervals): two lifetimes that meet must
   * not share a byte. A violation is a bug in the planner; refuse the graph. */
  size_t conflicts = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      int meet = iv[i].start <= iv[j].end && iv[j].start <= iv[i].end;
      int share = iv[i].offset < iv[j].offset + iv[j].size &&
                  iv[j].offset < iv[i].offset + iv[i].size;
      conflicts += (size_t) (meet && share);
    }
  if (conflicts) {
    free(iv);
    iv = NULL;
  }
  free(first);
  free(last);
  free(live);
  *pooled = top;
  return iv;
}

/* ---- EngGraph -------------------------------------------------------------------------- */
EngGraph *
eng_graph_new(EngModel *model, size_t n, size_t h, size_t w, int with_backward, EngError *err)
{
  const EngSpec *s = &model->spec;
  size_t mult = (size_t) eng_spec_size_multiple(s);
  if (n < 1 || h < mult || w < mult || h % mult || w % mult) {
    eng_error_set(err, ENG_ERR_INVALID,
                  "input size %zux%zu (batch %zu) does not fit this model: height and width "
                  "must be positive multiples of %zu",
                  h, w, n, mult);
    return NULL;
  }
  EngGraph *g = calloc(1, sizeof *g);
  if (!g) {
    eng_error_set(err, ENG_ERR_NOMEM, "out of memory");
    return NULL;
  }
  g->model = model;
  g->n = n;
  g->h = h;
  g->w = w;
  g->with_backward = with_backward;
  Builder b = { .model = model, .graph = g };
  Net net = { .b = &b };
  int in = buf_new(&net, (size_t) s->in_channels, h, w);
  g->logits_buf = build(&net, in);
  if (b.fail) {
    eng_graph_free(g);
    eng_error_set(err, ENG_ERR_NOMEM, "out of memory planning the network");
    return NULL;
  }

  /* Lay out one arena: BN statistics, masks and workspace first, then the pooled region
   * where activations (inference) and activation gradients (training) share memory
   * between buffers whose lifetimes do not overlap. */
  size_t fixed = 0;
  for (size_t i = 0; i < g->n_ops; i++) {
    Op *op = &g->ops[i];
    Buf *in_b = &g->bufs[op->in];
    if (op->kind == OP_BN)
      fixed += 2 * align_up(in_b->c * sizeof(float));
    if (op->kind == OP_DROPOUT)
      fixed += align_up(n * in_b->c * in_b->h * in_b->w);
    if (op->kind == OP_MAXPOOL)
      fixed += align_up(n * in_b->c * in_b->h * in_b->w / 4);
    if (op->kind == OP_CONV) {
      size_t ws = with_backward ? eng_conv2d_workspace_floats(&op->conv)
                                : eng_conv2d_forward_workspace_floats(&op->conv);
      if (ws > g->workspace_floats)
        g->workspace_floats = ws;
    }
  }
  fixed += align_up(g->workspace_floats * sizeof(float));
  if (with_backward)
    mark_recomputable(g);
  size_t pooled = 0;
  Interval *iv = plan_memory(g, &pooled);
  if (!iv) {
    eng_error_set(err, ENG_ERR_NOMEM,
                  "out of memory planning the network (or an internal error: the memory "
                  "plan failed its overlap check)");
    eng_graph_free(g);
    return NULL;
  }
  size_t bytes = fixed + pooled;
  g->arena_bytes = bytes;
  g->arena = aligned_alloc(64, bytes ? bytes : 64);
  if (!g->arena) {
    eng_error_set(err, ENG_ERR_NOMEM,
                  "out of memory: this network needs %.1f MiB for a %zux%zu input (batch %zu)",
                  (double) bytes / 1048576.0, h, w, n);
    free(iv);
    eng_graph_free(g);
    return NULL;
  }
  char *p = g->arena;
  for (size_t i = 0; i < g->n_ops; i++) {
    Op *op = &g->ops[i];
    Buf *in_b = &g->bufs[op->in];
    if (op->kind == OP_BN) {
      op->mean = (float *) p;
      p += align_up(in_b->c * sizeof(float));
      op->invstd = (float *) p;
      p += align_up(in_b->c * sizeof(float));
    }
    if (op->kind == OP_DROPOUT) {
      op->mask = (uint8_t *) p;
      p += align_up(n * in_b->c * in_b->h * in_b->w);
    }
    if (op->kind == OP_MAXPOOL) {
      op->mask = (uint8_t *) p;
      p += align_up(n * in_b->c * in_b->h * in_b->w / 4);
    }
  }
  g->workspace = (float *) p;
  p += align_up(g->workspace_floats * sizeof(float));
  for (size_t k = 0; k < 3 * g->n_bufs; k++) {
    if (!iv[k].size)
      continue;
    Buf *e = &g->bufs[iv[k].buf];
    float *at = (float *) (p + iv[k].offset);
    if (iv[k].is_grad == 1)
      e->grad = at;
    else if (iv[k].is_grad == 2)
      e->data_bwd = at;
    else
      e->data = e->data_fwd = at;
  }
  free(iv);
  return g;
}

void
eng_graph_free(EngGraph *g)
{
  if (!g)
    return;
  free(g->bufs);
  free(g->ops);
  free(g->arena);
  free(g);
}

void
eng_graph_set_cancel(EngGraph *g, atomic_int *cancel)
{
  g->cancel = cancel;
}

void
eng_graph_set_forward_hook(EngGraph *g, void (*fn)(void *data), void *data)
{
  g->forward_hook = fn;
  g->forward_hook_data = data;
}

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static size_t
buf_count(const EngGraph *g, const Buf *e)
{
  return g->n * e->c * e->h * e->w;
}

static int
cancelled(const EngGraph *g)
{
  return g->cancel && atomic_load_explicit(g->cancel, memory_order_relaxed);
}

EngStatus
eng_graph_forward(EngGraph *g, const float *input, EngMode mode, uint64_t seed)
{
  EngModel *m = g->model;
  const EngSpec *s = &m->spec;
  for (size_t b = 0; b < g->n_bufs; b++)
    if (g->bufs[b].recompute)
      g->bufs[b].data = g->bufs[b].data_fwd;
  Buf *in0 = &g->bufs[0];
  memcpy(in0->data, input, buf_count(g, in0) * sizeof(float));
  g->have_forward = 0;
  for (size_t i = 0; i < g->n_ops; i++) {
    if (cancelled(g))
      return ENG_ERR_CANCELLED;
    Op *op = &g->ops[i];
    Buf *bi = &g->bufs[op->in], *bo = &g->bufs[op->out];
    size_t count = buf_count(g, bi);
    double t0 = g->profiling ? now_s() : 0;
    switch (op->kind) {
    case OP_CONV:
      eng_conv2d_forward(bo->data, bi->data, m->data + m->params[op->pw].offset,
                         m->data + m->params[op->pb].offset, &op->conv, g->workspace);
      break;
    case OP_BN: {
      EngBnShape shape = { g->n, bi->c, bi->h * bi->w };
      const float *gamma = m->data + m->params[op->pw].offset;
      const float *beta = m->data + m->params[op->pb].offset;
      float *rm = m->data + m->params[op->prm].offset;
      float *rv = m->data + m->params[op->prv].offset;
      if (mode == ENG_MODE_TRAIN)
        eng_bn_forward_train(bo->data, op->mean, op->invstd, rm, rv, bi->data, gamma, beta,
                             &shape, s->bn_eps, s->bn_momentum, 1);
      else
        eng_bn_forward_infer(bo->data, bi->data, gamma, beta, rm, rv, &shape, s->bn_eps, 1);
      break;
    }
    case OP_RELU:
      eng_relu_forward(bo->data, bi->data, count);
      break;
    case OP_MAXPOOL:
      eng_maxpool2_forward(bo->data, op->mask, bi->data, g->n * bi->c, bi->h, bi->w);
      break;
    case OP_DECIMATE:
      eng_decimate2_forward(bo->data, bi->data, g->n * bi->c, bi->h, bi->w);
      break;
    case OP_REPEAT:
      eng_repeat2_forward(bo->data, bi->data, g->n * bi->c, bi->h, bi->w);
      break;
    case OP_DROPOUT:
      if (mode == ENG_MODE_INFER) {
        memcpy(bo->data, bi->data, count * sizeof(float));
        memset(op->mask, 1, count);
      } else {
        eng_dropout_forward(bo->data, op->mask, bi->data, count, s->dropout,
                            seed * 0x9E3779B97F4A7C15ULL + i);
      }
      break;
    case OP_ADD:
      eng_add_inplace(bo->data, bi->data, count);
      break;
    }
    if (g->profiling)
      g->prof_fwd[op->kind] += now_s() - t0;
  }
  g->last_mode = mode;
  g->have_forward = 1;
  if (g->forward_hook)
    g->forward_hook(g->forward_hook_data);
  return ENG_OK;
}

const float *
eng_graph_logits(const EngGraph *g)
{
  return g->bufs[g->logits_buf].data;
}

/* Gradients accumulate; clear a buffer's gradient the first time backward reaches it. */
static void
touch_grad(EngGraph *g, Buf *e)
{
  if (e->grad && !e->zeroed) {
    memset(e->grad, 0, buf_count(g, e) * sizeof(float));
    e->zeroed = 1;
  }
}

/* Rebuilds a BN+ReLU output in its backward home from the BN input and the batch
 * statistics saved by the forward (no running-statistics update). */
typedef struct {
  const float *in, *mean, *invstd, *gamma, *beta;
  float *out;
  size_t c, hw;
} RecomputeCtx;

static void
recompute_range(void *vctx, size_t begin, size_t end)
{
  const RecomputeCtx *r = vctx;
  for (size_t plane = begin; plane < end; plane++) {
    size_t ch = plane % r->c;
    float scale = r->invstd[ch] * r->gamma[ch];
    float shift = r->beta[ch] - r->mean[ch] * scale;
    const float *x = r->in + plane * r->hw;
    float *y = r->out + plane * r->hw;
    for (size_t i = 0; i < r->hw; i++) {
      float v = x[i] * scale + shift;
      y[i] = v > 0.0f ? v : 0.0f;
    }
  }
}

static void
recompute_bn(EngGraph *g, Buf *b)
{
  const Op *op = &g->ops[b->bn_op];
  const Buf *in = &g->bufs[op->in];
  const EngModel *m = g->model;
  RecomputeCtx r = { in->data, op->mean, op->invstd, m->data + m->params[op->pw].offset,
                     m->data + m->params[op->pb].offset, b->data_bwd, in->c, in->h * in->w };
  eng_parallel_for(g->n * in->c, 4, recompute_range, &r);
  b->data = b->data_bwd;
  b->recomputed = 1;
}

EngStatus
eng_graph_backward(EngGraph *g, const float *dlogits)
{
  if (!g->with_backward || !g->have_forward || g->last_mode != ENG_MODE_TRAIN)
    return ENG_ERR_INVALID;
  EngModel *m = g->model;
  for (size_t i = 0; i < g->n_bufs; i++) {
    g->bufs[i].zeroed = 0;
    g->bufs[i].recomputed = 0;
  }
  Buf *lb = &g->bufs[g->logits_buf];
  memcpy(lb->grad, dlogits, buf_count(g, lb) * sizeof(float));
  lb->zeroed = 1;
  for (size_t k = g->n_ops; k-- > 0;) {
    if (cancelled(g))
      return ENG_ERR_CANCELLED;
    Op *op = &g->ops[k];
    Buf *bi = &g->bufs[op->in], *bo = &g->bufs[op->out];
    touch_grad(g, bi);
    touch_grad(g, bo); /* an output nobody consumed has zero gradient */
    size_t count = buf_count(g, bi);
    double t0 = g->profiling ? now_s() : 0;
    if (op->kind == OP_CONV && bi->recompute && !bi->recomputed)
      recompute_bn(g, bi);
    switch (op->kind) {
    case OP_CONV:
      eng_conv2d_backward(bi->grad, m->grad + m->params[op->pw].offset,
                          m->grad + m->params[op->pb].offset, bo->grad, bi->data,
                          m->data + m->params[op->pw].offset, &op->conv, g->workspace);
      break;
    case OP_BN: {
      EngBnShape shape = { g->n, bi->c, bi->h * bi->w };
      eng_bn_backward(bi->grad, m->grad + m->params[op->pw].offset,
                      m->grad + m->params[op->pb].offset, bo->grad, bo->data, bi->data, op->mean,
                      op->invstd, m->data + m->params[op->pw].offset, &shape, 1);
      break;
    }
    case OP_RELU:
      if (bi->grad)
        eng_relu_backward(bi->grad, bo->grad, bo->data, count);
      break;
    case OP_MAXPOOL:
      if (bi->grad)
        eng_maxpool2_backward(bi->grad, bo->grad, op->mask, g->n * bi->c, bi->h, bi->w);
      break;
    case OP_DECIMATE:
      if (bi->grad)
        eng_decimate2_backward(bi->grad, bo->grad, g->n * bi->c, bi->h, bi->w);
      break;
    case OP_REPEAT:
      if (bi->grad)
        eng_repeat2_backward(bi->grad, bo->grad, g->n * bi->c, bi->h, bi->w);
      break;
    case OP_DROPOUT:
      if (bi->grad)
        eng_dropout_backward(bi->grad, bo->grad, op->mask, count, m->spec.dropout);
      break;
    case OP_ADD:
      if (bi->grad)
        eng_add_inplace(bi->grad, bo->grad, count);
      break;
    }
    if (g->profiling)
      g->prof_bwd[op->kind] += now_s() - t0;
  }
  return ENG_OK;
}

void
eng_graph_set_profiling(EngGraph *g, int on)
{
  g->profiling = on;
  memset(g->prof_fwd, 0, sizeof g->prof_fwd);
  memset(g->prof_bwd, 0, sizeof g->prof_bwd);
}

void
eng_graph_profile_format(const EngGraph *g, char *buf, size_t size)
{
  static const char *names[8] = { "conv", "bn_relu", "relu", "maxpool", "decimate", "repeat",
                                  "dropout", "add" };
  size_t used = 0;
  buf[0] = 0;
  for (int k = 0; k < 8 && used < size; k++)
    used += (size_t) snprintf(buf + used, size - used, "profile_%s_fwd_s %.4f\nprofile_%s_bwd_s %.4f\n",
                              names[k], g->prof_fwd[k], names[k], g->prof_bwd[k]);
}

size_t
eng_graph_bytes(const EngGraph *g)
{
  return g->arena_bytes;
}

void
eng_graph_size(const EngGraph *g, size_t *n, size_t *h, size_t *w)
{
  *n = g->n;
  *h = g->h;
  *w = g->w;
}

const EngModel *
eng_graph_model(const EngGraph *g)
{
  return g->model;
}

size_t
eng_graph_output_count(const EngGraph *g)
{
  return g->n * g->h * g->w;
}

double
eng_graph_conv_macs(const EngGraph *g)
{
  return g->macs;
}
