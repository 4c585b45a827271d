/* test-fixture.c — the parity fixture reader and the committed fixtures themselves.
 *
 * Proves three things before any engine parity test relies on them: the reader decodes the
 * format exactly (hand-built images with known values), it refuses every truncated, corrupt
 * or foreign file with a message instead of crashing, and each committed fixture is
 * complete and self-consistent (losses, their logit gradients and the RMSprop step
 * recomputed here in double from the stored tensors, independently of PyTorch). */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "fixture.h"

/* ---- building small images by hand --------------------------------------------------- */

static void
put_u32(GByteArray *b, guint32 v)
{
  guint8 le[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff };
  g_byte_array_append(b, le, 4);
}

static void
put_f32(GByteArray *b, float f)
{
  guint32 bits;
  memcpy(&bits, &f, 4);
  put_u32(b, bits);
}

static GByteArray *
start_image(guint32 version, guint32 count)
{
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, (const guint8 *)"EMSEGFX", 8);
  put_u32(b, version);
  put_u32(b, count);
  return b;
}

static void
put_record(GByteArray *b, const char *name, guint32 ndim, const guint32 *shape,
           const float *data, size_t numel)
{
  put_u32(b, (guint32)strlen(name));
  g_byte_array_append(b, (const guint8 *)name, (guint)strlen(name));
  put_u32(b, ndim);
  for (guint32 d = 0; d < ndim; d++)
    put_u32(b, shape[d]);
  for (size_t i = 0; i < numel; i++)
    put_f32(b, data[i]);
}

/* A valid two-tensor image: "w" (2, 3) and the scalar "s". */
static GByteArray *
small_image(void)
{
  static const float w[6] = { 1.0f, -2.5f, 0.0f, -0.0f, 1e-40f, 3.4e38f };
  static const guint32 shape[2] = { 2, 3 };
  const float s = 0.125f;
  GByteArray *b = start_image(1, 2);
  put_record(b, "w", 2, shape, w, 6);
  put_record(b, "spec.base_width", 0, NULL, &s, 1);
  return b;
}

static EngStatus
parse_bytes(Fixture *fx, GByteArray *b, EngError *err)
{
  return fixture_parse(fx, b->data, b->len, "image", err);
}

static void
test_decode_exact(void)
{
  g_autoptr(GByteArray) b = small_image();
  Fixture fx;
  EngError err = { 0 };
  g_assert_cmpint(parse_bytes(&fx, b, &err), ==, ENG_OK);
  g_assert_cmpuint(fx.count, ==, 2);

  const FixtureTensor *w = fixture_get(&fx, "w", 6, &err);
  g_assert_nonnull(w);
  g_assert_cmpuint(w->ndim, ==, 2);
  g_assert_cmpuint(w->shape[0], ==, 2);
  g_assert_cmpuint(w->shape[1], ==, 3);
  const float want[6] = { 1.0f, -2.5f, 0.0f, -0.0f, 1e-40f, 3.4e38f };
  g_assert_cmpmem(w->data, sizeof want, want, sizeof want);
  g_assert_true(signbit(w->data[3]));

  double s = 0;
  g_assert_cmpint(fixture_scalar(&fx, "spec.base_width", &s, &err), ==, ENG_OK);
  g_assert_cmpfloat(s, ==, 0.125);

  /* Wrong size and missing names are reported, with the name in the message. */
  g_assert_null(fixture_get(&fx, "w", 5, &err));
  g_assert_cmpint(err.status, ==, ENG_ERR_FORMAT);
  g_assert_nonnull(strstr(err.message, "expected 5 values, found 6"));
  g_assert_cmpint(fixture_scalar(&fx, "w", &s, &err), ==, ENG_ERR_FORMAT);
  g_assert_null(fixture_find(&fx, "nope"));
  g_assert_null(fixture_get(&fx, "nope", 1, &err));
  g_assert_nonnull(strstr(err.message, "'nope'"));
  fixture_free(&fx);
  fixture_free(&fx); /* idempotent */
}

static void
expect_format_error(GByteArray *b, const char *needle)
{
  Fixture fx;
  EngError err = { 0 };
  EngStatus st = parse_bytes(&fx, b, &err);
  if (st != ENG_ERR_FORMAT || !strstr(err.message, needle))
    g_error("expected a format error mentioning \"%s\", got %s: %s", needle,
            eng_status_to_string(st), err.message);
  g_assert_cmpuint(fx.count, ==, 0);
  g_assert_null(fx.tensors);
  fixture_free(&fx);
}

