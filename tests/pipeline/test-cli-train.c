/* test-cli-train.c — `emseg train`, `emseg experiment` and `emseg calibrate-gamma` (with the
 * exponent in predict and export-isbi) end to end on a generated 64 px stack: the model,
 * curves CSV, statistics CSV and PNG files appear and parse (numbers where numbers belong,
 * one row per epoch / per epoch × layer, PNGs of a sensible size), --resume continues,
 * training from a project (--project), bad usage exits 2 with the reason. The emseg binary's
 * path is the first non-option argument (meson passes it). */
#include <cairo.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emseg-project.h"
#include "emseg-stack.h"
#include "eng-modelfile.h"

static const char *emseg_bin;
static char *dir, *images, *labels;

#define TINY "base_width=4,down=1,up=1,across=1,main_block=basic"

static int
run_emseg(const char *const *args, char **out_text, char **err_text)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(argv, g_strdup(emseg_bin));
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add(argv, g_strdup(*a));
  g_ptr_array_add(argv, NULL);
  int wait_status = 0;
  g_autoptr(GError) error = NULL;
  char *out = NULL, *err = NULL;
  gboolean ok = g_spawn_sync(dir, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                             &out, &err, &wait_status, &error);
  g_assert_no_error(error);
  g_assert_true(ok);
  g_test_message("stdout:\n%s\nstderr:\n%s", out, err);
  if (out_text)
    *out_text = out;
  else
    g_free(out);
  if (err_text)
    *err_text = err;
  else
    g_free(err);
  g_assert_true(WIFEXITED(wait_status));
  return WEXITSTATUS(wait_status);
}

static char *
in_dir(const char *name)
{
  return g_build_filename(dir, name, NULL);
}

/* Rows of a CSV after its header (checked), each split into fields. */
static GPtrArray *
read_csv(const char *path, const char *header, guint n_fields)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, &error));
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_assert_cmpstr(lines[0], ==, header);
  GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);
  for (char **l = lines + 1; *l && **l; l++) {
    char **f = g_strsplit(*l, ",", -1);
    g_assert_cmpuint(g_strv_length(f), ==, n_fields);
    g_ptr_array_add(rows, f);
  }
  return rows;
}

static double
num(const char *field)
{
  char *end = NULL;
  g_assert_true(field[0] != '\0');
  double v = g_ascii_strtod(field, &end);
  g_assert_true(end && *end == '\0');
  g_assert_true(isfinite(v));
  return v;
}

static void
assert_png(const char *path, int min_w, int min_h)
{
  cairo_surface_t *s = cairo_image_surface_create_from_png(path);
  g_assert_cmpint(cairo_surface_status(s), ==, CAIRO_STATUS_SUCCESS);
  g_assert_cmpint(cairo_image_surface_get_width(s), >=, min_w);
  g_assert_cmpint(cairo_image_surface_get_height(s), >=, min_h);
  /* not a blank canvas: more than one colour */
  cairo_surface_flush(s);
  const unsigned char *data = cairo_image_surface_get_data(s);
  int stride = cairo_image_surface_get_stride(s), h = cairo_image_surface_get_height(s);
  guint32 first = *(const guint32 *) (const void *) data;
  gboolean varied = FALSE;
  for (int y = 0; y < h && !varied; y++)
    for (int x = 0; x < cairo_image_surface_get_width(s) && !varied; x++)
      varied = (*(const guint32 *) (const void *) (data + (gsize) y * stride + x * 4) &
                0xffffff) != (first & 0xffffff);
  g_assert_true(varied);
  cairo_surface_destroy(s);
}

/* TRUE when the model file's metadata has a line starting with key. */
static gboolean
model_has_key(const char *path, const char *key)
{
  EngModel *m = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(path, &m, &meta, &err), ==, ENG_OK);
  g_autofree char *with_nl = g_strconcat("\n", meta ? meta : "", NULL);
  g_autofree char *needle = g_strconcat("\n", key, NULL);
  gboolean found = strstr(with_nl, needle) != NULL;
  free(meta);
  eng_model_free(m);
  return found;
}

/* The model at from written to to with extra metadata lines appended (a key given again
 * overrides the earlier value). */
static void
save_with_meta(const char *from, const char *to, const char *extra)
{
  EngModel *m = NULL;
  char *meta = NULL;
  EngError err;
  g_assert_cmpint(eng_model_load(from, &m, &meta, &err), ==, ENG_OK);
  g_autofree char *with = g_strconcat(meta ? meta : "", extra, NULL);
  g_assert_cmpint(eng_model_save(m, to, ENG_DTYPE_F32, with, &err), ==, ENG_OK);
  free(meta);
  eng_model_free(m);
}

static void
test_train(void)
{
  g_autofree char *model = in_dir("m.emsegmodel"), *curves = in_dir("curves.csv"),
                  *stats = in_dir("stats.csv"), *heat = in_dir("heat.png"),
                  *plot = in_dir("curves.png");
  const char *args[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                         "--val-slices", "4-5", "--epochs", "3", "--spec", TINY, "--crop", "32",
                         "--lr-steps", "3", "--patience", "5", "--dropout", "0.1",
                         "--metrics-every", "2", "-o", model, "--curves-csv", curves,
                         "--stats-csv", stats, "--heatmap-png", heat, "--curves-png", plot,
                         NULL };
  g_autofree char *out = NULL;
  g_assert_cmpint(run_emseg(args, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "epoch 3/3"));
  g_assert_true(g_file_test(model, G_FILE_TEST_EXISTS));
  /* the synthetic labels are complete: the run chose an export exponent and stored it */
  g_assert_nonnull(strstr(out, "export exponent "));
  g_assert_true(model_has_key(model, "export_gamma="));

  g_autoptr(GPtrArray) rows = read_csv(
      curves, "epoch,train_loss,train_accuracy,val_loss,val_accuracy,vrand,vinfo,lr,seconds", 9);
  g_assert_cmpuint(rows->len, ==, 3);
  for (guint e = 0; e < 3; e++) {
    char **f = rows->pdata[e];
    g_assert_cmpfloat(num(f[0]), ==, e + 1);
    for (int k = 1; k <= 4; k++)
      num(f[k]);
    double acc = num(f[2]);
    g_assert_true(acc >= 0 && acc <= 1);
    /* metrics every 2 epochs and at the last: epochs 2 and 3 */
    if (e == 0) {
      g_assert_cmpstr(f[5], ==, "");
    } else {
      double vr = num(f[5]), vi = num(f[6]);
      g_assert_true(vr > 0 && vr <= 1 && vi > 0 && vi <= 1);
    }
    g_assert_cmpfloat_with_epsilon(num(f[7]), e < 2 ? 1e-3 : 1e-4, 1e-12);
    g_assert_cmpfloat(num(f[8]), >=, 0);
  }

  g_autoptr(GPtrArray) srows =
      read_csv(stats, "epoch,layer_index,layer,mean_abs_update,mean_abs_weight", 5);
  g_assert_cmpuint(srows->len % 3, ==, 0);
  guint n_layers = srows->len / 3;
  g_assert_cmpuint(n_layers, >, 5);
  for (guint i = 0; i < srows->len; i++) {
    char **f = srows->pdata[i];
    g_assert_cmpfloat(num(f[0]), ==, i / n_layers + 1);
    g_assert_cmpfloat(num(f[1]), ==, i % n_layers);
    g_assert_cmpstr(f[2], ==, ((char **) srows->pdata[i % n_layers])[2]);
    g_assert_cmpfloat(num(f[3]), >, 0);
    g_assert_cmpfloat(num(f[4]), >, 0);
  }
  g_assert_cmpstr(((char **) srows->pdata[0])[2], ==, "pre");
  g_assert_cmpstr(((char **) srows->pdata[n_layers - 1])[2], ==, "classifier");
  assert_png(heat, n_layers, 3);
  assert_png(plot, 200, 200);

  /* resume to 5 epochs: continues at epoch 4 */
  const char *more[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                         "--val-slices", "4-5", "--epochs", "5", "--spec", TINY, "--crop", "32",
                         "--lr-steps", "3", "--patience", "5", "--dropout", "0.1",
                         "--metrics-every", "2", "-o", model, "--resume", NULL };
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(more, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "resuming_at_epoch 4"));
  g_assert_null(strstr(out, "epoch 3/5"));
  g_assert_nonnull(strstr(out, "epoch 5/5"));

  /* fine-tune from the model just written, stored again with export_gamma=1: no validation
   * slices, so nothing to choose an exponent on and none (1) to keep */
  g_autofree char *start = in_dir("start.emsegmodel"), *tuned = in_dir("tuned.emsegmodel");
  save_with_meta(model, start, "export_gamma=1\n");
  const char *ft[] = { "train", "--images", images, "--labels", labels, "--slices", "0-1",
                       "--epochs", "1", "--init", start, "--no-augment", "-o", tuned, NULL };
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(ft, &out, NULL), ==, 0);
  g_assert_true(g_file_test(tuned, G_FILE_TEST_EXISTS));
  g_assert_null(strstr(out, "export exponent"));
  g_assert_false(model_has_key(tuned, "export_gamma="));
  /* ... while a starting model's exponent other than 1 is kept, and said to be */
  save_with_meta(model, start, "export_gamma=3\n");
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(ft, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "export exponent 3 (the starting model's: this run chose none;"));
  g_assert_true(model_has_key(tuned, "export_gamma=3\n"));

  /* --val-every 2 over 3 epochs: validation figures on epochs 2 and 3 only;
   * --no-export-gamma: no exponent */
  g_autofree char *sparse = in_dir("sparse.emsegmodel");
  const char *ve[] = { "train", "--images", images, "--labels", labels, "--slices", "0-1",
                       "--val-slices", "4", "--epochs", "3", "--spec", TINY, "--crop", "32",
                       "--val-every", "2", "--no-export-gamma", "-o", sparse, NULL };
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(ve, &out, NULL), ==, 0);
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  guint n_epoch_lines = 0;
  for (char **l = lines; *l; l++) {
    if (!g_str_has_prefix(*l, "epoch "))
      continue;
    n_epoch_lines++;
    g_assert_cmpint(strstr(*l, "val_loss") != NULL, ==, !g_str_has_prefix(*l, "epoch 1/3"));
  }
  g_assert_cmpuint(n_epoch_lines, ==, 3);
  g_assert_null(strstr(out, "export exponent"));
  g_assert_false(model_has_key(sparse, "export_gamma="));
}

