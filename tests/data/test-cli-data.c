/* test-cli-data.c — the data commands of the `emseg` program end to end, on stacks this
 * test writes: project create / info / export-labels / export-images / upgrade (of a project
 * rewritten as schema 2 stored it), and export-isbi from a probability stack, including the
 * refusals (exit status and a message naming the problem), and the help and --version
 * texts. The program's path is the first argument (tests/data/meson.build passes it). */
#include <math.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-stack.h"
#include "emseg-test-util.h"
#include "eng-model.h"
#include "eng-modelfile.h"
#include "project-raw.h"

#define W 32
#define H 24
#define N 5

static const char *emseg_path;
static char *scratch;

static char *
scratch_path(const char *name)
{
  return g_build_filename(scratch, name, NULL);
}

/* Runs emseg with the given arguments; returns the exit status, stdout and stderr. */
static int
run(char **out, char **err, ...)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(argv, g_strdup(emseg_path));
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL)
    g_ptr_array_add(argv, g_strdup(a));
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  int status = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out,
                             err, &status, &error));
  g_assert_no_error(error);
  g_ptr_array_free(argv, TRUE);
  if (g_test_verbose())
    g_test_message("stdout: %s\nstderr: %s", *out, *err);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_project_commands(void)
{
  g_autofree char *img = scratch_path("img.tif");
  g_autofree char *lab = scratch_path("lab.tif");
  g_autofree char *proj = scratch_path("p.emseg");
  g_autofree char *back = scratch_path("back.tif");
  g_autofree guint8 *px = g_new(guint8, W * H * N);
  g_autofree guint8 *lb = g_new(guint8, W * H * 2);
  for (gsize i = 0; i < W * H * N; i++) px[i] = (guint8)(i * 7);
  for (gsize i = 0; i < W * H * 2; i++) lb[i] = (i / 3) % 2 ? 255 : 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(img, px, W, H, N, &error));
  g_assert_true(emseg_tiff_write_u8_stack(lab, lb, W, H, 2, &error));

  g_autofree char *o1 = NULL, *e1 = NULL;
  g_assert_cmpint(run(&o1, &e1, "project", "create", proj, "--images", img, "--labels", lab, NULL),
                  ==, 0);
  g_assert_nonnull(strstr(o1, "5 slices of 32 x 24 uint8, 2 labeled"));

  g_autofree char *o2 = NULL, *e2 = NULL;
  g_assert_cmpint(run(&o2, &e2, "project", "info", proj, NULL), ==, 0);
  g_autofree char *schema = g_strdup_printf("(schema %d,", emseg_project_schema_version());
  g_assert_nonnull(strstr(o2, schema));
  /* a command that only reads leaves no -wal / -shm files beside the project */
  g_autofree char *wal = g_strconcat(proj, "-wal", NULL), *shm = g_strconcat(proj, "-shm", NULL);
  g_assert_false(g_file_test(wal, G_FILE_TEST_EXISTS));
  g_assert_false(g_file_test(shm, G_FILE_TEST_EXISTS));
  g_assert_nonnull(strstr(o2, "labeled slices: 2 (0-1), unlabeled: 3"));

  g_autofree char *o3 = NULL, *e3 = NULL;
  g_assert_cmpint(run(&o3, &e3, "project", "export-labels", proj, "--out", back, NULL), ==, 0);
  g_autoptr(EmsegStack) s = emseg_stack_open(back, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(emseg_stack_get_n_slices(s), ==, 2);
  guint8 page[W * H];
  for (guint p = 0; p < 2; p++) {
    g_assert_true(emseg_stack_read_raw(s, p, page, &error));
    g_assert_cmpmem(page, sizeof page, lb + p * W * H, sizeof page);
  }

  /* the images come back as they went in (8-bit), and from a float stack as floats */
  g_autofree char *imgs_back = scratch_path("images-back.tif");
  g_autofree char *oi = NULL, *ei = NULL;
  g_assert_cmpint(run(&oi, &ei, "project", "export-images", proj, "--out", imgs_back, NULL), ==, 0);
  g_assert_nonnull(strstr(oi, "5 slices of 32 x 24, uint8"));
  {
    g_autoptr(EmsegStack) back_im = emseg_stack_open(imgs_back, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(emseg_stack_get_n_slices(back_im), ==, N);
    for (guint z = 0; z < N; z++) {
      g_assert_true(emseg_stack_read_raw(back_im, z, page, &error));
      g_assert_cmpmem(page, sizeof page, px + z * W * H, sizeof page);
    }
  }
  {
    g_autofree char *fimg = scratch_path("f.tif"), *fproj = scratch_path("f.emseg");
    g_autofree char *fback = scratch_path("f-back.tif");
    g_autofree float *fpx = g_new(float, W * H * 2), *fread = g_new(float, W * H);
    for (gsize i = 0; i < W * H * 2; i++) fpx[i] = 0.25f * (float)i - 100.0f;
    g_assert_true(emseg_tiff_write_float_stack(fimg, fpx, W, H, 2, &error));
    g_autofree char *of = NULL, *ef = NULL, *og = NULL, *eg = NULL;
    g_assert_cmpint(run(&of, &ef, "project", "create", fproj, "--images", fimg, NULL), ==, 0);
    g_assert_cmpint(run(&og, &eg, "project", "export-images", fproj, "--out", fback, NULL), ==, 0);
    g_assert_nonnull(strstr(og, "float32"));
    g_autoptr(EmsegStack) fs = emseg_stack_open(fback, &error);
    g_assert_no_error(error);
    for (guint z = 0; z < 2; z++) {
      g_assert_true(emseg_stack_read_float(fs, z, fread, &error));
      g_assert_cmpmem(fread, W * H * sizeof(float), fpx + z * W * H, W * H * sizeof(float));
    }
  }
  g_autofree char *oe = NULL, *ee = NULL;
  g_assert_cmpint(run(&oe, &ee, "project", "export-images", proj, NULL), ==, 2); /* no --out */

  /* Refusals: existing project, labels larger than images, not a project. */
  g_autofree char *o4 = NULL, *e4 = NULL;
  g_assert_cmpint(run(&o4, &e4, "project", "create", proj, "--images", img, NULL), ==, 1);
  g_assert_nonnull(strstr(e4, "already exists"));
  g_autofree char *proj2 = scratch_path("p2.emseg");
  g_autofree char *o5 = NULL, *e5 = NULL;
  g_assert_cmpint(run(&o5, &e5, "project", "create", proj2, "--images", lab, "--labels", img,
                      NULL), ==, 1);
  g_assert_nonnull(strstr(e5, "at most as many pages"));
  g_assert_false(g_file_test(proj2, G_FILE_TEST_EXISTS)); /* no empty project left behind */
  g_autofree char *o6 = NULL, *e6 = NULL;
  g_assert_cmpint(run(&o6, &e6, "project", "info", img, NULL), ==, 1);
  g_assert_nonnull(strstr(e6, "not a SQLite database"));
  g_autofree char *o7 = NULL, *e7 = NULL;
  g_assert_cmpint(run(&o7, &e7, "project", "bogus", NULL), ==, 2);
  g_assert_nonnull(strstr(e7, "unknown subcommand 'bogus'"));
  g_assert_nonnull(strstr(e7, "emseg project import-model PROJECT MODEL")); /* the usage */
  /* --help is help, not a subcommand or a project path; an unknown option is refused */
  g_autofree char *oh = NULL, *eh = NULL, *oh2 = NULL, *eh2 = NULL, *oh3 = NULL, *eh3 = NULL;
  g_assert_cmpint(run(&oh, &eh, "project", "--help", NULL), ==, 0);
  g_assert_nonnull(strstr(oh, "emseg project export-labels PROJECT --out LABELS.tif"));
  g_assert_cmpint(run(&oh2, &eh2, "project", "info", "--help", NULL), ==, 0);
  g_assert_nonnull(strstr(oh2, "PROJECT - show a project's stacks"));
  g_assert_cmpint(run(&oh3, &eh3, "project", "upgrade", "--dry-run", proj, NULL), ==, 2);
  g_assert_nonnull(strstr(eh3, "Unknown option --dry-run"));

  /* An older project: info refuses it and names the command that converts it; upgrade
   * converts it once (the labels unchanged), then has nothing to do. */
  g_autofree char *o8 = NULL, *e8 = NULL, *o9 = NULL, *e9 = NULL, *o10 = NULL, *e10 = NULL;
  g_autofree char *o11 = NULL, *e11 = NULL, *o12 = NULL, *e12 = NULL;
  downgrade_to_v2(proj, 1);
  g_assert_cmpint(run(&o8, &e8, "project", "info", proj, NULL), ==, 1);
  g_assert_nonnull(strstr(e8, "written by an older emseg"));
  g_assert_nonnull(strstr(e8, "emseg project upgrade"));
  g_assert_cmpint(raw_int(proj, "PRAGMA user_version"), ==, 2); /* untouched */
  g_assert_cmpint(run(&o9, &e9, "project", "upgrade", proj, NULL), ==, 0);
  g_autofree char *upgraded = g_strdup_printf("upgraded to schema %d",
                                              emseg_project_schema_version());
  g_assert_nonnull(strstr(o9, upgraded));
  g_assert_cmpint(raw_int(proj, "PRAGMA user_version"), ==, emseg_project_schema_version());
  g_assert_cmpint(run(&o10, &e10, "project", "upgrade", proj, NULL), ==, 0);
  g_assert_nonnull(strstr(o10, "nothing to do"));
  /* A schema-3 project (no stored uncertainty yet) is read as it is, and upgrade still
   * converts it. */
  g_autofree char *o13 = NULL, *e13 = NULL, *o14 = NULL, *e14 = NULL;
  downgrade_to_v3(proj);
  g_assert_cmpint(run(&o13, &e13, "project", "info", proj, NULL), ==, 0);
  g_assert_nonnull(strstr(o13, "(schema 3,")); /* the file's, not this build's */
  g_assert_cmpint(raw_int(proj, "PRAGMA user_version"), ==, 3); /* untouched */
  g_assert_cmpint(run(&o14, &e14, "project", "upgrade", proj, NULL), ==, 0);
  g_assert_nonnull(strstr(o14, upgraded));
  g_assert_cmpint(raw_int(proj, "PRAGMA user_version"), ==, emseg_project_schema_version());
  g_assert_cmpint(run(&o11, &e11, "project", "export-labels", proj, "--out", back, NULL), ==, 0);
  g_autoptr(EmsegStack) s2 = emseg_stack_open(back, &error);
  g_assert_no_error(error);
  for (guint p = 0; p < 2; p++) {
    g_assert_true(emseg_stack_read_raw(s2, p, page, &error));
    g_assert_cmpmem(page, sizeof page, lb + p * W * H, sizeof page);
  }
  g_assert_cmpint(run(&o12, &e12, "project", "upgrade", img, NULL), ==, 1);
  g_assert_nonnull(strstr(e12, "not a SQLite database"));

  /* With a second stack, the exports need --stack, as predict and export-isbi do: the
   * refusal names both stacks; --stack picks either. */
  gint64 second = 0;
  {
    g_autoptr(EmsegProject) p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    g_assert_no_error(error);
    g_autoptr(EmsegStack) again = emseg_stack_open(img, &error);
    g_assert_no_error(error);
    g_assert_true(emseg_project_import_stack(p, "second", again, NULL, &second, &error));
  }
  g_autofree char *second_id = g_strdup_printf("%" G_GINT64_FORMAT, second);
  g_autofree char *o15 = NULL, *e15 = NULL, *o16 = NULL, *e16 = NULL, *o17 = NULL, *e17 = NULL;
  g_assert_cmpint(run(&o15, &e15, "project", "export-labels", proj, "--out", back, NULL), ==, 2);
  g_assert_nonnull(strstr(e15, "has 2 stacks"));
  g_assert_nonnull(strstr(e15, "'second'"));
  g_assert_nonnull(strstr(e15, "--stack ID"));
  g_assert_cmpint(run(&o16, &e16, "project", "export-images", proj, "--out", imgs_back, NULL),
                  ==, 2);
  g_assert_cmpint(run(&o17, &e17, "project", "export-images", proj, "--out", imgs_back,
                      "--stack", second_id, NULL), ==, 0);
  g_assert_nonnull(strstr(o17, "5 slices of 32 x 24, uint8"));
}

static void
test_export_isbi_from_probabilities(void)
{
  g_autofree char *img = scratch_path("img2.tif");
  g_autofree char *prob = scratch_path("prob.tif");
  g_autofree char *bad = scratch_path("bad.tif");
  g_autofree char *sub = scratch_path("sub.tif");
  g_autofree guint8 *px = g_new0(guint8, W * H * N);
  g_autofree float *pr = g_new(float, W * H * N);
  for (gsize i = 0; i < W * H * N; i++) pr[i] = (float)(i % 100) / 99.f;
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(img, px, W, H, N, &error));
  g_assert_true(emseg_tiff_write_float_stack(prob, pr, W, H, N, &error));
  pr[3 * W * H + 2 * W + 7] = NAN;
  g_assert_true(emseg_tiff_write_float_stack(bad, pr, W, H, N, &error));

  g_autofree char *o1 = NULL, *e1 = NULL;
  g_assert_cmpint(run(&o1, &e1, "export-isbi", "--probabilities", prob, "--images", img, "--out",
                      sub, NULL), ==, 0);
  g_assert_nonnull(strstr(o1, "5 slices of 32 x 24"));
  g_autofree char *o2 = NULL, *e2 = NULL;
  g_autofree char *sub2 = scratch_path("sub2.tif");
  g_assert_cmpint(run(&o2, &e2, "export-isbi", "--probabilities", bad, "--images", img, "--out",
                      sub2, NULL), ==, 1);
  g_assert_nonnull(strstr(e2, "slice 3, pixel (x 7, y 2)"));
  g_assert_nonnull(strstr(e2, "NaN"));
  g_assert_false(g_file_test(sub2, G_FILE_TEST_EXISTS));
  g_autofree char *o3 = NULL, *e3 = NULL;
  g_assert_cmpint(run(&o3, &e3, "export-isbi", "--images", img, NULL), ==, 2);
}

