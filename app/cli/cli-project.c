/* cli-project.c — `emseg project create|info|export-…|upgrade|…`: the project store from
 * the command line, through the same app/store functions the GUI uses.
 *
 *   emseg project create PROJECT --images STACK [--labels LABELS] [--name NAME]
 *   emseg project info PROJECT
 *   emseg project export-labels PROJECT --out LABELS.tif [--stack ID]
 *   emseg project export-images PROJECT --out IMAGES.tif [--stack ID]
 *   emseg project upgrade PROJECT
 *   emseg project import-model PROJECT MODEL [--name NAME]
 *   emseg project use-model PROJECT NAME
 *   emseg project delete-model PROJECT NAME
 *   emseg project check PROJECT
 *   emseg project compact PROJECT
 *
 * info and export-labels only read, so they refuse a project an older emseg wrote (its
 * schema must be converted first); upgrade converts it, as opening it in the workbench does.
 * import-model stores a model file (from `emseg train --project` on a server, say) as a
 * checkpoint: the latest checkpoint is the one the workbench shows, fine-tunes and exports,
 * unless use-model (or the workbench's Use Model menu) chose another since.
 * check reads every item back (exit 1 and one line per damaged item on stderr); compact
 * gives the pages of deleted checkpoints and predictions back to the disk (VACUUM).
 * export-labels writes slices 0 … last labeled slice as 8-bit pages (255 cell, 0 membrane);
 * unlabeled pixels have no value in that format, so they are written as 128 and counted on
 * stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <glib.h>

#include "cli-commands.h"
#include "cli-interrupt.h"
#include "emseg-model-import.h"
#include "emseg-project.h"

static int
fail(const char *cmd, GError *error)
{
  fprintf(stderr, "emseg project %s: %s\n", cmd, error->message);
  return 1;
}

typedef struct {
  atomic_int *interrupted; /* Ctrl-C */
  gint64 drawn_us;
} CreateProgress;

/* "\rcreate: copied 12/40 slices" on a terminal, at most four times a second; FALSE (stop,
 * nothing written) after Ctrl-C. */
static gboolean
create_progress(guint done, guint total, gpointer user_data)
{
  CreateProgress *p = user_data;
  gint64 now = g_get_monotonic_time();
  if (isatty(2) && (now - p->drawn_us >= EMSEG_CLI_REDRAW_US || done == total)) {
    p->drawn_us = now;
    fprintf(stderr, "\remseg project create: copied %u/%u slices\033[K%s", done, total,
            done == total ? "\n" : "");
  }
  return !atomic_load(p->interrupted);
}

static int
project_create(int argc, char **argv)
{
  g_autofree char *images_path = NULL, *labels_path = NULL, *name = NULL;
  GOptionEntry entries[] = {
    { "images", 'i', 0, G_OPTION_ARG_FILENAME, &images_path, "image stack (TIFF or PNG folder)",
      "STACK" },
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &labels_path,
      "label stack (0 membrane, 255 cell, 128 unlabeled, or a 0/1 mask; may have fewer pages)", "LABELS" },
    { "name", 'n', 0, G_OPTION_ARG_STRING, &name, "stack name (default: file name)", "NAME" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("PROJECT - create a project");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg project create: %s\n", error->message);
    return 2;
  }
  if (argc != 2 || images_path == NULL) {
    fprintf(stderr, "usage: emseg project create PROJECT --images STACK [--labels LABELS]\n");
    return 2;
  }
  const char *path = argv[1];
  if (g_file_test(path, G_FILE_TEST_EXISTS)) {
    fprintf(stderr, "emseg project create: %s already exists; not overwriting it\n", path);
    return 1;
  }
  g_autoptr(EmsegStack) images = emseg_stack_open(images_path, &error);
  if (images == NULL)
    return fail("create", error);
  if (emseg_stack_get_warning(images) != NULL)
    fprintf(stderr, "emseg project create: %s: %s\n", images_path,
            emseg_stack_get_warning(images));
  g_autoptr(EmsegStack) labels = NULL;
  if (labels_path != NULL) {
    labels = emseg_stack_open(labels_path, &error);
    if (labels == NULL)
      return fail("create", error);
  }
  g_autoptr(EmsegProject) project = emseg_project_open(path, EMSEG_PROJECT_OPEN_CREATE, &error);
  if (project == NULL)
    return fail("create", error);
  g_autofree char *base = g_path_get_basename(images_path);
  gint64 id = 0;
  /* big stacks take a while: a count on a terminal, and Ctrl-C stops cleanly */
  CreateProgress progress = { emseg_cli_catch_sigint(), g_get_monotonic_time() };
  gboolean ok = emseg_project_import_stack_full(project, name != NULL ? name : base, images,
                                                labels, &id, create_progress, &progress,
                                                &error);
  emseg_cli_release_sigint();
  if (!ok) {
    /* Do not leave an empty project behind a failed create. */
    g_clear_pointer(&project, emseg_project_close);
    emseg_project_remove_files(path);
    return fail("create", error);
  }
  printf("%s: stack %" G_GINT64_FORMAT " '%s', %u slices of %u x %u %s", path, id,
         name != NULL ? name : base, emseg_stack_get_n_slices(images),
         emseg_stack_get_width(images), emseg_stack_get_height(images),
         emseg_sample_type_to_string(emseg_stack_get_sample_type(images)));
  if (labels != NULL)
    printf(", %u labeled", emseg_stack_get_n_slices(labels));
  printf("\n");
  return 0;
}

