/* eng-augment.c — one sampling map per augmented sample (eng-augment.h).
 *
 * The elastic field is a tensor-product natural cubic spline through the control-point
 * displacements. A spline is linear in its control values, so it is evaluated through
 * per-column and per-row weight tables (one basis spline per control point), computed once
 * per grid size: building a map is then two small dot products per pixel. Map and sampling
 * run over rows with eng_parallel_for; each row depends only on the draw, so the result is
 * the same for any thread count. */
#include "eng-augment.h"

#include <math.h>
#include <stdlib.h>

#include "eng-parallel.h"
#include "eng-rng.h"

#define PI 3.14159265358979323846
#define SNAP 1e-4

struct EngAugment {
  size_t width, height;
  /* owned */
  float *map_x; /* (height, width) source x of each output pixel */
  float *map_y; /* (height, width) source y of each output pixel */
  float *wx;    /* (width, ENG_AUGMENT_MAX_GRID) spline weights of the current grid */
  float *wy;    /* (height, ENG_AUGMENT_MAX_GRID) */
  int weights_grid; /* grid size wx/wy were computed for; 0 = none yet */
  /* the draw of the current map (copied) */
  EngAugmentDraw draw;
};

void
eng_augment_params_init(EngAugmentParams *p)
{
  p->flip_prob = 0.5f;
  p->rotate_max_deg = 25.0f;
  p->shear_max = 0.41f;
  p->elastic_grid = 3;
  p->elastic_sigma = 10.0f;
}

void
eng_augment_draw_identity(EngAugmentDraw *d)
{
  *d = (EngAugmentDraw) { 0 };
}

static float
symmetric(EngRng *r, float max)
{
  float u = 2.0f * eng_rng_uniform(r) - 1.0f; /* drawn even when unused, see below */
  return max > 0.0f ? max * u : 0.0f;           /* never -0: "off" is exactly identity */
}

void
eng_augment_draw(EngAugmentDraw *d, const EngAugmentParams *p, uint64_t seed, uint64_t sample)
{
  EngRng r;
  eng_rng_derive(&r, seed, sample);
  eng_augment_draw_identity(d);
  /* Always consume the same number of draws, so that switching one part of the recipe
   * off does not change the others. */
  float uh = eng_rng_uniform(&r), uv = eng_rng_uniform(&r);
  d->flip_h = uh < p->flip_prob;
  d->flip_v = uv < p->flip_prob;
  d->angle = symmetric(&r, p->rotate_max_deg) * (float) (PI / 180.0);
  d->shear = symmetric(&r, p->shear_max);
  int g = p->elastic_grid;
  if (g > ENG_AUGMENT_MAX_GRID)
    g = ENG_AUGMENT_MAX_GRID;
  if (g < 2 || !(p->elastic_sigma > 0.0f))
    return;
  d->grid = g;
  for (int i = 0; i < g * g; i++) {
    d->disp_x[i] = p->elastic_sigma * eng_rng_normal(&r);
    d->disp_y[i] = p->elastic_sigma * eng_rng_normal(&r);
  }
}

EngStatus
eng_augment_create(EngAugment **out, size_t width, size_t height, EngError *err)
{
  *out = NULL;
  if (width == 0 || height == 0 || width > (1u << 20) || height > (1u << 20) ||
      width > SIZE_MAX / sizeof(float) / height)
    return eng_error_set(err, ENG_ERR_INVALID, "augment: bad slice size %zux%zu", width,
                         height);
  EngAugment *aug = calloc(1, sizeof *aug);
  if (!aug)
    return eng_error_set(err, ENG_ERR_NOMEM, "augment: out of memory");
  aug->width = width;
  aug->height = height;
  aug->map_x = malloc(width * height * sizeof(float));
  aug->map_y = malloc(width * height * sizeof(float));
  aug->wx = malloc(width * ENG_AUGMENT_MAX_GRID * sizeof(float));
  aug->wy = malloc(height * ENG_AUGMENT_MAX_GRID * sizeof(float));
  if (!aug->map_x || !aug->map_y || !aug->wx || !aug->wy) {
    eng_augment_destroy(aug);
    return eng_error_set(err, ENG_ERR_NOMEM,
                         "augment: out of memory for the %zux%zu sampling map", width, height);
  }
  *out = aug;
  return ENG_OK;
}

void
eng_augment_destroy(EngAugment *aug)
{
  if (!aug)
    return;
  free(aug->map_x);
  free(aug->map_y);
  free(aug->wx);
  free(aug->wy);
  free(aug);
}

