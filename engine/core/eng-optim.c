/* eng-optim.c — RMSprop over the parameter table: one flat loop per parameter, split
 * across threads (the update is memory-bound). */
#include "eng-optim.h"

#include <math.h>
#include <stdlib.h>

#include "eng-parallel.h"

struct EngRmsprop {
  EngRmspropConfig cfg;
  float *v;
  size_t count;
};

void
eng_rmsprop_default(EngRmspropConfig *cfg)
{
  cfg->lr = 1e-3f;
  cfg->rho = 0.9f;
  cfg->eps = 1e-7f;
  cfg->weight_decay = 1e-3f;
}

EngRmsprop *
eng_rmsprop_new(const EngModel *model, const EngRmspropConfig *cfg, EngError *err)
{
  EngRmsprop *o = calloc(1, sizeof *o);
  size_t count;
  eng_model_params_const(model, &count);
  if (o)
    o->v = calloc(count ? count : 1, sizeof(float));
  if (!o || !o->v) {
    free(o);
    eng_error_set(err, ENG_ERR_NOMEM, "out of memory for the optimizer state");
    return NULL;
  }
  o->cfg = *cfg;
  o->count = count;
  return o;
}

void
eng_rmsprop_free(EngRmsprop *o)
{
  if (!o)
    return;
  free(o->v);
  free(o);
}

void
eng_rmsprop_set_lr(EngRmsprop *o, float lr)
{
  o->cfg.lr = lr;
}

float
eng_rmsprop_lr(const EngRmsprop *o)
{
  return o->cfg.lr;
}

float *
eng_rmsprop_state(EngRmsprop *o, size_t *count)
{
  if (count)
    *count = o->count;
  return o->v;
}

typedef struct {
  const EngRmspropConfig *cfg;
  float *w, *g, *v;
  float wd;
} StepCtx;

static void
step_range(void *ctx, size_t b, size_t e)
{
  StepCtx *c = ctx;
  const float lr = c->cfg->lr, rho = c->cfg->rho, eps = c->cfg->eps, wd = c->wd;
  for (size_t i = b; i < e; i++) {
    float g = c->g[i] + wd * c->w[i];
    float v = rho * c->v[i] + (1.0f - rho) * g * g;
    c->v[i] = v;
    c->w[i] -= lr * g / (sqrtf(v) + eps);
  }
}

EngStatus
eng_rmsprop_step(EngRmsprop *o, EngModel *model, EngError *err)
{
  size_t n = eng_model_n_params(model);
  float *w = eng_model_params_arena(model, NULL);
  float *g = eng_model_grads_arena(model, NULL);
  for (size_t i = 0; i < n; i++) {
    const EngParam *p = eng_model_param(model, i);
    if (!p->trainable)
      continue;
    const float *gp = g + p->offset;
    for (size_t j = 0; j < p->count; j++)
      if (!isfinite(gp[j]))
        return eng_error_set(err, ENG_ERR_NUMERIC,
                             "gradient of %s is not finite (element %zu); step skipped",
                             p->name, j);
  }
  for (size_t i = 0; i < n; i++) {
    const EngParam *p = eng_model_param(model, i);
    if (!p->trainable)
      continue;
    StepCtx c = { &o->cfg, w + p->offset, g + p->offset, o->v + p->offset,
                  p->kind == ENG_PARAM_CONV_WEIGHT ? o->cfg.weight_decay : 0.0f };
    eng_parallel_for(p->count, 1 << 15, step_range, &c);
  }
  return ENG_OK;
}
