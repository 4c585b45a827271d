/* cli-train.c — `emseg train`: the plain training loop of the engine issue (shuffled
 * full slices, batch 1, RMSprop, per-epoch validation, best-validation-loss checkpoint).
 * Augmentation and the full pipeline arrive with the training-pipeline work. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli-commands.h"
#include "emseg-predict.h"
#include "emseg-stack.h"
#include "eng-modelfile.h"
#include "eng-rng.h"
#include "eng-train.h"

typedef struct {
  float *image;  /* standardized (h*w) */
  float *target; /* membrane = 1 */
  float *mask;   /* 0 = unlabeled */
  guint index;
} Sample;

static Sample *
load_samples(EmsegStack *images, EmsegStack *labels, const guint *idx, guint n, GError **error)
{
  size_t plane = (size_t) emseg_stack_get_width(images) * emseg_stack_get_height(images);
  Sample *s = g_new0(Sample, n);
  guint8 *lab = g_new(guint8, plane);
  for (guint i = 0; i < n; i++) {
    s[i].index = idx[i];
    s[i].image = g_new(float, plane);
    s[i].target = g_new(float, plane);
    s[i].mask = g_new(float, plane);
    if (idx[i] >= emseg_stack_get_n_slices(labels)) {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                  "%s has %u label slices; slice %u has no labels",
                  emseg_stack_get_path(labels), emseg_stack_get_n_slices(labels), idx[i]);
      goto fail;
    }
    if (!emseg_read_standardized(images, idx[i], s[i].image, error) ||
        !emseg_stack_read_u8(labels, idx[i], lab, error))
      goto fail;
    if (eng_labels_to_target(s[i].target, s[i].mask, lab, plane) == 0) {
      g_set_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT,
                  "%s, slice %u: no labeled pixels (expected 0 = membrane, 255 = cell)",
                  emseg_stack_get_path(labels), idx[i]);
      goto fail;
    }
  }
  g_free(lab);
  return s;
fail:
  g_free(lab);
  for (guint i = 0; i < n; i++) {
    g_free(s[i].image);
    g_free(s[i].target);
    g_free(s[i].mask);
  }
  g_free(s);
  return NULL;
}

static void
free_samples(Sample *s, guint n)
{
  for (guint i = 0; s && i < n; i++) {
    g_free(s[i].image);
    g_free(s[i].target);
    g_free(s[i].mask);
  }
  g_free(s);
}