const float *
eng_augment_map_x(const EngAugment *aug)
{
  return aug->map_x;
}

const float *
eng_augment_map_y(const EngAugment *aug)
{
  return aug->map_y;
}

/* w (n, ENG_AUGMENT_MAX_GRID): w[x][k] = value at x of the natural cubic spline through
 * g evenly spaced knots 0 .. n-1 whose values are the unit vector e_k. */
static void
spline_weights(float *w, size_t n, int g)
{
  double h = n > 1 ? (double) (n - 1) / (double) (g - 1) : 1.0;
  for (int k = 0; k < g; k++) {
    double v[ENG_AUGMENT_MAX_GRID] = { 0 }, m[ENG_AUGMENT_MAX_GRID] = { 0 };
    double c[ENG_AUGMENT_MAX_GRID] = { 0 }, rhs[ENG_AUGMENT_MAX_GRID] = { 0 };
    v[k] = 1.0;
    /* second derivatives m: m[0] = m[g-1] = 0, m[i-1] + 4 m[i] + m[i+1] = 6 Δ²v / h²,
     * by the Thomas algorithm over the interior knots */
    for (int i = 1; i < g - 1; i++)
      rhs[i] = 6.0 * (v[i - 1] - 2.0 * v[i] + v[i + 1]) / (h * h);
    for (int i = 1; i < g - 1; i++) {
      double denom = 4.0 - (i > 1 ? c[i - 1] : 0.0);
      c[i] = 1.0 / denom;
      rhs[i] = (rhs[i] - (i > 1 ? rhs[i - 1] : 0.0)) / denom;
    }
    for (int i = g - 2; i >= 1; i--)
      m[i] = rhs[i] - (i < g - 2 ? c[i] * m[i + 1] : 0.0);
    for (size_t x = 0; x < n; x++) {
      double t = (double) x / h;
      int i = (int) t;
      if (i > g - 2)
        i = g - 2;
      double b = t - i, a = 1.0 - b;
      double s = a * v[i] + b * v[i + 1] +
                 ((a * a * a - a) * m[i] + (b * b * b - b) * m[i + 1]) * h * h / 6.0;
      w[x * ENG_AUGMENT_MAX_GRID + (size_t) k] = (float) s;
    }
  }
}

static double
snap(double v)
{
  double r = nearbyint(v);
  return fabs(v - r) < SNAP ? r : v;
}

static void
map_rows(void *ctx, size_t y0, size_t y1)
{
  EngAugment *aug = ctx;
  const EngAugmentDraw *d = &aug->draw;
  size_t W = aug->width, H = aug->height;
  double cx = 0.5 * (double) (W - 1), cy = 0.5 * (double) (H - 1);
  double ca = cos(d->angle), sa = sin(d->angle);
  double m00 = ca, m01 = -sin(d->angle + d->shear);
  double m10 = sa, m11 = cos(d->angle + d->shear);
  int g = d->grid;
  for (size_t y = y0; y < y1; y++) {
    double rx[ENG_AUGMENT_MAX_GRID] = { 0 }, ry[ENG_AUGMENT_MAX_GRID] = { 0 };
    const float *wy = aug->wy + y * ENG_AUGMENT_MAX_GRID;
    for (int j = 0; j < g; j++)
      for (int i = 0; i < g; i++) {
        rx[i] += (double) wy[j] * d->disp_x[j * g + i];
        ry[i] += (double) wy[j] * d->disp_y[j * g + i];
      }
    for (size_t x = 0; x < W; x++) {
      double ex = 0.0, ey = 0.0;
      const float *wx = aug->wx + x * ENG_AUGMENT_MAX_GRID;
      for (int i = 0; i < g; i++) {
        ex += (double) wx[i] * rx[i];
        ey += (double) wx[i] * ry[i];
      }
      double px = (double) x - cx + ex, py = (double) y - cy + ey;
      double sx = cx + m00 * px + m01 * py, sy = cy + m10 * px + m11 * py;
      if (d->flip_h)
        sx = (double) (W - 1) - sx;
      if (d->flip_v)
        sy = (double) (H - 1) - sy;
      aug->map_x[y * W + x] = (float) snap(sx);
      aug->map_y[y * W + x] = (float) snap(sy);
    }
  }
}

