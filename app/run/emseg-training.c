/* emseg-training.c — one whole training run (see emseg-training.h for the contract).
 *
 * Layout of a run: everything is sized in run_setup (trainer for the training size, an
 * inference graph for the validation size, augmentation workspace, crop, target and mask
 * planes, the validation targets, the parameter snapshot for update statistics), then
 * run_epoch repeats train → validate → statistics → checkpoint. Randomness is derived from
 * (seed, purpose, epoch, position) with eng_rng_derive / mix64 rather than drawn from one
 * running generator, which is what makes resume exact: no generator state to save. */
#include "emseg-training.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emseg-gamma.h"
#include "emseg-heatmap-png.h"
#include "emseg-model-meta.h"
#include "emseg-predict.h"
#include "eng-average.h"
#include "eng-border-weight.h"
#include "eng-metrics.h"
#include "eng-modelfile.h"
#include "eng-rng.h"
#include "eng-train.h"

G_DEFINE_QUARK(emseg-training-error-quark, emseg_training_error)

/* Stream tags so shuffles, augmentation, crops and dropout never share random numbers. */
#define STREAM_SHUFFLE 0x5348554646ULL
#define STREAM_AUGMENT 0x4155474dULL
#define STREAM_CROP 0x43524f50ULL
#define STREAM_DROPOUT 0x44524f50ULL

static char *augment_meta_lines(const EmsegTrainingConfig *cfg);

void
emseg_training_config_init(EmsegTrainingConfig *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  eng_spec_default(&cfg->spec);
  cfg->dropout = -1.0f;
  cfg->loss = ENG_LOSS_BCE; /* what the shipped model and the workbench use; Dice: data/models */
  cfg->epochs = 10;
  cfg->lr = 1e-3;
  cfg->weight_decay = 1e-3;
  cfg->augment = TRUE;
  cfg->calibrate_bn = TRUE;
  cfg->validate_init = TRUE;
  eng_augment_params_init(&cfg->augment_params);
  cfg->metrics_every = 1;
  cfg->val_every = 1;
  cfg->calibrate_gamma = TRUE;
  cfg->init_gamma = NAN;
  cfg->border_sigma = 5.0f;
  cfg->seed = 1;
}

gboolean
emseg_training_needs_crops(const EngSpec *spec, guint height, guint width)
{
  guint gh, gw, margin;
  emseg_predict_window(height, width, (guint) eng_spec_size_multiple(spec), &gh, &gw, &margin);
  return gh != height || gw != width;
}

gboolean
emseg_training_fit_window(EmsegTrainingConfig *cfg, const EngSpec *spec,
                          const EmsegDataset *train, EmsegDataset **val)
{
  if (!emseg_training_needs_crops(spec, train->height, train->width))
    return FALSE;
  guint mult = (guint) eng_spec_size_multiple(spec), gh, gw, margin;
  emseg_predict_window(train->height, train->width, mult, &gh, &gw, &margin);
  /* too big, or a side that is no multiple of mult (the window was rounded up past it):
   * crops and windows of the largest multiples that fit */
  gh = MIN(gh, train->height / mult * mult);
  gw = MIN(gw, train->width / mult * mult);
  if (gh == 0 || gw == 0)
    return FALSE; /* smaller than one multiple: emseg_training_validate says so */
  if (cfg->crop == 0)
    cfg->crop = MIN(gh, gw);
  if (*val) {
    guint step = MAX(MIN(gh, gw) / 4 / mult, 1u) * mult;
    guint vh = MIN(gh, (*val)->height / mult * mult), vw = MIN(gw, (*val)->width / mult * mult);
    if (vh == 0 || vw == 0)
      return TRUE; /* validation slices smaller than one multiple: refused by validate */
    EmsegDataset *cut = emseg_dataset_crop_labelled(*val, vh, vw, step);
    emseg_dataset_free(*val);
    *val = cut;
  }
  return TRUE;
}

double
emseg_training_lr_at(const EmsegTrainingConfig *cfg, guint epoch)
{
  double lr = cfg->lr;
  for (guint i = 0; i < cfg->n_lr_steps && i < EMSEG_TRAINING_MAX_LR_STEPS; i++)
    if (cfg->lr_steps[i] <= epoch)
      lr *= 0.1;
  return lr;
}

/* ---- events ---------------------------------------------------------------------------- */

typedef struct {
  EmsegTrainingEvent event; /* first: the public pointer is this struct's address */
  char **names;
  double *update, *weight;
  char *text;
} OwnedEvent;

static char **
copy_names(const char *const *names, guint n)
{
  char **out = g_new0(char *, n + 1);
  for (guint i = 0; i < n; i++)
    out[i] = g_strdup(names[i]);
  return out;
}

EmsegTrainingEvent *
emseg_training_event_copy(const EmsegTrainingEvent *event)
{
  OwnedEvent *o = g_new0(OwnedEvent, 1);
  o->event = *event;
  switch (event->kind) {
  case EMSEG_TRAINING_EVENT_STARTED:
    o->names = copy_names(event->u.started.layer_names, event->u.started.n_layers);
    o->event.u.started.layer_names = (const char *const *) o->names;
    break;
  case EMSEG_TRAINING_EVENT_LAYER_STATS: {
    guint n = event->u.layers.n_layers;
    o->names = copy_names(event->u.layers.layer_names, n);
    o->update = g_memdup2(event->u.layers.mean_abs_update, sizeof(double) * n);
    o->weight = g_memdup2(event->u.layers.mean_abs_weight, sizeof(double) * n);
    o->event.u.layers.layer_names = (const char *const *) o->names;
    o->event.u.layers.mean_abs_update = o->update;
    o->event.u.layers.mean_abs_weight = o->weight;
    break;
  }
  case EMSEG_TRAINING_EVENT_CHECKPOINT:
    o->text = g_strdup(event->u.checkpoint.path);
    o->event.u.checkpoint.path = o->text;
    o->event.u.checkpoint.model = NULL;
    break;
  case EMSEG_TRAINING_EVENT_ERROR:
    o->text = g_strdup(event->u.message);
    o->event.u.message = o->text;
    break;
  default:
    break;
  }
  return &o->event;
}

void
emseg_training_event_free(EmsegTrainingEvent *event)
{
  if (!event)
    return;
  OwnedEvent *o = (OwnedEvent *) event;
  g_strfreev(o->names);
  g_free(o->update);
  g_free(o->weight);
  g_free(o->text);
  g_free(o);
}

void
emseg_training_result_clear(EmsegTrainingResult *result)
{
  eng_model_free(result->best_model);
  eng_model_free(result->last_model);
  eng_model_free(result->swa_model);
  memset(result, 0, sizeof *result);
}

/* ---- the run ----------------------------------------------------------------------------- */

typedef struct {
  /* borrowed */
  const EmsegTrainingConfig *cfg;
  const EmsegDataset *train, *val;
  EmsegTrainingFunc callback;
  gpointer user_data;
  atomic_int *cancel;
  /* owned, sized once in run_setup */
  EngModel *model;       /* the weights being trained */
  EngModel *best;        /* best selection loss so far */
  EngModel *opt_shadow;  /* model-shaped carrier for the optimizer state in state files */
  EngModel *swa;         /* running mean of end-of-epoch weights (swa_from), else NULL */
  guint64 swa_count;     /* epochs in it */
  EngTrainer *tr;        /* graph for (1, 1, th, tw) with backward */
  EngGraph *val_graph;   /* inference graph for (1, 1, val h, val w) */
  EngAugment *aug;       /* workspace for train slices (full size) */
  guint th, tw;          /* training input size (crop or full) */
  float *aug_image;      /* (h, w) augmented slice */
  guint8 *aug_labels;    /* (h, w) */
  float *crop_image;     /* (th, tw) */
  guint8 *crop_labels;   /* (th, tw) */
  float *target, *mask;  /* (th, tw) */
  float *val_target, *val_mask; /* (n_val, vh, vw) */
  float *val_prob;       /* (n_val, vh, vw) P(cell) for V_rand / V_info */
  gboolean val_scored;   /* every validation pixel labelled: V_rand / V_info / γ defined */
  float *src_image;      /* (h, w) the training slice standardized (for augmentation and
                          * uncropped steps), else NULL */
  float *val_image;      /* (vh, vw) a validation slice standardized */
  float *bn_inputs;      /* (≤ 16, bn_h, bn_w) training slices (or their centres, for big
                          * slices) for BN calibration, standardized once per run (NULL
                          * until first needed) */
  size_t bn_h, bn_w;
  float *snapshot;       /* (n params arena) parameters at epoch start */
  size_t arena_count;
  guint n_layers;
  const char **layer_names;     /* (n_layers) borrowed from model */
  double *update, *weight;      /* (n_layers) */
  guint64 *layer_count;         /* (n_layers) trainable scalars per layer */
  guint *order;                 /* (n_train) */
  /* progress */
  guint first_epoch, epoch, bad_epochs, best_epoch;
  double best_loss;
  double best_gamma;     /* γ of the best weights chosen in this session, NAN if none */
  double seconds_this_session;
  guint epochs_this_session;
  gboolean stop_requested, stopped_early;
} Run;

