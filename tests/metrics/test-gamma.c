/* test-gamma.c — the export exponent (app/run/emseg-gamma): p^γ in place, the model
 * metadata key, the exponent list parser, and the sweep choosing γ by the ISBI scorer's
 * V_rand on a map whose one weak membrane pixel only a γ > 2 lets the scorer close. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "emseg-gamma.h"

static void
test_apply(void)
{
  float p[] = { 0.0f, 0.5f, 0.9f, 1.0f };
  float q[4];
  memcpy(q, p, sizeof p);
  emseg_gamma_apply(q, 4, 1.0);
  g_assert_cmpmem(q, sizeof q, p, sizeof p);
  emseg_gamma_apply(q, 4, 4.0);
  for (int i = 0; i < 4; i++)
    g_assert_cmpfloat_with_epsilon(q[i], pow(p[i], 4.0), 1e-6);
}

static void
test_from_meta(void)
{
  g_assert_cmpfloat(emseg_gamma_from_meta(NULL), ==, 1.0);
  g_assert_cmpfloat(emseg_gamma_from_meta("epoch=3\nloss=bce\n"), ==, 1.0);
  g_assert_cmpfloat(emseg_gamma_from_meta("epoch=3\nexport_gamma=4\nseed=1\n"), ==, 4.0);
  g_assert_cmpfloat(emseg_gamma_from_meta("export_gamma=2.5"), ==, 2.5);
  /* a longer key, garbage and out-of-range values give 1, not a half-parsed number */
  g_assert_cmpfloat(emseg_gamma_from_meta("export_gamma_chosen_by=x\n"), ==, 1.0);
  g_assert_cmpfloat(emseg_gamma_from_meta("export_gamma=4x\n"), ==, 1.0);
  g_assert_cmpfloat(emseg_gamma_from_meta("export_gamma=\n"), ==, 1.0);
  g_assert_cmpfloat(emseg_gamma_from_meta("export_gamma=1000\n"), ==, 1.0);
}

static void
test_parse_list(void)
{
  guint n = 0;
  GError *error = NULL;
  double *g = emseg_gamma_parse_list("4, 1,2,2", &n, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(n, ==, 3);
  g_assert_cmpfloat(g[0], ==, 1.0);
  g_assert_cmpfloat(g[1], ==, 2.0);
  g_assert_cmpfloat(g[2], ==, 4.0);
  g_free(g);
  const char *bad[] = { "", "1,x", "1,,2", "0", "-2", "100", "nan" };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_assert_null(emseg_gamma_parse_list(bad[i], &n, &error));
    g_assert_error(error, EMSEG_PREDICT_ERROR, EMSEG_PREDICT_ERROR_INPUT);
    g_test_message("'%s': %s", bad[i], error->message);
    g_clear_error(&error);
  }
  g_assert_true(emseg_gamma_check(1.0, "--gamma", NULL));
  g_assert_false(emseg_gamma_check(INFINITY, "--gamma", &error));
  g_assert_nonnull(strstr(error->message, "--gamma"));
  g_clear_error(&error);
}

enum { Z = 2, H = 32, W = 32 };

/* Cells of 7 x 7 between one-pixel walls (ground truth 0). The map says 0.99 on cells and
 * 0.05 on walls, except one wall pixel of slice 0 at 0.95: every threshold the scorer
 * tries (<= 0.9) calls it cell, which merges two cells. 0.95^2 = 0.9025 still does; from
 * γ = 3 on (0.857) the scorer's 0.9 closes it while the cells (0.99^3 = 0.97) stay. */
static void
test_sweep(void)
{
  static guint8 gt[Z * H * W];
  static float prob[Z * H * W], copy[Z * H * W];
  for (int z = 0; z < Z; z++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        int i = (z * H + y) * W + x, wall = x % 8 == 7 || y % 8 == 7;
        gt[i] = wall ? 0 : 255;
        prob[i] = wall ? 0.05f : 0.99f;
      }
  prob[2 * W + 7] = 0.95f; /* slice 0, the wall between the first two cells of row 0 */
  memcpy(copy, prob, sizeof prob);

  const double gammas[] = { 1, 2, 3, 4 };
  EngMetricsResult r[4];
  guint best = 99;
  GError *error = NULL;
  g_assert_true(emseg_gamma_sweep(prob, gt, Z, H, W, gammas, 4, r, &best, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(prob, sizeof prob, copy, sizeof copy); /* input untouched */
  for (int k = 0; k < 4; k++)
    g_test_message("gamma %g: V_rand %.4f at %.1f", gammas[k], r[k].vrand,
                   r[k].rows[r[k].vrand_at].threshold);
  g_assert_cmpfloat(r[0].vrand, <, 0.99);
  g_assert_cmpfloat_with_epsilon(r[1].vrand, r[0].vrand, 1e-12);
  g_assert_cmpfloat_with_epsilon(r[2].vrand, 1.0, 1e-9);
  g_assert_cmpfloat_with_epsilon(r[3].vrand, 1.0, 1e-9);
  g_assert_cmpuint(best, ==, 2); /* the first of the tied best, the smaller exponent */

  /* a slice without any cell in the truth cannot be scored: an error, not a choice */
  memset(gt + H * W, 0, H * W);
  g_assert_false(emseg_gamma_sweep(prob, gt, Z, H, W, gammas, 4, r, &best, &error));
  g_assert_nonnull(error);
  g_test_message("%s", error->message);
  g_clear_error(&error);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/gamma/apply", test_apply);
  g_test_add_func("/gamma/from-meta", test_from_meta);
  g_test_add_func("/gamma/parse-list", test_parse_list);
  g_test_add_func("/gamma/sweep", test_sweep);
  return g_test_run();
}
