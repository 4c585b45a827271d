/* test-synth.c — the synthetic EM stack (eng-synth.h): deterministic, binary labels with
 * plausible membrane widths, slow change between neighbouring slices, and an image where
 * membranes are darker but a global threshold cannot replace a segmenter. */
#include <glib.h>
#include <string.h>

#include "eng-synth.h"

#define W 512
#define H 512

typedef struct {
  guint8 *image, *labels;
} Slice;

static Slice
render(guint64 seed, size_t z, size_t w, size_t h)
{
  EngSynthParams p;
  eng_synth_params_init(&p, seed);
  Slice s = { g_malloc(w * h), g_malloc(w * h) };
  EngError err = { 0 };
  EngStatus st = eng_synth_slice(s.image, s.labels, &p, z, w, h, &err);
  g_assert_cmpint(st, ==, ENG_OK);
  return s;
}

static void
slice_free(Slice *s)
{
  g_free(s->image);
  g_free(s->labels);
}

static double
label_agreement(const guint8 *a, const guint8 *b, size_t n)
{
  size_t same = 0;
  for (size_t i = 0; i < n; i++)
    same += a[i] == b[i];
  return (double) same / (double) n;
}

static void
test_deterministic(void)
{
  Slice a = render(42, 3, W, H), b = render(42, 3, W, H), c = render(43, 3, W, H);
  g_assert_cmpmem(a.image, W * H, b.image, W * H);
  g_assert_cmpmem(a.labels, W * H, b.labels, W * H);
  double agree = label_agreement(a.labels, c.labels, W * H);
  g_test_message("label agreement between seeds 42 and 43: %.3f", agree);
  g_assert_cmpfloat(agree, <, 0.9);
  g_assert_false(memcmp(a.image, c.image, W * H) == 0);
  slice_free(&a);
  slice_free(&b);
  slice_free(&c);
}

static void
test_labels(void)
{
  Slice s = render(7, 0, W, H);
  size_t membrane = 0;
  for (size_t i = 0; i < W * H; i++) {
    g_assert_true(s.labels[i] == 0 || s.labels[i] == 255);
    membrane += s.labels[i] == 0;
  }
  double frac = (double) membrane / (W * H);
  g_test_message("membrane fraction %.3f", frac);
  g_assert_cmpfloat(frac, >, 0.06);
  g_assert_cmpfloat(frac, <, 0.25);

  /* Membrane thickness: the shortest of the horizontal and vertical membrane runs
   * through a pixel approximates the width across the membrane. */
  size_t hist[64] = { 0 }, n = 0;
  for (size_t y = 0; y < H; y += 3)
    for (size_t x = 0; x < W; x += 3) {
      if (s.labels[y * W + x] != 0)
        continue;
      size_t l = x, r = x, u = y, d = y;
      while (l > 0 && s.labels[y * W + l - 1] == 0)
        l--;
      while (r + 1 < W && s.labels[y * W + r + 1] == 0)
        r++;
      while (u > 0 && s.labels[(u - 1) * W + x] == 0)
        u--;
      while (d + 1 < H && s.labels[(d + 1) * W + x] == 0)
        d++;
      size_t run = MIN(r - l + 1, d - u + 1);
      hist[MIN(run, 63)]++;
      n++;
    }
  size_t acc = 0, median = 0;
  for (median = 0; median < 64; median++) {
    acc += hist[median];
    if (2 * acc >= n)
      break;
  }
  g_test_message("median membrane run %zu px over %zu samples", median, n);
  g_assert_cmpuint(median, >=, 2);
  g_assert_cmpuint(median, <=, 5);
  slice_free(&s);
}

static void
test_size_independent(void)
{
  /* Labels are a pure function of (seed, slice, x, y): a small slice is the corner of a
   * large one. */
  Slice big = render(9, 5, W, H), small = render(9, 5, 200, 150);
  for (size_t y = 0; y < 150; y++)
    g_assert_cmpmem(small.labels + y * 200, 200, big.labels + y * W, 200);
  slice_free(&big);
  slice_free(&small);
}

static void
test_serial_sections(void)
{
  Slice s0 = render(11, 20, W, H), s1 = render(11, 21, W, H), s30 = render(11, 50, W, H);
  double near = label_agreement(s0.labels, s1.labels, W * H);
  double far = label_agreement(s0.labels, s30.labels, W * H);
  g_test_message("label agreement: neighbouring slices %.3f, 30 slices apart %.3f", near, far);
  g_assert_cmpfloat(near, >, 0.93);
  g_assert_cmpfloat(far, <, near - 0.05);
  slice_free(&s0);
  slice_free(&s1);
  slice_free(&s30);
}

static void
test_contrast(void)
{
  Slice s = render(5, 2, W, H);
  double sum[2] = { 0 }, cnt[2] = { 0 };
  size_t hist[2][256] = { { 0 } };
  for (size_t i = 0; i < W * H; i++) {
    int cell = s.labels[i] == 255;
    sum[cell] += s.image[i];
    cnt[cell]++;
    hist[cell][s.image[i]]++;
  }
  double mem_mean = sum[0] / cnt[0], cell_mean = sum[1] / cnt[1];
  g_test_message("mean grey: membrane %.1f, cell %.1f", mem_mean, cell_mean);
  g_assert_cmpfloat(mem_mean + 40.0, <, cell_mean);
  /* best global threshold: pixel accuracy of "darker than t is membrane" */
  double best = 0.0;
  for (int t = 0; t <= 256; t++) {
    double correct = 0.0;
    for (int v = 0; v < 256; v++)
      correct += v < t ? hist[0][v] : hist[1][v];
    best = MAX(best, correct / (W * H));
  }
  g_test_message("best global threshold pixel accuracy %.3f", best);
  g_assert_cmpfloat(best, >, 0.80);
  g_assert_cmpfloat(best, <, 0.96);
  slice_free(&s);
}

static void
test_invalid(void)
{
  EngSynthParams p;
  eng_synth_params_init(&p, 1);
  guint8 buf[64];
  EngError err = { 0 };
  g_assert_cmpint(eng_synth_slice(buf, NULL, &p, 0, 0, 8, &err), ==, ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "0x8"));
  p.cell_size = 4.0f;
  g_assert_cmpint(eng_synth_slice(buf, NULL, &p, 0, 8, 8, &err), ==, ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "cell size"));
  eng_synth_params_init(&p, 1);
  g_assert_cmpint(eng_synth_slice(buf, NULL, &p, 0, 8, 8, &err), ==, ENG_OK);
}

int
main(int argc, char **argv)
{
  /* No G_TEST_OPTION_ISOLATE_DIRS: GLib 2.74 leaks its per-test dir strings, which
   * fails the ASan build, and nothing here touches the user's directories. */
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/synth/deterministic", test_deterministic);
  g_test_add_func("/synth/labels", test_labels);
  g_test_add_func("/synth/size-independent", test_size_independent);
  g_test_add_func("/synth/serial-sections", test_serial_sections);
  g_test_add_func("/synth/contrast", test_contrast);
  g_test_add_func("/synth/invalid", test_invalid);
  return g_test_run();
}