/* For the subcommands that take only PROJECT: --help prints their usage (exit 0) and an
 * unknown option is refused instead of being taken for a project path. Returns -1 when
 * argv holds exactly the project (argv[1]), else the exit status, the reason printed. */
static int
parse_project_only(int *argc, char ***argv, const char *cmd, const char *summary)
{
  g_autofree char *parameter = g_strdup_printf("PROJECT - %s", summary);
  g_autoptr(GOptionContext) ctx = g_option_context_new(parameter);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, argc, argv, &error)) {
    fprintf(stderr, "emseg project %s: %s\n", cmd, error->message);
    return 2;
  }
  if (*argc != 2) {
    fprintf(stderr, "usage: emseg project %s PROJECT\n", cmd);
    return 2;
  }
  return -1;
}

static int
project_info(int argc, char **argv)
{
  int rc = parse_project_only(&argc, &argv, "info", "show a project's stacks, labels, runs and "
                              "models");
  if (rc >= 0)
    return rc;
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) project =
      emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_READ_ONLY, &error);
  if (project == NULL)
    return fail("info", error);
  g_autofree char *created = emseg_project_get_meta(project, "created", NULL);
  printf("project %s (schema %d, created %s)\n", argv[1], emseg_project_file_schema(project),
         created != NULL ? created : "?");
  g_autoptr(GArray) stacks = emseg_project_list_stacks(project, &error);
  if (stacks == NULL)
    return fail("info", error);
  for (guint i = 0; i < stacks->len; i++) {
    EmsegProjectStack *s = &g_array_index(stacks, EmsegProjectStack, i);
    g_autoptr(GArray) labeled = emseg_project_labeled_slices(project, s->id, &error);
    if (labeled == NULL)
      return fail("info", error);
    guint64 strokes = 0;
    if (!emseg_project_stroke_count(project, s->id, &strokes, NULL, &error))
      return fail("info", error);
    g_autoptr(GString) list = g_string_new(NULL);
    for (guint k = 0; k < labeled->len; k++) {
      guint a = g_array_index(labeled, guint, k), b = a;
      while (k + 1 < labeled->len && g_array_index(labeled, guint, k + 1) == b + 1)
        b = g_array_index(labeled, guint, ++k);
      g_string_append_printf(list, "%s%u", list->len ? "," : "", a);
      if (b != a)
        g_string_append_printf(list, "-%u", b);
    }
    printf("stack %" G_GINT64_FORMAT " '%s': %u slices of %u x %u %s, from %s\n"
           "  labeled slices: %u (%s), unlabeled: %u, strokes: %" G_GUINT64_FORMAT "\n",
           s->id, s->name, s->n_slices, s->width, s->height,
           emseg_sample_type_to_string(s->type), s->source_path ? s->source_path : "?",
           labeled->len, list->len ? list->str : "none", s->n_slices - labeled->len, strokes);
  }
  g_autoptr(GArray) runs = emseg_project_list_runs(project, &error);
  g_autoptr(GArray) models =
      runs != NULL ? emseg_project_list_checkpoints_dated(project, &error) : NULL;
  if (models == NULL)
    return fail("info", error);
  g_auto(EmsegCheckpointInfo) current = { 0 };
  gboolean chosen = FALSE;
  if (!emseg_project_current_checkpoint(project, &current, &chosen, &error))
    return fail("info", error);
  printf("runs: %u, checkpoints: %u\n", runs->len, models->len);
  for (guint i = 0; i < models->len; i++) {
    EmsegCheckpointInfo *m = &g_array_index(models, EmsegCheckpointInfo, i);
    printf("  checkpoint '%s': run %" G_GINT64_FORMAT ", epoch %u, %" G_GSIZE_FORMAT
           " bytes, %s%s\n",
           m->name, m->run_id, m->epoch, m->weights_len, m->created,
           m->id != current.id ? ""
           : chosen            ? " (current model, chosen)"
                               : " (current model: the latest)");
  }
  guint64 free_bytes = 0;
  if (!emseg_project_free_bytes(project, &free_bytes, &error))
    return fail("info", error);
  if (free_bytes > 0) /* left by deleted or replaced checkpoints and predictions */
    printf("free inside the file: %.1f MB (emseg project compact gives it back to the disk)\n",
           (double)free_bytes / 1e6);
  return 0;
}