static void
test_usage(void)
{
  g_autofree char *err = NULL;
  g_autofree char *model = in_dir("x.emsegmodel");
  const char *no_out[] = { "train", "--images", images, "--labels", labels, NULL };
  g_assert_cmpint(run_emseg(no_out, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--out"));
  g_clear_pointer(&err, g_free);
  const char *bad_every[] = { "train", "--images", images, "--labels", labels, "-o", model,
                              "--val-every", "0", NULL };
  g_assert_cmpint(run_emseg(bad_every, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--val-every"));
  g_assert_false(g_file_test(model, G_FILE_TEST_EXISTS));
  g_clear_pointer(&err, g_free);
  const char *bad_steps[] = { "train", "--images", images, "--labels", labels, "-o", model,
                              "--lr-steps", "3,x", NULL };
  g_assert_cmpint(run_emseg(bad_steps, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--lr-steps"));
  g_clear_pointer(&err, g_free);
  const char *bad_crop[] = { "train", "--images", images, "--labels", labels, "-o", model,
                             "--spec", TINY, "--crop", "20", NULL };
  g_assert_cmpint(run_emseg(bad_crop, NULL, &err), ==, 1);
  g_assert_nonnull(strstr(err, "crop size 20"));
  g_clear_pointer(&err, g_free);
  const char *no_state[] = { "train", "--images", images, "--labels", labels, "-o", model,
                             "--spec", TINY, "--resume", NULL };
  g_assert_cmpint(run_emseg(no_state, NULL, &err), ==, 1);
  g_assert_nonnull(strstr(err, "x.emsegmodel.state"));
  g_clear_pointer(&err, g_free);
  const char *bad_sigma[] = { "train", "--images", images, "--labels", labels, "-o", model,
                              "--border-weight", "10", "--border-sigma", "0", NULL };
  g_assert_cmpint(run_emseg(bad_sigma, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--border-sigma > 0"));
  g_clear_pointer(&err, g_free);
  /* A misspelt loss is refused by every command that takes one, not run as Dice. */
  const char *bad_loss[] = { "bench", "--loss", "bec", NULL };
  g_assert_cmpint(run_emseg(bad_loss, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "not 'bec'"));
  g_clear_pointer(&err, g_free);
  /* bench times the shipped model's loss unless told otherwise, and says which it ran */
  g_autofree char *out = NULL;
  const char *bench[] = { "bench", "--size", "32", "--steps", "1", "--spec", TINY, NULL };
  g_assert_cmpint(run_emseg(bench, &out, &err), ==, 0);
  g_assert_nonnull(strstr(out, "\nloss bce\n"));
}

/* The first epoch's training loss as the log prints it. */
static double
first_train_loss(const char *out)
{
  const char *at = strstr(out, "epoch 1/");
  g_assert_nonnull(at);
  at = strstr(at, "train_loss ");
  g_assert_nonnull(at);
  return g_ascii_strtod(at + strlen("train_loss "), NULL);
}

/* --rotate / --shear / --elastic-sigma set the augmentation's strengths: the log and the
 * checkpoint name them, the same seed then trains on other samples (another first-epoch
 * loss than the default strengths give), a resume must keep them, and values out of range
 * exit 2 naming the options. */
static void
test_augment_strengths(void)
{
  g_autofree char *plain = in_dir("aug-default.emsegmodel"), *mild = in_dir("aug-mild.emsegmodel");
  const char *base[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                         "--val-slices", "4", "--epochs", "1", "--spec", TINY, "--crop", "32",
                         "--metrics-every", "0", "-o", plain, NULL };
  g_autofree char *out_plain = NULL, *out_mild = NULL, *err = NULL;
  g_assert_cmpint(run_emseg(base, &out_plain, NULL), ==, 0);
  g_assert_null(strstr(out_plain, "(rotate "));
  g_assert_false(model_has_key(plain, "augment_"));

  const char *soft[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                         "--val-slices", "4", "--epochs", "1", "--spec", TINY, "--crop", "32",
                         "--metrics-every", "0", "--rotate", "10", "--shear", "0.2",
                         "--elastic-sigma", "5", "-o", mild, NULL };
  g_assert_cmpint(run_emseg(soft, &out_mild, NULL), ==, 0);
  g_assert_nonnull(strstr(out_mild, "(rotate 10 shear 0.2 elastic_sigma 5)"));
  g_assert_true(model_has_key(mild, "augment_rotate=10\n"));
  g_assert_true(model_has_key(mild, "augment_shear=0.200000003\n"));
  g_assert_true(model_has_key(mild, "augment_elastic_sigma=5\n"));
  g_assert_cmpfloat(first_train_loss(out_mild), !=, first_train_loss(out_plain));

  /* resuming the mild run to 2 epochs with the default strengths is refused */
  const char *changed[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                            "--val-slices", "4", "--epochs", "2", "--spec", TINY, "--crop", "32",
                            "--metrics-every", "0", "-o", mild, "--resume", NULL };
  g_assert_cmpint(run_emseg(changed, NULL, &err), ==, 1);
  g_assert_nonnull(strstr(err, "cannot resume"));
  g_assert_nonnull(strstr(err, "it was started with augment_rotate=10"));
  g_clear_pointer(&err, g_free);

  const char *bad[][2] = { { "--rotate", "200" }, { "--shear", "-0.1" },
                           { "--elastic-sigma", "nan" } };
  for (guint k = 0; k < G_N_ELEMENTS(bad); k++) {
    const char *args[] = { "train", "--images", images, "--labels", labels, "-o", mild,
                           bad[k][0], bad[k][1], NULL };
    g_assert_cmpint(run_emseg(args, NULL, &err), ==, 2);
    g_assert_nonnull(strstr(err, "--rotate must lie in 0-180 degrees"));
    g_clear_pointer(&err, g_free);
  }
}

/* Figure 4's statistics of one variant: how many distinct layers, and whether one is a
 * batch norm. */
static guint
distinct_layers(const char *path, gboolean *has_bn)
{
  g_autoptr(GPtrArray) rows =
      read_csv(path, "epoch,layer_index,layer,mean_abs_update,mean_abs_weight", 5);
  g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
  *has_bn = FALSE;
  for (guint i = 0; i < rows->len; i++) {
    char **f = rows->pdata[i];
    g_hash_table_add(names, f[2]);
    *has_bn |= strstr(f[2], ".bn") != NULL;
    g_assert_cmpfloat(num(f[3]), >=, 0.0);
  }
  return g_hash_table_size(names);
}

/* Runs `emseg experiment NAME` on 2 generated 32 px slices for 2 epochs and checks what
 * every experiment writes: per variant 2 rows of curves, a heatmap and the update
 * statistics (layers[v] distinct layers, has_bn[v] one of them a batch norm; lr[v] = its
 * learning rate),
 * one plot, and the best-loss table, returned (fields as strings). */
static GPtrArray *
run_experiment(const char *name, const char *spec, const char *const *variants, guint n,
               double *lr, guint *layers, gboolean *has_bn)
{
  g_autofree char *out_dir = in_dir(name);
  const char *args[] = { "experiment", name, "--size", "32", "--epochs", "2",
                         "--n-train", "2", "--n-val", "1", "--spec", spec,
                         "--out", out_dir, NULL };
  g_autofree char *out = NULL;
  g_assert_cmpint(run_emseg(args, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, ", loss bce,")); /* the paper's loss for Section 3.2 */
  for (guint v = 0; v < n; v++) {
    g_assert_nonnull(strstr(out, variants[v]));
    g_autofree char *csv_name = g_strdup_printf("curves-%s.csv", variants[v]);
    g_autofree char *png_name = g_strdup_printf("heatmap-%s.png", variants[v]);
    g_autofree char *stats_name = g_strdup_printf("stats-%s.csv", variants[v]);
    g_autofree char *csv = g_build_filename(out_dir, csv_name, NULL);
    g_autofree char *png = g_build_filename(out_dir, png_name, NULL);
    g_autofree char *stats = g_build_filename(out_dir, stats_name, NULL);
    g_autoptr(GPtrArray) rows = read_csv(
        csv, "epoch,train_loss,train_accuracy,val_loss,val_accuracy,vrand,vinfo,lr,seconds",
        9);
    g_assert_cmpuint(rows->len, ==, 2);
    lr[v] = num(((char **) rows->pdata[0])[7]);
    layers[v] = distinct_layers(stats, &has_bn[v]);
    assert_png(png, 10, 2);
  }
  g_autofree char *plot = g_build_filename(out_dir, "curves.png", NULL);
  assert_png(plot, 200, 200);
  g_autofree char *table = g_build_filename(out_dir, "best-losses.csv", NULL);
  GPtrArray *best = read_csv(table, "variant,long_skip,short_skip,best_epoch,best_train_loss,best_val_loss", 6);
  g_assert_cmpuint(best->len, ==, n);
  for (guint i = 0; i < n; i++) {
    char **f = best->pdata[i];
    g_assert_cmpstr(f[0], ==, variants[i]);
    num(f[4]);
    g_assert_cmpfloat(num(f[5]), >, 0); /* BCE; a Dice loss would be negative */
  }
  return best;
}

static void
test_experiment(void)
{
  const char *const variants[] = { "long+short", "short", "long" };
  double lr[3];
  guint layers[3];
  gboolean has_bn[3];
  g_autoptr(GPtrArray) best =
      run_experiment("skip-ablation", TINY, variants, 3, lr, layers, has_bn);
  for (guint i = 0; i < 3; i++) {
    char **f = best->pdata[i];
    g_assert_cmpstr(f[1], ==, i == 1 ? "0" : "1");
    g_assert_cmpstr(f[2], ==, i == 2 ? "0" : "1");
    g_assert_cmpfloat_with_epsilon(lr[i], 1e-3, 1e-9);
  }
}

/* Figure 4's panels: each variant's depth, skips, batch norm and learning rate are its
 * own (seen in its per-layer statistics and curves), not the base spec's. */
static void
test_update_depth(void)
{
  const char *const variants[] = { "long+short-9", "long-9", "long-3", "long-7-nobn" };
  double lr[4];
  guint layers[4];
  gboolean has_bn[4];
  g_autoptr(GPtrArray) best =
      run_experiment("update-depth", "base_width=4", variants, 4, lr, layers, has_bn);
  for (guint i = 0; i < 4; i++) {
    char **f = best->pdata[i];
    g_assert_cmpstr(f[1], ==, "1");
    g_assert_cmpstr(f[2], ==, i == 0 ? "1" : "0");
    /* the network without batch norm trains at a tenth of the learning rate */
    g_assert_cmpfloat_with_epsilon(lr[i], i == 3 ? 1e-4 : 1e-3, 1e-9);
    g_assert_cmpint(has_bn[i], ==, i != 3); /* batch norm layers, or none */
  }
  g_assert_cmpuint(layers[1], >, layers[2]); /* 9 repetitions have more layers than 3 */
  g_assert_cmpuint(layers[0], >, layers[1]); /* short skips add 1x1 convs where widths differ */
}

/* Every slice of the stack at path as floats, one after another (g_free); *count: values. */
static float *
read_whole_stack(const char *path, gsize *count)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegStack) st = emseg_stack_open(path, &error);
  g_assert_no_error(error);
  guint n = emseg_stack_get_n_slices(st);
  gsize plane = (gsize) emseg_stack_get_width(st) * emseg_stack_get_height(st);
  float *v = g_new(float, n * plane);
  for (guint z = 0; z < n; z++) {
    emseg_stack_read_float(st, z, v + z * plane, &error);
    g_assert_no_error(error);
  }
  *count = n * plane;
  return v;
}

/* Every value of stack a raised to gamma equals the one of stack b. */
static void
assert_stack_pow(const char *a_path, const char *b_path, double gamma)
{
  gsize na, nb;
  g_autofree float *x = read_whole_stack(a_path, &na), *y = read_whole_stack(b_path, &nb);
  g_assert_cmpuint(na, ==, nb);
  gboolean differs = FALSE;
  for (gsize i = 0; i < na; i++) {
    g_assert_cmpfloat_with_epsilon(y[i], pow(x[i], gamma), 1e-6);
    differs |= fabsf(x[i] - y[i]) > 1e-3f;
  }
  g_assert_true(differs == (gamma != 1.0));
}

/* Two epochs of the TINY spec on slices 0-3, no augmentation: a model to predict with. */
static void
train_tiny(const char *model)
{
  const char *train[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                          "--epochs", "2", "--spec", TINY, "--no-augment", "-o", model, NULL };
  g_assert_cmpint(run_emseg(train, NULL, NULL), ==, 0);
}

/* calibrate-gamma writes the chosen exponent into a copy of the model; export-isbi uses it
 * unless --gamma says otherwise; predict --gamma and export --probabilities --gamma agree. */
static void
test_calibrate_gamma(void)
{
  g_autofree char *model = in_dir("g.emsegmodel"), *tuned = in_dir("g3.emsegmodel"),
                  *prob = in_dir("g-prob.tif"), *prob3 = in_dir("g-prob3.tif"),
                  *sub = in_dir("g-sub.tif"), *sub1 = in_dir("g-sub1.tif"),
                  *subp = in_dir("g-subp.tif");
  train_tiny(model);

  /* the table has one row per exponent and names the choice */
  g_autofree char *out = NULL, *err = NULL;
  const char *table[] = { "calibrate-gamma", "-m", model, "--images", images, "--labels", labels,
                          "--slices", "4-5", "--gammas", "4,1,2", NULL };
  g_assert_cmpint(run_emseg(table, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "\n1 "));
  g_assert_nonnull(strstr(out, "\n2 "));
  g_assert_nonnull(strstr(out, "\n4 "));
  g_assert_nonnull(strstr(out, "<- chosen"));
  g_assert_nonnull(strstr(out, "export_gamma "));

  /* one exponent forces the choice, so the export below has a γ other than 1 to use */
  const char *calib[] = { "calibrate-gamma", "-m", model, "--images", images, "--labels", labels,
                          "--slices", "4-5", "--gammas", "3", "-o", tuned, NULL };
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(calib, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "export_gamma=3"));
  const char *info[] = { "info", tuned, NULL };
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(info, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "meta.export_gamma=3\n"));
  g_assert_nonnull(strstr(out, "meta.export_gamma_chosen_by=calibrate-gamma on"));
  g_assert_nonnull(strstr(out, "meta.epoch=")); /* the trainer's metadata is kept */

  const char *pred[] = { "predict", "-m", tuned, "--images", images, "-o", prob, NULL };
  g_assert_cmpint(run_emseg(pred, NULL, NULL), ==, 0);
  const char *pred3[] = { "predict", "-m", tuned, "--images", images, "--gamma", "3", "-o",
                          prob3, NULL };
  g_assert_cmpint(run_emseg(pred3, NULL, NULL), ==, 0);
  assert_stack_pow(prob, prob3, 3.0);

  const char *exp[] = { "export-isbi", "-m", tuned, "--images", images, "-o", sub, NULL };
  g_assert_cmpint(run_emseg(exp, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "model's calibrated exponent"));
  assert_stack_pow(prob, sub, 3.0);
  const char *exp1[] = { "export-isbi", "-m", tuned, "--images", images, "--gamma", "1", "-o",
                         sub1, NULL };
  g_assert_cmpint(run_emseg(exp1, NULL, NULL), ==, 0);
  assert_stack_pow(prob, sub1, 1.0);
  const char *expp[] = { "export-isbi", "-p", prob, "--images", images, "--gamma", "2", "-o",
                         subp, NULL };
  g_assert_cmpint(run_emseg(expp, NULL, NULL), ==, 0);
  assert_stack_pow(prob, subp, 2.0);

  /* bad exponents and missing slices: exit 2 with the reason, nothing written */
  const char *bad_list[] = { "calibrate-gamma", "-m", model, "--images", images, "--labels",
                             labels, "--slices", "4-5", "--gammas", "1,x", NULL };
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(bad_list, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "'x' is not a number"));
  const char *no_slices[] = { "calibrate-gamma", "-m", model, "--images", images, "--labels",
                              labels, NULL };
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(no_slices, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--slices"));
  g_autofree char *never = in_dir("never.tif");
  const char *bad_gamma[] = { "export-isbi", "-m", tuned, "--images", images, "--gamma", "0",
                              "-o", never, NULL };
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(bad_gamma, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--gamma: 0 is not an exponent"));
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));
}

/* train --swa-from writes the averaged weights beside the best checkpoint and reports
 * them (this run also has separation weights and bfloat16 convolutions, which the
 * checkpoint records and the log names with the kernel that runs them); average
 * takes files of one architecture, refuses others, and its trainable weights are the
 * mean of its inputs'. */
static void
test_swa_average(void)
{
  g_autofree char *model = in_dir("s.emsegmodel"), *swa = in_dir("s-swa.emsegmodel"),
                  *other = in_dir("s-wide.emsegmodel"), *avg = in_dir("s-avg.emsegmodel");
  const char *train[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                          "--val-slices", "4", "--epochs", "3", "--spec", TINY, "--crop", "32",
                          "--swa-from", "2", "--border-weight", "10", "--bf16", "-o", model,
                          NULL };
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(run_emseg(train, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "swa epochs 2-3 val_loss "));
  g_assert_nonnull(strstr(out, swa));
  g_assert_true(model_has_key(swa, "swa_from=2"));
  g_assert_true(model_has_key(swa, "swa_epochs=2"));
  g_assert_true(model_has_key(swa, "val_loss="));
  g_assert_false(model_has_key(model, "swa_from="));
  g_assert_nonnull(strstr(out, "border_weight 10 sigma 5"));
  g_assert_true(model_has_key(model, "border_weight=10"));
  g_assert_true(model_has_key(model, "border_sigma=5"));
  g_assert_true(model_has_key(model, "conv_precision=bf16"));
  g_assert_nonnull(strstr(out, " conv ")); /* "conv jit_bf16:…", or the float32 fallback */

  const char *late[] = { "train", "--images", images, "--labels", labels, "--epochs", "3",
                         "--swa-from", "4", "-o", model, NULL };
  g_assert_cmpint(run_emseg(late, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--swa-from 4 is after the last epoch"));
  g_clear_pointer(&err, g_free);
  const char *lone[] = { "train", "--images", images, "--labels", labels, "--swa-out", avg,
                         "-o", model, NULL };
  g_assert_cmpint(run_emseg(lone, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--swa-out needs --swa-from"));
  g_clear_pointer(&err, g_free);

  const char *avg_args[] = { "average", "--images", images, "--slices", "0-3", "-o", avg, model,
                             swa, NULL };
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(avg_args, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "averaged 2 models"));
  EngModel *m[3] = { NULL, NULL, NULL };
  const char *paths[3] = { model, swa, avg };
  EngError e;
  for (int k = 0; k < 3; k++)
    g_assert_cmpint(eng_model_load(paths[k], &m[k], NULL, &e), ==, ENG_OK);
  const float *a = eng_model_params_const(m[0], NULL), *b = eng_model_params_const(m[1], NULL),
              *c = eng_model_params_const(m[2], NULL);
  size_t differ = 0;
  for (size_t p = 0; p < eng_model_n_params(m[2]); p++) {
    const EngParam *par = eng_model_param(m[2], p);
    if (!par->trainable)
      continue;
    for (size_t j = par->offset; j < par->offset + par->count; j++) {
      double want = 0.5 * ((double) a[j] + b[j]);
      g_assert_cmpfloat(fabs(c[j] - want), <=, 1e-6 * (1 + fabs(want)));
      differ += a[j] != b[j];
    }
  }
  g_assert_cmpuint(differ, >, 0);
  for (int k = 0; k < 3; k++)
    eng_model_free(m[k]);

  const char *wide[] = { "train", "--images", images, "--labels", labels, "--slices", "0",
                         "--epochs", "1", "--spec", TINY ",base_width=8", "--no-augment", "-o",
                         other, NULL };
  g_assert_cmpint(run_emseg(wide, NULL, NULL), ==, 0);
  g_autofree char *never = in_dir("never.emsegmodel");
  const char *mixed[] = { "average", "--images", images, "-o", never, model, other, NULL };
  g_assert_cmpint(run_emseg(mixed, NULL, &err), ==, 1);
  g_assert_nonnull(strstr(err, "different architectures"));
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));
  g_clear_pointer(&err, g_free);
  const char *one[] = { "average", "--images", images, "-o", never, model, NULL };
  g_assert_cmpint(run_emseg(one, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "two or more model files"));
}

/* predict --adapt-bn and export-isbi --adapt-bn: the model's BN statistics recomputed over
 * the images first, as calibrate-bn over all of them writes them (predictions identical to
 * the calibrated file's, different from the model's own), said on stderr. */
static void
test_predict_adapt_bn(void)
{
  g_autofree char *model = in_dir("ab.emsegmodel"), *cal = in_dir("ab-cal.emsegmodel"),
                  *plain = in_dir("ab-plain.tif"), *adapted = in_dir("ab-adapted.tif"),
                  *viacal = in_dir("ab-viacal.tif"), *sub = in_dir("ab-sub.tif"),
                  *subcal = in_dir("ab-subcal.tif");
  train_tiny(model);
  const char *cb[] = { "calibrate-bn", "-m", model, "--images", images, "-o", cal, NULL };
  g_assert_cmpint(run_emseg(cb, NULL, NULL), ==, 0);
  const char *p0[] = { "predict", "-m", model, "--images", images, "-o", plain, NULL };
  const char *p2[] = { "predict", "-m", cal, "--images", images, "-o", viacal, NULL };
  g_assert_cmpint(run_emseg(p0, NULL, NULL), ==, 0);
  g_assert_cmpint(run_emseg(p2, NULL, NULL), ==, 0);
  g_autofree char *err = NULL;
  const char *p1[] = { "predict", "-m", model, "--images", images, "--adapt-bn", "-o", adapted,
                       NULL };
  g_assert_cmpint(run_emseg(p1, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "predict: BN statistics recomputed over"));
  gsize n0, n1, n2;
  g_autofree float *x0 = read_whole_stack(plain, &n0), *x1 = read_whole_stack(adapted, &n1),
                   *x2 = read_whole_stack(viacal, &n2);
  g_assert_cmpuint(n1, ==, n2);
  g_assert_cmpmem(x1, n1 * sizeof(float), x2, n2 * sizeof(float));
  double moved = 0.0;
  for (gsize i = 0; i < n0; i++)
    moved = fmax(moved, fabs((double) x0[i] - x1[i]));
  g_assert_cmpfloat(moved, >, 1e-4);
  const char *e1[] = { "export-isbi", "-m", model, "--images", images, "--adapt-bn", "-o", sub,
                       NULL };
  const char *e2[] = { "export-isbi", "-m", cal, "--images", images, "-o", subcal, NULL };
  g_assert_cmpint(run_emseg(e1, NULL, NULL), ==, 0);
  g_assert_cmpint(run_emseg(e2, NULL, NULL), ==, 0);
  g_autofree float *s1 = read_whole_stack(sub, &n1), *s2 = read_whole_stack(subcal, &n2);
  g_assert_cmpmem(s1, n1 * sizeof(float), s2, n2 * sizeof(float));
}

/* predict --bf16 and export-isbi --bf16: a network wide enough for oneDNN's kernels (16
 * channels) predicts within 0.02 of float32 and, where stderr says bfloat16 ran, not
 * identically (else the flag did not reach the convolutions); --bf16 without a model to
 * run is refused. */
static void
test_predict_bf16(void)
{
  g_autofree char *model = in_dir("b.emsegmodel"), *p32 = in_dir("b-p32.tif"),
                  *p16 = in_dir("b-p16.tif"), *sub = in_dir("b-sub.tif"),
                  *never = in_dir("b-never.tif");
  const char *train[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                          "--epochs", "2", "--spec", TINY ",base_width=16", "--no-augment", "-o",
                          model, NULL };
  g_assert_cmpint(run_emseg(train, NULL, NULL), ==, 0);
  const char *pred32[] = { "predict", "-m", model, "--images", images, "-o", p32, NULL };
  g_assert_cmpint(run_emseg(pred32, NULL, NULL), ==, 0);
  g_autofree char *err = NULL;
  const char *pred16[] = { "predict", "-m", model, "--images", images, "--bf16", "-o", p16,
                           NULL };
  g_assert_cmpint(run_emseg(pred16, NULL, &err), ==, 0);
  gboolean ran_bf16 = strstr(err, "predict: convolutions in bfloat16") != NULL;
  g_assert_true(ran_bf16 || strstr(err, "no bfloat16 convolution kernel") != NULL);
  g_test_message("predict --bf16: %s", err);

  gsize na, nb;
  g_autofree float *x = read_whole_stack(p32, &na), *y = read_whole_stack(p16, &nb);
  g_assert_cmpuint(na, ==, nb);
  double worst = 0.0;
  for (gsize i = 0; i < na; i++)
    worst = fmax(worst, fabs((double) x[i] - y[i]));
  g_test_message("largest difference from float32: %.3g", worst);
  g_assert_cmpfloat(worst, <, 0.02);
  if (ran_bf16)
    g_assert_cmpfloat(worst, >, 0.0);
  else
    g_assert_cmpfloat(worst, ==, 0.0);

  g_clear_pointer(&err, g_free);
  const char *exp[] = { "export-isbi", "-m", model, "--images", images, "--bf16", "-o", sub,
                        NULL };
  g_assert_cmpint(run_emseg(exp, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "export-isbi: "));
  g_assert_nonnull(strstr(err, "bfloat16"));
  /* calibrate-gamma predicts as the export will, so it takes --bf16 too and says so */
  g_autofree char *out = NULL;
  g_clear_pointer(&err, g_free);
  const char *calib[] = { "calibrate-gamma", "-m", model, "--images", images, "--labels", labels,
                          "--slices", "4-5", "--gammas", "1,2", "--bf16", NULL };
  g_assert_cmpint(run_emseg(calib, &out, &err), ==, 0);
  g_assert_nonnull(strstr(err, ran_bf16 ? "calibrate-gamma: convolutions in bfloat16"
                                        : "no bfloat16 convolution kernel"));
  g_assert_nonnull(strstr(out, "plain, bfloat16 convolutions)"));

  g_clear_pointer(&err, g_free);
  const char *nothing[] = { "export-isbi", "-p", p32, "--images", images, "--bf16", "-o", never,
                            NULL };
  g_assert_cmpint(run_emseg(nothing, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "with --probabilities nothing is predicted"));
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));
}

/* A fine-tune with learning rate 0 cannot beat its start: the run says the starting
 * weights are its best, writes them, and names their export exponent. */
static void
test_fine_tune_keeps_start(void)
{
  g_autofree char *model = in_dir("s.emsegmodel"), *tuned = in_dir("s-tuned.emsegmodel");
  const char *train[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                          "--val-slices", "4-5", "--epochs", "2", "--spec", TINY, "--loss",
                          "bce", "--no-augment", "-o", model, NULL };
  g_assert_cmpint(run_emseg(train, NULL, NULL), ==, 0);
  g_autofree char *out = NULL;
  const char *ft[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                       "--val-slices", "4-5", "--epochs", "2", "--init", model, "--lr", "0",
                       "--loss", "bce", "--no-augment", "-o", tuned, NULL };
  g_assert_cmpint(run_emseg(ft, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "epoch 0/2 (starting weights) val_loss"));
  g_assert_nonnull(strstr(out, "at epoch 0 (the starting weights: no epoch beat them) written"));
  g_assert_nonnull(strstr(out, "export exponent "));
  g_autofree char *info_out = NULL;
  const char *info[] = { "info", tuned, NULL };
  g_assert_cmpint(run_emseg(info, &info_out, NULL), ==, 0);
  g_assert_nonnull(strstr(info_out, "meta.starting_weights=1\n"));
}

/* Slices above the window area are predicted in windows (EMSEG_PREDICT_WINDOW makes the
 * 64² test slices "big"): the command says so, and the map stays close to the whole-slice
 * one (eng_predict_tiled's exactness is tests/engine/test-tiles.c's). */
static void
test_predict_windows(void)
{
  g_autofree char *model = in_dir("w.emsegmodel"), *whole = in_dir("w-whole.tif"),
                  *tiled = in_dir("w-tiled.tif");
  train_tiny(model);
  g_autofree char *err = NULL;
  const char *pw[] = { "predict", "-m", model, "--images", images, "-o", whole, NULL };
  g_assert_cmpint(run_emseg(pw, NULL, &err), ==, 0);
  g_assert_null(strstr(err, "windows"));
  g_clear_pointer(&err, g_free);
  g_setenv("EMSEG_PREDICT_WINDOW", "32", TRUE);
  const char *pt[] = { "predict", "-m", model, "--images", images, "-o", tiled, NULL };
  int rc = run_emseg(pt, NULL, &err);
  g_unsetenv("EMSEG_PREDICT_WINDOW");
  g_assert_cmpint(rc, ==, 0);
  g_assert_nonnull(strstr(err, "64x64 slices are predicted in 32x32 windows"));
  gsize na, nb;
  g_autofree float *a = read_whole_stack(whole, &na), *b = read_whole_stack(tiled, &nb);
  g_assert_cmpuint(na, ==, nb);
  double worst = 0, sum = 0;
  for (gsize i = 0; i < na; i++) {
    g_assert_true(b[i] >= 0.0f && b[i] <= 1.0f);
    worst = fmax(worst, fabs((double) a[i] - b[i]));
    sum += fabs((double) a[i] - b[i]);
  }
  g_test_message("32x32 windows against whole 64x64 slices: mean |dp| %.3g, largest %.3g",
                 sum / na, worst);
  g_assert_cmpfloat(sum / na, <, 0.05);

  /* training on such slices: crops of the window's side and validation windows, said */
  g_autofree char *cropped = in_dir("w-crop.emsegmodel");
  const char *tc[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                       "--val-slices", "4-5", "--epochs", "1", "--spec", TINY, "--no-augment",
                       "-o", cropped, NULL };
  g_clear_pointer(&err, g_free);
  g_setenv("EMSEG_PREDICT_WINDOW", "32", TRUE);
  rc = run_emseg(tc, NULL, &err);
  g_unsetenv("EMSEG_PREDICT_WINDOW");
  g_assert_cmpint(rc, ==, 0);
  g_assert_nonnull(strstr(err, "64x64 slices: training on 32² crops, validating on the window"));
  g_assert_true(g_file_test(cropped, G_FILE_TEST_EXISTS));
}

/* Slices of any size are predicted: 37 x 29 (no multiple of the network's 8) comes out 37 x
 * 29 and says it was padded (tests/engine/test-tiles.c checks the padding's arithmetic);
 * and trained on: crops of 24² (the largest multiple inside), validated on a window. */
static void
test_any_size(void)
{
  g_autofree char *model = in_dir("any.emsegmodel"), *odd = in_dir("odd.tif");
  g_autofree char *prob = in_dir("odd-prob.tif"), *odd_labels = in_dir("odd-labels.tif");
  g_autofree char *odd_model = in_dir("odd.emsegmodel");
  const char *train[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                          "--epochs", "1", "--spec", TINY, "--dropout", "0.2", "--no-augment",
                          "-o", model, NULL };
  g_assert_cmpint(run_emseg(train, NULL, NULL), ==, 0);
  g_autoptr(GError) error = NULL;
  const char *from[] = { images, labels }, *to[] = { odd, odd_labels };
  for (int k = 0; k < 2; k++) {
    g_autoptr(EmsegStack) full = emseg_stack_open(from[k], &error);
    g_assert_no_error(error);
    guint8 page[64 * 64], cut[3 * 29 * 37];
    for (guint z = 0; z < 3; z++) {
      g_assert_true(emseg_stack_read_raw(full, z, page, &error));
      for (guint y = 0; y < 29; y++)
        memcpy(cut + (z * 29 + y) * 37, page + y * 64, 37);
    }
    g_assert_true(emseg_tiff_write_u8_stack(to[k], cut, 37, 29, 3, &error));
  }
  g_autofree char *err = NULL;
  const char *pred[] = { "predict", "-m", model, "--images", odd, "--tta", "-o", prob, NULL };
  g_assert_cmpint(run_emseg(pred, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "37x29 slices are mirrored at their bottom and right edges"));
  g_autoptr(EmsegStack) out = emseg_stack_open(prob, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_width(out), ==, 37);
  g_assert_cmpuint(emseg_stack_get_height(out), ==, 29);
  g_assert_cmpuint(emseg_stack_get_n_slices(out), ==, 3);
  gsize n = 0;
  g_autofree float *p = read_whole_stack(prob, &n);
  for (gsize i = 0; i < n; i++)
    g_assert_true(p[i] >= 0.0f && p[i] <= 1.0f);

  /* MC dropout with its standard deviation, written slice by slice: --gamma 2 squares the
   * probabilities of the same seed's passes, and the deviation stays that of P */
  g_autofree char *p1 = in_dir("odd-mc1.tif"), *p2 = in_dir("odd-mc2.tif");
  g_autofree char *s1 = in_dir("odd-sd1.tif"), *s2 = in_dir("odd-sd2.tif");
  const char *mc1[] = { "predict", "-m", model, "--images", odd, "--mc-samples", "3",
                        "--std-out", s1, "-o", p1, NULL };
  const char *mc2[] = { "predict", "-m", model, "--images", odd, "--mc-samples", "3",
                        "--std-out", s2, "--gamma", "2", "-o", p2, NULL };
  g_assert_cmpint(run_emseg(mc1, NULL, NULL), ==, 0);
  g_assert_cmpint(run_emseg(mc2, NULL, NULL), ==, 0);
  gsize n1 = 0, n2 = 0, ns1 = 0, ns2 = 0;
  g_autofree float *a1 = read_whole_stack(p1, &n1), *a2 = read_whole_stack(p2, &n2);
  g_autofree float *d1 = read_whole_stack(s1, &ns1), *d2 = read_whole_stack(s2, &ns2);
  g_assert_cmpuint(n1, ==, 3 * 37 * 29);
  g_assert_cmpuint(n2, ==, n1);
  g_assert_cmpuint(ns1, ==, n1);
  g_assert_cmpuint(ns2, ==, n1);
  gsize spread = 0;
  for (gsize i = 0; i < n1; i++) {
    g_assert_cmpfloat(fabs(a2[i] - (double) a1[i] * a1[i]), <, 1e-6);
    g_assert_true(d1[i] >= 0.0f && d1[i] <= 0.5f);
    g_assert_cmpfloat(d1[i], ==, d2[i]);
    spread += d1[i] > 0.0f;
  }
  g_assert_cmpuint(spread, >, n1 / 2);

  g_clear_pointer(&err, g_free);
  const char *t2[] = { "train", "--images", odd, "--labels", odd_labels, "--slices", "0-1",
                       "--val-slices", "2", "--epochs", "1", "--spec", TINY, "-o", odd_model,
                       NULL };
  g_assert_cmpint(run_emseg(t2, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "37x29 slices: training on 24² crops, validating on the window"));
  g_assert_true(g_file_test(odd_model, G_FILE_TEST_EXISTS));
}

/* --project: a project made by `emseg project create` with labels on slices 0-3 of 6 (the
 * rest unlabelled) trains on its labelled slices that do not validate, and `emseg project
 * import-model` stores the model back in it byte for byte; a validation slice
 * without labels, two sources at once, --stack without --project and a project of two
 * stacks without --stack are refused with the reason. */
static void
test_train_project(void)
{
  g_autofree char *proj = in_dir("train.emseg"), *few = in_dir("lab4.tif");
  g_autofree char *model = in_dir("from-project.emsegmodel");
  g_autoptr(GError) error = NULL;
  {
    g_autoptr(EmsegStack) lab = emseg_stack_open(labels, &error);
    g_assert_no_error(error);
    g_autofree guint8 *pages = g_new(guint8, 64 * 64 * 4);
    for (guint z = 0; z < 4; z++)
      g_assert_true(emseg_stack_read_u8(lab, z, pages + z * 64 * 64, &error));
    g_assert_true(emseg_tiff_write_u8_stack(few, pages, 64, 64, 4, &error));
  }
  const char *create[] = { "project", "create", proj, "--images", images, "--labels", few, NULL };
  g_assert_cmpint(run_emseg(create, NULL, NULL), ==, 0);
  g_autofree char *out = NULL, *err = NULL;
  const char *train[] = { "train", "--project", proj, "--val-slices", "3", "--epochs", "2",
                          "--spec", TINY, "--out", model, NULL };
  g_assert_cmpint(run_emseg(train, &out, &err), ==, 0);
  g_assert_nonnull(strstr(out, "stack 1 'im.tif': 3 training, 1 validation slices"));
  g_assert_nonnull(strstr(out, "train_slices 3 val_slices 1"));
  g_assert_true(g_file_test(model, G_FILE_TEST_EXISTS));
  /* back into the project as its latest checkpoint (the workbench's model); a second import
   * under the same name and a file that is no model are refused */
  g_autofree char *oi = NULL, *ei = NULL, *oj = NULL, *ej = NULL, *ek = NULL, *oinfo = NULL;
  const char *import[] = { "project", "import-model", proj, model, NULL };
  g_assert_cmpint(run_emseg(import, &oi, NULL), ==, 0);
  g_assert_nonnull(strstr(oi, "model 'from-project' imported (2309 parameters"));
  g_assert_cmpint(run_emseg(import, &oj, &ej), ==, 1);
  g_assert_nonnull(strstr(ej, "already holds a model named 'from-project'"));
  const char *not_model[] = { "project", "import-model", proj, images, "--name", "x", NULL };
  g_assert_cmpint(run_emseg(not_model, NULL, &ek), ==, 1);
  g_assert_nonnull(strstr(ek, images));
  const char *info[] = { "project", "info", proj, NULL };
  g_assert_cmpint(run_emseg(info, &oinfo, NULL), ==, 0);
  g_assert_nonnull(strstr(oinfo, "checkpoints: 1\n  checkpoint 'from-project': run 0"));
  {
    g_autoptr(EmsegProject) p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
    g_assert_no_error(error);
    g_auto(EmsegCheckpointInfo) info_cp = { 0 };
    g_autoptr(GBytes) stored = emseg_project_load_checkpoint(p, "from-project", &info_cp, &error);
    g_assert_no_error(error);
    g_autofree char *file = NULL;
    gsize file_len = 0;
    g_assert_true(g_file_get_contents(model, &file, &file_len, &error));
    g_assert_cmpmem(g_bytes_get_data(stored, NULL), g_bytes_get_size(stored), file, file_len);
  }

  g_autofree char *o2 = NULL, *e2 = NULL;
  const char *unlabelled[] = { "train", "--project", proj, "--val-slices", "4", "--spec", TINY,
                               "--out", model, NULL };
  g_assert_cmpint(run_emseg(unlabelled, &o2, &e2), ==, 1);
  g_assert_nonnull(strstr(e2, "slice 4: no labeled pixels"));
  g_autofree char *e3 = NULL;
  const char *both[] = { "train", "--project", proj, "--images", images, "--out", model, NULL };
  g_assert_cmpint(run_emseg(both, NULL, &e3), ==, 2);
  g_assert_nonnull(strstr(e3, "either --images with --labels or --project"));
  g_autofree char *e4 = NULL;
  const char *stack_only[] = { "train", "--images", images, "--labels", labels, "--stack", "1",
                               "--out", model, NULL };
  g_assert_cmpint(run_emseg(stack_only, NULL, &e4), ==, 2);
  g_assert_nonnull(strstr(e4, "--stack needs --project"));
  {
    EmsegProject *p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    g_assert_no_error(error);
    g_autoptr(EmsegStack) im = emseg_stack_open(images, &error);
    g_autoptr(EmsegStack) lab = emseg_stack_open(few, &error);
    gint64 second = 0;
    g_assert_true(emseg_project_import_stack(p, "again", im, lab, &second, &error));
    g_assert_cmpint(second, ==, 2);
    emseg_project_close(p);
  }
  g_autofree char *e5 = NULL, *o6 = NULL;
  const char *which[] = { "train", "--project", proj, "--spec", TINY, "--epochs", "1", "--out",
                          model, NULL };
  g_assert_cmpint(run_emseg(which, NULL, &e5), ==, 2);
  g_assert_nonnull(strstr(e5, "has 2 stacks (1 'im.tif', 2 'again'): choose one with --stack ID"));
  const char *second[] = { "train", "--project", proj, "--stack", "2", "--spec", TINY,
                           "--epochs", "1", "--out", model, NULL };
  g_assert_cmpint(run_emseg(second, &o6, NULL), ==, 0);
  g_assert_nonnull(strstr(o6, "stack 2 'again': 4 training, 0 validation slices"));
}

/* TRUE when the two files hold the same bytes. */
static gboolean
same_file(const char *a, const char *b)
{
  g_autofree char *ta = NULL, *tb = NULL;
  gsize la = 0, lb = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_get_contents(a, &ta, &la, &error));
  g_assert_true(g_file_get_contents(b, &tb, &lb, &error));
  return la == lb && memcmp(ta, tb, la) == 0;
}

/* predict and export-isbi read a project's stack (--project) as they read the TIFF it came
 * from, with the project's latest model unless --model or --checkpoint names one: the
 * outputs are byte for byte those of --images with the same model file. With no model named
 * and none in the project they use the shipped one ($EMSEG_MODELS_DIR), or say it is
 * missing; train --init shipped starts from it. project use-model makes an older checkpoint
 * the one used until a newer is stored. An unknown checkpoint or stack, and mixed sources are
 * refused with the reason. */
static void
test_predict_project(void)
{
  g_autofree char *proj = in_dir("predict.emseg"), *model = in_dir("pm.emsegmodel"),
                  *by_file = in_dir("pf.tif"), *by_proj = in_dir("pp.tif"),
                  *by_proj_model = in_dir("ppm.tif"), *sub_file = in_dir("sf.tif"),
                  *sub_proj = in_dir("sp.tif"), *never = in_dir("never.tif");
  const char *train[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                          "--epochs", "1", "--spec", TINY, "--crop", "32", "-o", model, NULL };
  g_assert_cmpint(run_emseg(train, NULL, NULL), ==, 0);
  const char *create[] = { "project", "create", proj, "--images", images, NULL };
  g_assert_cmpint(run_emseg(create, NULL, NULL), ==, 0);

  g_autofree char *err = NULL, *out = NULL;
  const char *pf[] = { "predict", "--images", images, "--model", model, "--slices", "1-4",
                       "-o", by_file, NULL };
  g_assert_cmpint(run_emseg(pf, NULL, NULL), ==, 0);

  /* No model named and none in the project: the shipped one, said on stderr; here a stand-in
   * (the tiny model) in $EMSEG_MODELS_DIR, so the output is byte for byte by_file. */
  g_autofree char *models = in_dir("models");
  g_autofree char *shipped = g_build_filename(models, "isbi2012-resfcn.emsegmodel", NULL);
  g_autofree char *by_shipped = in_dir("ps.tif"), *by_shipped_proj = in_dir("psp.tif");
  g_assert_cmpint(g_mkdir_with_parents(models, 0755), ==, 0);
  {
    g_autofree char *bytes = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(model, &bytes, &len, NULL));
    g_assert_true(g_file_set_contents(shipped, bytes, (gssize) len, NULL));
  }
  const char *ps[] = { "predict", "--images", images, "--slices", "1-4", "-o", by_shipped,
                       NULL };
  const char *psp[] = { "predict", "--project", proj, "--slices", "1-4", "-o", by_shipped_proj,
                        NULL };
  g_setenv("EMSEG_MODELS_DIR", "/nonexistent/emseg-models", TRUE);
  g_assert_cmpint(run_emseg(ps, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "no --model given, and the shipped model "
                               "isbi2012-resfcn.emsegmodel is not installed (looked in "
                               "/nonexistent/emseg-models"));
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(psp, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "no --model given and the project holds none, and the shipped"));
  g_clear_pointer(&err, g_free);
  g_assert_false(g_file_test(by_shipped, G_FILE_TEST_EXISTS));
  g_assert_false(g_file_test(by_shipped_proj, G_FILE_TEST_EXISTS));
  g_setenv("EMSEG_MODELS_DIR", models, TRUE);
  g_assert_cmpint(run_emseg(ps, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "no --model: the shipped ISBI 2012 model ("));
  g_assert_nonnull(strstr(err, shipped));
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(psp, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "no --model and none in the project: the shipped ISBI 2012"));
  g_clear_pointer(&err, g_free);
  g_assert_true(same_file(by_file, by_shipped));
  g_assert_true(same_file(by_file, by_shipped_proj));
  /* train --init shipped starts from it */
  g_autofree char *ft = in_dir("ft.emsegmodel");
  const char *init[] = { "train", "--images", images, "--labels", labels, "--slices", "0-3",
                         "--epochs", "1", "--crop", "32", "--init", "shipped", "-o", ft, NULL };
  g_assert_cmpint(run_emseg(init, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, shipped));
  g_clear_pointer(&out, g_free);
  g_setenv("EMSEG_MODELS_DIR", "/nonexistent/emseg-models", TRUE);
  g_assert_cmpint(run_emseg(init, NULL, &err), ==, 2);
  g_assert_nonnull(strstr(err, "--init shipped: the shipped model"));
  g_clear_pointer(&err, g_free);
  g_unsetenv("EMSEG_MODELS_DIR");

  const char *import[] = { "project", "import-model", proj, model, NULL };
  g_assert_cmpint(run_emseg(import, NULL, NULL), ==, 0);

  const char *pp[] = { "predict", "--project", proj, "--slices", "1-4", "-o", by_proj, NULL };
  const char *ppm[] = { "predict", "--project", proj, "--model", model, "--slices", "1-4",
                        "-o", by_proj_model, NULL };
  g_assert_cmpint(run_emseg(pp, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "stack 1 'im.tif', with the project's model 'pm' (its latest)"));
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(ppm, NULL, NULL), ==, 0);
  g_assert_true(same_file(by_file, by_proj));
  g_assert_true(same_file(by_file, by_proj_model));

  const char *sf[] = { "export-isbi", "--images", images, "--model", model, "-o", sub_file, NULL };
  const char *sp[] = { "export-isbi", "--project", proj, "--checkpoint", "pm", "-o", sub_proj,
                       NULL };
  g_assert_cmpint(run_emseg(sf, NULL, NULL), ==, 0);
  g_assert_cmpint(run_emseg(sp, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "6 slices of 64 x 64"));
  g_clear_pointer(&out, g_free);
  g_assert_true(same_file(sub_file, sub_proj));

  struct {
    const char *args[10];
    int rc;
    const char *says;
  } bad[] = {
    { { "predict", "--project", proj, "--checkpoint", "nope", "-o", never }, 1, "nope" },
    { { "predict", "--project", proj, "--stack", "7", "-o", never }, 1, "7" },
    { { "predict", "--project", proj, "--images", images, "-o", never }, 2,
      "--images STACK or --project PROJECT (one of them)" },
    { { "predict", "--images", images, "--checkpoint", "pm", "--model", model, "-o", never }, 2,
      "--stack and --checkpoint need --project" },
    { { "predict", "--project", proj, "--checkpoint", "pm", "--model", model, "-o", never }, 2,
      "--model and --checkpoint both name the model" },
    { { "export-isbi", "--project", proj, "--stack", "7", "-o", never }, 1, "7" },
  };
  for (guint k = 0; k < G_N_ELEMENTS(bad); k++) {
    g_assert_cmpint(run_emseg(bad[k].args, NULL, &err), ==, bad[k].rc);
    g_assert_nonnull(strstr(err, bad[k].says));
    g_clear_pointer(&err, g_free);
  }
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));

  /* project use-model: the chosen checkpoint is the one predict --project takes and info
   * marks, until a newer one is stored; an unknown name is refused */
  const char *import2[] = { "project", "import-model", proj, model, "--name", "pm2", NULL };
  g_assert_cmpint(run_emseg(import2, NULL, NULL), ==, 0);
  const char *info[] = { "project", "info", proj, NULL };
  g_assert_cmpint(run_emseg(info, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "checkpoint 'pm2'"));
  g_assert_nonnull(strstr(out, "(current model: the latest)"));
  g_clear_pointer(&out, g_free);
  const char *use[] = { "project", "use-model", proj, "pm", NULL };
  g_assert_cmpint(run_emseg(use, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "current model 'pm'"));
  g_clear_pointer(&out, g_free);
  g_assert_cmpint(run_emseg(pp, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "with the project's model 'pm' (its current model, as chosen)"));
  g_clear_pointer(&err, g_free);
  g_assert_cmpint(run_emseg(info, &out, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "(current model, chosen)"));
  g_clear_pointer(&out, g_free);
  const char *use_bad[] = { "project", "use-model", proj, "nope", NULL };
  g_assert_cmpint(run_emseg(use_bad, NULL, &err), ==, 1);
  g_assert_nonnull(strstr(err, "holds no model named 'nope'"));
  g_clear_pointer(&err, g_free);
  const char *import3[] = { "project", "import-model", proj, model, "--name", "pm3", NULL };
  g_assert_cmpint(run_emseg(import3, NULL, NULL), ==, 0);
  g_assert_cmpint(run_emseg(pp, NULL, &err), ==, 0);
  g_assert_nonnull(strstr(err, "with the project's model 'pm3' (its latest)"));
  g_clear_pointer(&err, g_free);
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test dir strings under ASan. */
  g_test_init(&argc, &argv, NULL);
  for (int i = 1; i < argc; i++)
    if (argv[i][0] != '-')
      emseg_bin = argv[i];
  if (!emseg_bin) {
    g_printerr("usage: test-cli-train [--tap] PATH-TO-EMSEG\n");
    return 1;
  }
  dir = g_dir_make_tmp("emseg-cli-train-XXXXXX", NULL);
  images = in_dir("im.tif");
  labels = in_dir("lab.tif");
  const char *synth[] = { "synth", "--images", images, "--labels", labels, "--size", "64",
                          "--slices", "6", NULL };
  if (run_emseg(synth, NULL, NULL) != 0) {
    g_printerr("emseg synth failed\n");
    return 1;
  }
  g_test_add_func("/cli-train/train", test_train);
  g_test_add_func("/cli-train/usage", test_usage);
  g_test_add_func("/cli-train/augment-strengths", test_augment_strengths);
  g_test_add_func("/cli-train/experiment", test_experiment);
  g_test_add_func("/cli-train/update-depth", test_update_depth);
  g_test_add_func("/cli-train/calibrate-gamma", test_calibrate_gamma);
  g_test_add_func("/cli-train/swa-average", test_swa_average);
  g_test_add_func("/cli-train/predict-bf16", test_predict_bf16);
  g_test_add_func("/cli-train/predict-adapt-bn", test_predict_adapt_bn);
  g_test_add_func("/cli-train/predict-windows", test_predict_windows);
  g_test_add_func("/cli-train/any-size", test_any_size);
  g_test_add_func("/cli-train/fine-tune-keeps-start", test_fine_tune_keeps_start);
  g_test_add_func("/cli-train/train-project", test_train_project);
  g_test_add_func("/cli-train/predict-project", test_predict_project);
  int rc = g_test_run();
  g_autofree char *rm = g_strdup("rm"), *flags = g_strdup("-rf");
  char *rm_argv[] = { rm, flags, dir, NULL };
  g_spawn_sync(NULL, rm_argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
  g_free(images);
  g_free(labels);
  g_free(dir);
  return rc;
}
