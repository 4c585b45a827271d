/* cli-experiment.c — `emseg experiment`: the paper's Section 3.2 experiments.
 *
 * Each experiment trains a few variants of one spec with the same seed, data and
 * hyperparameters, and writes the learning curves (a CSV per variant and one PNG), the
 * best validation loss with its training loss (printed as a table and written as
 * best-losses.csv) and the per-layer update heatmaps:
 *   skip-ablation  long + short skips, only short, only long (Figure 3, Table 3, Figure 4);
 *   update-depth   Figure 4's panels: simple blocks with long skips only at 9 and 3
 *                  repetitions and at 7 without batch norm (lr ÷10, as the paper had to),
 *                  next to long + short at 9.
 * The default is a reduced budget (synthetic 256 px slices, narrow simple-block networks,
 * few epochs, BCE loss as in the paper) that finishes in minutes on two cores; full-size
 * runs take --images/--labels and --spec. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "cli-commands.h"
#include "cli-interrupt.h"
#include "emseg-dataset.h"
#include "emseg-heatmap-png.h"
#include "emseg-predict.h"
#include "emseg-training.h"

/* Deep and narrow with simple blocks: the regime where the paper shows that short skips
 * keep updates alive in the middle layers (Figure 4). 3 levels, 6 blocks everywhere. */
#define ABLATION_SPEC "base_width=8,init_block=simple,main_block=simple,down=6/6/6,across=6,up=6/6/6"
/* Figure 4 varies depth and batch norm per variant; the base sets width and block type. */
#define DEPTH_SPEC "base_width=8,init_block=simple,main_block=simple"

/* overrides: applied on top of the experiment's spec (the variant's defining switches);
 * lr_scale multiplies the learning rate. */
typedef struct {
  const char *name, *overrides;
  double lr_scale;
  double rgb[3];
} Variant;

static const Variant ablation_variants[] = {
  { "long+short", "long_skip=1,short_skip=1", 1.0, { 0.10, 0.35, 0.75 } },
  { "short", "long_skip=0,short_skip=1", 1.0, { 0.85, 0.40, 0.05 } },
  { "long", "long_skip=1,short_skip=0", 1.0, { 0.15, 0.60, 0.20 } },
};

#define REPS(n) "down=" #n "/" #n "/" #n ",across=" #n ",up=" #n "/" #n "/" #n
static const Variant depth_variants[] = {
  { "long+short-9", REPS(9) ",long_skip=1,short_skip=1,batchnorm=1", 1.0, { 0.10, 0.35, 0.75 } },
  { "long-9", REPS(9) ",long_skip=1,short_skip=0,batchnorm=1", 1.0, { 0.15, 0.60, 0.20 } },
  { "long-3", REPS(3) ",long_skip=1,short_skip=0,batchnorm=1", 1.0, { 0.85, 0.40, 0.05 } },
  { "long-7-nobn", REPS(7) ",long_skip=1,short_skip=0,batchnorm=0", 0.1, { 0.55, 0.20, 0.60 } },
};

typedef struct {
  const char *name, *default_spec, *summary;
  const Variant *variants;
  guint n_variants;
} Experiment;

static const Experiment experiments[] = {
  { "skip-ablation", ABLATION_SPEC, "long+short vs short-only vs long-only skips (Section 3.2: Figure 3, Table 3, Figure 4)",
    ablation_variants, G_N_ELEMENTS(ablation_variants) },
  { "update-depth", DEPTH_SPEC, "Figure 4: per-layer updates of long-skip-only simple-block networks by depth, with and without batch norm",
    depth_variants, G_N_ELEMENTS(depth_variants) },
};
#define MAX_VARIANTS 4

typedef struct {
  EmsegTrainingLog *log;
  const char *name;
} Progress;

static gboolean
on_event(const EmsegTrainingEvent *ev, gpointer data)
{
  Progress *p = data;
  emseg_training_log_add(p->log, ev);
  if (ev->kind == EMSEG_TRAINING_EVENT_EPOCH) {
    printf("  %-10s epoch %u/%u train_loss %.4f val_loss %.4f val_acc %.4f time %.1fs\n",
           p->name, ev->epoch, ev->n_epochs, ev->u.epoch.train_loss, ev->u.epoch.val_loss,
           ev->u.epoch.val_accuracy, ev->u.epoch.seconds);
    fflush(stdout);
  }
  return TRUE;
}