static void
test_corrupt(void)
{
  g_autoptr(GByteArray) good = small_image();

  g_autoptr(GByteArray) magic = g_byte_array_new();
  g_byte_array_append(magic, good->data, good->len);
  magic->data[0] = 'X';
  expect_format_error(magic, "not an emseg fixture");

  g_autoptr(GByteArray) version = start_image(2, 0);
  expect_format_error(version, "version 2");

  g_autoptr(GByteArray) trailing = small_image();
  g_byte_array_append(trailing, (const guint8 *)"!", 1);
  expect_format_error(trailing, "1 unexpected bytes");

  g_autoptr(GByteArray) ndim = start_image(1, 1);
  put_record(ndim, "t", 9, (const guint32[9]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }, NULL, 0);
  put_f32(ndim, 1.0f);
  expect_format_error(ndim, "9 dimensions");

  g_autoptr(GByteArray) huge = start_image(1, 1);
  put_record(huge, "t", 4, (const guint32[4]){ 0xffffffffu, 0xffffffffu, 0xffffffffu, 8 },
             NULL, 0);
  expect_format_error(huge, "overflows");

  g_autoptr(GByteArray) noname = start_image(1, 1);
  put_u32(noname, 0);
  put_u32(noname, 0);
  put_f32(noname, 1.0f);
  expect_format_error(noname, "name length 0");

  g_autoptr(GByteArray) twice = start_image(1, 2);
  const float one = 1.0f;
  put_record(twice, "a", 0, NULL, &one, 1);
  put_record(twice, "a", 0, NULL, &one, 1);
  expect_format_error(twice, "appears twice");

  g_autoptr(GByteArray) count = start_image(1, 1000000);
  expect_format_error(count, "promises 1000000 tensors");
}

/* ---- the committed fixtures ----------------------------------------------------------- */

static char *
fixture_path(const char *key)
{
  g_autofree char *file = g_strdup_printf("fixture-%s.bin", key);
  return g_test_build_filename(G_TEST_DIST, "reference", file, NULL);
}

static GBytes *
read_fixture_bytes(const char *key)
{
  g_autofree char *path = fixture_path(key);
  g_autoptr(GError) error = NULL;
  char *contents = NULL;
  gsize len = 0;
  g_file_get_contents(path, &contents, &len, &error);
  g_assert_no_error(error);
  return g_bytes_new_take(contents, len);
}

static void
test_truncated(gconstpointer data)
{
  g_autoptr(GBytes) bytes = read_fixture_bytes(data);
  gsize len = 0;
  const unsigned char *p = g_bytes_get_data(bytes, &len);
  g_assert_cmpuint(len, >, 64);

  /* Every header boundary, then ~300 cuts spread over the file, then the last byte. */
  GArray *cuts = g_array_new(FALSE, FALSE, sizeof(gsize));
  for (gsize c = 0; c <= 24; c++)
    g_array_append_val(cuts, c);
  for (gsize c = 25; c < len; c += len / 300 + 1)
    g_array_append_val(cuts, c);
  gsize last = len - 1;
  g_array_append_val(cuts, last);

  for (guint i = 0; i < cuts->len; i++) {
    gsize cut = g_array_index(cuts, gsize, i);
    Fixture fx;
    EngError err = { 0 };
    EngStatus st = fixture_parse(&fx, p, cut, "cut", &err);
    if (st != ENG_ERR_FORMAT || !strstr(err.message, "truncated"))
      g_error("fixture-%s cut to %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
              " bytes: expected a truncation error, got %s: %s",
              (const char *)data, cut, len, eng_status_to_string(st), err.message);
    fixture_free(&fx);
  }
  g_array_unref(cuts);
}

static void
test_missing_file(void)
{
  Fixture fx;
  EngError err = { 0 };
  g_assert_cmpint(fixture_load(&fx, "/nonexistent/fixture-Z.bin", &err), ==, ENG_ERR_IO);
  g_assert_nonnull(strstr(err.message, "/nonexistent/fixture-Z.bin"));
  fixture_free(&fx);
}

static const FixtureTensor *
need(const Fixture *fx, const char *name)
{
  const FixtureTensor *t = fixture_find(fx, name);
  if (!t)
    g_error("%s: tensor '%s' is missing", fx->label, name);
  return t;
}

static double
scalar(const Fixture *fx, const char *name)
{
  double v = 0;
  EngError err = { 0 };
  if (fixture_scalar(fx, name, &v, &err) != ENG_OK)
    g_error("%s", err.message);
  return v;
}