/* What export-images and export-labels share: PROJECT --out FILE [--stack ID] parsed, the
 * project opened read-only, the stack found (--stack, or the only one: with several, the
 * same refusal naming them as predict's and export-isbi's). Returns -1 when all went
 * well (*out, *project and *s are then the caller's), else the exit status, the reason
 * printed. */
static int
open_for_export(int argc, char **argv, const char *cmd, const char *summary,
                const char *file_kind, char **out, EmsegProject **project, EmsegProjectStack *s)
{
  gint64 stack_id = 0;
  g_autofree char *out_help = g_strdup_printf("%s TIFF to write", file_kind);
  g_autofree char *metavar = g_ascii_strup(file_kind, -1);
  GOptionEntry entries[] = {
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, out, out_help, metavar },
    { "stack", 's', 0, G_OPTION_ARG_INT64, &stack_id, "stack id (needed when the project has several)", "ID" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new(summary);
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg project %s: %s\n", cmd, error->message);
    return 2;
  }
  if (argc != 2 || *out == NULL) {
    fprintf(stderr, "usage: emseg project %s PROJECT --out %s.tif [--stack ID]\n", cmd, metavar);
    return 2;
  }
  *project = emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_READ_ONLY, &error);
  if (*project == NULL)
    return fail(cmd, error);
  int rc = 1;
  if (!emseg_cli_pick_stack(*project, &stack_id, &rc, &error)) {
    fail(cmd, error);
    return rc; /* 2 when --stack must choose, 1 when there is none */
  }
  if (!emseg_project_get_stack(*project, stack_id, s, &error))
    return fail(cmd, error);
  return -1;
}

/* The image slices of a stack, as a TIFF that predict, export-isbi and train read: 8-bit
 * stacks as uint8, others as float32 (16-bit values are exact in float32). */
static int
project_export_images(int argc, char **argv)
{
  g_autofree char *out = NULL;
  g_autoptr(EmsegProject) project = NULL;
  g_auto(EmsegProjectStack) s = { 0 };
  g_autoptr(GError) error = NULL;
  int rc = open_for_export(argc, argv, "export-images", "PROJECT - export a stack's images",
                           "images", &out, &project, &s);
  if (rc >= 0)
    return rc;
  gboolean u8 = s.type == EMSEG_SAMPLE_U8;
  g_autoptr(EmsegStackWriter) w = emseg_stack_writer_new(
      out, u8 ? EMSEG_SAMPLE_U8 : EMSEG_SAMPLE_F32, s.width, s.height, s.n_slices, &error);
  if (w == NULL)
    return fail("export-images", error);
  g_autofree float *plane = g_new(float, (gsize)s.width * s.height);
  for (guint z = 0; z < s.n_slices; z++) {
    gboolean ok = u8 ? emseg_project_read_slice(project, s.id, z, plane, &error)
                     : emseg_project_read_slice_float(project, s.id, z, plane, &error);
    if (!ok || !emseg_stack_writer_append(w, plane, &error))
      return fail("export-images", error);
  }
  if (!emseg_stack_writer_finish(w, &error))
    return fail("export-images", error);
  printf("%s: %u slices of %u x %u, %s (stack %" G_GINT64_FORMAT " '%s', stored as %s)\n", out,
         s.n_slices, s.width, s.height, u8 ? "uint8" : "float32", s.id, s.name,
         emseg_sample_type_to_string(s.type));
  return 0;
}