static guint64
mix64(guint64 x)
{
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static gboolean
emit(Run *run, const EmsegTrainingEvent *ev)
{
  if (!run->callback)
    return TRUE;
  if (!run->callback(ev, run->user_data)) {
    run->stop_requested = TRUE;
    return FALSE;
  }
  return TRUE;
}

static gboolean
cancelled(Run *run)
{
  return run->stop_requested || (run->cancel && atomic_load(run->cancel));
}

static gboolean
engine_error(GError **error, const EngError *err, const char *what)
{
  if (err->status == ENG_ERR_CANCELLED)
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED, "cancelled");
  else
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE, "%s: %s", what,
                err->message[0] ? err->message : eng_status_to_string(err->status));
  return FALSE;
}

static void
run_free(Run *run)
{
  eng_trainer_free(run->tr);
  eng_graph_free(run->val_graph);
  eng_augment_destroy(run->aug);
  eng_model_free(run->model);
  eng_model_free(run->best);
  eng_model_free(run->opt_shadow);
  eng_model_free(run->swa);
  g_free(run->aug_image);
  g_free(run->aug_labels);
  g_free(run->crop_image);
  g_free(run->crop_labels);
  g_free(run->target);
  g_free(run->mask);
  g_free(run->val_target);
  g_free(run->val_mask);
  g_free(run->val_prob);
  g_free(run->src_image);
  g_free(run->val_image);
  g_free(run->bn_inputs);
  g_free(run->snapshot);
  g_free(run->layer_names);
  g_free(run->update);
  g_free(run->weight);
  g_free(run->layer_count);
  g_free(run->order);
}

static gboolean
check_config(const EmsegTrainingConfig *cfg, const EngSpec *spec, const EmsegDataset *train,
             const EmsegDataset *val, GError **error)
{
#define INVALID(...)                                                                          \
  do {                                                                                        \
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID, __VA_ARGS__);      \
    return FALSE;                                                                             \
  } while (0)
  if (!train || train->n == 0)
    INVALID("no training slices");
  if (cfg->epochs < 1)
    INVALID("epochs must be at least 1");
  if (!(cfg->lr >= 0) || !isfinite(cfg->lr))
    INVALID("learning rate must be a finite number >= 0, not %g", cfg->lr);
  if (!(cfg->weight_decay >= 0) || !isfinite(cfg->weight_decay))
    INVALID("weight decay must be a finite number >= 0, not %g", cfg->weight_decay);
  if (cfg->n_lr_steps > EMSEG_TRAINING_MAX_LR_STEPS)
    INVALID("at most %d learning-rate steps", EMSEG_TRAINING_MAX_LR_STEPS);
  if (cfg->resume && !cfg->state_path)
    INVALID("resume needs a state file");
  if (cfg->swa_from > cfg->epochs)
    INVALID("weight averaging from epoch %u would start after the last epoch (%u)",
            cfg->swa_from, cfg->epochs);
  /* Labels of one class only (a correction painted along a missed membrane, say, with no
   * cell labelled anywhere) would teach the network to call every pixel that class: the
   * loss sees nothing else. Refused rather than run, which would ruin a good model. */
  guint64 n_class[2] = { 0, 0 };
  for (guint i = 0; i < train->n; i++) {
    const guint8 *lab = emseg_dataset_labels(train, i);
    for (gsize j = 0, plane = emseg_dataset_plane(train); j < plane; j++) {
      n_class[0] += lab[j] == ENG_LABEL_MEMBRANE;
      n_class[1] += lab[j] == ENG_LABEL_CELL;
    }
  }
  if (n_class[0] == 0 || n_class[1] == 0) {
    gboolean membrane = n_class[1] == 0;
    INVALID("%s: the labels of the %u training slice%s are all %s "
            "(%" G_GUINT64_FORMAT " pixels) and none %s, so the network would learn to call "
            "every pixel %s: label some %s too",
            train->source, train->n, train->n == 1 ? "" : "s",
            membrane ? "membrane" : "cell interior",
            n_class[membrane ? 0 : 1], membrane ? "cell interior" : "membrane",
            membrane ? "membrane" : "cell", membrane ? "cell interior" : "membrane");
  }
  guint mult = (guint) eng_spec_size_multiple(spec);
  if (cfg->crop) {
    if (cfg->crop % mult)
      INVALID("crop size %u is not a multiple of %u, which this spec needs", cfg->crop, mult);
    if (cfg->crop > train->width || cfg->crop > train->height)
      INVALID("crop size %u is larger than the %ux%u training slices", cfg->crop,
              train->width, train->height);
  } else if (train->width % mult || train->height % mult) {
    INVALID("%s: slices are %ux%u but this spec needs sizes divisible by %u (or use a crop)",
            train->source, train->width, train->height, mult);
  }
  if (val && val->n) {
    if (val->width % mult || val->height % mult)
      INVALID("%s: validation slices are %ux%u but this spec needs sizes divisible by %u",
              val->source, val->width, val->height, mult);
    if (cfg->metrics_every) {
      gsize plane = emseg_dataset_plane(val);
      for (guint i = 0; i < val->n; i++) {
        const guint8 *lab = emseg_dataset_labels(val, i);
        gsize j = 0;
        while (j < plane && lab[j] == ENG_LABEL_MEMBRANE)
          j++;
        if (j == plane)
          INVALID("%s, slice %u: validation labels have no cell pixel, so V_rand / V_info "
                  "are undefined (use metrics every 0 or another slice)",
                  val->source, val->slice[i]);
      }
    }
  }
  return TRUE;
#undef INVALID
}

static gboolean
load_part(const char *path, EngModel **out, GHashTable **meta, GError **error)
{
  EngError err;
  char *text = NULL;
  if (eng_model_load(path, out, &text, &err) != ENG_OK) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_IO,
                "cannot resume from %s: %s", path, err.message);
    return FALSE;
  }
  *meta = emseg_model_meta_parse(text);
  free(text);
  return TRUE;
}

static guint
meta_uint(GHashTable *meta, const char *key)
{
  const char *v = g_hash_table_lookup(meta, key);
  return v ? (guint) g_ascii_strtoull(v, NULL, 10) : 0;
}

/* The running average of a resumed run that averages weights: state_path + ".swa", which
 * must hold the epochs swa_from..e. */
static gboolean
load_swa(Run *run, guint e, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  g_autofree char *swa_path = g_strconcat(cfg->state_path, ".swa", NULL);
  if (!g_file_test(swa_path, G_FILE_TEST_EXISTS)) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
                "cannot resume with weight averaging from epoch %u: %s is missing (the run "
                "was not averaging weights when it stopped at epoch %u)",
                cfg->swa_from, swa_path, e);
    return FALSE;
  }
  g_autoptr(GHashTable) meta = NULL;
  if (!load_part(swa_path, &run->swa, &meta, error))
    return FALSE;
  guint count = meta_uint(meta, "swa_count");
  if (meta_uint(meta, "resume_epoch") != e || count != e - cfg->swa_from + 1) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
                "cannot resume with weight averaging from epoch %u: %s averages %u epochs up "
                "to epoch %u, expected %u up to epoch %u (was the run started with another "
                "--swa-from?)",
                cfg->swa_from, swa_path, count, meta_uint(meta, "resume_epoch"),
                e - cfg->swa_from + 1, e);
    return FALSE;
  }
  run->swa_count = count;
  return TRUE;
}

/* Whether a resume state (its metadata m_state) was trained with cfg's augmentation
 * strengths: the state records non-default ones (augment_meta_lines). */
static gboolean
same_augmentation(const EmsegTrainingConfig *cfg, GHashTable *m_state, GError **error)
{
  g_autofree char *now = augment_meta_lines(cfg);
  const char *keys[] = { "augment_rotate", "augment_shear", "augment_elastic_sigma" };
  g_autoptr(GString) then = g_string_new(NULL);
  for (guint k = 0; k < G_N_ELEMENTS(keys); k++) {
    const char *v = g_hash_table_lookup(m_state, keys[k]);
    if (v)
      g_string_append_printf(then, "%s=%s\n", keys[k], v);
  }
  if (strcmp(now, then->str) == 0)
    return TRUE;
  g_strstrip(g_strdelimit(now, "\n", ' '));
  g_strstrip(g_strdelimit(then->str, "\n", ' '));
  g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
              "cannot resume %s with augmentation %s: it was started with %s", cfg->state_path,
              *now ? now : "at the default strengths",
              *then->str ? then->str : "the default strengths");
  return FALSE;
}

