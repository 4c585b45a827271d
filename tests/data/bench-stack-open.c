/* bench-stack-open.c — measures what the stack reader claims: opening a big multi-page
 * TIFF reads its directory only (time, resident memory), and browsing it keeps memory
 * bounded by the slice cache. A benchmark: prints figures, asserts nothing.
 *
 *   bench-stack-open [PATH [PAGES [SIDE]]]   default /tmp/emseg-bench-64x4096.tif 64 4096
 *
 * Writes the 16-bit stack with libtiff if PATH does not exist (delete it afterwards). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <tiffio.h>

#include <glib.h>

#include "emseg-stack.h"

static long
rss_kib(void)
{
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0)
      kib = strtol(line + 6, NULL, 10);
  if (f != NULL)
    fclose(f);
  return kib;
}

int
main(int argc, char **argv)
{
  const char *path = argc > 1 ? argv[1] : "/tmp/emseg-bench-64x4096.tif";
  guint pages = argc > 2 ? (guint)atoi(argv[2]) : 64;
  guint side = argc > 3 ? (guint)atoi(argv[3]) : 4096;
  if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
    gint64 t0 = g_get_monotonic_time();
    TIFF *tif = TIFFOpen(path, "w8");
    guint16 *row = g_new(guint16, side);
    for (guint p = 0; p < pages; p++) {
      TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, side);
      TIFFSetField(tif, TIFFTAG_IMAGELENGTH, side);
      TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 16);
      TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
      TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 64);
      for (guint y = 0; y < side; y++) {
        for (guint x = 0; x < side; x++) row[x] = (guint16)(x + y + p);
        TIFFWriteScanline(tif, row, y, 0);
      }
      TIFFWriteDirectory(tif);
    }
    TIFFClose(tif);
    g_free(row);
    printf("wrote %s: %u pages of %u x %u uint16 in %.1f s\n", path, pages, side, side,
           (g_get_monotonic_time() - t0) / 1e6);
  }
  long rss0 = rss_kib();
  gint64 t0 = g_get_monotonic_time();
  GError *error = NULL;
  EmsegStack *s = emseg_stack_open(path, &error);
  gint64 t1 = g_get_monotonic_time();
  if (s == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  printf("open: %.1f ms, %u slices of %u x %u %s, RSS +%ld KiB\n", (t1 - t0) / 1e3,
         emseg_stack_get_n_slices(s), emseg_stack_get_width(s), emseg_stack_get_height(s),
         emseg_sample_type_to_string(emseg_stack_get_sample_type(s)), rss_kib() - rss0);
  gsize bytes = (gsize)emseg_stack_get_width(s) * emseg_stack_get_height(s) *
                emseg_sample_type_size(emseg_stack_get_sample_type(s));
  void *buf = g_malloc(bytes);
  long peak = 0;
  gint64 t2 = g_get_monotonic_time();
  for (guint i = 0; i < emseg_stack_get_n_slices(s); i++) {
    if (!emseg_stack_read_raw(s, i, buf, &error)) {
      fprintf(stderr, "%s\n", error->message);
      return 1;
    }
    peak = MAX(peak, rss_kib());
  }
  gint64 t3 = g_get_monotonic_time();
  printf("browse all %u slices: %.1f ms per slice, peak RSS +%ld KiB (cache 4 slices = %zu KiB,"
         " + 1 caller buffer)\n",
         emseg_stack_get_n_slices(s), (t3 - t2) / 1e3 / emseg_stack_get_n_slices(s),
         peak - rss0, 4 * bytes / 1024);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("max RSS of the process: %ld KiB\n", ru.ru_maxrss);
  g_free(buf);
  emseg_stack_free(s);
  return 0;
}
