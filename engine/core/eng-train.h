/* eng-train.h — one training step and one evaluation on a slice, the building blocks of
 * every training loop (the CLI's plain loop, the engine thread's jobs, benchmarks).
 *
 * An EngTrainer borrows an EngModel (which must outlive it) and owns a graph for one
 * input size with backward buffers, an inference graph of the same size, the RMSprop
 * state and loss scratch buffers. Nothing is allocated per step. */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "eng-loss.h"
#include "eng-model.h"
#include "eng-optim.h"

/* Label values shared by files, the project store and the engine. */
#define ENG_LABEL_MEMBRANE 0
#define ENG_LABEL_CELL 255
#define ENG_LABEL_UNLABELED 128 /* anything that is neither 0 nor 255 counts as unlabeled */

/* target (count) = 1 where labels mark membrane, 0 for cell; mask (count) = 0 where the
 * pixel is unlabeled, else 1. Returns the number of labeled pixels. */
size_t eng_labels_to_target(float *target, float *mask, const uint8_t *labels, size_t count);

typedef struct EngTrainer EngTrainer;

typedef struct {
  double loss;
  double accuracy; /* labeled pixels whose thresholded probability (0.5) is right */
  size_t labeled;  /* labeled pixels seen */
} EngStepResult;

EngTrainer *eng_trainer_new(EngModel *model, size_t n, size_t h, size_t w,
                            const EngRmspropConfig *opt, EngLossKind loss, EngError *err);
void eng_trainer_free(EngTrainer *tr);
EngRmsprop *eng_trainer_optimizer(EngTrainer *tr);
void eng_trainer_set_cancel(EngTrainer *tr, atomic_int *cancel);
/* Bytes of activation, gradient and workspace arenas the trainer's graph holds. */
size_t eng_trainer_graph_bytes(const EngTrainer *tr);
/* The training graph (borrowed), e.g. for profiling. */
EngGraph *eng_trainer_graph(EngTrainer *tr);

/* Forward (training mode, dropout masks from seed), loss, backward, RMSprop update.
 * image: (n, 1, h, w) standardized; target, mask: (n, h, w) (mask may be NULL).
 * ENG_ERR_NUMERIC (parameters untouched) if the loss or a gradient is not finite. */
EngStatus eng_trainer_step(EngTrainer *tr, const float *image, const float *target,
                           const float *mask, uint64_t seed, EngStepResult *out, EngError *err);
/* Loss and accuracy in inference mode (running statistics, no dropout). */
EngStatus eng_trainer_evaluate(EngTrainer *tr, const float *image, const float *target,
                               const float *mask, EngStepResult *out, EngError *err);

/* Probability of *cell interior* (ISBI convention: 1 = cell, 0 = membrane) for (n, 1, h, w)
 * input through graph (any mode; ENG_MODE_MC with samples > 1 averages stochastic passes
 * and, if std_out is non-NULL, writes their per-pixel standard deviation). prob_out and
 * std_out: (n, h, w), caller-owned. */
EngStatus eng_predict(EngGraph *graph, const float *image, EngMode mode, int samples,
                      uint64_t seed, float *prob_out, float *std_out, EngError *err);

/* Precise BN: replaces every BN layer's running statistics by plain averages over the
 * planes images[0..n-1] (each (1, in_channels, h, w) standardized, h and w the graph's):
 * training-mode forwards with momentum k/(k+1) for the k-th image and dropout off, so
 * running_mean is the mean of the per-image batch means and running_var the mean of the
 * per-image unbiased variances. Weights are untouched; the spec's momentum and dropout
 * are restored. Why: momentum-0.9 statistics of augmented, dropout-perturbed single
 * slices describe the last few training images, not the data, and inference suffers. */
EngStatus eng_model_calibrate_bn(EngModel *model, EngGraph *graph, const float *const *images,
                                 size_t n, EngError *err);

/* The same with test-time augmentation: the average over the 8 flips and quarter turns of
 * each plane (4 — flips and the half turn — when h != w, since a quarter turn would need
 * another graph), each pass with `samples` MC draws when mode is ENG_MODE_MC. std_out is
 * the standard deviation over all passes. Allocates its scratch (three planes). */
EngStatus eng_predict_tta(EngGraph *graph, const float *image, EngMode mode, int samples,
                          uint64_t seed, float *prob_out, float *std_out, EngError *err);

/* Exact dihedral transform d (0..7: d % 4 quarter turns counter-clockwise after a
 * horizontal flip when d >= 4) of a (h, w) plane. forward: out (transformed, w and h
 * swapped for odd turns) from in; inverse: the plane back from its transform. */
void eng_dihedral(float *out, const float *in, size_t h, size_t w, int d, int inverse);