int
emseg_cli_train(int argc, char **argv)
{
  g_autofree char *images_path = NULL, *labels_path = NULL, *slices_text = NULL,
                  *val_text = NULL, *loss_text = NULL, *spec_text = NULL, *out_path = NULL;
  int epochs = 10;
  double lr = 1e-3, wd = 1e-3, dropout = -1;
  gint64 seed = 1;
  gboolean half = FALSE;
  GOptionEntry entries[] = {
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack (TIFF or PNG folder)", "STACK" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &labels_path, "Label stack (0 = membrane, 255 = cell)", "LABELS" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text, "Training slices, e.g. 0-19 (default: all labeled)", "LIST" },
    { "val-slices", 0, 0, G_OPTION_ARG_STRING, &val_text, "Validation slices, e.g. 20-24", "LIST" },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &epochs, "Epochs (default 10)", "N" },
    { "loss", 0, 0, G_OPTION_ARG_STRING, &loss_text, "dice or bce (default dice)", "LOSS" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, "RMSprop learning rate (default 1e-3)", "LR" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &wd, "L2 on conv weights (default 1e-3)", "WD" },
    { "dropout", 0, 0, G_OPTION_ARG_DOUBLE, &dropout, "Dropout rate in every block (overrides --spec)", "P" },
    { "spec", 0, 0, G_OPTION_ARG_STRING, &spec_text, "Model spec overrides, e.g. base_width=8,down=1/1 (default: Table 1)", "SPEC" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed for weights and shuffling (default 1)", "S" },
    { "half", 0, 0, G_OPTION_ARG_NONE, &half, "Store weights in half precision", NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Model file to write (best validation loss)", "MODEL" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- train a model on a labeled stack");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(ctx, eng_spec_help());
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg train: %s\n", error->message);
    return 2;
  }
  if (!images_path || !labels_path || !out_path) {
    fprintf(stderr, "emseg train: --images, --labels and --out are required (see --help)\n");
    return 2;
  }
  EngLossKind loss = ENG_LOSS_DICE;
  if (loss_text && !strcmp(loss_text, "bce"))
    loss = ENG_LOSS_BCE;
  else if (loss_text && strcmp(loss_text, "dice")) {
    fprintf(stderr, "emseg train: --loss must be dice or bce, not '%s'\n", loss_text);
    return 2;
  }
  if (epochs < 1) {
    fprintf(stderr, "emseg train: --epochs must be at least 1\n");
    return 2;
  }
  EngSpec spec;
  EngError err;
  eng_spec_default(&spec);
  if (spec_text && eng_spec_parse(&spec, spec_text, &err) != ENG_OK) {
    fprintf(stderr, "emseg train: %s\n", err.message);
    return 2;
  }
  if (dropout >= 0)
    spec.dropout = (float) dropout;
  if (eng_spec_validate(&spec, &err) != ENG_OK) {
    fprintf(stderr, "emseg train: %s\n", err.message);
    return 2;
  }

  g_autoptr(EmsegStack) images = emseg_stack_open(images_path, &error);
  g_autoptr(EmsegStack) labels = images ? emseg_stack_open(labels_path, &error) : NULL;
  if (!labels) {
    fprintf(stderr, "emseg train: %s\n", error->message);
    return 1;
  }
  guint w = emseg_stack_get_width(images), h = emseg_stack_get_height(images);
  if (emseg_stack_get_width(labels) != w || emseg_stack_get_height(labels) != h) {
    fprintf(stderr, "emseg train: %s is %ux%u but %s is %ux%u; they must match\n", images_path,
            w, h, labels_path, emseg_stack_get_width(labels), emseg_stack_get_height(labels));
    return 1;
  }
  guint n_labeled = MIN(emseg_stack_get_n_slices(images), emseg_stack_get_n_slices(labels));
  guint n_train = 0, n_val = 0;
  g_autofree guint *train_idx = emseg_parse_slices(slices_text, n_labeled, &n_train, &error);
  g_autofree guint *val_idx = NULL;
  if (train_idx && val_text)
    val_idx = emseg_parse_slices(val_text, n_labeled, &n_val, &error);
  if (!train_idx || (val_text && !val_idx)) {
    fprintf(stderr, "emseg train: %s\n", error->message);
    return 2;
  }
  Sample *train = load_samples(images, labels, train_idx, n_train, &error);
  Sample *val = train && n_val ? load_samples(images, labels, val_idx, n_val, &error) : NULL;
  if (!train || (n_val && !val)) {
    fprintf(stderr, "emseg train: %s\n", error->message);
    free_samples(train, n_train);
    return 1;
  }

  int rc = 1;
  EngModel *model = eng_model_new(&spec, (uint64_t) seed, &err);
  EngRmspropConfig opt;
  eng_rmsprop_default(&opt);
  opt.lr = (float) lr;
  opt.weight_decay = (float) wd;
  EngTrainer *tr = model ? eng_trainer_new(model, 1, h, w, &opt, loss, &err) : NULL;
  if (!tr) {
    fprintf(stderr, "emseg train: %s\n", err.message);
    goto out;
  }
  char spec_line[1024];
  eng_spec_format(&spec, spec_line, sizeof spec_line);
  printf("model %s\nparams %zu\ntrain_slices %u val_slices %u size %ux%u loss %s lr %g seed %" G_GINT64_FORMAT "\n",
         spec_line, eng_model_count_trainable(model), n_train, n_val, w, h, eng_loss_name(loss),
         lr, seed);
  fflush(stdout);

  EngRng rng;
  eng_rng_seed(&rng, (uint64_t) seed ^ 0x5eedULL);
  guint *order = g_new(guint, n_train);
  double best = INFINITY;
  GTimer *timer = g_timer_new();
  uint64_t step_seed = (uint64_t) seed << 20;
  for (int e = 1; e <= epochs; e++) {
    g_timer_start(timer);
    for (guint i = 0; i < n_train; i++)
      order[i] = i;
    for (guint i = n_train; i > 1; i--) { /* Fisher–Yates */
      guint j = eng_rng_u32(&rng) % i, t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
    double tl = 0, ta = 0;
    for (guint i = 0; i < n_train; i++) {
      Sample *s = &train[order[i]];
      EngStepResult r;
      if (eng_trainer_step(tr, s->image, s->target, s->mask, step_seed++, &r, &err) != ENG_OK) {
        fprintf(stderr, "emseg train: epoch %d, slice %u: %s\n", e, s->index, err.message);
        g_free(order);
        g_timer_destroy(timer);
        goto out;
      }
      tl += r.loss / n_train;
      ta += r.accuracy / n_train;
    }
    double vl = tl, va = ta;
    if (n_val) {
      vl = va = 0;
      for (guint i = 0; i < n_val; i++) {
        EngStepResult r;
        eng_trainer_evaluate(tr, val[i].image, val[i].target, val[i].mask, &r, &err);
        vl += r.loss / n_val;
        va += r.accuracy / n_val;
      }
    }
    gboolean improved = vl < best;
    if (improved) {
      best = vl;
      char meta[512];
      g_snprintf(meta, sizeof meta,
                 "epoch=%d\nloss=%s\ntrain_loss=%.6f\nval_loss=%.6f\nval_accuracy=%.6f\nseed=%" G_GINT64_FORMAT "\nlr=%g\n",
                 e, eng_loss_name(loss), tl, vl, va, seed, lr);
      if (eng_model_save(model, out_path, half ? ENG_DTYPE_F16 : ENG_DTYPE_F32, meta, &err) != ENG_OK) {
        fprintf(stderr, "emseg train: %s\n", err.message);
        g_free(order);
        g_timer_destroy(timer);
        goto out;
      }
    }
    printf("epoch %d/%d train_loss %.4f train_acc %.4f %s %.4f %s %.4f time %.1fs%s\n", e, epochs,
           tl, ta, n_val ? "val_loss" : "loss", vl, n_val ? "val_acc" : "acc", va,
           g_timer_elapsed(timer, NULL), improved ? " saved" : "");
    fflush(stdout);
  }
  g_free(order);
  g_timer_destroy(timer);
  printf("best %s %.4f written to %s\n", n_val ? "val_loss" : "train_loss", best, out_path);
  rc = 0;
out:
  eng_trainer_free(tr);
  eng_model_free(model);
  free_samples(train, n_train);
  free_samples(val, n_val);
  return rc;
}