/* Loads state_path (weights being trained + progress), .opt and .best; all three must
 * come from the same epoch, since they are written one after the other. */
static gboolean
load_state(Run *run, EngSpec *spec, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  g_autofree char *opt_path = g_strconcat(cfg->state_path, ".opt", NULL);
  g_autofree char *best_path = g_strconcat(cfg->state_path, ".best", NULL);
  EngModel *state = NULL, *opt = NULL, *best = NULL;
  g_autoptr(GHashTable) m_state = NULL, m_opt = NULL, m_best = NULL;
  gboolean ok = FALSE;
  if (!load_part(cfg->state_path, &state, &m_state, error) ||
      !load_part(opt_path, &opt, &m_opt, error) || !load_part(best_path, &best, &m_best, error))
    goto out;
  guint e = meta_uint(m_state, "resume_epoch");
  if (e == 0 || meta_uint(m_opt, "resume_epoch") != e ||
      meta_uint(m_best, "resume_epoch") != e) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_IO,
                "cannot resume: %s, %s and %s are from different epochs (%u, %u, %u); the "
                "run was interrupted while saving, restart it",
                cfg->state_path, opt_path, best_path, e, meta_uint(m_opt, "resume_epoch"),
                meta_uint(m_best, "resume_epoch"));
    goto out;
  }
  const char *seed = g_hash_table_lookup(m_state, "seed");
  if (!seed || g_ascii_strtoull(seed, NULL, 10) != cfg->seed) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
                "cannot resume %s with seed %" G_GUINT64_FORMAT ": it was started with seed %s",
                cfg->state_path, cfg->seed, seed ? seed : "(unknown)");
    goto out;
  }
  /* The loss a run trains must not change halfway: its best_loss, the bar a checkpoint must
   * beat, is in that loss's units. States written before the key was kept (any loss) pass. */
  const char *loss = g_hash_table_lookup(m_state, "loss");
  if (loss && strcmp(loss, eng_loss_name(cfg->loss)) != 0) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
                "cannot resume %s with loss %s: it was started with loss %s", cfg->state_path,
                eng_loss_name(cfg->loss), loss);
    goto out;
  }
  /* Nor its weighting. A state without the keys was trained
   * without separation weights (run_meta_lines writes them only when on). */
  const char *bw = g_hash_table_lookup(m_state, "border_weight"),
             *bs = g_hash_table_lookup(m_state, "border_sigma");
  float w0 = bw ? (float) g_ascii_strtod(bw, NULL) : 0.0f,
        sigma = bs ? (float) g_ascii_strtod(bs, NULL) : cfg->border_sigma;
  if (w0 != cfg->border_w0 || (w0 > 0.0f && sigma != cfg->border_sigma)) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
                "cannot resume %s with border weight %g (sigma %g): it was started with "
                "border weight %g (sigma %g)",
                cfg->state_path, (double) cfg->border_w0, (double) cfg->border_sigma,
                (double) w0, (double) sigma);
    goto out;
  }
  /* Nor its augmentation. */
  if (!same_augmentation(cfg, m_state, error))
    goto out;
  if (cfg->swa_from && e >= cfg->swa_from && !load_swa(run, e, error))
    goto out;
  *spec = *eng_model_spec(state);
  run->first_epoch = e + 1;
  run->best_epoch = meta_uint(m_state, "best_epoch");
  run->bad_epochs = meta_uint(m_state, "bad_epochs");
  const char *bl = g_hash_table_lookup(m_state, "best_loss");
  run->best_loss = bl ? g_ascii_strtod(bl, NULL) : INFINITY;
  run->best_gamma = NAN; /* the earlier choice is in the .best file's metadata */
  run->model = state;
  run->best = best;
  run->opt_shadow = opt;
  state = best = opt = NULL;
  ok = TRUE;
out:
  eng_model_free(state);
  eng_model_free(opt);
  eng_model_free(best);
  return ok;
}

static gboolean
run_setup(Run *run, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  const EmsegDataset *train = run->train, *val = run->val;
  EngError err;
  EngSpec spec = cfg->init_model ? *eng_model_spec(cfg->init_model) : cfg->spec;
  run->first_epoch = 1;
  run->best_loss = INFINITY;
  run->best_gamma = NAN;
  if (cfg->resume && !load_state(run, &spec, error))
    return FALSE;
  if (cfg->dropout >= 0)
    spec.dropout = cfg->dropout;
  if (eng_spec_validate(&spec, &err) != ENG_OK) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID, "%s", err.message);
    return FALSE;
  }
  if (!check_config(cfg, &spec, train, val, error))
    return FALSE;

  /* The dropout rate has no parameters, so weights copy across specs that differ only
   * in it: that is how fine-tuning and resuming may change the rate. */
  const EngModel *from = run->model ? run->model : cfg->init_model;
  EngModel *fresh = from ? eng_model_new_zeroed(&spec, &err) : eng_model_new(&spec, cfg->seed, &err);
  if (!fresh)
    return engine_error(error, &err, "cannot build the model");
  if (from && eng_model_copy_params(fresh, from, &err) != ENG_OK) {
    eng_model_free(fresh);
    return engine_error(error, &err, "cannot start from the given weights");
  }
  eng_model_free(run->model);
  run->model = fresh;
  eng_model_set_conv_bf16(run->model, cfg->conv_bf16); /* before the graphs below */
  if (!run->best) {
    run->best = eng_model_new_zeroed(&spec, &err);
    if (!run->best || eng_model_copy_params(run->best, run->model, &err) != ENG_OK)
      return engine_error(error, &err, "cannot build the model");
  }

  if (cfg->swa_from) {
    EngModel *swa = eng_model_new(&spec, cfg->seed, &err);
    if (!swa || (run->swa && eng_model_copy_params(swa, run->swa, &err) != ENG_OK)) {
      eng_model_free(swa);
      return engine_error(error, &err, "cannot build the averaged model");
    }
    eng_model_free(run->swa); /* a resumed average takes the run's spec (dropout) */
    run->swa = swa;
  }

  run->tw = cfg->crop ? cfg->crop : train->width;
  run->th = cfg->crop ? cfg->crop : train->height;
  EngRmspropConfig opt;
  eng_rmsprop_default(&opt);
  opt.lr = (float) cfg->lr;
  opt.weight_decay = (float) cfg->weight_decay;
  run->tr = eng_trainer_new(run->model, 1, run->th, run->tw, &opt, cfg->loss, &err);
  if (!run->tr)
    return engine_error(error, &err, "cannot plan the training graph");
  eng_trainer_set_cancel(run->tr, run->cancel);

  size_t opt_count = 0;
  float *state = eng_rmsprop_state(eng_trainer_optimizer(run->tr), &opt_count);
  run->snapshot = NULL;
  eng_model_params_arena(run->model, &run->arena_count);
  if (opt_count != run->arena_count) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE,
                "optimizer state has %zu floats, the model %zu", opt_count, run->arena_count);
    return FALSE;
  }
  if (run->opt_shadow) { /* resumed: restore the RMSprop running averages */
    size_t n = 0;
    float *saved = eng_model_params_arena(run->opt_shadow, &n);
    if (n != opt_count) {
      g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_IO,
                  "%s.opt does not match the model (%zu vs %zu floats)", cfg->state_path, n,
                  opt_count);
      return FALSE;
    }
    memcpy(state, saved, n * sizeof(float));
  } else if (cfg->state_path) {
    run->opt_shadow = eng_model_new(&spec, cfg->seed, &err);
    if (!run->opt_shadow)
      return engine_error(error, &err, "cannot build the model");
  }

  if (val && val->n) {
    run->val_graph = eng_graph_new(run->model, 1, val->height, val->width, 0, &err);
    if (!run->val_graph)
      return engine_error(error, &err, "cannot plan the validation graph");
    eng_graph_set_cancel(run->val_graph, run->cancel);
    gsize vp = emseg_dataset_plane(val);
    run->val_target = g_new(float, vp * val->n);
    run->val_mask = g_new(float, vp * val->n);
    run->val_prob = g_new(float, vp * val->n);
    for (guint i = 0; i < val->n; i++)
      eng_labels_to_target(run->val_target + i * vp, run->val_mask + i * vp,
                           emseg_dataset_labels(val, i), vp);
    run->val_scored = TRUE;
    for (gsize j = 0; j < vp * val->n && run->val_scored; j++)
      run->val_scored = run->val_mask[j] > 0;
  }

  gsize plane = emseg_dataset_plane(train), tplane = (gsize) run->tw * run->th;
  /* Crops are augmented as windows of the transformed slice (the same pixels as cropping
   * the whole augmented slice, without computing the rest: a 4096² slice took 0.3 s a step
   * to augment whole, for a 1024² crop). */
  if (cfg->augment && cfg->crop) {
    if (eng_augment_create_window(&run->aug, train->width, train->height, run->tw, run->th,
                                  &err) != ENG_OK)
      return engine_error(error, &err, "cannot set up augmentation");
  } else if (cfg->augment) {
    if (eng_augment_create(&run->aug, train->width, train->height, &err) != ENG_OK)
      return engine_error(error, &err, "cannot set up augmentation");
    run->aug_image = g_new(float, plane);
    run->aug_labels = g_new(guint8, plane);
  }
  if (cfg->crop) {
    run->crop_image = g_new(float, tplane);
    run->crop_labels = g_new(guint8, tplane);
  }
  if (!cfg->crop || cfg->augment)
    run->src_image = g_new(float, plane);
  if (val)
    run->val_image = g_new(float, emseg_dataset_plane(val));
  run->target = g_new(float, tplane);
  run->mask = g_new(float, tplane);
  run->snapshot = g_new(float, run->arena_count);
  run->n_layers = (guint) eng_model_n_layers(run->model);
  run->layer_names = g_new0(const char *, run->n_layers + 1);
  for (guint l = 0; l < run->n_layers; l++)
    run->layer_names[l] = eng_model_layer_name(run->model, l);
  run->update = g_new0(double, run->n_layers + 1);
  run->weight = g_new0(double, run->n_layers + 1);
  run->layer_count = g_new0(guint64, run->n_layers + 1);
  for (size_t p = 0; p < eng_model_n_params(run->model); p++) {
    const EngParam *par = eng_model_param(run->model, p);
    if (par->trainable && par->layer >= 0 && (guint) par->layer < run->n_layers)
      run->layer_count[par->layer] += par->count;
  }
  run->order = g_new(guint, train->n);
  return TRUE;
}

