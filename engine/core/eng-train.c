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

/* Where pixel (x, y) of a (h, w) plane lands under transform d; *tw is the transformed
 * width. */
static size_t
dihedral_index(size_t x, size_t y, size_t h, size_t w, int d)
{
  if (d >= 4)
    x = w - 1 - x;
  size_t cw = w, ch = h;
  for (int k = 0; k < d % 4; k++) {
    /* a quarter turn counter-clockwise: (x, y) -> (y, cw - 1 - x), sizes swap */
    size_t nx = y, ny = cw - 1 - x;
    x = nx;
    y = ny;
    size_t t = cw;
    cw = ch;
    ch = t;
  }
  return y * cw + x;
}

void
eng_dihedral(float *out, const float *in, size_t h, size_t w, int d, int inverse)
{
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      size_t t = dihedral_index(x, y, h, w, d);
      if (inverse)
        out[y * w + x] = in[t];
      else
        out[t] = in[y * w + x];
    }
}

EngStatus
eng_predict_tta(EngGraph *graph, const float *image, EngMode mode, int samples, uint64_t seed,
                float *prob_out, float *std_out, EngError *err)
{
  size_t n, h, w;
  eng_graph_size(graph, &n, &h, &w);
  size_t plane = h * w;
  int square = h == w;
  float *xt = malloc(n * plane * sizeof(float));
  float *pt = malloc(n * plane * sizeof(float));
  float *back = malloc(plane * sizeof(float));
  float *sq = std_out ? calloc(n * plane, sizeof(float)) : NULL;
  if (!xt || !pt || !back || (std_out && !sq)) {
    free(xt);
    free(pt);
    free(back);
    free(sq);
    return eng_error_set(err, ENG_ERR_NOMEM, "out of memory for test-time augmentation");
  }
  memset(prob_out, 0, n * plane * sizeof(float));
  int passes = 0;
  EngStatus st = ENG_OK;
  for (int d = 0; d < 8 && st == ENG_OK; d++) {
    if (!square && d % 2)
      continue;
    for (size_t i = 0; i < n; i++)
      eng_dihedral(xt + i * plane, image + i * plane, h, w, d, 0);
    for (int s = 0; s < samples && st == ENG_OK; s++) {
      st = eng_predict(graph, xt, mode, 1, seed + (uint64_t) (d * samples + s), pt, NULL, err);
      for (size_t i = 0; st == ENG_OK && i < n; i++) {
        eng_dihedral(back, pt + i * plane, h, w, d, 1);
        for (size_t j = 0; j < plane; j++) {
          prob_out[i * plane + j] += back[j];
          if (sq)
            sq[i * plane + j] += back[j] * back[j];
        }
      }
      passes++;
    }
  }
  if (st == ENG_OK) {
    float inv = 1.0f / (float) passes;
    for (size_t j = 0; j < n * plane; j++) {
      float mean = prob_out[j] * inv;
      prob_out[j] = mean;
      if (sq) {
        float var = sq[j] * inv - mean * mean;
        std_out[j] = var > 0 ? sqrtf(var) : 0.0f;
      }
    }
  }
  free(xt);
  free(pt);
  free(back);
  free(sq);
  return st;
}

EngStatus
eng_model_calibrate_bn(EngModel *model, EngGraph *graph, const float *const *images, size_t n,
                       EngError *err)
{
  const EngSpec *spec = eng_model_spec(model);
  float momentum = spec->bn_momentum, dropout = spec->dropout;
  EngStatus st = ENG_OK;
  eng_model_set_dropout(model, 0.0f);
  for (size_t k = 0; k < n && st == ENG_OK; k++) {
    /* running = k/(k+1) running + 1/(k+1) batch: the exact mean after n images */
    eng_model_set_bn_momentum(model, (float) k / (float) (k + 1));
    st = eng_graph_forward(graph, images[k], ENG_MODE_TRAIN, 0);
  }
  eng_model_set_bn_momentum(model, momentum);
  eng_model_set_dropout(model, dropout);
  if (st != ENG_OK)
    return eng_error_set(err, st, "recomputing BN statistics: %s", eng_status_to_string(st));
  return ENG_OK;
}
