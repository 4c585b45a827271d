/* test-crash.c — crash safety of the project store: a child process saves strokes and
 * checkpoints as fast as it can and is killed with SIGKILL at a random moment, 24 times.
 * After each kill the project must pass integrity_check, hold every stroke the child
 * reported as committed, and load its latest checkpoint intact (the version the child last
 * reported, or the one it was writing when it died — never a torn blob).
 *
 * The child is this same program run with `--writer PROJECT`; it reports on stdout after
 * each commit returns, so everything reported is known durable. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "emseg-project.h"

#define W 64
#define H 48
#define KILLS 24

/* Checkpoint `v`: 20–80 KiB whose every byte derives from v, so a mixture of two versions
 * or a truncation is detectable beyond the store's own checksum. */
static guint8 *
checkpoint_bytes(guint64 v, gsize *len)
{
  *len = 20000 + (gsize)(v * 7919 % 60000);
  guint8 *b = g_malloc(*len);
  for (gsize i = 0; i < *len; i++) b[i] = (guint8)((v * 131 + i * 17) >> 3);
  return b;
}

static void
report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void
report(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *line = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  /* write(2) directly: no stdio buffer for the kill to lose. */
  gsize len = strlen(line), off = 0;
  while (off < len) {
    ssize_t w = write(STDOUT_FILENO, line + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      _exit(3);
    off += (gsize)w;
  }
}

static int
run_writer(const char *path)
{
  GError *error = NULL;
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
  if (p == NULL) {
    fprintf(stderr, "writer: %s\n", error->message);
    return 1;
  }
  /* Continue the checkpoint versions where the previous (killed) writer stopped. */
  guint64 version = 0;
  EmsegCheckpointInfo info = { 0 };
  GBytes *old = emseg_project_load_checkpoint(p, "latest", &info, NULL);
  if (old != NULL) {
    version = info.epoch;
    g_bytes_unref(old);
    emseg_checkpoint_info_clear(&info);
  }
  GRand *rand = g_rand_new_with_seed((guint32)getpid());
  for (guint i = 0;; i++) {
    float pts[8];
    for (guint k = 0; k < 8; k++)
      pts[k] = (float)g_rand_double_range(rand, 0, k % 2 ? H : W);
    gint64 id = 0;
    if (!emseg_project_apply_stroke(p, 1, i % 3, i % 2 ? EMSEG_LABEL_CELL : EMSEG_LABEL_MEMBRANE,
                                    2.5, pts, 4, &id, &error)) {
      fprintf(stderr, "writer: %s\n", error->message);
      return 1;
    }
    report("S %" G_GINT64_FORMAT "\n", id);
    if (i % 4 == 3) {
      version++;
      gsize len = 0;
      guint8 *b = checkpoint_bytes(version, &len);
      gboolean ok = emseg_project_save_checkpoint(p, "latest", 0, (guint)version, "spec", NULL,
                                                  b, len, NULL, &error);
      g_free(b);
      if (!ok) {
        fprintf(stderr, "writer: %s\n", error->message);
        return 1;
      }
      report("C %" G_GUINT64_FORMAT "\n", version);
    }
  }
}

static void
test_kill_writer(void)
{
  g_autofree char *dir = g_dir_make_tmp("emseg-test-crash-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "crash.emseg", NULL);
  g_autoptr(GError) error = NULL;

  /* A project with one 3-slice stack to paint on. */
  g_autofree char *tif = g_build_filename(dir, "img.tif", NULL);
  g_autofree guint8 *px = g_malloc0(W * H * 3);
  g_assert_true(emseg_tiff_write_u8_stack(tif, px, W, H, 3, &error));
  g_autoptr(EmsegStack) images = emseg_stack_open(tif, &error);
  EmsegProject *p = emseg_project_open(path, EMSEG_PROJECT_OPEN_CREATE, &error);
  g_assert_no_error(error);
  gint64 sid = 0;
  g_assert_true(emseg_project_import_stack(p, "img", images, NULL, &sid, &error));
  g_assert_cmpint(sid, ==, 1);
  emseg_project_close(p);

  g_autofree char *self = g_file_read_link("/proc/self/exe", &error);
  g_assert_no_error(error);
  GRand *rand = g_rand_new_with_seed(g_test_rand_int());
  GArray *committed = g_array_new(FALSE, FALSE, sizeof(gint64));
  guint64 last_version = 0;
  guint total_strokes = 0, total_checkpoints = 0;
  for (guint k = 0; k < KILLS; k++) {
    char *argv[] = { self, (char *)"--writer", path, NULL };
    GPid pid = 0;
    int out_fd = -1;
    g_assert_true(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                           NULL, &pid, NULL, &out_fd, NULL, &error));
    g_assert_no_error(error);
    /* Die somewhere between opening and well into the write loop. */
    g_usleep(g_rand_int_range(rand, 20, 160) * 1000);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    g_spawn_close_pid(pid);
    /* A writer that exited by itself failed: that is a bug, not a crash. */
    g_assert_true(WIFSIGNALED(status));

    g_autoptr(GString) out = g_string_new(NULL);
    char buf[4096];
    ssize_t r;
    while ((r = read(out_fd, buf, sizeof buf)) > 0)
      g_string_append_len(out, buf, r);
    close(out_fd);
    g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);
    for (char **l = lines; *l; l++) {
      if ((*l)[0] == 'S' && (*l)[1] == ' ') {
        gint64 id = g_ascii_strtoll(*l + 2, NULL, 10);
        g_array_append_val(committed, id);
        total_strokes++;
      } else if ((*l)[0] == 'C' && (*l)[1] == ' ') {
        last_version = g_ascii_strtoull(*l + 2, NULL, 10);
        total_checkpoints++;
      }
    }

    p = emseg_project_open(path, EMSEG_PROJECT_OPEN_DEFAULT, &error);
    g_assert_no_error(error);
    g_assert_true(emseg_project_check_integrity(p, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < committed->len; i++)
      if (!emseg_project_stroke_exists(p, g_array_index(committed, gint64, i), NULL))
        g_error("kill %u: committed stroke %" G_GINT64_FORMAT " is missing", k,
                g_array_index(committed, gint64, i));
    if (last_version > 0) {
      g_auto(EmsegCheckpointInfo) info = { 0 };
      g_autoptr(GBytes) b = emseg_project_load_checkpoint(p, "latest", &info, &error);
      g_assert_no_error(error);
      /* The reported version, or the next one if the kill came between commit and report. */
      g_assert_cmpuint(info.epoch, >=, last_version);
      g_assert_cmpuint(info.epoch, <=, last_version + 1);
      last_version = info.epoch;
      gsize len = 0;
      g_autofree guint8 *want = checkpoint_bytes(info.epoch, &len);
      g_assert_cmpmem(g_bytes_get_data(b, NULL), g_bytes_get_size(b), want, len);
    }
    emseg_project_close(p);
  }
  g_test_message("%u kills, %u committed strokes, %u checkpoints verified", KILLS,
                 total_strokes, total_checkpoints);
  /* The test means nothing if the writer never got going. */
  g_assert_cmpuint(total_strokes, >, KILLS);
  g_assert_cmpuint(total_checkpoints, >, 0);
  g_array_unref(committed);
  g_rand_free(rand);

  const char *names[] = { "crash.emseg", "crash.emseg-wal", "crash.emseg-shm", "img.tif" };
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *f = g_build_filename(dir, names[i], NULL);
    g_remove(f);
  }
  g_rmdir(dir);
}

int
main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--writer") == 0)
    return run_writer(argv[2]);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/project/crash/kill-writer", test_kill_writer);
  return g_test_run();
}