/* Dataset labels: 0 membrane, 255 cell, anything else unlabelled (emseg-dataset.h). */
static inline gboolean
labelled(guint8 v)
{
  return v == EMSEG_LABEL_MEMBRANE || v == EMSEG_LABEL_CELL;
}

/* Whether the th × tw window at (x0, y0) of a w-wide label plane holds a labelled pixel. */
static gboolean
window_labelled(const guint8 *lab, guint w, guint x0, guint y0, guint tw, guint th)
{
  for (guint y = 0; y < th; y++) {
    const guint8 *row = lab + (gsize) (y0 + y) * w + x0;
    for (guint x = 0; x < tw; x++)
      if (labelled(row[x]))
        return TRUE;
  }
  return FALSE;
}

/* A labelled pixel of a w × h label plane drawn uniformly from rng; FALSE if none. */
static gboolean
pick_labelled(const guint8 *lab, guint w, guint h, EngRng *rng, guint *x, guint *y)
{
  gsize n = (gsize) w * h, count = 0;
  for (gsize i = 0; i < n; i++)
    count += labelled(lab[i]);
  if (count == 0)
    return FALSE;
  guint64 r = (guint64) eng_rng_u32(rng) << 32 | eng_rng_u32(rng);
  gsize k = (gsize) (r % count), i = 0;
  for (;; i++)
    if (labelled(lab[i]) && k-- == 0)
      break;
  *x = (guint) (i % w);
  *y = (guint) (i / w);
  return TRUE;
}

/* The th × tw crop of a w × h plane that holds point (px, py) at a place drawn uniformly
 * from rng (clamped to the plane). */
static void
place_crop(double px, double py, guint w, guint h, guint tw, guint th, EngRng *rng, guint *x0,
           guint *y0)
{
  double x = floor(px) - (double) (eng_rng_u32(rng) % tw);
  double y = floor(py) - (double) (eng_rng_u32(rng) % th);
  *x0 = (guint) CLAMP(x, 0.0, (double) (w - tw));
  *y0 = (guint) CLAMP(y, 0.0, (double) (h - th));
}

/* Augmentation of the crop window at (x0, y0) into crop_image / crop_labels. */
static void
augment_window(Run *run, const EngAugmentDraw *d, guint x0, guint y0, const float *img,
               const guint8 *lab)
{
  EngError err;
  /* The draw comes from validated parameters and the window lies in the slice, so set
   * cannot fail; identity if it did. */
  if (eng_augment_set_window(run->aug, d, x0, y0, &err) != ENG_OK) {
    EngAugmentDraw id;
    eng_augment_draw_identity(&id);
    eng_augment_set_window(run->aug, &id, x0, y0, &err);
  }
  eng_augment_apply(run->aug, run->crop_image, run->crop_labels, NULL, img, lab, NULL);
}

/* Tries to move an augmented crop without labels onto one: a labelled source pixel is
 * drawn and the window placed around where it lands (eng_augment_locate, within a pixel or
 * so); the new window is checked, and the draw repeated a few times (a pixel whose place
 * lies outside the slice shows only through the reflect padding). */
#define CROP_LABEL_TRIES 4

/* The sample a training step sees: augmented (whole slice), then cropped — a crop is
 * augmented as that window of the transformed slice, the same pixels. A random crop with no
 * labelled pixel is moved onto one: with corrections painted on a small part of a big
 * slice, most uniform crops would hold none and their steps teach nothing (the loss mask is
 * empty). Fully labelled slices never move, so their crops are as before. */
static void
prepare_sample(Run *run, guint slice, guint64 sample, const float **image,
               const guint8 **labels)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  const EmsegDataset *train = run->train;
  const float *img = NULL;
  const guint8 *lab = emseg_dataset_labels(train, slice);
  guint w = train->width, h = train->height, tw = run->tw, th = run->th;
  /* the whole slice in floats where augmentation or the step reads it; a plain crop
   * standardizes only its window */
  if (run->src_image) {
    emseg_dataset_read_image(train, slice, run->src_image);
    img = run->src_image;
  }
  EngAugmentDraw d;
  if (cfg->augment)
    eng_augment_draw(&d, &cfg->augment_params, cfg->seed ^ STREAM_AUGMENT, sample);
  if (!cfg->crop) {
    if (cfg->augment) {
      EngError err;
      if (eng_augment_set(run->aug, &d, &err) != ENG_OK) { /* as in augment_window */
        eng_augment_draw_identity(&d);
        eng_augment_set(run->aug, &d, &err);
      }
      eng_augment_apply(run->aug, run->aug_image, run->aug_labels, NULL, img, lab, NULL);
      img = run->aug_image;
      lab = run->aug_labels;
    }
    *image = img;
    *labels = lab;
    return;
  }
  EngRng rng;
  eng_rng_derive(&rng, cfg->seed ^ STREAM_CROP, sample);
  guint x0 = eng_rng_u32(&rng) % (w - tw + 1);
  guint y0 = eng_rng_u32(&rng) % (h - th + 1);
  guint sx, sy;
  if (cfg->augment) {
    augment_window(run, &d, x0, y0, img, lab);
    for (guint t = 0; t < CROP_LABEL_TRIES && !window_labelled(run->crop_labels, tw, 0, 0, tw, th);
         t++) {
      double px, py;
      if (!pick_labelled(lab, w, h, &rng, &sx, &sy))
        break;
      eng_augment_locate(run->aug, sx, sy, &px, &py);
      place_crop(px, py, w, h, tw, th, &rng, &x0, &y0);
      augment_window(run, &d, x0, y0, img, lab);
    }
  } else {
    if (!window_labelled(lab, w, x0, y0, tw, th) && pick_labelled(lab, w, h, &rng, &sx, &sy))
      place_crop(sx, sy, w, h, tw, th, &rng, &x0, &y0);
    emseg_dataset_read_window(train, slice, x0, y0, tw, th, run->crop_image);
    for (guint y = 0; y < th; y++)
      memcpy(run->crop_labels + (gsize) y * tw, lab + (gsize) (y0 + y) * w + x0, tw);
  }
  *image = run->crop_image;
  *labels = run->crop_labels;
}