static int
project_export_labels(int argc, char **argv)
{
  g_autofree char *out = NULL;
  g_autoptr(EmsegProject) project = NULL;
  g_auto(EmsegProjectStack) s = { 0 };
  g_autoptr(GError) error = NULL;
  int rc = open_for_export(argc, argv, "export-labels", "PROJECT - export label masks",
                           "labels", &out, &project, &s);
  if (rc >= 0)
    return rc;
  gint64 stack_id = s.id;
  g_autoptr(GArray) labeled = emseg_project_labeled_slices(project, stack_id, &error);
  if (labeled == NULL)
    return fail("export-labels", error);
  if (labeled->len == 0) {
    fprintf(stderr, "emseg project export-labels: stack %" G_GINT64_FORMAT " has no labels\n",
            stack_id);
    return 1;
  }
  guint n = g_array_index(labeled, guint, labeled->len - 1) + 1;
  g_autoptr(EmsegStackWriter) w =
      emseg_stack_writer_new(out, EMSEG_SAMPLE_U8, s.width, s.height, n, &error);
  if (w == NULL)
    return fail("export-labels", error);
  g_autofree guint8 *mask = g_malloc((gsize)s.width * s.height);
  guint64 unlabeled = 0;
  for (guint i = 0; i < n; i++) {
    guint64 lab = 0;
    if (!emseg_project_read_mask(project, stack_id, i, mask, &lab, &error) ||
        !emseg_stack_writer_append(w, mask, &error))
      return fail("export-labels", error);
    unlabeled += (guint64)s.width * s.height - lab;
  }
  if (!emseg_stack_writer_finish(w, &error))
    return fail("export-labels", error);
  printf("%s: %u slices of %u x %u, uint8 (255 cell, 0 membrane)\n", out, n, s.width, s.height);
  if (unlabeled > 0)
    fprintf(stderr, "emseg project export-labels: %" G_GUINT64_FORMAT
            " unlabeled pixels written as 128\n", unlabeled);
  return 0;
}

static int
project_upgrade(int argc, char **argv)
{
  int rc = parse_project_only(&argc, &argv, "upgrade", "convert a project an older emseg "
                              "wrote to this version's schema");
  if (rc >= 0)
    return rc;
  g_autoptr(GError) error = NULL;
  /* read-only first, so a current project is not touched (no WAL files, no new mtime) */
  EmsegProject *project = emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_READ_ONLY, &error);
  int schema = project != NULL ? emseg_project_file_schema(project) : 0;
  emseg_project_close(project);
  if (schema == emseg_project_schema_version()) {
    printf("%s: already at schema %d; nothing to do\n", argv[1], schema);
    return 0;
  }
  /* refused read-only as too old, or readable but older: the writable open converts it */
  if (project == NULL &&
      !g_error_matches(error, EMSEG_PROJECT_ERROR, EMSEG_PROJECT_ERROR_READ_ONLY))
    return fail("upgrade", error);
  g_clear_error(&error);
  project = emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_DEFAULT, &error);
  if (project == NULL)
    return fail("upgrade", error);
  emseg_project_close(project);
  printf("%s: upgraded to schema %d\n", argv[1], emseg_project_schema_version());
  return 0;
}