/* An EmsegProjectCheckProgress raising flag once `after` items are read. */
typedef struct {
  guint64 after;
  atomic_int flag;
} StopAfter;

static void
stop_after(guint64 done, guint64 total, gpointer data)
{
  StopAfter *s = data;
  (void)total;
  if (done >= s->after)
    atomic_store(&s->flag, 1);
}

/* project check reads everything back: a sound project passes with every kind of item
 * counted; then a damaged slice, stroke, prediction and checkpoint (its checksum made to
 * match bytes that are not a model) are each named and the exit status is 1. delete-model
 * removes a checkpoint with its predictions; compact gives its space back. */
static void
test_project_check_compact(void)
{
  g_autofree char *img = scratch_path("chk-img.tif"), *lab = scratch_path("chk-lab.tif");
  g_autofree char *proj = scratch_path("chk.emseg");
  g_autofree guint8 *px = g_new(guint8, W * H * N), *lb = g_new(guint8, W * H);
  for (gsize i = 0; i < W * H * N; i++) px[i] = (guint8)(i * 13);
  for (gsize i = 0; i < W * H; i++) lb[i] = (i / 5) % 2 ? 255 : 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(img, px, W, H, N, &error));
  g_assert_true(emseg_tiff_write_u8_stack(lab, lb, W, H, 1, &error));
  g_autofree char *o1 = NULL, *e1 = NULL;
  g_assert_cmpint(run(&o1, &e1, "project", "create", proj, "--images", img, "--labels", lab, NULL),
                  ==, 0);
  /* a stroke, a checkpoint (a real model file) with a prediction and an uncertainty */
  {
    g_autoptr(EmsegProject) p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    g_assert_no_error(error);
    float xy[] = { 3, 3, 20, 10 };
    g_assert_true(emseg_project_apply_stroke(p, 1, 2, EMSEG_LABEL_CELL, 2.0, xy, 2, NULL,
                                             &error));
    EngSpec spec;
    EngError err;
    eng_spec_default(&spec);
    g_assert_cmpint(eng_spec_parse(&spec, "base_width=4,down=1,up=1,across=1,main_block=basic",
                                   &err), ==, ENG_OK);
    EngModel *m = eng_model_new(&spec, 1, &err);
    g_assert_nonnull(m);
    uint8_t *bytes = NULL;
    size_t len = 0;
    g_assert_cmpint(eng_model_serialize(m, ENG_DTYPE_F32, NULL, &bytes, &len, &err), ==, ENG_OK);
    eng_model_free(m);
    gint64 model_id = 0;
    g_assert_true(emseg_project_save_checkpoint(p, "m", 0, 1, "tiny", NULL, bytes, len,
                                                &model_id, &error));
    free(bytes);
    float plane[W * H];
    for (gsize i = 0; i < W * H; i++) plane[i] = (float)i / (W * H);
    g_assert_true(emseg_project_save_prediction(p, model_id, 1, 0, plane, &error));
    g_assert_true(emseg_project_save_uncertainty(p, model_id, 1, 0, 4, plane, &error));
    g_assert_no_error(error);
  }
  g_autofree char *o2 = NULL, *e2 = NULL;
  g_assert_cmpint(run(&o2, &e2, "project", "check", proj, NULL), ==, 0);
  g_assert_nonnull(strstr(o2, "read 5 slices, 2 label masks, 1 stroke, 1 checkpoint, "
                              "1 prediction, 1 uncertainty estimate"));
  g_assert_nonnull(strstr(o2, "no problems found"));

  /* a raised flag stops the check: before the integrity check ends, or (raised by the
   * progress function after the first item) within one item */
  {
    g_autoptr(EmsegProject) p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_READ_ONLY, &error);
    g_assert_no_error(error);
    EmsegProjectCheckCounts n;
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    StopAfter stop = { .after = 0 };
    atomic_init(&stop.flag, 1);
    g_assert_false(emseg_project_check_contents(p, &n, problems, NULL, &stop.flag, NULL, NULL,
                                                &error));
    g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED);
    g_assert_nonnull(strstr(error->message, "the check was stopped"));
    g_clear_error(&error);
    g_assert_cmpuint(n.slices, ==, 0);
    stop.after = 1;
    atomic_store(&stop.flag, 0);
    g_assert_false(emseg_project_check_contents(p, &n, problems, NULL, &stop.flag, stop_after,
                                                &stop, &error));
    g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED);
    g_clear_error(&error);
    g_assert_cmpuint(n.slices, ==, 1);
    g_assert_cmpuint(n.checkpoints, ==, 0);
    g_assert_cmpuint(problems->len, ==, 0);
  }

  /* damage four items behind the store's back */
  static const guint8 junk[] = "not a zlib stream at all";
  raw_exec_blob(proj, "UPDATE slices SET pixels = ?1 WHERE idx = 3", junk, sizeof junk);
  raw_exec_blob(proj, "UPDATE strokes SET after = ?1", junk, sizeof junk);
  raw_exec_blob(proj, "UPDATE predictions SET data = ?1", junk, sizeof junk);
  g_autofree char *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, junk, sizeof junk);
  g_autofree char *fix_sum = g_strdup_printf("UPDATE models SET sha256 = '%s', weights_len = %"
                                             G_GSIZE_FORMAT, sha, sizeof junk);
  raw_exec_blob(proj, "UPDATE models SET weights = ?1", junk, sizeof junk);
  raw_exec(proj, fix_sum);
  g_autofree char *o3 = NULL, *e3 = NULL;
  g_assert_cmpint(run(&o3, &e3, "project", "check", proj, NULL), ==, 1);
  g_assert_nonnull(strstr(o3, "4 problems found"));
  g_assert_nonnull(strstr(e3, "slice 3"));
  g_assert_nonnull(strstr(e3, "its redo patch"));
  g_assert_nonnull(strstr(e3, "prediction"));
  g_assert_nonnull(strstr(e3, "checkpoint 'm': its checksum matches but it does not load"));

  /* compact: a 2 MB checkpoint deleted leaves free pages, which compact gives back */
  {
    g_autoptr(EmsegProject) p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    g_assert_no_error(error);
    g_autofree guint8 *big = g_malloc(2 << 20);
    for (gsize i = 0; i < (2u << 20); i++) big[i] = (guint8)g_random_int();
    gint64 big_id = 0;
    g_assert_true(emseg_project_save_checkpoint(p, "big", 0, 1, "tiny", NULL, big, 2 << 20,
                                                &big_id, &error));
    float plane[W * H] = { 0 };
    g_assert_true(emseg_project_save_prediction(p, big_id, 1, 2, plane, &error));
    g_assert_true(emseg_project_save_uncertainty(p, big_id, 1, 2, 4, plane, &error));
  }
  /* delete-model: the checkpoint, chosen as the current model, goes with its prediction;
   * the current model is the latest left; the freed space is said */
  g_autofree char *o5 = NULL, *e5 = NULL, *o6 = NULL, *e6 = NULL, *o7 = NULL, *e7 = NULL;
  g_assert_cmpint(run(&o5, &e5, "project", "use-model", proj, "big", NULL), ==, 0);
  g_assert_cmpint(run(&o6, &e6, "project", "delete-model", proj, "big", NULL), ==, 0);
  g_assert_nonnull(strstr(o6, "deleted 'big' with 2 stored planes of its predictions and "
                              "uncertainty estimates; current model: 'm'"));
  g_assert_nonnull(strstr(o6, "MB free inside the file"));
  g_autofree char *o8 = NULL, *e8 = NULL;
  g_assert_cmpint(run(&o8, &e8, "project", "info", proj, NULL), ==, 0);
  g_assert_nonnull(strstr(o8, "free inside the file: "));
  g_assert_cmpint(run(&o7, &e7, "project", "delete-model", proj, "big", NULL), ==, 1);
  g_assert_nonnull(strstr(e7, "no model named 'big'"));
  g_assert_cmpint(raw_int(proj, "SELECT COUNT(*) FROM predictions"), ==, 1); /* m's */
  g_assert_cmpint(raw_int(proj, "SELECT COUNT(*) FROM uncertainty"), ==, 1);
  /* a raised cancel flag stops compacting; the free pages are all still there */
  {
    g_autoptr(EmsegProject) p = emseg_project_open(proj, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    guint64 free_before = 0, free_after = 0, b = 0, a = 0;
    atomic_int stop;
    atomic_init(&stop, 1);
    g_assert_true(emseg_project_free_bytes(p, &free_before, &error));
    g_assert_cmpuint(free_before, >, 2000000);
    g_assert_false(emseg_project_compact(p, &stop, &b, &a, &error));
    g_assert_error(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_CANCELLED);
    g_assert_nonnull(strstr(error->message, "stopped: nothing was changed"));
    g_clear_error(&error);
    g_assert_true(emseg_project_free_bytes(p, &free_after, &error));
    g_assert_cmpuint(free_after, ==, free_before);
  }
  GStatBuf st;
  g_assert_cmpint(g_stat(proj, &st), ==, 0);
  goffset before = st.st_size;
  g_autofree char *o4 = NULL, *e4 = NULL;
  g_assert_cmpint(run(&o4, &e4, "project", "compact", proj, NULL), ==, 0);
  g_assert_nonnull(strstr(o4, " MB -> "));
  g_assert_cmpint(g_stat(proj, &st), ==, 0);
  g_assert_cmpint(st.st_size, <, before - (1 << 20));
}

