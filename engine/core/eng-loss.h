/* eng-loss.h — the paper's losses on logits, with an optional per-pixel weight so that
 * unlabeled pixels (weight 0) do not count. Targets: membrane = 1, cell = 0.
 * Both return the loss and, if dlogits is non-NULL, *overwrite* it with d loss / d logits.
 * Definitions in engine/MODEL.md. Sums are accumulated in double. */
#pragma once

#include <stddef.h>

typedef enum {
  ENG_LOSS_BCE,
  ENG_LOSS_DICE,      /* Dice of the membrane class (the target) */
  ENG_LOSS_DICE_CELL, /* Dice of the cell class: o' = 1 - o, t' = 1 - t */
} EngLossKind;

/* Mean binary cross-entropy over weighted pixels (Eq. 1 of the paper, averaged).
 * mask may be NULL (all ones). Returns 0 when the weights sum to 0. */
double eng_loss_bce(float *dlogits, const float *logits, const float *target, const float *mask,
                    size_t count);
/* Soft Dice loss, -2 Σ m o t / (Σ m o + Σ m t + 1e-7) (Eq. 2). */
double eng_loss_dice(float *dlogits, const float *logits, const float *target,
                     const float *mask, size_t count);
/* The same Dice of the complement class, cell interior, which is what the ISBI labels
 * (255 = cell) and submissions (1 = cell) call foreground: -2 Σ m (1-o)(1-t) / (Σ m (1-o) +
 * Σ m (1-t) + 1e-7). eng_loss_dice_cell(z, t) = eng_loss_dice(-z, 1 - t). */
double eng_loss_dice_cell(float *dlogits, const float *logits, const float *target,
                          const float *mask, size_t count);
double eng_loss(EngLossKind kind, float *dlogits, const float *logits, const float *target,
                const float *mask, size_t count);
const char *eng_loss_name(EngLossKind kind);
/* Every name eng_loss_name gives, for help texts and refusals (test-model checks the list). */
#define ENG_LOSS_NAMES "bce, dice or dice-cell"
/* The kind eng_loss_name calls name (one of ENG_LOSS_NAMES): 1 and *kind set, or 0 (*kind
 * untouched) for any other string. */
int eng_loss_from_name(const char *name, EngLossKind *kind);