static gboolean
train_epoch(Run *run, guint e, double *loss_out, double *acc_out, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  const EmsegDataset *train = run->train;
  guint n = train->n;
  EngRng rng;
  eng_rng_derive(&rng, cfg->seed ^ STREAM_SHUFFLE, e);
  for (guint i = 0; i < n; i++)
    run->order[i] = i;
  for (guint i = n; i > 1; i--) { /* Fisher–Yates */
    guint j = eng_rng_u32(&rng) % i, t = run->order[i - 1];
    run->order[i - 1] = run->order[j];
    run->order[j] = t;
  }
  double tl = 0, ta = 0;
  gsize tplane = (gsize) run->tw * run->th;
  for (guint i = 0; i < n; i++) {
    if (cancelled(run)) {
      g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED, "cancelled");
      return FALSE;
    }
    guint s = run->order[i];
    guint64 sample = (guint64) (e - 1) * n + i;
    const float *img;
    const guint8 *lab;
    prepare_sample(run, s, sample, &img, &lab);
    eng_labels_to_target(run->target, run->mask, lab, tplane);
    EngStepResult r;
    EngError err = { 0 };
    if (cfg->border_w0 > 0.0f &&
        eng_border_weights(run->mask, run->target, run->tw, run->th, cfg->border_w0,
                           cfg->border_sigma, &err) != ENG_OK) {
      g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE,
                  "epoch %u, %s slice %u: %s", e, train->source, train->slice[s], err.message);
      return FALSE;
    }
    if (eng_trainer_step(run->tr, img, run->target, run->mask,
                         mix64(cfg->seed ^ STREAM_DROPOUT ^ mix64(sample)), &r, &err) != ENG_OK) {
      if (err.status == ENG_ERR_CANCELLED)
        return engine_error(error, &err, "");
      g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE,
                  "epoch %u, %s slice %u: %s", e, train->source, train->slice[s], err.message);
      return FALSE;
    }
    tl += r.loss / n;
    ta += r.accuracy / n;
    EmsegTrainingEvent ev = { .kind = EMSEG_TRAINING_EVENT_STEP, .epoch = e,
                              .n_epochs = cfg->epochs };
    ev.u.step = (EmsegTrainingStep) { .step = i + 1, .n_steps = n, .slice = train->slice[s],
                                      .loss = r.loss, .accuracy = r.accuracy };
    emit(run, &ev);
  }
  *loss_out = tl;
  *acc_out = ta;
  return TRUE;
}

/* Precise BN (see calibrate_bn in the header): training-mode forwards of un-augmented
 * training slices through the validation graph with momentum k/(k+1) and no dropout, so
 * the running statistics end as the plain mean over the slices. The graph is sized for
 * validation: training slices larger than it are cut to their centres; skipped when
 * they are smaller. */
#define CALIBRATE_MAX_SLICES 16

/* BN statistics of model recomputed over the training slices; graph: an inference graph
 * of model at the training slices' size. */
static gboolean
calibrate_bn_with(Run *run, EngModel *model, EngGraph *graph, GError **error)
{
  const EmsegDataset *train = run->train;
  const float *images[CALIBRATE_MAX_SLICES];
  guint n = MIN(train->n, CALIBRATE_MAX_SLICES);
  /* A graph smaller than the training slices (big slices validated in windows): their
   * centres, cut to the graph's size. */
  size_t gn, gh, gw;
  eng_graph_size(graph, &gn, &gh, &gw);
  g_return_val_if_fail(gh <= train->height && gw <= train->width, FALSE);
  /* Standardized (and cut) at the first calibration and kept for the run's later ones:
   * every validation calibrates, and 16 windows of 1024² are 64 MB to make. */
  gboolean make = run->bn_inputs == NULL || run->bn_h != gh || run->bn_w != gw;
  if (make) {
    g_free(run->bn_inputs);
    run->bn_inputs = g_new(float, gh * gw * n);
    run->bn_h = gh;
    run->bn_w = gw;
  }
  for (guint k = 0; k < n; k++) { /* evenly spread over the slices */
    if (make)
      emseg_dataset_read_window(train, (guint) ((guint64) k * train->n / n),
                                (guint) (train->width - gw) / 2, (guint) (train->height - gh) / 2,
                                (guint) gw, (guint) gh, run->bn_inputs + k * gh * gw);
    images[k] = run->bn_inputs + k * gh * gw;
  }
  EngError err;
  EngStatus st = eng_model_calibrate_bn(model, graph, images, n, &err);
  if (st == ENG_ERR_CANCELLED) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED, "cancelled");
    return FALSE;
  }
  if (st != ENG_OK)
    return engine_error(error, &err, "before validation");
  return TRUE;
}

static gboolean
calibrate_bn(Run *run, GError **error)
{
  const EmsegDataset *train = run->train, *val = run->val;
  if (train->width < val->width || train->height < val->height)
    return TRUE;
  return calibrate_bn_with(run, run->model, run->val_graph, error);
}

/* Loss and accuracy on the validation slices in inference mode; P(cell) into val_prob. */
static gboolean
validate(Run *run, EngGraph *graph, double *loss_out, double *acc_out, GError **error)
{
  const EmsegDataset *val = run->val;
  gsize vp = emseg_dataset_plane(val);
  double vl = 0, va = 0;
  for (guint i = 0; i < val->n; i++) {
    emseg_dataset_read_image(val, i, run->val_image);
    EngStatus st = eng_graph_forward(graph, run->val_image, ENG_MODE_INFER, 0);
    if (st != ENG_OK) {
      if (st == ENG_ERR_CANCELLED) {
        g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED, "cancelled");
        return FALSE;
      }
      g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE,
                  "validation, %s slice %u: %s", val->source, val->slice[i],
                  eng_status_to_string(st));
      return FALSE;
    }
    const float *z = eng_graph_logits(graph);
    const float *t = run->val_target + i * vp, *m = run->val_mask + i * vp;
    float *prob = run->val_prob + i * vp;
    double loss = eng_loss(run->cfg->loss, NULL, z, t, m, vp);
    guint64 right = 0, labeled = 0;
    for (gsize j = 0; j < vp; j++) {
      /* P(cell) = 1 - sigmoid(z) = sigmoid(-z), the ISBI convention the metrics expect */
      prob[j] = 1.0f / (1.0f + expf(z[j]));
      if (m[j] > 0) {
        labeled++;
        right += (z[j] > 0) == (t[j] > 0.5f);
      }
    }
    if (!isfinite(loss)) {
      g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE,
                  "validation, %s slice %u: the loss is not finite (%g)", val->source,
                  val->slice[i], loss);
      return FALSE;
    }
    vl += loss / val->n;
    va += (labeled ? (double) right / labeled : 0) / val->n;
  }
  *loss_out = vl;
  *acc_out = va;
  return TRUE;
}

/* The export exponent for the weights just validated (val_prob holds their predictions):
 * the best V_rand over the default exponents, the smallest γ on ties. */
static gboolean
choose_gamma(Run *run, double *gamma, GError **error)
{
  const EmsegDataset *val = run->val;
  g_autoptr(GError) local = NULL;
  guint n = 0, best = 0;
  g_autofree double *grid = emseg_gamma_parse_list(EMSEG_GAMMA_DEFAULT_LIST, &n, &local);
  g_autofree EngMetricsResult *res = grid ? g_new(EngMetricsResult, n) : NULL;
  if (!grid || !emseg_gamma_sweep(run->val_prob, val->labels, val->n, val->height,
                                  val->width, grid, n, res, &best, &local)) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_ENGINE,
                "choosing the export exponent on the validation slices: %s", local->message);
    return FALSE;
  }
  *gamma = grid[best];
  return TRUE;
}

static void
layer_stats(Run *run)
{
  const float *now = eng_model_params_const(run->model, NULL);
  memset(run->update, 0, sizeof(double) * run->n_layers);
  memset(run->weight, 0, sizeof(double) * run->n_layers);
  for (size_t p = 0; p < eng_model_n_params(run->model); p++) {
    const EngParam *par = eng_model_param(run->model, p);
    if (!par->trainable || par->layer < 0 || (guint) par->layer >= run->n_layers)
      continue;
    double du = 0, w = 0;
    const float *a = run->snapshot + par->offset, *b = now + par->offset;
    for (size_t k = 0; k < par->count; k++) {
      du += fabs((double) b[k] - (double) a[k]);
      w += fabs((double) b[k]);
    }
    run->update[par->layer] += du;
    run->weight[par->layer] += w;
  }
  for (guint l = 0; l < run->n_layers; l++)
    if (run->layer_count[l]) {
      run->update[l] /= (double) run->layer_count[l];
      run->weight[l] /= (double) run->layer_count[l];
    }
}

static gboolean
save_model(const EngModel *model, const char *path, EngDtype dtype, const char *meta,
           GError **error)
{
  EngError err;
  if (eng_model_save(model, path, dtype, meta, &err) != ENG_OK) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_IO, "%s", err.message);
    return FALSE;
  }
  return TRUE;
}

/* "augment_rotate=…\naugment_shear=…\naugment_elastic_sigma=…\n" when the run augments with
 * other strengths than the recipe's (eng_augment_params_init), else "": files of runs with
 * the default recipe stay as they were. Free with g_free. */
