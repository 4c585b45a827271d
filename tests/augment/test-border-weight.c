/* test-border-weight.c — U-Net separation weights (eng-border-weight.h) on a hand-made
 * slice whose distances are known: two cells with a 2-pixel membrane between them. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "eng-border-weight.h"

#define W 40
#define H 20

/* Membrane everywhere (target 1, mask 1) except cell A (x 2..17) and cell B (x 20..37),
 * both over rows 2..17; columns 18 and 19 separate them. (18, 5) is unlabelled. */
static void
two_cells(float *target, float *mask)
{
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      gboolean cell = y >= 2 && y <= 17 && ((x >= 2 && x <= 17) || (x >= 20 && x <= 37));
      target[y * W + x] = cell ? 0.0f : 1.0f;
      mask[y * W + x] = 1.0f;
    }
  mask[5 * W + 18] = 0.0f;
}

static void
test_two_cells(void)
{
  float target[W * H], mask[W * H];
  two_cells(target, mask);
  EngError err = { 0 };
  g_assert_cmpint(eng_border_weights(mask, target, W, H, 10.0f, 5.0f, &err), ==, ENG_OK);
  /* In the gap: 1 from one cell, 2 from the other. */
  double gap = 1.0 + 10.0 * exp(-9.0 / 50.0);
  g_assert_cmpfloat_with_epsilon(mask[10 * W + 18], gap, 1e-5);
  g_assert_cmpfloat_with_epsilon(mask[10 * W + 19], gap, 1e-5);
  /* Left of A the nearest other cell is B, 20 px away: beyond the reach of 3 sigma. */
  g_assert_cmpfloat(mask[10 * W + 0], ==, 1.0f);
  /* Two rows above the gap's top: A's corner is 1 across and 2 up (a diagonal and a
   * straight step), B's 2 across and 2 up (two diagonals). */
  double top = (1.0 + M_SQRT2) + 2.0 * M_SQRT2;
  g_assert_cmpfloat_with_epsilon(mask[0 * W + 18], 1.0 + 10.0 * exp(-top * top / 50.0), 1e-5);
  g_assert_cmpfloat(mask[10 * W + 10], ==, 1.0f); /* cell pixels keep their mask */
  g_assert_cmpfloat(mask[5 * W + 18], ==, 0.0f);  /* unlabelled stays out of the loss */
}

/* The weight grows as the membrane thins: a 1-px gap outweighs the 2-px gap. */
static void
test_thinner_weighs_more(void)
{
  float target[W * H], mask[W * H];
  two_cells(target, mask);
  for (int y = 2; y <= 17; y++)
    target[y * W + 19] = 0.0f; /* B now starts at column 19 */
  EngError err = { 0 };
  g_assert_cmpint(eng_border_weights(mask, target, W, H, 10.0f, 5.0f, &err), ==, ENG_OK);
  g_assert_cmpfloat_with_epsilon(mask[10 * W + 18], 1.0 + 10.0 * exp(-4.0 / 50.0), 1e-5);
}

static void
test_off_and_errors(void)
{
  float target[W * H], mask[W * H];
  two_cells(target, mask);
  EngError err = { 0 };
  g_assert_cmpint(eng_border_weights(mask, target, W, H, 0.0f, 5.0f, &err), ==, ENG_OK);
  for (int i = 0; i < W * H; i++)
    g_assert_cmpfloat(mask[i], ==, i == 5 * W + 18 ? 0.0f : 1.0f);
  g_assert_cmpint(eng_border_weights(mask, target, W, H, 10.0f, 0.0f, &err), ==,
                  ENG_ERR_INVALID);
  g_assert_nonnull(strstr(err.message, "sigma > 0"));
  g_assert_cmpint(eng_border_weights(mask, target, W, H, -1.0f, 5.0f, &err), ==,
                  ENG_ERR_INVALID);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/border-weight/two-cells", test_two_cells);
  g_test_add_func("/border-weight/thinner-weighs-more", test_thinner_weighs_more);
  g_test_add_func("/border-weight/off-and-errors", test_off_and_errors);
  return g_test_run();
}
