/* cli-train.c — `emseg train`: the paper's training recipe (emseg-training.h) on a labeled
 * stack (or a project's stack with the labels painted in the workbench), one line per epoch, the best-validation-loss model written atomically, a resume
 * state beside it, and optional CSV / PNG records (curves, per-layer update statistics,
 * the Figure 4 heatmap). Ctrl-C stops after the current step and keeps what was done. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-commands.h"
#include "emseg-conv-kernel.h"
#include "cli-interrupt.h"
#include "emseg-dataset.h"
#include "emseg-gamma.h"
#include "emseg-heatmap-png.h"
#include "emseg-predict.h"
#include "emseg-shipped-model.h"
#include "emseg-stack.h"
#include "emseg-training.h"
#include "eng-layers.h"
#include "eng-modelfile.h"

typedef struct {
  EmsegTrainingLog *log;
  gboolean verbose, has_val;
  gboolean val_scored; /* the validation slices are fully labelled (from STARTED) */
} Printer;

static gboolean
print_event(const EmsegTrainingEvent *ev, gpointer data)
{
  Printer *p = data;
  emseg_training_log_add(p->log, ev);
  switch (ev->kind) {
  case EMSEG_TRAINING_EVENT_STARTED:
    printf("params %zu layers %u train_slices %u val_slices %u input %ux%u",
           ev->u.started.n_trainable, ev->u.started.n_layers, ev->u.started.n_train,
           ev->u.started.n_val, ev->u.started.width, ev->u.started.height);
    if (ev->u.started.first_epoch > 1)
      printf(" resuming_at_epoch %u", ev->u.started.first_epoch);
    printf("\n");
    p->val_scored = ev->u.started.val_scored;
    if (p->has_val && !ev->u.started.val_scored)
      fprintf(stderr, "emseg train: note: the validation slices have unlabelled pixels, so "
                      "there are no V_rand / V_info figures and no export exponent\n");
    break;
  case EMSEG_TRAINING_EVENT_STEP:
    if (p->verbose)
      printf("  step %u/%u slice %u loss %.4f acc %.4f\n", ev->u.step.step, ev->u.step.n_steps,
             ev->u.step.slice, ev->u.step.loss, ev->u.step.accuracy);
    break;
  case EMSEG_TRAINING_EVENT_EPOCH: {
    const EmsegTrainingEpoch *m = &ev->u.epoch;
    if (ev->epoch == 0) { /* --init: the starting weights, which an epoch must beat */
      printf("epoch 0/%u (starting weights) val_loss %.4f val_acc %.4f", ev->n_epochs,
             m->val_loss, m->val_accuracy);
      if (isfinite(m->vrand))
        printf(" vrand %.4f vinfo %.4f", m->vrand, m->vinfo);
      printf(" time %.1fs saved\n", m->seconds);
      break;
    }
    printf("epoch %u/%u train_loss %.4f train_acc %.4f", ev->epoch, ev->n_epochs, m->train_loss,
           m->train_accuracy);
    if (p->has_val && isfinite(m->val_loss)) /* not on the epochs --val-every skips */
      printf(" val_loss %.4f val_acc %.4f", m->val_loss, m->val_accuracy);
    if (isfinite(m->vrand))
      printf(" vrand %.4f vinfo %.4f", m->vrand, m->vinfo);
    printf(" lr %.3g time %.1fs eta %.0fs%s\n", m->lr, m->seconds, m->eta_seconds,
           m->improved ? " saved" : "");
    break;
  }
  case EMSEG_TRAINING_EVENT_FINISHED:
    if (ev->u.finished.stopped_early)
      printf("early stop after epoch %u (no better loss for the patience window)\n",
             ev->u.finished.epochs_run);
    if (ev->u.finished.cancelled)
      printf("stopped during epoch %u\n", ev->u.finished.epochs_run + 1);
    break;
  default:
    break;
  }
  fflush(stdout);
  return TRUE;
}

static gboolean
parse_lr_steps(const char *text, EmsegTrainingConfig *cfg, GError **error)
{
  g_auto(GStrv) parts = g_strsplit(text, ",", -1);
  cfg->n_lr_steps = 0;
  for (char **p = parts; *p; p++) {
    guint64 v;
    if (cfg->n_lr_steps == EMSEG_TRAINING_MAX_LR_STEPS ||
        !g_ascii_string_to_unsigned(g_strstrip(*p), 10, 1, G_MAXUINT, &v, NULL)) {
      g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                  "--lr-steps wants up to %d epoch numbers >= 1 separated by commas, not '%s'",
                  EMSEG_TRAINING_MAX_LR_STEPS, text);
      return FALSE;
    }
    cfg->lr_steps[cfg->n_lr_steps++] = (guint) v;
  }
  return TRUE;
}

