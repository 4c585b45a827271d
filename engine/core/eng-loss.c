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

double
eng_loss_dice(float *dlogits, const float *logits, const float *target, const float *mask,
              size_t count)
{
  const double eps = 1e-7;
  double inter = 0.0, so = 0.0, st = 0.0;
  for (size_t i = 0; i < count; i++) {
    double m = mask ? mask[i] : 1.0;
    double o = sigmoid(logits[i]);
    inter += m * o * target[i];
    so += m * o;
    st += m * target[i];
  }
  double denom = so + st + eps;
  if (dlogits) {
    /* dL/do_i = -2 m_i (t_i S - I) / S^2; times do/dz = o (1 - o). */
    for (size_t i = 0; i < count; i++) {
      double m = mask ? mask[i] : 1.0;
      double o = sigmoid(logits[i]);
      double d = -2.0 * m * (target[i] * denom - inter) / (denom * denom);
      dlogits[i] = (float) (d * o * (1.0 - o));
    }
  }
  return -2.0 * inter / denom;
}

double
eng_loss(EngLossKind kind, float *dlogits, const float *logits, const float *target,
         const float *mask, size_t count)
{
  return kind == ENG_LOSS_DICE ? eng_loss_dice(dlogits, logits, target, mask, count)
                               : eng_loss_bce(dlogits, logits, target, mask, count);
}

const char *
eng_loss_name(EngLossKind kind)
{
  return kind == ENG_LOSS_DICE ? "dice" : "bce";
}

int
eng_loss_from_name(const char *name, EngLossKind *kind)
{
  if (strcmp(name, "dice") == 0)
    *kind = ENG_LOSS_DICE;
  else if (strcmp(name, "bce") == 0)
    *kind = ENG_LOSS_BCE;
  else
    return 0;
  return 1;
}