EngStatus
eng_augment_set(EngAugment *aug, const EngAugmentDraw *d, EngError *err)
{
  if (d->grid != 0 && (d->grid < 2 || d->grid > ENG_AUGMENT_MAX_GRID))
    return eng_error_set(err, ENG_ERR_INVALID,
                         "augment: elastic grid %d, expected 0 or 2..%d", d->grid,
                         ENG_AUGMENT_MAX_GRID);
  int finite = isfinite(d->angle) && isfinite(d->shear) && fabsf(d->shear) < 1.5f;
  for (int i = 0; i < d->grid * d->grid; i++)
    finite = finite && isfinite(d->disp_x[i]) && isfinite(d->disp_y[i]);
  if (!finite)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "augment: non-finite angle, displacement, or |shear| >= 1.5 rad "
                         "(angle %g, shear %g)",
                         (double) d->angle, (double) d->shear);
  aug->draw = *d;
  if (d->grid != 0 && d->grid != aug->weights_grid) {
    spline_weights(aug->wx, aug->width, d->grid);
    spline_weights(aug->wy, aug->height, d->grid);
    aug->weights_grid = d->grid;
  }
  eng_parallel_for(aug->height, 8, map_rows, aug);
  return ENG_OK;
}

/* Half-sample symmetric reflection of a position into [-0.5, n - 0.5]. */
static inline float
reflect(float v, size_t n)
{
  float period = 2.0f * (float) n;
  float t = fmodf(v + 0.5f, period);
  if (t < 0.0f)
    t += period;
  if (t >= (float) n)
    t = period - t;
  return t - 0.5f;
}

static inline size_t
clampi(long i, size_t n)
{
  return i < 0 ? 0 : (size_t) i >= n ? n - 1 : (size_t) i;
}

typedef struct {
  const EngAugment *aug;
  float *image_out;
  uint8_t *labels_out;
  float *mask_out;
  const float *image_in;
  const uint8_t *labels_in;
  const float *mask_in;
} Apply;

static void
apply_rows(void *ctx, size_t y0, size_t y1)
{
  const Apply *a = ctx;
  size_t W = a->aug->width, H = a->aug->height;
  for (size_t y = y0; y < y1; y++)
    for (size_t x = 0; x < W; x++) {
      size_t o = y * W + x;
      float sx = reflect(a->aug->map_x[o], W), sy = reflect(a->aug->map_y[o], H);
      if (a->image_out) {
        float fx0 = floorf(sx), fy0 = floorf(sy);
        float fx = sx - fx0, fy = sy - fy0;
        /* reflecting about the half-sample makes the pixel beyond an edge equal to the
         * edge pixel, so clamping the taps is the exact extension */
        size_t x0 = clampi((long) fx0, W), x1 = clampi((long) fx0 + 1, W);
        size_t yy0 = clampi((long) fy0, H), yy1 = clampi((long) fy0 + 1, H);
        const float *r0 = a->image_in + yy0 * W, *r1 = a->image_in + yy1 * W;
        float top = r0[x0] + fx * (r0[x1] - r0[x0]);
        float bot = r1[x0] + fx * (r1[x1] - r1[x0]);
        a->image_out[o] = top + fy * (bot - top);
      }
      if (a->labels_out || a->mask_out) {
        size_t nx = clampi(lrintf(floorf(sx + 0.5f)), W);
        size_t ny = clampi(lrintf(floorf(sy + 0.5f)), H);
        if (a->labels_out)
          a->labels_out[o] = a->labels_in[ny * W + nx];
        if (a->mask_out)
          a->mask_out[o] = a->mask_in[ny * W + nx];
      }
    }
}

void
eng_augment_apply(EngAugment *aug, float *image_out, uint8_t *labels_out, float *mask_out,
                  const float *image_in, const uint8_t *labels_in, const float *mask_in)
{
  Apply a = { aug, image_out, labels_out, mask_out, image_in, labels_in, mask_in };
  if (!image_in)
    a.image_out = NULL;
  if (!labels_in)
    a.labels_out = NULL;
  if (!mask_in)
    a.mask_out = NULL;
  eng_parallel_for(aug->height, 8, apply_rows, &a);
}

EngStatus
eng_augment_sample(EngAugment *aug, float *image_out, uint8_t *labels_out, float *mask_out,
                   const float *image_in, const uint8_t *labels_in, const float *mask_in,
                   const EngAugmentParams *p, uint64_t seed, uint64_t sample, EngError *err)
{
  EngAugmentDraw d;
  eng_augment_draw(&d, p, seed, sample);
  EngStatus st = eng_augment_set(aug, &d, err);
  if (st != ENG_OK)
    return st;
  eng_augment_apply(aug, image_out, labels_out, mask_out, image_in, labels_in, mask_in);
  return ENG_OK;
}