/* out.emsegmodel -> out-swa.emsegmodel; any other name gets "-swa" appended. */
static char *
swa_default_path(const char *out)
{
  if (g_str_has_suffix(out, ".emsegmodel"))
    return g_strdup_printf("%.*s-swa.emsegmodel", (int) (strlen(out) - strlen(".emsegmodel")),
                           out);
  return g_strconcat(out, "-swa", NULL);
}

/* Training slices: the listed ones, or every labelled slice that does not validate. */
static guint *
project_train_slices(EmsegProject *project, gint64 stack_id, guint n_slices,
                     const char *slices_text, const guint *val_idx, guint n_val, guint *n_out,
                     GError **error)
{
  if (slices_text)
    return emseg_parse_slices(slices_text, n_slices, n_out, error);
  g_autoptr(GArray) labelled = emseg_project_labeled_slices(project, stack_id, error);
  if (!labelled)
    return NULL;
  guint *out = g_new(guint, MAX(labelled->len, 1u)), n = 0;
  for (guint i = 0; i < labelled->len; i++) {
    guint z = g_array_index(labelled, guint, i);
    gboolean validates = FALSE;
    for (guint k = 0; k < n_val; k++)
      validates = validates || val_idx[k] == z;
    if (!validates)
      out[n++] = z;
  }
  if (n == 0) {
    g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT,
                "%s: no labelled slice is left to train on (%u labelled, %u validate)",
                emseg_project_get_path(project), labelled->len, n_val);
    g_free(out);
    return NULL;
  }
  *n_out = n;
  return out;
}

/* --project: the training and validation slices of one stack of a project, with the labels
 * and corrections painted in the workbench. The stack: --stack, or the project's only one. */
static gboolean
datasets_from_project(const char *path, gint64 stack_id, const char *slices_text,
                      const char *val_text, EmsegDataset **train, EmsegDataset **val,
                      guint *n_val, int *rc, GError **error)
{
  g_autoptr(EmsegProject) project = emseg_project_open(path, EMSEG_PROJECT_OPEN_READ_ONLY, error);
  if (!project)
    return FALSE;
  if (!emseg_cli_pick_stack(project, &stack_id, rc, error))
    return FALSE;
  g_auto(EmsegProjectStack) st = { 0 };
  if (!emseg_project_get_stack(project, stack_id, &st, error))
    return FALSE;
  g_autofree guint *val_idx = NULL, *train_idx = NULL;
  guint n_train = 0;
  *n_val = 0;
  if (val_text && !(val_idx = emseg_parse_slices(val_text, st.n_slices, n_val, error))) {
    *rc = 2;
    return FALSE;
  }
  train_idx = project_train_slices(project, stack_id, st.n_slices, slices_text, val_idx, *n_val,
                                   &n_train, error);
  if (!train_idx) {
    *rc = slices_text ? 2 : 1;
    return FALSE;
  }
  *train = emseg_dataset_from_project(project, stack_id, train_idx, n_train, error);
  if (!*train)
    return FALSE;
  if (*n_val && !(*val = emseg_dataset_from_project(project, stack_id, val_idx, *n_val, error)))
    return FALSE;
  printf("project %s stack %" G_GINT64_FORMAT " '%s': %u training, %u validation slices\n", path,
         stack_id, st.name, n_train, *n_val);
  return TRUE;
}