/* Label files in the encodings emseg_labels_read takes go in as labels: a 0/1 mask comes
 * back out of the project as 0/255 (it was stored as all membrane), export-labels' own 128
 * (unlabeled) survives a round trip (it was read back as cell), and a value that is no
 * label is refused, naming the slice and pixel, with no project left behind. */
static void
test_label_files(void)
{
  g_autofree char *img = scratch_path("lf-img.tif"), *m01 = scratch_path("lf-01.tif");
  g_autofree char *part = scratch_path("lf-part.tif"), *odd = scratch_path("lf-odd.tif");
  g_autofree guint8 *px = g_new0(guint8, W * H * N), *lb = g_new(guint8, W * H * 2);
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(img, px, W, H, N, &error));
  for (gsize i = 0; i < W * H * 2; i++) lb[i] = (i / 3) % 2;
  g_assert_true(emseg_tiff_write_u8_stack(m01, lb, W, H, 2, &error));
  guint8 page[W * H];

  g_autofree char *p1 = scratch_path("lf-01.emseg"), *back1 = scratch_path("lf-01-back.tif");
  g_autofree char *o1 = NULL, *e1 = NULL, *o2 = NULL, *e2 = NULL;
  g_assert_cmpint(run(&o1, &e1, "project", "create", p1, "--images", img, "--labels", m01, NULL),
                  ==, 0);
  g_assert_cmpint(run(&o2, &e2, "project", "export-labels", p1, "--out", back1, NULL), ==, 0);
  {
    g_autoptr(EmsegStack) b = emseg_stack_open(back1, &error);
    g_assert_no_error(error);
    for (guint z = 0; z < 2; z++) {
      g_assert_true(emseg_stack_read_raw(b, z, page, &error));
      for (gsize i = 0; i < W * H; i++)
        g_assert_cmpuint(page[i], ==, lb[z * W * H + i] ? 255 : 0);
    }
  }

  /* a partly labelled slice: 0 / 255 / 128 */
  for (gsize i = 0; i < W * H; i++) lb[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : 128;
  g_assert_true(emseg_tiff_write_u8_stack(part, lb, W, H, 1, &error));
  g_autofree char *p2 = scratch_path("lf-part.emseg"), *back2 = scratch_path("lf-part-back.tif");
  g_autofree char *o3 = NULL, *e3 = NULL, *o4 = NULL, *e4 = NULL;
  g_assert_cmpint(run(&o3, &e3, "project", "create", p2, "--images", img, "--labels", part, NULL),
                  ==, 0);
  g_assert_cmpint(run(&o4, &e4, "project", "export-labels", p2, "--out", back2, NULL), ==, 0);
  g_assert_nonnull(strstr(e4, "unlabeled pixels written as 128"));
  {
    g_autoptr(EmsegStack) b = emseg_stack_open(back2, &error);
    g_assert_no_error(error);
    g_assert_true(emseg_stack_read_raw(b, 0, page, &error));
    g_assert_cmpmem(page, sizeof page, lb, sizeof page);
  }

  lb[5] = 200;
  g_assert_true(emseg_tiff_write_u8_stack(odd, lb, W, H, 1, &error));
  g_autofree char *p3 = scratch_path("lf-odd.emseg");
  g_autofree char *o5 = NULL, *e5 = NULL;
  g_assert_cmpint(run(&o5, &e5, "project", "create", p3, "--images", img, "--labels", odd, NULL),
                  ==, 1);
  g_assert_nonnull(strstr(e5, "lf-odd.tif, slice 0: pixel (x 5, y 0) is 200"));
  g_assert_false(g_file_test(p3, G_FILE_TEST_EXISTS));
}

