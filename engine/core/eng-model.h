/* eng-model.h — the residual FCN: parameters (EngModel) and an execution plan for one
 * input size (EngGraph), as defined in engine/MODEL.md.
 *
 * Ownership: an EngModel owns its spec copy and three arenas — parameters (weights, BN
 * running statistics), gradients, and nothing else; the optimizer keeps its own state.
 * An EngGraph borrows its model (the model must outlive it) and owns the activation,
 * activation-gradient and workspace arenas, sized once at creation: no allocation
 * happens inside forward or backward. The parameter table (EngParam) is the single list
 * that drives allocation, the optimizer, checkpoint I/O, update statistics and tests. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "eng-spec.h"
#include "eng-status.h"

typedef enum {
  ENG_PARAM_CONV_WEIGHT, /* (cout, cin, k, k): the only kind with weight decay */
  ENG_PARAM_CONV_BIAS,   /* (cout) */
  ENG_PARAM_BN_GAMMA,    /* (c) */
  ENG_PARAM_BN_BETA,     /* (c) */
  ENG_PARAM_BN_MEAN,     /* (c) running mean: a buffer, not trained */
  ENG_PARAM_BN_VAR,      /* (c) running variance: a buffer, not trained */
} EngParamKind;

typedef struct {
  char name[64];      /* PyTorch state_dict style, e.g. "down.1.0.conv2.weight" */
  EngParamKind kind;
  int ndim;
  size_t shape[4];
  size_t count;
  size_t offset;      /* into the model's parameter / gradient arenas */
  int layer;          /* index of the layer (conv or BN) it belongs to, input to output */
  int trainable;
} EngParam;

typedef struct EngModel EngModel;
typedef struct EngGraph EngGraph;

typedef enum {
  ENG_MODE_TRAIN, /* batch statistics, dropout on; saves what backward needs */
  ENG_MODE_INFER, /* running statistics, dropout off */
  ENG_MODE_MC,    /* running statistics, dropout on (Monte-Carlo sampling) */
} EngMode;

/* Builds the model with He-normal weights from `seed`. Returns NULL and fills err on an
 * invalid spec or allocation failure. Free with eng_model_free. */
EngModel *eng_model_new(const EngSpec *spec, uint64_t seed, EngError *err);
/* The same with every parameter zero (BN variances too): for weights about to be loaded,
 * where drawing 12M normal numbers first took three quarters of a model file's load. */
EngModel *eng_model_new_zeroed(const EngSpec *spec, EngError *err);
void eng_model_free(EngModel *model);

const EngSpec *eng_model_spec(const EngModel *model);
size_t eng_model_n_params(const EngModel *model);           /* entries in the table */
const EngParam *eng_model_param(const EngModel *model, size_t i);
const EngParam *eng_model_find_param(const EngModel *model, const char *name);
/* Borrowed pointers into the arenas (valid while the model lives). */
float *eng_model_param_data(EngModel *model, size_t i);
float *eng_model_param_grad(EngModel *model, size_t i);
float *eng_model_params_arena(EngModel *model, size_t *count);
float *eng_model_grads_arena(EngModel *model, size_t *count);
const float *eng_model_params_const(const EngModel *model, size_t *count);
/* Trainable scalars (conv weights and biases, BN scale and shift). */
size_t eng_model_count_trainable(const EngModel *model);
void eng_model_zero_grad(EngModel *model);
/* Names of layers (conv or BN), input to output, for update statistics. */
size_t eng_model_n_layers(const EngModel *model);
const char *eng_model_layer_name(const EngModel *model, size_t layer);
/* Overrides the spec's BN momentum or dropout rate for the forwards that follow (BN
 * recalibration runs training-mode forwards with momentum k/(k+1) and no dropout).
 * The caller restores the values before saving the model. */
void eng_model_set_bn_momentum(EngModel *model, float momentum);
void eng_model_set_dropout(EngModel *model, float rate);
/* Convolutions of the graphs made after this call use bfloat16 operands with float32
 * sums where the CPU has fast kernels for it (EngConvShape.bf16; 1.3× per training step
 * here, README Performance), float32 otherwise. Off by default; graphs already made keep
 * their mode. A run-time setting, not part of the spec or of saved models. */
void eng_model_set_conv_bf16(EngModel *model, int on);
int eng_model_conv_bf16(const EngModel *model);
/* Copies all parameters and buffers from src (same spec) into dst. */
EngStatus eng_model_copy_params(EngModel *dst, const EngModel *src, EngError *err);

/* ---- execution plan ------------------------------------------------------------------ */
/* A plan for inputs (n, in_channels, h, w); h and w multiples of
 * eng_spec_size_multiple(). with_backward = 0 allocates only what inference needs. */
EngGraph *eng_graph_new(EngModel *model, size_t n, size_t h, size_t w, int with_backward,
                        EngError *err);
void eng_graph_free(EngGraph *graph);

/* Optional cancel flag, polled between layers; forward/backward then return
 * ENG_ERR_CANCELLED. Borrowed: must outlive the graph or be reset to NULL. */
void eng_graph_set_cancel(EngGraph *graph, atomic_int *cancel);
/* Optional hook called on the forwarding thread after every completed forward pass (the
 * progress of long predictions: see eng_predict_tiled_passes); fn NULL removes it. data is
 * borrowed, like the cancel flag. */
void eng_graph_set_forward_hook(EngGraph *graph, void (*fn)(void *data), void *data);

/* input: (n, in_channels, h, w), copied in. The dropout masks derive from seed. */
EngStatus eng_graph_forward(EngGraph *graph, const float *input, EngMode mode, uint64_t seed);
/* Logits (n, 1, h, w) of the last forward; borrowed. */
const float *eng_graph_logits(const EngGraph *graph);
/* Accumulates parameter gradients into the model's gradient arena for the last forward,
 * which must have been ENG_MODE_TRAIN. dlogits: (n, 1, h, w). */
EngStatus eng_graph_backward(EngGraph *graph, const float *dlogits);

size_t eng_graph_bytes(const EngGraph *graph);   /* arenas owned by the graph */
size_t eng_graph_output_count(const EngGraph *graph); /* n*h*w */
void eng_graph_size(const EngGraph *graph, size_t *n, size_t *h, size_t *w);
const EngModel *eng_graph_model(const EngGraph *graph); /* the model it was built for */
/* Accumulates time per op kind from now on (resets the totals); for benchmarks. */
void eng_graph_set_profiling(EngGraph *graph, int on);
/* "profile_<kind>_{fwd,bwd}_s SECONDS" lines, totals since profiling was switched on. */
void eng_graph_profile_format(const EngGraph *graph, char *buf, size_t size);
/* Multiply-accumulates of the convolutions in one forward (×2 = FLOPs; backward ≈ 2×). */
double eng_graph_conv_macs(const EngGraph *graph);
