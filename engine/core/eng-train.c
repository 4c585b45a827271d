/* eng-train.c — training step, evaluation and prediction on whole slices. */
#include "eng-train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct EngTrainer {
  EngModel *model;   /* borrowed */
  EngGraph *train;   /* owned, with backward */
  EngRmsprop *opt;   /* owned */
  EngLossKind loss;
  size_t count;      /* n*h*w */
  float *dlogits;    /* (count) */
};

size_t
eng_labels_to_target(float *target, float *mask, const uint8_t *labels, size_t count)
{
  size_t labeled = 0;
  for (size_t i = 0; i < count; i++) {
    int known = labels[i] == ENG_LABEL_MEMBRANE || labels[i] == ENG_LABEL_CELL;
    target[i] = labels[i] == ENG_LABEL_MEMBRANE ? 1.0f : 0.0f;
    mask[i] = known ? 1.0f : 0.0f;
    labeled += (size_t) known;
  }
  return labeled;
}

EngTrainer *
eng_trainer_new(EngModel *model, size_t n, size_t h, size_t w, const EngRmspropConfig *opt,
                EngLossKind loss, EngError *err)
{
  EngTrainer *tr = calloc(1, sizeof *tr);
  if (!tr) {
    eng_error_set(err, ENG_ERR_NOMEM, "out of memory");
    return NULL;
  }
  tr->model = model;
  tr->loss = loss;
  tr->count = n * h * w;
  tr->train = eng_graph_new(model, n, h, w, 1, err);
  if (tr->train)
    tr->opt = eng_rmsprop_new(model, opt, err);
  if (tr->opt)
    tr->dlogits = malloc(tr->count * sizeof(float));
  if (!tr->dlogits) {
    if (tr->opt)
      eng_error_set(err, ENG_ERR_NOMEM, "out of memory");
    eng_trainer_free(tr);
    return NULL;
  }
  return tr;
}

void
eng_trainer_free(EngTrainer *tr)
{
  if (!tr)
    return;
  eng_graph_free(tr->train);
  eng_rmsprop_free(tr->opt);
  free(tr->dlogits);
  free(tr);
}

EngRmsprop *
eng_trainer_optimizer(EngTrainer *tr)
{
  return tr->opt;
}

EngGraph *
eng_trainer_graph(EngTrainer *tr)
{
  return tr->train;
}

size_t
eng_trainer_graph_bytes(const EngTrainer *tr)
{
  return eng_graph_bytes(tr->train);
}

void
eng_trainer_set_cancel(EngTrainer *tr, atomic_int *cancel)
{
  eng_graph_set_cancel(tr->train, cancel);
}

static void
score(const float *logits, const float *target, const float *mask, size_t count,
      EngStepResult *out)
{
  size_t right = 0, labeled = 0;
  for (size_t i = 0; i < count; i++) {
    if (mask && mask[i] == 0.0f)
      continue;
    labeled++;
    right += (logits[i] > 0.0f) == (target[i] > 0.5f);
  }
  out->labeled = labeled;
  out->accuracy = labeled ? (double) right / (double) labeled : 0.0;
}

EngStatus
eng_trainer_step(EngTrainer *tr, const float *image, const float *target, const float *mask,
                 uint64_t seed, EngStepResult *out, EngError *err)
{
  EngStatus st = eng_graph_forward(tr->train, image, ENG_MODE_TRAIN, seed);
  if (st != ENG_OK)
    return eng_error_set(err, st, "training forward: %s", eng_status_to_string(st));
  const float *logits = eng_graph_logits(tr->train);
  double loss = eng_loss(tr->loss, tr->dlogits, logits, target, mask, tr->count);
  if (!isfinite(loss))
    return eng_error_set(err, ENG_ERR_NUMERIC,
                         "the %s loss became %g; lower the learning rate or check the input",
                         eng_loss_name(tr->loss), loss);
  if (out) {
    out->loss = loss;
    score(logits, target, mask, tr->count, out);
  }
  eng_model_zero_grad(tr->model);
  st = eng_graph_backward(tr->train, tr->dlogits);
  if (st != ENG_OK)
    return eng_error_set(err, st, "training backward: %s", eng_status_to_string(st));
  return eng_rmsprop_step(tr->opt, tr->model, err);
}

EngStatus
eng_trainer_evaluate(EngTrainer *tr, const float *image, const float *target,
                     const float *mask, EngStepResult *out, EngError *err)
{
  /* The training graph serves: inference mode saves nothing backward needs to keep. */
  EngStatus st = eng_graph_forward(tr->train, image, ENG_MODE_INFER, 0);
  if (st != ENG_OK)
    return eng_error_set(err, st, "evaluation forward: %s", eng_status_to_string(st));
  const float *logits = eng_graph_logits(tr->train);
  out->loss = eng_loss(tr->loss, NULL, logits, target, mask, tr->count);
  score(logits, target, mask, tr->count, out);
  return ENG_OK;
}

EngStatus
eng_predict(EngGraph *graph, const float *image, EngMode mode, int samples, uint64_t seed,
            float *prob_out, float *std_out, EngError *err)
{
  if (samples < 1 || (samples > 1 && mode != ENG_MODE_MC))
    return eng_error_set(err, ENG_ERR_INVALID,
                         "more than one sample needs Monte-Carlo dropout mode (got %d)", samples);
  size_t count = 0;
  const float *logits = NULL;
  for (int s = 0; s < samples; s++) {
    EngStatus st = eng_graph_forward(graph, image, mode, seed + (uint64_t) s);
    if (st != ENG_OK)
      return eng_error_set(err, st, "prediction: %s", eng_status_to_string(st));
    logits = eng_graph_logits(graph);
    if (s == 0) {
      /* Infer the plane count from the graph: logits are (n, 1, h, w). */
      count = eng_graph_output_count(graph);
      memset(prob_out, 0, count * sizeof(float));
      if (std_out)
        memset(std_out, 0, count * sizeof(float));
    }
    for (size_t i = 0; i < count; i++) {
      /* cell probability = 1 - sigmoid(logit of membrane) = sigmoid(-logit) */
      float p = 1.0f / (1.0f + expf(logits[i]));
      prob_out[i] += p;
      if (std_out)
        std_out[i] += p * p;
    }
  }
  float inv = 1.0f / (float) samples;
  for (size_t i = 0; i < count; i++) {
    float mean = prob_out[i] * inv;
    prob_out[i] = mean;
    if (std_out) {
      float var = std_out[i] * inv - mean * mean;
      std_out[i] = var > 0 ? sqrtf(var) : 0.0f;
    }
  }
  return ENG_OK;
}
