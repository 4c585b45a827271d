/* eng-optim.h — RMSprop with coupled L2 weight decay (engine/MODEL.md):
 *   g' = g + wd * w   (conv weights only; biases and BN parameters are not decayed)
 *   v  = rho v + (1 - rho) g'^2
 *   w -= lr g' / (sqrt(v) + eps)
 * This is torch.optim.RMSprop's rule with weight_decay on a param group of conv weights;
 * Keras' l2(c) regularizer corresponds to wd = 2c.
 * The optimizer owns its state arena v (one float per model float); the model is borrowed
 * at each step and must have the layout it was created for. */
#pragma once

#include "eng-model.h"

typedef struct {
  float lr, rho, eps, weight_decay;
} EngRmspropConfig;

typedef struct EngRmsprop EngRmsprop;

void eng_rmsprop_default(EngRmspropConfig *cfg); /* lr 1e-3, rho 0.9, eps 1e-7, wd 1e-3 */
EngRmsprop *eng_rmsprop_new(const EngModel *model, const EngRmspropConfig *cfg, EngError *err);
void eng_rmsprop_free(EngRmsprop *opt);
void eng_rmsprop_set_lr(EngRmsprop *opt, float lr);
float eng_rmsprop_lr(const EngRmsprop *opt);
/* Applies one update from the model's gradient arena. Returns ENG_ERR_NUMERIC (and
 * changes nothing) if any gradient is NaN or Inf. */
EngStatus eng_rmsprop_step(EngRmsprop *opt, EngModel *model, EngError *err);
/* The state arena, for checkpoints (count floats, model layout). */
float *eng_rmsprop_state(EngRmsprop *opt, size_t *count);