static int
project_import_model(int argc, char **argv)
{
  g_autofree char *name = NULL;
  GOptionEntry entries[] = {
    { "name", 'n', 0, G_OPTION_ARG_STRING, &name,
      "checkpoint name (default: the file name without .emsegmodel)", "NAME" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx =
      g_option_context_new("PROJECT MODEL - store a model file in a project as a checkpoint");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg project import-model: %s\n", error->message);
    return 2;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: emseg project import-model PROJECT MODEL [--name NAME]\n");
    return 2;
  }
  const char *path = argv[1], *model_path = argv[2];
  if (name == NULL) {
    g_autofree char *base = g_path_get_basename(model_path);
    name = g_str_has_suffix(base, ".emsegmodel")
               ? g_strndup(base, strlen(base) - strlen(".emsegmodel"))
               : g_strdup(base);
  }
  g_autoptr(EmsegProject) project = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  g_autoptr(GArray) models = project ? emseg_project_list_checkpoints(project, &error) : NULL;
  if (models == NULL)
    return fail("import-model", error);
  if (emseg_checkpoint_find(models, name) != NULL) {
    fprintf(stderr, "emseg project import-model: %s already holds a model named '%s' (it "
                    "would be replaced); choose another --name\n", path, name);
    return 1;
  }
  g_autofree char *spec = NULL;
  gsize n_params = 0;
  if (!emseg_project_import_model_file(project, model_path, name, NULL, &spec, &n_params,
                                       &error))
    return fail("import-model", error);
  printf("%s: model '%s' imported (%zu parameters, %s); the workbench starts from it\n", path,
         name, n_params, spec);
  return 0;
}

/* Parses PROJECT NAME (use-model, delete-model): -1 to go on, else the exit code. */
static int
parse_project_and_name(int *argc, char ***argv, const char *cmd, const char *summary)
{
  g_autofree char *text = g_strdup_printf("PROJECT NAME - %s", summary);
  g_autoptr(GOptionContext) ctx = g_option_context_new(text);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, argc, argv, &error)) {
    fprintf(stderr, "emseg project %s: %s\n", cmd, error->message);
    return 2;
  }
  if (*argc != 3) {
    fprintf(stderr, "usage: emseg project %s PROJECT NAME\n", cmd);
    return 2;
  }
  return -1;
}

static int
project_use_model(int argc, char **argv)
{
  int rc = parse_project_and_name(
      &argc, &argv, "use-model",
      "make checkpoint NAME the project's current model (the one the workbench shows and "
      "fine-tunes, and predict --project uses) until a newer checkpoint is saved");
  if (rc >= 0)
    return rc;
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) project =
      emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_DEFAULT, &error);
  if (project == NULL || !emseg_project_choose_checkpoint(project, argv[2], &error))
    return fail("use-model", error);
  printf("%s: current model '%s'\n", argv[1], argv[2]);
  return 0;
}

static int
project_delete_model(int argc, char **argv)
{
  int rc = parse_project_and_name(
      &argc, &argv, "delete-model",
      "delete checkpoint NAME and its stored predictions (the run that made it keeps its "
      "curves); compact gives the space back to the disk");
  if (rc >= 0)
    return rc;
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) project =
      emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_DEFAULT, &error);
  guint planes = 0;
  guint64 free_bytes = 0;
  g_auto(EmsegCheckpointInfo) current = { 0 };
  if (project == NULL || !emseg_project_delete_checkpoint(project, argv[2], &planes, &error) ||
      !emseg_project_current_checkpoint(project, &current, NULL, &error) ||
      !emseg_project_free_bytes(project, &free_bytes, &error))
    return fail("delete-model", error);
  printf("%s: deleted '%s' with %u stored plane%s of its predictions and uncertainty "
         "estimates; current model: %s%s%s\n", argv[1],
         argv[2], planes, planes == 1 ? "" : "s", current.name ? "'" : "",
         current.name ? current.name : "none (the workbench starts from the shipped model)",
         current.name ? "'" : "");
  printf("%.1f MB free inside the file: new checkpoints reuse it, `emseg project compact %s` "
         "gives it back to the disk\n",
         (double)free_bytes / 1e6, argv[1]);
  return 0;
}