int
emseg_cli_train(int argc, char **argv)
{
  g_autofree char *images_path = NULL, *labels_path = NULL, *slices_text = NULL,
                  *val_text = NULL, *loss_text = NULL, *spec_text = NULL, *out_path = NULL,
                  *lr_steps_text = NULL, *init_path = NULL, *state_path = NULL,
                  *stats_csv = NULL, *heatmap_png = NULL, *curves_csv = NULL,
                  *curves_png = NULL, *swa_out = NULL, *project_path = NULL;
  gint64 stack_id = 0;
  int epochs = 10, patience = 0, crop = 0, metrics_every = 1, val_every = 1, swa_from = 0;
  double lr = 1e-3, wd = 1e-3, dropout = -1, border_w0 = 0, border_sigma = 5;
  CliAugmentStrengths strengths;
  emseg_cli_augment_strengths_init(&strengths);
  gint64 seed = 1;
  gboolean half = FALSE, no_augment = FALSE, augment = FALSE, resume = FALSE, verbose = FALSE;
  gboolean no_calibrate = FALSE, no_export_gamma = FALSE, bf16 = FALSE;
  GOptionEntry entries[] = {
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack (TIFF or PNG folder)", "STACK" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &labels_path, "Label stack (0 = membrane, 255 = cell, 128 = unlabeled; or a 0/1 mask)", "LABELS" },
    { "project", 0, 0, G_OPTION_ARG_FILENAME, &project_path,
      "Train on a project's stack and its labels (instead of --images / --labels); slices count from 0 as for stacks", "PROJECT" },
    { "stack", 0, 0, G_OPTION_ARG_INT64, &stack_id, "With --project: the stack's id (default: the project's only stack)", "ID" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text, "Training slices, e.g. 0-19 (default: all; with --project every labelled slice not validating)", "LIST" },
    { "val-slices", 0, 0, G_OPTION_ARG_STRING, &val_text, "Validation slices, e.g. 20-24", "LIST" },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &epochs, "Epochs (default 10)", "N" },
    { "loss", 0, 0, G_OPTION_ARG_STRING, &loss_text, "dice (of the membrane class), dice-cell (of the cell interior) or bce (default bce: the shipped model's; both Dice losses scored far lower on ISBI)", "LOSS" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, "RMSprop learning rate (default 1e-3)", "LR" },
    { "lr-steps", 0, 0, G_OPTION_ARG_STRING, &lr_steps_text, "Divide the learning rate by 10 from these epochs on, e.g. 40,80", "E,E" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &wd, "L2 on conv weights (default 1e-3)", "WD" },
    { "patience", 0, 0, G_OPTION_ARG_INT, &patience, "Stop after N epochs without a better validation loss (default 0 = off)", "N" },
    { "dropout", 0, 0, G_OPTION_ARG_DOUBLE, &dropout, "Dropout rate in every block (overrides --spec)", "P" },
    { "augment", 0, 0, G_OPTION_ARG_NONE, &augment, "Augment: flips, rotation, shear, elastic warp (default)", NULL },
    { "no-augment", 0, 0, G_OPTION_ARG_NONE, &no_augment, "Train on the slices as they are", NULL },
    EMSEG_CLI_AUGMENT_ENTRIES(strengths),
    { "no-calibrate-bn", 0, 0, G_OPTION_ARG_NONE, &no_calibrate,
      "Validate with the training-time BN running statistics (default: recompute them over the training slices first)", NULL },
    { "no-export-gamma", 0, 0, G_OPTION_ARG_NONE, &no_export_gamma,
      "Do not choose the export exponent (export_gamma) on the validation slices", NULL },
    { "border-weight", 0, 0, G_OPTION_ARG_DOUBLE, &border_w0,
      "Weigh membrane pixels between two close cells up to 1+W0 times in the training loss (U-Net's separation weights; default 0 = off)", "W0" },
    { "border-sigma", 0, 0, G_OPTION_ARG_DOUBLE, &border_sigma, "Distance scale of --border-weight in pixels (default 5)", "PX" },
    { "bf16", 0, 0, G_OPTION_ARG_NONE, &bf16,
      "Convolve in bfloat16 with float32 sums (faster on CPUs with AVX512-BF16 or AMX: 1.1-1.36x per epoch measured; float32 elsewhere)", NULL },
    { "crop", 0, 0, G_OPTION_ARG_INT, &crop, "Train on random square crops of this size (default: full slices)", "PX" },
    { "val-every", 0, 0, G_OPTION_ARG_INT, &val_every, "Validate (and keep the best checkpoint) every K epochs and at the last (default 1)", "K" },
    { "metrics-every", 0, 0, G_OPTION_ARG_INT, &metrics_every, "V_rand / V_info on the validation slices every K epochs (0 = never; default 1)", "K" },
    { "swa-from", 0, 0, G_OPTION_ARG_INT, &swa_from, "Also average the weights of every epoch from E on (SWA) and write the average, BN recomputed, to --swa-out (default 0 = off)", "E" },
    { "swa-out", 0, 0, G_OPTION_ARG_FILENAME, &swa_out, "Model file for the averaged weights (default: MODEL with -swa before .emsegmodel)", "MODEL" },
    { "spec", 0, 0, G_OPTION_ARG_STRING, &spec_text, "Model spec overrides, e.g. base_width=8,down=1/1 (default: Table 1)", "SPEC" },
    { "init", 0, 0, G_OPTION_ARG_FILENAME, &init_path, "Fine-tune: start from this model's weights (and spec); the word " EMSEG_SHIPPED_MODEL_WORD " names the shipped ISBI 2012 model (a file of that name: ./" EMSEG_SHIPPED_MODEL_WORD ")", "MODEL" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed for weights, shuffling, augmentation, dropout (default 1)", "S" },
    { "half", 0, 0, G_OPTION_ARG_NONE, &half, "Store the model in half precision", NULL },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Model file to write (best validation loss)", "MODEL" },
    { "state", 0, 0, G_OPTION_ARG_FILENAME, &state_path, "Resume state written after every epoch (default MODEL.state)", "FILE" },
    { "resume", 0, 0, G_OPTION_ARG_NONE, &resume, "Continue the run from its state file", NULL },
    { "curves-csv", 0, 0, G_OPTION_ARG_FILENAME, &curves_csv, "Write per-epoch losses, accuracies, V_rand/V_info as CSV", "FILE" },
    { "curves-png", 0, 0, G_OPTION_ARG_FILENAME, &curves_png, "Plot the loss curves as PNG", "FILE" },
    { "stats-csv", 0, 0, G_OPTION_ARG_FILENAME, &stats_csv, "Write per-layer update statistics (epoch × layer) as CSV", "FILE" },
    { "heatmap-png", 0, 0, G_OPTION_ARG_FILENAME, &heatmap_png, "Render the update heatmap (Figure 4) as PNG", "FILE" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print every step", NULL },
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
  if (!out_path || (project_path ? images_path || labels_path : !images_path || !labels_path)) {
    fprintf(stderr, "emseg train: --out and either --images with --labels or --project are "
                    "required (see --help)\n");
    return 2;
  }
  if (stack_id && !project_path) {
    fprintf(stderr, "emseg train: --stack needs --project\n");
    return 2;
  }
  EmsegTrainingConfig cfg;
  emseg_training_config_init(&cfg);
  if (loss_text && !eng_loss_from_name(loss_text, &cfg.loss)) {
    fprintf(stderr, "emseg train: --loss must be " ENG_LOSS_NAMES ", not '%s'\n", loss_text);
    return 2;
  }
  if (epochs < 1 || val_every < 1 || patience < 0 || crop < 0 || metrics_every < 0 ||
      swa_from < 0 || (augment && no_augment)) {
    fprintf(stderr, "emseg train: --epochs and --val-every must be >= 1; --patience, --crop, "
                    "--metrics-every and --swa-from >= 0; and only one of --augment / "
                    "--no-augment\n");
    return 2;
  }
  if (!(border_w0 >= 0) || !(border_sigma > 0)) {
    fprintf(stderr, "emseg train: --border-weight must be >= 0 and --border-sigma > 0 (got %g "
                    "and %g)\n", border_w0, border_sigma);
    return 2;
  }
  if (swa_from > epochs) {
    fprintf(stderr, "emseg train: --swa-from %d is after the last epoch (--epochs %d)\n",
            swa_from, epochs);
    return 2;
  }
  if (swa_out && !swa_from) {
    fprintf(stderr, "emseg train: --swa-out needs --swa-from\n");
    return 2;
  }
  if (lr_steps_text && !parse_lr_steps(lr_steps_text, &cfg, &error)) {
    fprintf(stderr, "emseg train: %s\n", error->message);
    return 2;
  }
  EngError err;
  if (spec_text && eng_spec_parse(&cfg.spec, spec_text, &err) != ENG_OK) {
    fprintf(stderr, "emseg train: %s\n", err.message);
    return 2;
  }
  if (init_path && spec_text)
    fprintf(stderr, "emseg train: note: --spec is ignored with --init (the model file "
                    "carries its spec)\n");
  cfg.dropout = (float) dropout;
  cfg.epochs = (guint) epochs;
  cfg.lr = lr;
  cfg.weight_decay = wd;
  cfg.patience = (guint) patience;
  cfg.augment = !no_augment;
  if (!emseg_cli_augment_strengths_apply("train", &strengths, &cfg.augment_params))
    return 2;
  cfg.calibrate_bn = !no_calibrate;
  cfg.calibrate_gamma = !no_export_gamma;
  cfg.crop = (guint) crop;
  cfg.conv_bf16 = bf16;
  cfg.border_w0 = (float) border_w0;
  cfg.border_sigma = (float) border_sigma;
  cfg.metrics_every = (guint) metrics_every;
  cfg.val_every = (guint) val_every;
  cfg.seed = (guint64) seed;
  cfg.half = half;
  cfg.best_path = out_path;
  g_autofree char *default_state = g_strconcat(out_path, ".state", NULL);
  cfg.state_path = state_path ? state_path : default_state;
  cfg.resume = resume;
  g_autofree char *default_swa = swa_out ? NULL : swa_default_path(out_path);
  cfg.swa_from = (guint) swa_from;
  cfg.swa_path = swa_from ? (swa_out ? swa_out : default_swa) : NULL;

  if (init_path && strcmp(init_path, EMSEG_SHIPPED_MODEL_WORD) == 0) {
    char *shipped = emseg_shipped_model_path(&error);
    if (shipped == NULL) {
      fprintf(stderr, "emseg train: --init %s: %s\n", init_path, error->message);
      return 2;
    }
    g_free(init_path);
    init_path = shipped;
  }
  EngModel *init = NULL;
  char *init_meta = NULL;
  if (init_path && eng_model_load(init_path, &init, &init_meta, &err) != ENG_OK) {
    fprintf(stderr, "emseg train: %s\n", err.message);
    return 1;
  }
  cfg.init_model = init;
  cfg.init_gamma = init ? emseg_gamma_from_meta(init_meta) : NAN;
  free(init_meta);

  int rc = 1;
  g_autoptr(EmsegStack) images = NULL, labels = NULL;
  g_autoptr(EmsegDataset) train = NULL, val = NULL;
  g_autofree guint *train_idx = NULL, *val_idx = NULL;
  guint n_train = 0, n_val = 0;
  g_autoptr(EmsegTrainingLog) record = NULL;
  g_autoptr(GError) werr = NULL; /* declared before the first goto: its cleanup always runs */
  if (project_path) {
    if (!datasets_from_project(project_path, stack_id, slices_text, val_text, &train, &val,
                               &n_val, &rc, &error))
      goto fail;
    goto loaded;
  }
  images = emseg_stack_open(images_path, &error);
  labels = images ? emseg_stack_open(labels_path, &error) : NULL;
  if (!labels)
    goto fail;
  guint n_labeled = MIN(emseg_stack_get_n_slices(images), emseg_stack_get_n_slices(labels));
  train_idx = emseg_parse_slices(slices_text, n_labeled, &n_train, &error);
  if (train_idx && val_text)
    val_idx = emseg_parse_slices(val_text, n_labeled, &n_val, &error);
  if (!train_idx || (val_text && !val_idx)) {
    rc = 2;
    goto fail;
  }
  train = emseg_dataset_from_stacks(images, labels, train_idx, n_train, &error);
  if (!train)
    goto fail;
  if (n_val && !(val = emseg_dataset_from_stacks(images, labels, val_idx, n_val, &error)))
    goto fail;
loaded:
  {
    EngSpec run_spec = init ? *eng_model_spec(init) : cfg.spec;
    guint asked_crop = cfg.crop;
    if (emseg_training_fit_window(&cfg, &run_spec, train, &val))
      fprintf(stderr, "train: %ux%u slices: training on %u² crops%s%s (the largest multiple of "
                      "the network's decimation inside the slice, at most EMSEG_PREDICT_WINDOW)\n",
              train->width, train->height, cfg.crop,
              asked_crop ? " (--crop)" : "",
              val ? ", validating on the window of each validation slice with the most labels"
                  : "");
  }

  char spec_line[1024];
  EngSpec shown = init ? *eng_model_spec(init) : cfg.spec;
  if (cfg.dropout >= 0)
    shown.dropout = cfg.dropout;
  eng_spec_format(&shown, spec_line, sizeof spec_line);
  printf("model %s\nloss %s lr %g wd %g seed %" G_GINT64_FORMAT " augment %s crop %u",
         resume ? "(from the state file)" : spec_line, eng_loss_name(cfg.loss), lr, wd, seed,
         cfg.augment ? "on" : "off", cfg.crop);
  const EngAugmentParams *ap = &cfg.augment_params;
  if (emseg_training_augment_custom(&cfg))
    printf(" (rotate %g shear %g elastic_sigma %g)", (double) ap->rotate_max_deg,
           (double) ap->shear_max, (double) ap->elastic_sigma);
  if (border_w0 > 0)
    printf(" border_weight %g sigma %g", border_w0, border_sigma);
  if (bf16) /* the kernel a 3×3 layer gets says whether bfloat16 is really in use */
    printf(" conv %s", emseg_conv_kernel(64, TRUE));
  printf("%s%s\n", init ? " init " : "", init ? init_path : "");
  fflush(stdout);

  record = emseg_training_log_new();
  Printer printer = { .log = record, .verbose = verbose, .has_val = n_val > 0 };
  EmsegTrainingResult result;
  atomic_int *interrupted = emseg_cli_catch_sigint();
  gboolean ok = emseg_training_run(&cfg, train, val, print_event, &printer, interrupted,
                                   &result, &error);
  emseg_cli_release_sigint();
  gboolean cancelled = result.cancelled;
  if (result.best_model)
    printf("best %s %.4f at epoch %u%s written to %s\n", n_val ? "val_loss" : "train_loss",
           result.best_loss, result.best_epoch,
           result.best_epoch ? "" : " (the starting weights: no epoch beat them)", out_path);
  /* after a resume only a new best brings a γ here; the file has an earlier choice */
  if (result.best_model && isfinite(result.export_gamma))
    printf("export exponent %g (%s; export-isbi uses it)\n", result.export_gamma,
           n_val && printer.val_scored && !no_export_gamma
               ? "chosen on the validation slices"
               : "the starting model's: this run chose none");
  if (result.swa_model) {
    const EmsegTrainingSwa *w = &result.swa;
    printf("swa epochs %u-%u", w->first_epoch, w->last_epoch);
    if (n_val)
      printf(" val_loss %.4f val_acc %.4f", w->val_loss, w->val_accuracy);
    if (isfinite(w->vrand))
      printf(" vrand %.4f vinfo %.4f", w->vrand, w->vinfo);
    if (isfinite(w->export_gamma))
      printf(" export_gamma %g", w->export_gamma);
    printf(" written to %s\n", cfg.swa_path);
  }
  if (cancelled)
    printf("resume with the same command and --resume\n");
  emseg_training_result_clear(&result);

  /* The records are written even after a stop: they describe what was done. */
  if ((curves_csv && !emseg_training_log_write_curves_csv(record, curves_csv, &werr)) ||
      (stats_csv && !emseg_training_log_write_stats_csv(record, stats_csv, &werr)) ||
      (heatmap_png && !emseg_training_log_write_heatmap_png(record, heatmap_png, NULL, &werr))) {
    fprintf(stderr, "emseg train: %s\n", werr->message);
    ok = FALSE;
  }
  if (curves_png && record->epochs->len) {
    guint n = record->epochs->len;
    g_autofree double *tl = g_new(double, n), *vl = g_new(double, n);
    for (guint i = 0; i < n; i++) {
      const EmsegTrainingLogEpoch *e = &g_array_index(record->epochs, EmsegTrainingLogEpoch, i);
      tl[i] = e->m.train_loss;
      vl[i] = e->m.val_loss;
    }
    guint first = g_array_index(record->epochs, EmsegTrainingLogEpoch, 0).epoch;
    EmsegCurve curves[2] = {
      { "train", tl, n, first, { 0.1, 0.35, 0.75 }, TRUE },
      { "validation", vl, n, first, { 0.1, 0.35, 0.75 }, FALSE },
    };
    if (!emseg_curves_write_png(curves_png, "loss per epoch", eng_loss_name(cfg.loss), curves,
                                n_val ? 2 : 1, &werr)) {
      fprintf(stderr, "emseg train: %s\n", werr->message);
      ok = FALSE;
    }
  }
  eng_model_free(init);
  if (ok)
    return 0;
  if (cancelled)
    return 130;
  if (error)
    fprintf(stderr, "emseg train: %s\n", error->message);
  return 1;
fail:
  eng_model_free(init);
  fprintf(stderr, "emseg train: %s\n", error->message);
  return rc;
}