static gboolean
same_shape(const FixtureTensor *a, const FixtureTensor *b)
{
  if (a->ndim != b->ndim)
    return FALSE;
  for (size_t d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d])
      return FALSE;
  return TRUE;
}

static gboolean
is_model_tensor(const char *name)
{
  static const char *const roots[] = { "pre.", "down.", "across.", "up.", "long.", "post.",
                                       "classifier." };
  for (size_t i = 0; i < G_N_ELEMENTS(roots); i++)
    if (g_str_has_prefix(name, roots[i]))
      return TRUE;
  return FALSE;
}

/* Recomputes both losses and their logit gradients in double from logits, t and m. */
static void
check_losses(const Fixture *fx)
{
  const FixtureTensor *z = need(fx, "logits"), *t = need(fx, "t"), *m = need(fx, "m");
  const FixtureTensor *dzb = need(fx, "dlogits.bce"), *dzd = need(fx, "dlogits.dice");
  g_assert_true(same_shape(z, t) && same_shape(z, m) && same_shape(z, dzb) &&
                same_shape(z, dzd));
  double eps = scalar(fx, "loss.dice_eps");
  double msum = 0, bce = 0, inter = 0, osum = 0, tsum = 0, zeros = 0;
  for (size_t i = 0; i < z->numel; i++) {
    double zi = z->data[i], ti = t->data[i], mi = m->data[i];
    double o = 1.0 / (1.0 + exp(-zi));
    g_assert_true(ti == 0.0 || ti == 1.0);
    g_assert_cmpfloat(mi, >=, 0.0);
    zeros += mi == 0.0;
    msum += mi;
    bce += mi * (fmax(zi, 0.0) + log1p(exp(-fabs(zi))) - ti * zi);
    inter += mi * o * ti;
    osum += mi * o;
    tsum += mi * ti;
  }
  g_assert_cmpfloat(zeros, >, 0); /* the mask must exercise unlabeled pixels */
  bce /= msum;
  double den = osum + tsum + eps;
  double dice = -2.0 * inter / den;
  g_assert_cmpfloat_with_epsilon(bce, scalar(fx, "loss.bce"), 1e-6 * fabs(bce));
  g_assert_cmpfloat_with_epsilon(dice, scalar(fx, "loss.dice"), 1e-6 * fabs(dice));

  double worst_b = 0, worst_d = 0, scale_b = 0, scale_d = 0;
  for (size_t i = 0; i < z->numel; i++) {
    double zi = z->data[i], ti = t->data[i], mi = m->data[i];
    double o = 1.0 / (1.0 + exp(-zi));
    double gb = mi * (o - ti) / msum;
    double gd = -2.0 * mi * o * (1.0 - o) * (ti * den - inter) / (den * den);
    worst_b = fmax(worst_b, fabs(gb - dzb->data[i]));
    worst_d = fmax(worst_d, fabs(gd - dzd->data[i]));
    scale_b = fmax(scale_b, fabs(gb));
    scale_d = fmax(scale_d, fabs(gd));
  }
  if (worst_b > 1e-6 * scale_b || worst_d > 1e-6 * scale_d)
    g_error("%s: dlogits differ from the loss formulas: bce %g (of %g), dice %g (of %g)",
            fx->label, worst_b, scale_b, worst_d, scale_d);
}

/* MODEL.md's RMSprop from v = 0, recomputed for every parameter whose gradient is real. */
static void
check_step(const Fixture *fx, const FixtureTensor *w, const FixtureTensor *g,
           const FixtureTensor *s)
{
  double lr = scalar(fx, "opt.lr"), rho = scalar(fx, "opt.rho");
  double eps = scalar(fx, "opt.eps"), wd = scalar(fx, "opt.wd");
  gboolean decay = w->ndim == 4; /* coupled L2 on conv weights only */
  for (size_t i = 0; i < w->numel; i++) {
    double gi = g->data[i] + (decay ? wd * w->data[i] : 0.0);
    double want = w->data[i] - lr * gi / (sqrt((1.0 - rho) * gi * gi) + eps);
    /* float32 storage of w, g and the result; the step itself is at most ~3.2 lr. */
    double tol = 1e-6 * fabs(want) + 1e-7;
    if (fabs(want - s->data[i]) > tol)
      g_error("%s: step.%s[%zu] is %.9g, RMSprop of MODEL.md gives %.9g", fx->label,
              w->name, i, s->data[i], want);
  }
}

