/* bench-preview.c — how long the workbench waits for the overlay of a slice it has not
 * predicted yet: one PREDICT job per slice naming the project's checkpoint, as paging
 * through a stack asks for them, timed from the job's start to its PREDICTION event (model
 * load, graph planning, the forward, storing the plane). A benchmark: prints figures,
 * asserts only that the jobs ran.
 *
 *   bench-preview [MODEL [SIDE [SLICES]]]   default: the shipped model, 512, 6
 *
 * The stack is synthetic (eng_synth, as the engine-thread tests make it), so nothing
 * outside the build is needed but the model file; scratch files go to a temporary folder,
 * removed at the end. The first job also pays for starting up; the median of the others is
 * what paging costs. */
#include <stdio.h>
#include <stdlib.h>

#include "emseg-model-import.h"
#include "emseg-shipped-model.h"
#include "engine-test-util.h"

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *model = argc > 1 ? g_strdup(argv[1]) : emseg_shipped_model_path(&error);
  guint side = argc > 2 ? (guint) atoi(argv[2]) : 512;
  guint n = argc > 3 ? (guint) atoi(argv[3]) : 6;
  if (model == NULL || side < 32 || n < 2) {
    fprintf(stderr, "usage: bench-preview [MODEL [SIDE >= 32 [SLICES >= 2]]]%s%s\n",
            error ? ": " : "", error ? error->message : "");
    return 2;
  }
  g_autofree char *dir = g_dir_make_tmp("emseg-bench-preview-XXXXXX", &error);
  g_assert_no_error(error);
  gint64 stack_id = 0;
  g_autofree char *project_path = test_make_project(dir, "bench", n, 1, side, &stack_id);
  {
    g_autoptr(EmsegProject) p = emseg_project_open(project_path, 0, &error);
    g_assert_no_error(error);
    if (!emseg_project_import_model_file(p, model, "model", NULL, NULL, NULL, &error)) {
      fprintf(stderr, "bench-preview: %s\n", error->message);
      return 1;
    }
  }
  EmsegEngineThread *t = emseg_engine_thread_new(project_path, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error(error);
  EventLog log;
  event_log_init(&log);
  g_autofree double *ms = g_new(double, n);
  for (guint i = 0; i < n; i++) {
    gint64 start = g_get_monotonic_time();
    guint64 job = emseg_engine_thread_start(t, test_predict_job(stack_id, i, 1, "model"));
    event_log_wait(&log, t, EMSEG_ENGINE_EVENT_PREDICTION, job);
    ms[i] = (g_get_monotonic_time() - start) / 1000.0;
    g_assert_cmpint(event_log_wait(&log, t, EMSEG_ENGINE_EVENT_FINISHED, job)->status, ==,
                    EMSEG_ENGINE_STATUS_FINISHED);
    printf("slice %u: %8.1f ms\n", i, ms[i]);
  }
  emseg_engine_thread_free(t);
  event_log_clear(&log);
  double first = ms[0];
  qsort(ms + 1, n - 1, sizeof *ms, cmp_double);
  printf("%u slices of %u², model %s: first %.1f ms, then median %.1f ms (min %.1f, max %.1f)\n",
         n, side, model, first, ms[1 + (n - 1) / 2], ms[1], ms[n - 1]);
  g_unlink(project_path);
  g_autofree char *wal = g_strconcat(project_path, "-wal", NULL);
  g_autofree char *shm = g_strconcat(project_path, "-shm", NULL);
  g_unlink(wal);
  g_unlink(shm);
  g_rmdir(dir);
  return 0;
}