gboolean
emseg_training_augment_custom(const EmsegTrainingConfig *cfg)
{
  EngAugmentParams d;
  eng_augment_params_init(&d);
  const EngAugmentParams *a = &cfg->augment_params;
  return cfg->augment && (a->rotate_max_deg != d.rotate_max_deg || a->shear_max != d.shear_max ||
                          a->elastic_sigma != d.elastic_sigma);
}

static char *
augment_meta_lines(const EmsegTrainingConfig *cfg)
{
  const EngAugmentParams *a = &cfg->augment_params;
  if (!emseg_training_augment_custom(cfg))
    return g_strdup("");
  return g_strdup_printf("augment_rotate=%.9g\naugment_shear=%.9g\naugment_elastic_sigma=%.9g\n",
                         (double) a->rotate_max_deg, (double) a->shear_max,
                         (double) a->elastic_sigma);
}

/* The run's settings that its checkpoints and resume states record alike:
 * "border_weight=…\nborder_sigma=…\n" when the run weighs its loss (read back by
 * load_state; an absent key means unweighted; %.9g so a float reads back as the same
 * float), then "conv_precision=bf16\n" when it convolves in bfloat16, for the record (its
 * validation figures were computed so; a resume may change it). Free with g_free. */
static char *
run_meta_lines(const EmsegTrainingConfig *cfg)
{
  g_autofree char *border =
      cfg->border_w0 > 0 ? g_strdup_printf("border_weight=%.9g\nborder_sigma=%.9g\n",
                                           (double) cfg->border_w0, (double) cfg->border_sigma)
                         : NULL;
  g_autofree char *augment = augment_meta_lines(cfg);
  return g_strconcat(border ? border : "", augment, cfg->conv_bf16 ? "conv_precision=bf16\n" : "",
                     NULL);
}

/* Metadata of a saved model with its validation scores (a checkpoint, the averaged
 * weights): epoch, loss (and run_meta_lines: separation weights, precision), the caller's
 * own lines (extra), the scores, the seed, the run's cfg->meta, and export_gamma last,
 * since a key given twice keeps its last value. how: what chose γ (ignored when γ is NaN).
 * Free with g_free. */
static char *
scored_meta(const EmsegTrainingConfig *cfg, guint epoch, const char *extra, double val_loss,
            double val_accuracy, double vrand, double vinfo, double gamma, const char *how)
{
  g_autofree char *gamma_lines = isfinite(gamma) ? emseg_gamma_meta_lines(gamma, how)
                                                 : g_strdup("");
  g_autofree char *settings = run_meta_lines(cfg);
  return g_strdup_printf("epoch=%u\nloss=%s\n%s%sval_loss=%.6f\nval_accuracy=%.6f\n"
                         "val_vrand=%.6f\nval_vinfo=%.6f\nseed=%" G_GUINT64_FORMAT "\n%s%s",
                         epoch, eng_loss_name(cfg->loss), settings, extra, val_loss, val_accuracy,
                         vrand, vinfo, cfg->seed, cfg->meta ? cfg->meta : "", gamma_lines);
}

/* The resume files, .swa, .opt and .best first: the main file's epoch is what a resume
 * trusts, and load_state refuses a set whose epochs disagree. */
static gboolean
save_state(Run *run, guint e, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  g_autofree char *settings = run_meta_lines(cfg);
  /* loss= lets load_state refuse a resume with another loss: best_loss is in its units */
  g_autofree char *meta = g_strdup_printf(
      "resume_epoch=%u\nseed=%" G_GUINT64_FORMAT "\nloss=%s\nbest_loss=%.17g\nbest_epoch=%u\n"
      "bad_epochs=%u\n%s",
      e, cfg->seed, eng_loss_name(cfg->loss), run->best_loss, run->best_epoch, run->bad_epochs,
      settings);
  g_autofree char *opt_path = g_strconcat(cfg->state_path, ".opt", NULL);
  g_autofree char *best_path = g_strconcat(cfg->state_path, ".best", NULL);
  size_t n = 0;
  const float *state = eng_rmsprop_state(eng_trainer_optimizer(run->tr), &n);
  memcpy(eng_model_params_arena(run->opt_shadow, NULL), state, n * sizeof(float));
  if (run->swa_count) {
    g_autofree char *swa_path = g_strconcat(cfg->state_path, ".swa", NULL);
    g_autofree char *swa_meta = g_strdup_printf("%sswa_count=%" G_GUINT64_FORMAT "\n", meta,
                                                run->swa_count);
    if (!save_model(run->swa, swa_path, ENG_DTYPE_F32, swa_meta, error))
      return FALSE;
  }
  return save_model(run->opt_shadow, opt_path, ENG_DTYPE_F32, meta, error) &&
         save_model(run->best, best_path, ENG_DTYPE_F32, meta, error) &&
         save_model(run->model, cfg->state_path, ENG_DTYPE_F32, meta, error);
}

/* Best weights to hand back: an epoch's, or the starting weights validate_init scored
 * (best_epoch 0 with a finite loss, also after a resume). */
static gboolean
has_best(const Run *run)
{
  return run->best_epoch > 0 || isfinite(run->best_loss);
}

/* V_rand / V_info of the validation predictions validate() left in val_prob, into ep;
 * what: the error's context. */
static gboolean
score_validation(Run *run, EmsegTrainingEpoch *ep, const char *what, GError **error)
{
  EngMetricsResult mr;
  EngError err;
  if (eng_metrics_evaluate(run->val_prob, run->val->labels, run->val->n, run->val->height,
                           run->val->width, &mr, &err) != ENG_OK)
    return engine_error(error, &err, what);
  ep->vrand = mr.vrand;
  ep->vinfo = mr.vinfo;
  return TRUE;
}

/* The kept weights' BN statistics recomputed over the training slices, through a short-lived
 * graph at their size (their centres, at most EMSEG_PREDICT_WINDOW², for big slices). For
 * runs without validation slices, where no validation does it:
 * their statistics would otherwise be the momentum averages of augmented, dropout-perturbed
 * slices. Measured: a fine-tune of the shipped model on two slices of a shifted stack scored
 * V_rand / V_info 0.723 / 0.924 on three others with those, 0.987 / 0.981 recalibrated. */
static gboolean
calibrate_best(Run *run, GError **error)
{
  EngError err;
  guint mult = (guint) MAX(eng_spec_size_multiple(eng_model_spec(run->best)), 1);
  guint gh = MIN(run->train->height, EMSEG_PREDICT_WINDOW) / mult * mult;
  guint gw = MIN(run->train->width, EMSEG_PREDICT_WINDOW) / mult * mult;
  EngGraph *g = eng_graph_new(run->best, 1, MAX(gh, mult), MAX(gw, mult), 0, &err);
  if (!g)
    return engine_error(error, &err, "cannot plan a graph to recompute the BN statistics");
  eng_graph_set_cancel(g, run->cancel);
  gboolean ok = calibrate_bn_with(run, run->best, g, error);
  eng_graph_free(g);
  return ok;
}

/* The model's weights become the best so far (validation figures in ep, selection loss
 * sel): copied to run->best (its BN statistics recomputed by calibrate_best when the run
 * has no validation slices), their γ chosen when the validation slices allow it (*gamma,
 * NAN otherwise) and, with best_path, written there with their scores. extra: the
 * metadata lines of this kind of best; how: what chose γ. */
static gboolean
keep_best(Run *run, guint epoch, double sel, const EmsegTrainingEpoch *ep, const char *extra,
          const char *how, double *gamma, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  EngError err;
  if (eng_model_copy_params(run->best, run->model, &err) != ENG_OK)
    return engine_error(error, &err, "keeping the best weights");
  if (!(run->val && run->val->n) && cfg->calibrate_bn && !calibrate_best(run, error))
    return FALSE;
  run->best_loss = sel;
  run->best_epoch = epoch;
  *gamma = NAN;
  if (run->val_scored && cfg->calibrate_gamma && !choose_gamma(run, gamma, error))
    return FALSE;
  if (!isfinite(*gamma) && cfg->init_model && isfinite(cfg->init_gamma) &&
      cfg->init_gamma != 1.0) {
    *gamma = cfg->init_gamma;
    how = "kept from the starting model (no fully labelled validation slices to choose by)";
  }
  run->best_gamma = *gamma;
  if (!cfg->best_path)
    return TRUE;
  g_autofree char *meta = scored_meta(cfg, epoch, extra, ep->val_loss, ep->val_accuracy,
                                      ep->vrand, ep->vinfo, *gamma, how);
  return save_model(run->best, cfg->best_path, cfg->half ? ENG_DTYPE_F16 : ENG_DTYPE_F32, meta,
                    error);
}