static int
run_experiment(const Experiment *x, int argc, char **argv)
{
  g_autofree char *images_path = NULL, *labels_path = NULL, *slices_text = NULL,
                  *val_text = NULL, *spec_text = NULL, *out_dir = NULL, *loss_text = NULL;
  int size = 256, epochs = 30, n_train = 10, n_val = 2, crop = 0;
  double lr = 1e-3, wd = 1e-3;
  gint64 seed = 1;
  gboolean no_augment = FALSE;
  g_autofree char *spec_help = g_strdup_printf(
      "Overrides of the Table 1 spec (default, without --spec: %s); each variant then sets "
      "its own switches", x->default_spec);
  g_autofree char *out_help =
      g_strdup_printf("Folder for CSV and PNG files (default %s)", x->name);
  GOptionEntry entries[] = {
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_path, "Image stack (default: synthetic slices)", "STACK" },
    { "labels", 0, 0, G_OPTION_ARG_FILENAME, &labels_path, "Label stack for --images", "LABELS" },
    { "slices", 0, 0, G_OPTION_ARG_STRING, &slices_text, "Training slices of --images (default 0-19)", "LIST" },
    { "val-slices", 0, 0, G_OPTION_ARG_STRING, &val_text, "Validation slices of --images (default 20-24)", "LIST" },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, "Synthetic slice size (default 256)", "PX" },
    { "n-train", 0, 0, G_OPTION_ARG_INT, &n_train, "Synthetic training slices (default 10)", "N" },
    { "n-val", 0, 0, G_OPTION_ARG_INT, &n_val, "Synthetic validation slices (default 2)", "N" },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &epochs, "Epochs per variant (default 30)", "N" },
    { "spec", 0, 0, G_OPTION_ARG_STRING, &spec_text, spec_help, "SPEC" },
    { "loss", 0, 0, G_OPTION_ARG_STRING, &loss_text, ENG_LOSS_NAMES " (default bce, as in the paper's Section 3.2)", "LOSS" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, "RMSprop learning rate (default 1e-3)", "LR" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &wd, "L2 on conv weights (default 1e-3)", "WD" },
    { "crop", 0, 0, G_OPTION_ARG_INT, &crop, "Random crops of this size (default: full slices)", "PX" },
    { "no-augment", 0, 0, G_OPTION_ARG_NONE, &no_augment, "No augmentation", NULL },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed shared by the variants (default 1)", "S" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_dir, out_help, "DIR" },
    { NULL },
  };
  g_autofree char *summary = g_strdup_printf("- %s", x->summary);
  g_autoptr(GOptionContext) ctx = g_option_context_new(summary);
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(ctx, eng_spec_help());
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg experiment %s: %s\n", x->name, error->message);
    return 2;
  }
  if (epochs < 1 || size < 8 || n_train < 1 || n_val < 0 || crop < 0 ||
      (!images_path != !labels_path)) {
    fprintf(stderr, "emseg experiment %s: --epochs, --size and --n-train must be "
                    "positive, and --images and --labels go together\n", x->name);
    return 2;
  }
  EmsegTrainingConfig cfg;
  emseg_training_config_init(&cfg);
  /* The paper ran its Section 3.2 experiments with binary cross-entropy, so Table 3's
   * losses are BCE values: the experiments keep BCE whatever `emseg train`'s default. */
  cfg.loss = ENG_LOSS_BCE;
  if (loss_text && !eng_loss_from_name(loss_text, &cfg.loss)) {
    fprintf(stderr, "emseg experiment %s: --loss must be " ENG_LOSS_NAMES "\n", x->name);
    return 2;
  }
  EngError err;
  if (eng_spec_parse(&cfg.spec, spec_text ? spec_text : x->default_spec, &err) != ENG_OK) {
    fprintf(stderr, "emseg experiment %s: %s\n", x->name, err.message);
    return 2;
  }
  cfg.epochs = (guint) epochs;
  cfg.lr = lr;
  cfg.weight_decay = wd;
  cfg.seed = (guint64) seed;
  cfg.crop = (guint) crop;
  cfg.augment = !no_augment;
  cfg.metrics_every = 0; /* the figures compare losses; V_rand would only cost time */

  g_autoptr(EmsegDataset) train = NULL, val = NULL;
  if (images_path) {
    g_autoptr(EmsegStack) images = emseg_stack_open(images_path, &error);
    g_autoptr(EmsegStack) labels = images ? emseg_stack_open(labels_path, &error) : NULL;
    guint nt = 0, nv = 0;
    g_autofree guint *ti = NULL, *vi = NULL;
    if (labels) {
      guint n = MIN(emseg_stack_get_n_slices(images), emseg_stack_get_n_slices(labels));
      ti = emseg_parse_slices(slices_text ? slices_text : "0-19", n, &nt, &error);
      vi = ti ? emseg_parse_slices(val_text ? val_text : "20-24", n, &nv, &error) : NULL;
    }
    if (vi)
      train = emseg_dataset_from_stacks(images, labels, ti, nt, &error);
    if (train)
      val = emseg_dataset_from_stacks(images, labels, vi, nv, &error);
  } else {
    train = emseg_dataset_synthetic((guint64) seed, 0, (guint) n_train, (guint) size, &error);
    if (train && n_val)
      val = emseg_dataset_synthetic((guint64) seed, (guint) n_train, (guint) n_val,
                                    (guint) size, &error);
  }
  if (error) {
    fprintf(stderr, "emseg experiment %s: %s\n", x->name, error->message);
    return 1;
  }
  if (!out_dir)
    out_dir = g_strdup(x->name);
  if (g_mkdir_with_parents(out_dir, 0755) != 0) {
    fprintf(stderr, "emseg experiment %s: cannot create %s: %s\n", x->name, out_dir,
            g_strerror(errno));
    return 1;
  }
  char spec_line[1024];
  eng_spec_format(&cfg.spec, spec_line, sizeof spec_line);
  printf("%s: spec %s\ndata %s, %u training and %u validation slices of %ux%u; "
         "%d epochs, loss %s, lr %g, seed %" G_GINT64_FORMAT ", augment %s\n",
         x->name, spec_line, train->source, train->n, val ? val->n : 0, train->width, train->height,
         epochs, eng_loss_name(cfg.loss), lr, seed, cfg.augment ? "on" : "off");
  fflush(stdout);

  const Variant *variants = x->variants;
  const guint n_variants = x->n_variants;
  const EngSpec base_spec = cfg.spec;
  EngSpec specs[MAX_VARIANTS];
  EmsegTrainingLog *logs[MAX_VARIANTS] = { NULL };
  double seconds[MAX_VARIANTS] = { 0 };
  g_assert(n_variants <= MAX_VARIANTS);
  int rc = 0;
  atomic_int *interrupted = emseg_cli_catch_sigint();
  for (guint v = 0; v < n_variants && rc == 0; v++) {
    cfg.spec = base_spec;
    if (eng_spec_parse(&cfg.spec, variants[v].overrides, &err) != ENG_OK) {
      fprintf(stderr, "emseg experiment %s: %s: %s\n", x->name, variants[v].name, err.message);
      rc = 2;
      break;
    }
    specs[v] = cfg.spec;
    cfg.lr = lr * variants[v].lr_scale;
    logs[v] = emseg_training_log_new();
    Progress p = { logs[v], variants[v].name };
    EmsegTrainingResult result;
    g_autoptr(GError) run_error = NULL;
    gint64 t0 = g_get_monotonic_time();
    printf("variant %s (%s, lr %g)\n", variants[v].name, variants[v].overrides, cfg.lr);
    fflush(stdout);
    if (!emseg_training_run(&cfg, train, val, on_event, &p, interrupted, &result,
                            &run_error)) {
      fprintf(stderr, "emseg experiment %s: %s: %s\n", x->name, variants[v].name,
              run_error->message);
      rc = result.cancelled ? 130 : 1;
    }
    seconds[v] = (double) (g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
    emseg_training_result_clear(&result);
    g_autofree char *curves = g_strdup_printf("%s/curves-%s.csv", out_dir, variants[v].name);
    g_autofree char *stats = g_strdup_printf("%s/stats-%s.csv", out_dir, variants[v].name);
    g_autofree char *heat = g_strdup_printf("%s/heatmap-%s.png", out_dir, variants[v].name);
    g_autofree char *title =
        g_strdup_printf("mean |update| per layer, %s", variants[v].name);
    if (rc == 0 && (!emseg_training_log_write_curves_csv(logs[v], curves, &error) ||
                    !emseg_training_log_write_stats_csv(logs[v], stats, &error) ||
                    !emseg_training_log_write_heatmap_png(logs[v], heat, title, &error))) {
      fprintf(stderr, "emseg experiment %s: %s\n", x->name, error->message);
      rc = 1;
    }
  }
  emseg_cli_release_sigint();

  if (rc == 0) {
    /* Figure 3: one plot, a colour per variant, dashed = training, solid = validation */
    EmsegCurve curves[2 * MAX_VARIANTS];
    double *ys[2 * MAX_VARIANTS];
    char *labels_text[2 * MAX_VARIANTS];
    guint nc = 0;
    for (guint v = 0; v < n_variants; v++) {
      GArray *ep = logs[v]->epochs;
      for (int k = 0; k < (val ? 2 : 1); k++) {
        double *y = g_new(double, MAX(ep->len, 1u));
        for (guint i = 0; i < ep->len; i++) {
          const EmsegTrainingLogEpoch *e = &g_array_index(ep, EmsegTrainingLogEpoch, i);
          y[i] = k == 0 ? e->m.train_loss : e->m.val_loss;
        }
        ys[nc] = y;
        labels_text[nc] = g_strdup_printf("%s %s", variants[v].name, k == 0 ? "train" : "val");
        curves[nc] = (EmsegCurve) { labels_text[nc], y, ep->len, 1,
                                    { variants[v].rgb[0], variants[v].rgb[1], variants[v].rgb[2] },
                                    k == 0 };
        nc++;
      }
    }
    g_autofree char *plot = g_strdup_printf("%s/curves.png", out_dir);
    g_autofree char *plot_title = g_strdup_printf("%s: loss per epoch", x->name);
    if (!emseg_curves_write_png(plot, plot_title, eng_loss_name(cfg.loss),
                                curves, nc, &error)) {
      fprintf(stderr, "emseg experiment %s: %s\n", x->name, error->message);
      rc = 1;
    }
    for (guint i = 0; i < nc; i++) {
      g_free(ys[i]);
      g_free(labels_text[i]);
    }
  }
  if (rc == 0) {
    /* Table 3: best validation loss and the training loss of that epoch */
    g_autoptr(GString) csv =
        g_string_new("variant,long_skip,short_skip,best_epoch,best_train_loss,best_val_loss\n");
    printf("\n%-12s %5s %6s %11s %11s %11s %9s\n", "variant", "long", "short", "best_epoch",
           "train_loss", "val_loss", "time");
    for (guint v = 0; v < n_variants; v++) {
      GArray *ep = logs[v]->epochs;
      guint best = 0;
      for (guint i = 0; i < ep->len; i++) {
        const EmsegTrainingLogEpoch *e = &g_array_index(ep, EmsegTrainingLogEpoch, i);
        const EmsegTrainingLogEpoch *b = &g_array_index(ep, EmsegTrainingLogEpoch, best);
        double l = val ? e->m.val_loss : e->m.train_loss, bl = val ? b->m.val_loss : b->m.train_loss;
        if (l < bl)
          best = i;
      }
      const EmsegTrainingLogEpoch *b = &g_array_index(ep, EmsegTrainingLogEpoch, best);
      printf("%-12s %5s %6s %11u %11.4f %11.4f %8.1fs\n", variants[v].name,
             specs[v].long_skip ? "yes" : "no", specs[v].short_skip ? "yes" : "no",
             b->epoch, b->m.train_loss, b->m.val_loss, seconds[v]);
      char tl[G_ASCII_DTOSTR_BUF_SIZE], vl[G_ASCII_DTOSTR_BUF_SIZE];
      g_ascii_formatd(tl, sizeof tl, "%.6f", b->m.train_loss);
      g_ascii_formatd(vl, sizeof vl, "%.6f", val ? b->m.val_loss : b->m.train_loss);
      g_string_append_printf(csv, "%s,%d,%d,%u,%s,%s\n", variants[v].name,
                             specs[v].long_skip, specs[v].short_skip, b->epoch, tl, vl);
    }
    g_autofree char *table = g_strdup_printf("%s/best-losses.csv", out_dir);
    if (!g_file_set_contents(table, csv->str, (gssize) csv->len, &error)) {
      fprintf(stderr, "emseg experiment %s: %s\n", x->name, error->message);
      rc = 1;
    } else {
      printf("\nwrote %s/{curves.png,best-losses.csv,curves-*.csv,stats-*.csv,heatmap-*.png}\n",
             out_dir);
    }
  }
  for (guint v = 0; v < n_variants; v++)
    emseg_training_log_free(logs[v]);
  return rc;
}

int
emseg_cli_experiment(int argc, char **argv)
{
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    FILE *out = argc < 2 ? stderr : stdout;
    fprintf(out, "usage: emseg experiment NAME [OPTIONS]   (emseg experiment NAME --help)\n\n");
    for (guint i = 0; i < G_N_ELEMENTS(experiments); i++)
      fprintf(out, "  %-15s %s\n", experiments[i].name, experiments[i].summary);
    return argc < 2 ? 2 : 0;
  }
  for (guint i = 0; i < G_N_ELEMENTS(experiments); i++)
    if (!strcmp(argv[1], experiments[i].name))
      return run_experiment(&experiments[i], argc - 1, argv + 1);
  fprintf(stderr, "emseg experiment: unknown experiment '%s' (try skip-ablation or update-depth)\n",
          argv[1]);
  return 2;
}