static void
test_fixture_contents(gconstpointer data)
{
  g_autofree char *path = fixture_path(data);
  Fixture fx;
  EngError err = { 0 };
  if (fixture_load(&fx, path, &err) != ENG_OK)
    g_error("%s", err.message);

  int levels = (int)scalar(&fx, "spec.n_levels");
  g_assert_cmpint(levels, >=, 1);
  g_assert_cmpuint(need(&fx, "spec.down_reps")->numel, ==, (size_t)levels);
  g_assert_cmpuint(need(&fx, "spec.up_reps")->numel, ==, (size_t)levels);
  g_assert_cmpfloat(scalar(&fx, "spec.dropout"), ==, 0.0);
  const char *spec_fields[] = { "in_channels", "base_width", "init_block", "init_reps",
                                "main_block", "across_reps", "long_skip", "short_skip",
                                "batchnorm", "bn_eps", "bn_momentum" };
  for (size_t i = 0; i < G_N_ELEMENTS(spec_fields); i++) {
    g_autofree char *name = g_strconcat("spec.", spec_fields[i], NULL);
    (void)scalar(&fx, name);
  }

  const FixtureTensor *x = need(&fx, "x");
  g_assert_cmpuint(x->ndim, ==, 4);
  g_assert_cmpuint(x->shape[1], ==, (size_t)scalar(&fx, "spec.in_channels"));
  g_assert_cmpuint(x->shape[2] % ((size_t)1 << (levels + 2)), ==, 0);
  g_assert_cmpuint(x->shape[3] % ((size_t)1 << (levels + 2)), ==, 0);
  g_assert_true(same_shape(x, need(&fx, "logits")));
  g_assert_true(same_shape(x, need(&fx, "infer_logits")));
  for (size_t i = 0; i < fx.count; i++)
    for (size_t j = 0; j < fx.tensors[i].numel; j++)
      if (!isfinite(fx.tensors[i].data[j]))
        g_error("%s: %s[%zu] is not finite", path, fx.tensors[i].name, j);

  check_losses(&fx);

  size_t n_params = 0, n_stats = 0, n_zero = 0;
  for (size_t i = 0; i < fx.count; i++) {
    const FixtureTensor *p = &fx.tensors[i];
    if (!is_model_tensor(p->name))
      continue;
    g_autofree char *gname = g_strconcat("grad.", p->name, NULL);
    g_autofree char *dname = g_strconcat("dgrad.", p->name, NULL);
    g_autofree char *sname = g_strconcat("step.", p->name, NULL);
    g_autofree char *aname = g_strconcat("after.", p->name, NULL);
    g_autofree char *zname = g_strconcat("zerograd.", p->name, NULL);
    if (g_str_has_suffix(p->name, ".running_mean") || g_str_has_suffix(p->name, ".running_var")) {
      g_assert_true(same_shape(p, need(&fx, aname)));
      g_assert_null(fixture_find(&fx, gname));
      n_stats++;
      continue;
    }
    const FixtureTensor *g = need(&fx, gname), *s = need(&fx, sname);
    g_assert_true(same_shape(p, g) && same_shape(p, s) && same_shape(p, need(&fx, dname)));
    if (fixture_find(&fx, zname)) {
      n_zero++;
      continue;
    }
    check_step(&fx, p, g, s);
    n_params += p->numel;
  }
  g_assert_cmpuint(n_params, >, 0);
  g_assert_cmpuint(n_stats, >, 0);
  /* post.conv.bias and classifier.bias carry real gradients, so they are never flagged. */
  g_assert_null(fixture_find(&fx, "zerograd.classifier.bias"));
  g_assert_null(fixture_find(&fx, "zerograd.post.conv.bias"));
  g_test_message("%s: %zu tensors, %zu checked parameters, %zu zero-gradient biases",
                 path, fx.count, n_params, n_zero);
  fixture_free(&fx);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/fixture/decode-exact", test_decode_exact);
  g_test_add_func("/fixture/corrupt", test_corrupt);
  g_test_add_func("/fixture/missing-file", test_missing_file);
  g_test_add_data_func("/fixture/truncated/A", "A", test_truncated);
  g_test_add_data_func("/fixture/truncated/B", "B", test_truncated);
  g_test_add_data_func("/fixture/contents/A", "A", test_fixture_contents);
  g_test_add_data_func("/fixture/contents/B", "B", test_fixture_contents);
  return g_test_run();
}
