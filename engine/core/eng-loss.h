/* eng-loss.h — the paper's losses on logits, with an optional per-pixel weight so that
 * unlabeled pixels (weight 0) do not count. Targets: membrane = 1, cell = 0.
 * Both return the loss and, if dlogits is non-NULL, *overwrite* it with d loss / d logits.
 * Definitions in engine/MODEL.md. Sums are accumulated in double. */
#pragma once

#include <stddef.h>

typedef enum {
  ENG_LOSS_BCE,
  ENG_LOSS_DICE,
} EngLossKind;

/* Mean binary cross-entropy over weighted pixels (Eq. 1 of the paper, averaged).
 * mask may be NULL (all ones). Returns 0 when the weights sum to 0. */
double eng_loss_bce(float *dlogits, const float *logits, const float *target, const float *mask,
                    size_t count);
/* Soft Dice loss, -2 Σ m o t / (Σ m o + Σ m t + 1e-7) (Eq. 2). */
double eng_loss_dice(float *dlogits, const float *logits, const float *target,
                     const float *mask, size_t count);
double eng_loss(EngLossKind kind, float *dlogits, const float *logits, const float *target,
                const float *mask, size_t count);
const char *eng_loss_name(EngLossKind kind);
/* The kind eng_loss_name calls name ("bce", "dice"): 1 and *kind set, or 0 (*kind
 * untouched) for any other string. */
int eng_loss_from_name(const char *name, EngLossKind *kind);