/* An object-id stack (a value per 8×8 block) is refused as labels with a pointer to
 * labels-from-ids, which turns it into labels a project takes: membrane on both sides of
 * each block boundary (six pixels, four with --membrane-px 2), 0 as unlabeled when asked;
 * bad options and fractional ids are refused and write nothing. */
static void
test_labels_from_ids(void)
{
  g_autofree char *img = scratch_path("ids-img.tif"), *ids = scratch_path("ids.tif");
  g_autofree char *lab = scratch_path("ids-labels.tif"), *lab2 = scratch_path("ids-labels2.tif");
  g_autofree char *proj = scratch_path("ids.emseg");
  g_autofree guint8 *px = g_new0(guint8, W * H * 2);
  g_autofree float *v = g_new(float, W * H * 2);
  g_autoptr(GError) error = NULL;
  g_assert_true(emseg_tiff_write_u8_stack(img, px, W, H, 2, &error));
  for (gsize i = 0; i < W * H * 2; i++) {
    gsize x = i % W, y = i / W % H;
    v[i] = y < 4 ? 0.f : (float)(1 + x / 8 + 10 * (y / 8));
  }
  g_assert_true(emseg_tiff_write_float_stack(ids, v, W, H, 2, &error));

  g_autofree char *o1 = NULL, *e1 = NULL;
  g_assert_cmpint(run(&o1, &e1, "project", "create", proj, "--images", img, "--labels", ids,
                      NULL), ==, 1);
  g_assert_nonnull(strstr(e1, "emseg labels-from-ids"));
  g_assert_false(g_file_test(proj, G_FILE_TEST_EXISTS));

  g_autofree char *o2 = NULL, *e2 = NULL;
  g_assert_cmpint(run(&o2, &e2, "labels-from-ids", "--ids", ids, "--out", lab, NULL), ==, 0);
  g_assert_nonnull(strstr(o2, "2 slices of 32×24"));
  guint8 page[W * H];
  {
    g_autoptr(EmsegStack) b = emseg_stack_open(lab, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(emseg_stack_get_n_slices(b), ==, 2);
    g_assert_true(emseg_stack_read_raw(b, 1, page, &error));
    g_assert_cmpuint(page[2 * W + 3], ==, 0);     /* id 0 */
    g_assert_cmpuint(page[12 * W + 5], ==, 0);    /* x 7 | 8: x 5 to 10 by default */
    g_assert_cmpuint(page[12 * W + 10], ==, 0);
    g_assert_cmpuint(page[12 * W + 11], ==, 255);
    g_assert_cmpuint(page[12 * W + 4], ==, 255);
    g_assert_cmpuint(page[13 * W + 12], ==, 0);   /* y 15 | 16: y 13 to 18 */
    g_assert_cmpuint(page[18 * W + 12], ==, 0);
    g_assert_cmpuint(page[12 * W + 12], ==, 255);
    g_assert_cmpuint(page[4 * W + 12], ==, 255);  /* under id 0: no contact there */
  }
  g_autofree char *o3 = NULL, *e3 = NULL;
  g_assert_cmpint(run(&o3, &e3, "project", "create", proj, "--images", img, "--labels", lab,
                      NULL), ==, 0);

  g_autofree char *o4 = NULL, *e4 = NULL;
  g_assert_cmpint(run(&o4, &e4, "labels-from-ids", "--ids", ids, "--out", lab2, "--membrane-px",
                      "2", "--zero", "unlabeled", NULL), ==, 0);
  g_assert_nonnull(strstr(o4, "% unlabeled"));
  {
    g_autoptr(EmsegStack) b = emseg_stack_open(lab2, &error);
    g_assert_no_error(error);
    g_assert_true(emseg_stack_read_raw(b, 0, page, &error));
    g_assert_cmpuint(page[2 * W + 3], ==, 128);
    g_assert_cmpuint(page[12 * W + 6], ==, 0);
    g_assert_cmpuint(page[12 * W + 9], ==, 0);
    g_assert_cmpuint(page[12 * W + 10], ==, 255);
  }

  /* refusals: bad width, bad --zero, a fractional id (nothing written) */
  g_autofree char *o5 = NULL, *e5 = NULL, *o6 = NULL, *e6 = NULL, *o7 = NULL, *e7 = NULL;
  g_autofree char *lab3 = scratch_path("ids-labels3.tif");
  g_assert_cmpint(run(&o5, &e5, "labels-from-ids", "--ids", ids, "--out", lab3, "--membrane-px",
                      "0", NULL), ==, 2);
  g_assert_nonnull(strstr(e5, "--membrane-px must be 1 to 16, not 0"));
  g_assert_cmpint(run(&o6, &e6, "labels-from-ids", "--ids", ids, "--out", lab3, "--zero", "cell",
                      NULL), ==, 2);
  g_assert_nonnull(strstr(e6, "--zero is membrane or unlabeled, not cell"));
  v[W * H + 5 * W + 2] = 2.5f;
  g_assert_true(emseg_tiff_write_float_stack(ids, v, W, H, 2, &error));
  g_assert_cmpint(run(&o7, &e7, "labels-from-ids", "--ids", ids, "--out", lab3, NULL), ==, 1);
  g_assert_nonnull(strstr(e7, "slice 1: pixel (x 2, y 5) is 2.5"));
  g_assert_false(g_file_test(lab3, G_FILE_TEST_EXISTS));
}

/* emseg --version names the program and its version; emseg --help lists it */
static void
test_version(void)
{
  g_autofree char *o1 = NULL, *e1 = NULL, *o2 = NULL, *e2 = NULL;
  g_assert_cmpint(run(&o1, &e1, "--version", NULL), ==, 0);
  g_assert_true(g_str_has_prefix(o1, "emseg "));
  g_assert_true(g_ascii_isdigit(o1[strlen("emseg ")]));
  g_assert_cmpint(run(&o2, &e2, "--help", NULL), ==, 0);
  g_assert_nonnull(strstr(o2, "emseg --version"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  if (argc < 2)
    g_error("usage: test-cli-data PATH-TO-EMSEG");
  emseg_path = argv[1];
  scratch = g_dir_make_tmp("emseg-test-cli-XXXXXX", NULL);
  g_test_add_func("/cli/project-commands", test_project_commands);
  g_test_add_func("/cli/export-isbi-from-probabilities", test_export_isbi_from_probabilities);
  g_test_add_func("/cli/version", test_version);
  g_test_add_func("/cli/label-files", test_label_files);
  g_test_add_func("/cli/labels-from-ids", test_labels_from_ids);
  g_test_add_func("/cli/project-check-compact", test_project_check_compact);
  int rc = g_test_run();
  emseg_test_remove_tree(scratch);
  g_free(scratch);
  return rc;
}