/* "\rcheck: read 120/3400 items (3 %)" on a terminal, at most four times a second. */
static void
check_progress(guint64 done, guint64 total, gpointer user_data)
{
  gint64 *drawn_us = user_data;
  gint64 now = g_get_monotonic_time();
  if (!isatty(2) || (now - *drawn_us < EMSEG_CLI_REDRAW_US && done < total))
    return;
  *drawn_us = now;
  fprintf(stderr, "\remseg project check: read %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                  " items (%.0f %%)\033[K%s",
          done, total, total ? 100.0 * (double)done / (double)total : 100.0,
          done == total ? "\n" : "");
}

#define PLURAL(n) ((n) == 1 ? "" : "s")

/* Most problem lines printed: a badly damaged file can have thousands. */
#define CHECK_MAX_LINES 50

static int
project_check(int argc, char **argv)
{
  int rc = parse_project_only(&argc, &argv, "check", "read everything a project holds back "
                              "and report what is damaged");
  if (rc >= 0)
    return rc;
  g_autoptr(GError) error = NULL;
  /* SKIP_CHECK: a damaged file must still open so the check can say what is damaged;
   * the full integrity check comes first in check_contents anyway */
  g_autoptr(EmsegProject) project = emseg_project_open(
      argv[1], EMSEG_PROJECT_OPEN_READ_ONLY | EMSEG_PROJECT_OPEN_SKIP_CHECK, &error);
  if (project == NULL)
    return fail("check", error);
  EmsegProjectCheckCounts n;
  g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
  gint64 drawn_us = 0;
  /* no cancel flag: the check only reads, so Ctrl-C may simply end it */
  if (!emseg_project_check_contents(project, &n, problems, emseg_check_model_loads, NULL,
                                    check_progress, &drawn_us, &error))
    return fail("check", error);
  printf("%s: read %" G_GUINT64_FORMAT " slice%s, %" G_GUINT64_FORMAT " label mask%s, %"
         G_GUINT64_FORMAT " stroke%s, %" G_GUINT64_FORMAT " checkpoint%s, %" G_GUINT64_FORMAT
         " prediction%s, %" G_GUINT64_FORMAT " uncertainty estimate%s\n",
         argv[1], n.slices, PLURAL(n.slices), n.masks, PLURAL(n.masks), n.strokes,
         PLURAL(n.strokes), n.checkpoints, PLURAL(n.checkpoints), n.predictions,
         PLURAL(n.predictions), n.uncertainties, PLURAL(n.uncertainties));
  if (problems->len == 0) {
    printf("%s: no problems found\n", argv[1]);
    return 0;
  }
  for (guint i = 0; i < problems->len && i < CHECK_MAX_LINES; i++)
    fprintf(stderr, "emseg project check: %s\n", (const char *)g_ptr_array_index(problems, i));
  if (problems->len > CHECK_MAX_LINES)
    fprintf(stderr, "emseg project check: … and %u more\n", problems->len - CHECK_MAX_LINES);
  printf("%s: %u problem%s found (listed on stderr)\n", argv[1], problems->len,
         PLURAL(problems->len));
  return 1;
}

static int
project_compact(int argc, char **argv)
{
  int rc = parse_project_only(&argc, &argv, "compact", "give the space of deleted "
                              "checkpoints and predictions back to the disk");
  if (rc >= 0)
    return rc;
  g_autoptr(GError) error = NULL;
  g_autoptr(EmsegProject) project =
      emseg_project_open(argv[1], EMSEG_PROJECT_OPEN_DEFAULT, &error);
  guint64 before = 0, after = 0;
  /* Ctrl-C stops VACUUM cleanly (it rolls back) instead of killing it mid-way */
  atomic_int *interrupted = emseg_cli_catch_sigint();
  gboolean ok = project != NULL &&
                emseg_project_compact(project, interrupted, &before, &after, &error);
  emseg_cli_release_sigint();
  if (!ok)
    return fail("compact", error);
  printf("%s: %.1f MB -> %.1f MB\n", argv[1], (double)before / 1e6, (double)after / 1e6);
  return 0;
}

static const EmsegCliCommand subcommands[] = {
  { "create", project_create, "PROJECT --images STACK [--labels LABELS] [--name NAME]" },
  { "info", project_info, "PROJECT" },
  { "export-labels", project_export_labels, "PROJECT --out LABELS.tif [--stack ID]" },
  { "export-images", project_export_images, "PROJECT --out IMAGES.tif [--stack ID]" },
  { "upgrade", project_upgrade, "PROJECT   (convert a project an older emseg wrote)" },
  { "import-model", project_import_model, "PROJECT MODEL [--name NAME]" },
  { "use-model", project_use_model, "PROJECT NAME   (the model predict and the workbench use)" },
  { "delete-model", project_delete_model, "PROJECT NAME   (and its stored predictions)" },
  { "check", project_check, "PROJECT   (read everything back, report what is damaged)" },
  { "compact", project_compact, "PROJECT   (give the space of deleted data back to the disk)" },
};

static void
usage(FILE *out)
{
  for (size_t i = 0; i < G_N_ELEMENTS(subcommands); i++)
    fprintf(out, "%s emseg project %s %s\n", i ? "      " : "usage:", subcommands[i].name,
            subcommands[i].text);
  fprintf(out, "(emseg project SUBCOMMAND --help for details)\n");
}

int
emseg_cli_project(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  int rc = emseg_cli_dispatch(subcommands, G_N_ELEMENTS(subcommands), argc, argv);
  if (rc >= 0)
    return rc;
  fprintf(stderr, "emseg project: unknown subcommand '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