/* validate_init: the starting weights scored as epoch 0 and kept as the best so far. */
static gboolean
validate_start(Run *run, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  gint64 t0 = g_get_monotonic_time();
  EmsegTrainingEpoch ep = { .train_loss = NAN, .train_accuracy = NAN, .val_loss = NAN,
                            .val_accuracy = NAN, .vrand = NAN, .vinfo = NAN, .lr = NAN,
                            .eta_seconds = NAN };
  if (cfg->calibrate_bn && !calibrate_bn(run, error))
    return FALSE;
  if (!validate(run, run->val_graph, &ep.val_loss, &ep.val_accuracy, error))
    return FALSE;
  if (run->val_scored && cfg->metrics_every &&
      !score_validation(run, &ep, "V_rand / V_info of the starting weights", error))
    return FALSE;
  /* best_path holds the best weights so far from the start: these, until an epoch wins */
  double gamma;
  if (!keep_best(run, 0, ep.val_loss, &ep, "starting_weights=1\n",
                 "best V_rand of the validation slices (plain inference) of the starting "
                 "weights", &gamma, error))
    return FALSE;
  ep.seconds = (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
  EmsegTrainingEvent ev = { .kind = EMSEG_TRAINING_EVENT_EPOCH, .epoch = 0,
                            .n_epochs = cfg->epochs };
  ev.u.epoch = ep;
  emit(run, &ev);
  return TRUE;
}

static gboolean
run_epoch(Run *run, guint e, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  gboolean has_val = run->val && run->val->n;
  gint64 t0 = g_get_monotonic_time();
  double lr = emseg_training_lr_at(cfg, e);
  eng_rmsprop_set_lr(eng_trainer_optimizer(run->tr), (float) lr);
  memcpy(run->snapshot, eng_model_params_const(run->model, NULL),
         run->arena_count * sizeof(float));

  EmsegTrainingEpoch ep = { .val_loss = NAN, .val_accuracy = NAN, .vrand = NAN,
                            .vinfo = NAN, .lr = lr };
  if (!train_epoch(run, e, &ep.train_loss, &ep.train_accuracy, error))
    return FALSE;
  if (run->swa && e >= cfg->swa_from) {
    EngError err;
    if (eng_model_running_mean(run->swa, run->model, run->swa_count, &err) != ENG_OK)
      return engine_error(error, &err, "averaging the weights");
    run->swa_count++;
  }
  /* Without validation slices the training loss chooses the checkpoint, every epoch. */
  guint every = MAX(cfg->val_every, 1u);
  gboolean validated = !has_val || e % every == 0 || e == cfg->epochs;
  if (has_val && validated && cfg->calibrate_bn && !calibrate_bn(run, error))
    return FALSE;
  if (has_val && validated && !validate(run, run->val_graph, &ep.val_loss, &ep.val_accuracy,
                                        error))
    return FALSE;
  if (validated && run->val_scored && cfg->metrics_every && /* val_scored: has_val too */
      (e % cfg->metrics_every == 0 || e == cfg->epochs) &&
      !score_validation(run, &ep, "V_rand / V_info on the validation slices", error))
    return FALSE;
  double sel = has_val ? ep.val_loss : ep.train_loss;
  ep.improved = validated && sel < run->best_loss;
  if (!validated) {
    /* no figure to compare: the checkpoint and the patience count wait */
  } else if (ep.improved) {
    run->bad_epochs = 0;
  } else {
    /* patience counts epochs: add those since the previous validation */
    run->bad_epochs += has_val ? e - (e - 1) / every * every : 1;
  }
  double gamma = NAN;
  if (ep.improved) {
    g_autofree char *how = g_strdup_printf("best V_rand of the validation slices (plain "
                                           "inference) at epoch %u", e);
    g_autofree char *extra = g_strdup_printf("train_loss=%.6f\nlr=%g\n", ep.train_loss, lr);
    if (!keep_best(run, e, sel, &ep, extra, how, &gamma, error))
      return FALSE;
  }
  if (cfg->patience && run->bad_epochs >= cfg->patience)
    run->stopped_early = TRUE;
  if (cfg->state_path && !save_state(run, e, error))
    return FALSE;

  ep.seconds = (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
  run->seconds_this_session += ep.seconds;
  run->epochs_this_session++;
  ep.eta_seconds = run->stopped_early ? 0
                   : run->seconds_this_session / run->epochs_this_session * (cfg->epochs - e);
  run->epoch = e;

  EmsegTrainingEvent ev = { .kind = EMSEG_TRAINING_EVENT_EPOCH, .epoch = e,
                            .n_epochs = cfg->epochs };
  ev.u.epoch = ep;
  emit(run, &ev);
  layer_stats(run);
  ev = (EmsegTrainingEvent) { .kind = EMSEG_TRAINING_EVENT_LAYER_STATS, .epoch = e,
                              .n_epochs = cfg->epochs };
  ev.u.layers = (EmsegTrainingLayerStats) { .n_layers = run->n_layers,
                                            .layer_names = run->layer_names,
                                            .mean_abs_update = run->update,
                                            .mean_abs_weight = run->weight };
  emit(run, &ev);
  if (ep.improved) {
    ev = (EmsegTrainingEvent) { .kind = EMSEG_TRAINING_EVENT_CHECKPOINT, .epoch = e,
                                .n_epochs = cfg->epochs };
    ev.u.checkpoint = (EmsegTrainingCheckpoint) { .val_loss = sel,
                                                  .val_accuracy = has_val ? ep.val_accuracy
                                                                          : ep.train_accuracy,
                                                  .vrand = ep.vrand, .vinfo = ep.vinfo,
                                                  .export_gamma = gamma,
                                                  .path = cfg->best_path, .model = run->best };
    emit(run, &ev);
  }
  return TRUE;
}

/* The end of weight averaging: BN statistics recomputed for the averaged weights (their
 * own activations, not the average of the runs'), validation and scores as a checkpoint
 * gets them, then the file. Two short-lived inference graphs at most: the training
 * slices' size for BN, the validation slices' for scoring. */
static gboolean
finish_swa(Run *run, EmsegTrainingSwa *out, GError **error)
{
  const EmsegTrainingConfig *cfg = run->cfg;
  const EmsegDataset *train = run->train, *val = run->val;
  gboolean has_val = val && val->n;
  *out = (EmsegTrainingSwa) { .first_epoch = cfg->swa_from, .last_epoch = run->epoch,
                              .val_loss = NAN, .val_accuracy = NAN, .vrand = NAN,
                              .vinfo = NAN, .export_gamma = NAN };
  EngError err;
  EngGraph *tg = eng_graph_new(run->swa, 1, train->height, train->width, 0, &err), *vg = NULL;
  if (!tg)
    return engine_error(error, &err, "cannot plan a graph for the averaged weights");
  eng_graph_set_cancel(tg, run->cancel);
  gboolean ok = calibrate_bn_with(run, run->swa, tg, error);
  if (ok && has_val) {
    gboolean same = val->width == train->width && val->height == train->height;
    vg = same ? NULL : eng_graph_new(run->swa, 1, val->height, val->width, 0, &err);
    if (!same && !vg)
      ok = engine_error(error, &err, "cannot plan a graph for the averaged weights");
    if (vg)
      eng_graph_set_cancel(vg, run->cancel);
    ok = ok && validate(run, vg ? vg : tg, &out->val_loss, &out->val_accuracy, error);
  }
  if (ok && run->val_scored) {
    EngMetricsResult mr;
    if (eng_metrics_evaluate(run->val_prob, val->labels, val->n, val->height, val->width, &mr,
                             &err) != ENG_OK)
      ok = engine_error(error, &err, "V_rand / V_info of the averaged weights");
    out->vrand = ok ? mr.vrand : NAN;
    out->vinfo = ok ? mr.vinfo : NAN;
    if (ok && cfg->calibrate_gamma)
      ok = choose_gamma(run, &out->export_gamma, error);
  }
  eng_graph_free(vg);
  eng_graph_free(tg);
  if (ok && cfg->swa_path) {
    g_autofree char *how = g_strdup_printf("best V_rand of the validation slices (plain "
                                           "inference) of the weights averaged over epochs "
                                           "%u-%u", out->first_epoch, out->last_epoch);
    g_autofree char *extra = g_strdup_printf("swa_from=%u\nswa_epochs=%" G_GUINT64_FORMAT "\n",
                                             out->first_epoch, run->swa_count);
    g_autofree char *meta = scored_meta(cfg, out->last_epoch, extra, out->val_loss,
                                        out->val_accuracy, out->vrand, out->vinfo,
                                        out->export_gamma, how);
    ok = save_model(run->swa, cfg->swa_path, cfg->half ? ENG_DTYPE_F16 : ENG_DTYPE_F32, meta,
                    error);
  }
  return ok;
}

gboolean
emseg_training_run(const EmsegTrainingConfig *cfg, const EmsegDataset *train,
                   const EmsegDataset *val, EmsegTrainingFunc callback, gpointer user_data,
                   atomic_int *cancel, EmsegTrainingResult *result, GError **error)
{
  g_return_val_if_fail(cfg && result, FALSE);
  memset(result, 0, sizeof *result);
  Run run = { .cfg = cfg, .train = train, .val = val, .callback = callback,
              .user_data = user_data, .cancel = cancel };
  g_autoptr(GError) local = NULL;
  gboolean ok = run_setup(&run, &local);
  if (ok) {
    EmsegTrainingEvent ev = { .kind = EMSEG_TRAINING_EVENT_STARTED, .n_epochs = cfg->epochs };
    ev.u.started = (EmsegTrainingStarted) {
      .n_layers = run.n_layers, .layer_names = run.layer_names,
      .n_trainable = eng_model_count_trainable(run.model), .n_train = train->n,
      .n_val = val ? val->n : 0, .width = run.tw, .height = run.th,
      .first_epoch = run.first_epoch, .val_scored = run.val_scored };
    emit(&run, &ev);
    run.epoch = run.first_epoch - 1;
    if (cfg->validate_init && cfg->init_model && run.first_epoch == 1 && val && val->n)
      ok = validate_start(&run, &local);
    for (guint e = run.first_epoch; ok && e <= cfg->epochs && !run.stopped_early; e++) {
      if (cancelled(&run)) {
        g_set_error(&local, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_CANCELLED,
                    "cancelled");
        ok = FALSE;
        break;
      }
      ok = run_epoch(&run, e, &local);
    }
  }
  if (ok && run.swa_count)
    ok = finish_swa(&run, &result->swa, &local);
  gboolean was_cancelled = !ok && g_error_matches(local, EMSEG_TRAINING_ERROR,
                                                  EMSEG_TRAINING_ERROR_CANCELLED);
  result->epochs_run = run.epoch;
  result->best_epoch = run.best_epoch;
  result->best_loss = has_best(&run) ? run.best_loss : NAN;
  result->export_gamma = has_best(&run) ? run.best_gamma : NAN;
  result->stopped_early = run.stopped_early;
  result->cancelled = was_cancelled;
  if (has_best(&run))
    result->best_model = g_steal_pointer(&run.best);
  if (ok && run.swa_count)
    result->swa_model = g_steal_pointer(&run.swa);
  if (run.model && run.tr) {
    /* The trainer borrows the model: free it before handing the model out. */
    eng_trainer_free(g_steal_pointer(&run.tr));
    eng_graph_free(g_steal_pointer(&run.val_graph));
    result->last_model = g_steal_pointer(&run.model);
  }
  /* Callbacks run even after a stop request, so a consumer always sees the end. */
  run.callback = callback;
  if (ok || was_cancelled) {
    EmsegTrainingEvent ev = { .kind = EMSEG_TRAINING_EVENT_FINISHED, .epoch = run.epoch,
                              .n_epochs = cfg->epochs };
    ev.u.finished = (EmsegTrainingFinished) { .epochs_run = run.epoch,
                                              .best_epoch = run.best_epoch,
                                              .best_loss = result->best_loss,
                                              .stopped_early = run.stopped_early,
                                              .cancelled = was_cancelled };
    if (callback)
      callback(&ev, user_data);
  } else if (callback) {
    EmsegTrainingEvent ev = { .kind = EMSEG_TRAINING_EVENT_ERROR, .epoch = run.epoch,
                              .n_epochs = cfg->epochs };
    ev.u.message = local->message;
    callback(&ev, user_data);
  }
  run_free(&run);
  if (!ok)
    g_propagate_error(error, g_steal_pointer(&local));
  return ok;
}

/* ---- log ---------------------------------------------------------------------------------- */

EmsegTrainingLog *
emseg_training_log_new(void)
{
  EmsegTrainingLog *log = g_new0(EmsegTrainingLog, 1);
  log->epochs = g_array_new(FALSE, FALSE, sizeof(EmsegTrainingLogEpoch));
  log->stat_epochs = g_array_new(FALSE, FALSE, sizeof(guint));
  log->updates = g_array_new(FALSE, FALSE, sizeof(double));
  log->weights = g_array_new(FALSE, FALSE, sizeof(double));
  log->best_loss = NAN;
  return log;
}

void
emseg_training_log_free(EmsegTrainingLog *log)
{
  if (!log)
    return;
  g_array_unref(log->epochs);
  g_array_unref(log->stat_epochs);
  g_array_unref(log->updates);
  g_array_unref(log->weights);
  g_strfreev(log->layer_names);
  g_free(log);
}

void
emseg_training_log_add(EmsegTrainingLog *log, const EmsegTrainingEvent *ev)
{
  switch (ev->kind) {
  case EMSEG_TRAINING_EVENT_EPOCH: {
    EmsegTrainingLogEpoch e = { .epoch = ev->epoch, .m = ev->u.epoch };
    g_array_append_val(log->epochs, e);
    break;
  }
  case EMSEG_TRAINING_EVENT_LAYER_STATS: {
    const EmsegTrainingLayerStats *s = &ev->u.layers;
    if (!log->layer_names) {
      log->n_layers = s->n_layers;
      log->layer_names = copy_names(s->layer_names, s->n_layers);
    }
    if (s->n_layers != log->n_layers) /* another model: not the same table */
      break;
    g_array_append_val(log->stat_epochs, ev->epoch);
    g_array_append_vals(log->updates, s->mean_abs_update, s->n_layers);
    g_array_append_vals(log->weights, s->mean_abs_weight, s->n_layers);
    break;
  }
  case EMSEG_TRAINING_EVENT_FINISHED:
    log->best_epoch = ev->u.finished.best_epoch;
    log->best_loss = ev->u.finished.best_loss;
    break;
  default:
    break;
  }
}

static void
csv_num(GString *s, double v)
{
  g_string_append_c(s, ',');
  if (isfinite(v)) {
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    g_string_append(s, g_ascii_formatd(buf, sizeof buf, "%.9g", v));
  }
}

static gboolean
write_text(const char *path, const GString *s, GError **error)
{
  /* g_file_set_contents writes a temporary file and renames it: never half a CSV */
  return g_file_set_contents(path, s->str, (gssize) s->len, error);
}

gboolean
emseg_training_log_write_curves_csv(const EmsegTrainingLog *log, const char *path,
                                    GError **error)
{
  g_autoptr(GString) s =
      g_string_new("epoch,train_loss,train_accuracy,val_loss,val_accuracy,vrand,vinfo,lr,seconds\n");
  for (guint i = 0; i < log->epochs->len; i++) {
    const EmsegTrainingLogEpoch *e = &g_array_index(log->epochs, EmsegTrainingLogEpoch, i);
    g_string_append_printf(s, "%u", e->epoch);
    csv_num(s, e->m.train_loss);
    csv_num(s, e->m.train_accuracy);
    csv_num(s, e->m.val_loss);
    csv_num(s, e->m.val_accuracy);
    csv_num(s, e->m.vrand);
    csv_num(s, e->m.vinfo);
    csv_num(s, e->m.lr);
    csv_num(s, e->m.seconds);
    g_string_append_c(s, '\n');
  }
  return write_text(path, s, error);
}

gboolean
emseg_training_log_write_stats_csv(const EmsegTrainingLog *log, const char *path,
                                   GError **error)
{
  g_autoptr(GString) s = g_string_new("epoch,layer_index,layer,mean_abs_update,mean_abs_weight\n");
  for (guint r = 0; r < log->stat_epochs->len; r++)
    for (guint l = 0; l < log->n_layers; l++) {
      gsize k = (gsize) r * log->n_layers + l;
      g_string_append_printf(s, "%u,%u,%s", g_array_index(log->stat_epochs, guint, r), l,
                             log->layer_names[l]);
      csv_num(s, g_array_index(log->updates, double, k));
      csv_num(s, g_array_index(log->weights, double, k));
      g_string_append_c(s, '\n');
    }
  return write_text(path, s, error);
}

gboolean
emseg_training_log_write_heatmap_png(const EmsegTrainingLog *log, const char *path,
                                     const char *title, GError **error)
{
  if (log->stat_epochs->len == 0) {
    g_set_error(error, EMSEG_TRAINING_ERROR, EMSEG_TRAINING_ERROR_INVALID,
                "%s: no epoch finished, so there are no update statistics to draw", path);
    return FALSE;
  }
  return emseg_heatmap_write_png(path, title, (const double *) (const void *) log->updates->data,
                                 log->stat_epochs->len, log->n_layers,
                                 (const char *const *) log->layer_names,
                                 g_array_index(log->stat_epochs, guint, 0), error);
}
