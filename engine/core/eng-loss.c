/* eng-loss.c — BCE and Dice on logits, numerically stable (softplus form). */
#include "eng-loss.h"

#include <math.h>
#include <string.h>

static inline double
sigmoid(double z)
{
  return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

/* log(1 + e^z) without overflow. */
static inline double
softplus(double z)
{
  return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

double
eng_loss_bce(float *dlogits, const float *logits, const float *target, const float *mask,
             size_t count)
{
  double sum = 0.0, wsum = 0.0;
  for (size_t i = 0; i < count; i++) {
    double m = mask ? mask[i] : 1.0;
    double z = logits[i];
    sum += m * (softplus(z) - target[i] * z);
    wsum += m;
  }
  if (dlogits) {
    double scale = wsum > 0 ? 1.0 / wsum : 0.0;
    for (size_t i = 0; i < count; i++) {
      double m = mask ? mask[i] : 1.0;
      dlogits[i] = (float) (m * scale * (sigmoid(logits[i]) - target[i]));
    }
  }
  return wsum > 0 ? sum / wsum : 0.0;
}

/* Soft Dice of one class. sign +1 scores the target class (o = sigmoid(z), t), sign -1 its
 * complement (o' = sigmoid(-z) = 1 - o, t' = 1 - t), so both share one sum and gradient. */
static double
dice_of_class(float *dlogits, const float *logits, const float *target, const float *mask,
              size_t count, double sign)
{
  const double eps = 1e-7;
  double inter = 0.0, so = 0.0, st = 0.0;
  for (size_t i = 0; i < count; i++) {
    double m = mask ? mask[i] : 1.0;
    double o = sigmoid(sign * logits[i]);
    double t = sign > 0 ? target[i] : 1.0 - target[i];
    inter += m * o * t;
    so += m * o;
    st += m * t;
  }
  double denom = so + st + eps;
  if (dlogits) {
    /* dL/do_i = -2 m_i (t_i S - I) / S^2; times do/dz = sign o (1 - o). */
    for (size_t i = 0; i < count; i++) {
      double m = mask ? mask[i] : 1.0;
      double o = sigmoid(sign * logits[i]);
      double t = sign > 0 ? target[i] : 1.0 - target[i];
      double d = -2.0 * m * (t * denom - inter) / (denom * denom);
      dlogits[i] = (float) (sign * d * o * (1.0 - o));
    }
  }
  return -2.0 * inter / denom;
}

double
eng_loss_dice(float *dlogits, const float *logits, const float *target, const float *mask,
              size_t count)
{
  return dice_of_class(dlogits, logits, target, mask, count, 1.0);
}

double
eng_loss_dice_cell(float *dlogits, const float *logits, const float *target, const float *mask,
                   size_t count)
{
  return dice_of_class(dlogits, logits, target, mask, count, -1.0);
}

double
eng_loss(EngLossKind kind, float *dlogits, const float *logits, const float *target,
         const float *mask, size_t count)
{
  switch (kind) {
  case ENG_LOSS_DICE:
    return eng_loss_dice(dlogits, logits, target, mask, count);
  case ENG_LOSS_DICE_CELL:
    return eng_loss_dice_cell(dlogits, logits, target, mask, count);
  case ENG_LOSS_BCE:
  default:
    return eng_loss_bce(dlogits, logits, target, mask, count);
  }
}

const char *
eng_loss_name(EngLossKind kind)
{
  switch (kind) {
  case ENG_LOSS_DICE:
    return "dice";
  case ENG_LOSS_DICE_CELL:
    return "dice-cell";
  case ENG_LOSS_BCE:
  default:
    return "bce";
  }
}

int
eng_loss_from_name(const char *name, EngLossKind *kind)
{
  if (strcmp(name, "dice") == 0)
    *kind = ENG_LOSS_DICE;
  else if (strcmp(name, "dice-cell") == 0)
    *kind = ENG_LOSS_DICE_CELL;
  else if (strcmp(name, "bce") == 0)
    *kind = ENG_LOSS_BCE;
  else
    return 0;
  return 1;
}
