/* eng-augment.c — one sampling map per augmented sample (eng-augment.h).
 *
 * The elastic field is a tensor-product natural cubic spline through the control-point
 * displacements. A spline is linear in its control values, so it is evaluated through
 * per-column and per-row weight tables (one basis spline per control point), computed once
 * per grid size: building a map is then two small dot products per pixel. Map and sampling
 * run over rows with eng_parallel_for; each row depends only on the draw, so the result is
 * the same for any thread count. A windowed workspace computes the same per-pixel formula
 * for its window's pixels only, so a window equals that crop of the whole slice's result
 * bit for bit. */
#include "eng-augment.h"

#include <math.h>
#include <stdlib.h>

#include "eng-parallel.h"
#include "eng-rng.h"

#define PI 3.14159265358979323846
#define SNAP 1e-4

struct EngAugment {
  size_t width, height;       /* the slice */
  size_t win_w, win_h;        /* the output window (the slice unless windowed) */
  size_t x0, y0;              /* where the current map's window lies in the slice */
  /* owned */
  float *map_x; /* (win_h, win_w) source x of each output pixel */
  float *map_y; /* (win_h, win_w) source y of each output pixel */
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
eng_augment_create_window(EngAugment **out, size_t width, size_t height, size_t win_w,
                          size_t win_h, EngError *err)
{
  *out = NULL;
  if (width == 0 || height == 0 || width > (1u << 20) || height > (1u << 20) ||
      width > SIZE_MAX / sizeof(float) / height)
    return eng_error_set(err, ENG_ERR_INVALID, "augment: bad slice size %zux%zu", width,
                         height);
  if (win_w == 0 || win_h == 0 || win_w > width || win_h > height)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "augment: window %zux%zu, expected 1x1 up to the %zux%zu slice",
                         win_w, win_h, width, height);
  EngAugment *aug = calloc(1, sizeof *aug);
  if (!aug)
    return eng_error_set(err, ENG_ERR_NOMEM, "augment: out of memory");
  aug->width = width;
  aug->height = height;
  aug->win_w = win_w;
  aug->win_h = win_h;
  aug->map_x = malloc(win_w * win_h * sizeof(float));
  aug->map_y = malloc(win_w * win_h * sizeof(float));
  aug->wx = malloc(width * ENG_AUGMENT_MAX_GRID * sizeof(float));
  aug->wy = malloc(height * ENG_AUGMENT_MAX_GRID * sizeof(float));
  if (!aug->map_x || !aug->map_y || !aug->wx || !aug->wy) {
    eng_augment_destroy(aug);
    return eng_error_set(err, ENG_ERR_NOMEM,
                         "augment: out of memory for the %zux%zu sampling map", win_w, win_h);
  }
  *out = aug;
  return ENG_OK;
}

EngStatus
eng_augment_create(EngAugment **out, size_t width, size_t height, EngError *err)
{
  return eng_augment_create_window(out, width, height, width, height, err);
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

/* The natural cubic spline through g evenly spaced knots over 0 .. n-1 whose values are
 * the unit vector e_k: knot values v, second derivatives m (m[0] = m[g-1] = 0,
 * m[i-1] + 4 m[i] + m[i+1] = 6 Δ²v / h², by the Thomas algorithm over the interior knots)
 * and knot spacing h. */
typedef struct {
  double v[ENG_AUGMENT_MAX_GRID], m[ENG_AUGMENT_MAX_GRID], h;
  int g;
} Basis;

static void
basis_init(Basis *b, size_t n, int g, int k)
{
  double c[ENG_AUGMENT_MAX_GRID] = { 0 }, rhs[ENG_AUGMENT_MAX_GRID] = { 0 };
  double h = n > 1 ? (double) (n - 1) / (double) (g - 1) : 1.0;
  for (int i = 0; i < ENG_AUGMENT_MAX_GRID; i++)
    b->v[i] = b->m[i] = 0.0;
  b->v[k] = 1.0;
  b->h = h;
  b->g = g;
  for (int i = 1; i < g - 1; i++)
    rhs[i] = 6.0 * (b->v[i - 1] - 2.0 * b->v[i] + b->v[i + 1]) / (h * h);
  for (int i = 1; i < g - 1; i++) {
    double denom = 4.0 - (i > 1 ? c[i - 1] : 0.0);
    c[i] = 1.0 / denom;
    rhs[i] = (rhs[i] - (i > 1 ? rhs[i - 1] : 0.0)) / denom;
  }
  for (int i = g - 2; i >= 1; i--)
    b->m[i] = rhs[i] - (i < g - 2 ? c[i] * b->m[i + 1] : 0.0);
}

/* The basis spline at position x (any real; beyond the ends the end cubics continue). */
static double
basis_at(const Basis *b, double x)
{
  double t = x / b->h;
  int i = t < 0.0 ? 0 : (int) t;
  if (i > b->g - 2)
    i = b->g - 2;
  double u = t - i, a = 1.0 - u, h = b->h;
  return a * b->v[i] + u * b->v[i + 1] +
         ((a * a * a - a) * b->m[i] + (u * u * u - u) * b->m[i + 1]) * h * h / 6.0;
}

/* w (n, ENG_AUGMENT_MAX_GRID): w[x][k] = basis spline k at pixel x. */
static void
spline_weights(float *w, size_t n, int g)
{
  for (int k = 0; k < g; k++) {
    Basis b;
    basis_init(&b, n, g, k);
    for (size_t x = 0; x < n; x++)
      w[x * ENG_AUGMENT_MAX_GRID + (size_t) k] = (float) basis_at(&b, (double) x);
  }
}

static double
snap(double v)
{
  double r = nearbyint(v);
  return fabs(v - r) < SNAP ? r : v;
}

/* The affine part of d (output offset from the centre → source offset): rotation after shear,
 * m = R(angle) · S(shear). */
static void
affine(const EngAugmentDraw *d, double m[4])
{
  m[0] = cos(d->angle);
  m[1] = -sin(d->angle + d->shear);
  m[2] = sin(d->angle);
  m[3] = cos(d->angle + d->shear);
}

/* Rows [r0, r1) of the window's map (slice rows y0 + r). */
static void
map_rows(void *ctx, size_t r0, size_t r1)
{
  EngAugment *aug = ctx;
  const EngAugmentDraw *d = &aug->draw;
  size_t W = aug->width, H = aug->height, WW = aug->win_w;
  double cx = 0.5 * (double) (W - 1), cy = 0.5 * (double) (H - 1);
  double m[4];
  affine(d, m);
  double m00 = m[0], m01 = m[1], m10 = m[2], m11 = m[3];
  int g = d->grid;
  for (size_t r = r0; r < r1; r++) {
    size_t y = aug->y0 + r;
    double rx[ENG_AUGMENT_MAX_GRID] = { 0 }, ry[ENG_AUGMENT_MAX_GRID] = { 0 };
    const float *wy = aug->wy + y * ENG_AUGMENT_MAX_GRID;
    for (int j = 0; j < g; j++)
      for (int i = 0; i < g; i++) {
        rx[i] += (double) wy[j] * d->disp_x[j * g + i];
        ry[i] += (double) wy[j] * d->disp_y[j * g + i];
      }
    for (size_t c = 0; c < WW; c++) {
      size_t x = aug->x0 + c;
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
      aug->map_x[r * WW + c] = (float) snap(sx);
      aug->map_y[r * WW + c] = (float) snap(sy);
    }
  }
}

EngStatus
eng_augment_set_window(EngAugment *aug, const EngAugmentDraw *d, size_t x0, size_t y0,
                       EngError *err)
{
  if (x0 > aug->width - aug->win_w || y0 > aug->height - aug->win_h)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "augment: a %zux%zu window at (%zu, %zu) leaves the %zux%zu slice",
                         aug->win_w, aug->win_h, x0, y0, aug->width, aug->height);
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
  aug->x0 = x0;
  aug->y0 = y0;
  if (d->grid != 0 && d->grid != aug->weights_grid) {
    spline_weights(aug->wx, aug->width, d->grid);
    spline_weights(aug->wy, aug->height, d->grid);
    aug->weights_grid = d->grid;
  }
  eng_parallel_for(aug->win_h, 8, map_rows, aug);
  return ENG_OK;
}

EngStatus
eng_augment_set(EngAugment *aug, const EngAugmentDraw *d, EngError *err)
{
  return eng_augment_set_window(aug, d, 0, 0, err);
}

/* The elastic displacement of the current draw at a real position (x, y) of the slice. */
static void
elastic_at(const EngAugment *aug, double x, double y, double *ex, double *ey)
{
  const EngAugmentDraw *d = &aug->draw;
  double bx[ENG_AUGMENT_MAX_GRID], by[ENG_AUGMENT_MAX_GRID];
  for (int k = 0; k < d->grid; k++) {
    Basis b;
    basis_init(&b, aug->width, d->grid, k);
    bx[k] = basis_at(&b, x);
    basis_init(&b, aug->height, d->grid, k);
    by[k] = basis_at(&b, y);
  }
  *ex = *ey = 0.0;
  for (int j = 0; j < d->grid; j++)
    for (int i = 0; i < d->grid; i++) {
      *ex += by[j] * bx[i] * d->disp_x[j * d->grid + i];
      *ey += by[j] * bx[i] * d->disp_y[j * d->grid + i];
    }
}

void
eng_augment_locate(const EngAugment *aug, double sx, double sy, double *px, double *py)
{
  const EngAugmentDraw *d = &aug->draw;
  size_t W = aug->width, H = aug->height;
  double cx = 0.5 * (double) (W - 1), cy = 0.5 * (double) (H - 1);
  if (d->flip_h)
    sx = (double) (W - 1) - sx;
  if (d->flip_v)
    sy = (double) (H - 1) - sy;
  /* source = c + m (p - c + e(p)), so p solves F(p) = p + e(p) - a = 0 with
   * a = c + m⁻¹ (source - c) (m's determinant is cos(shear), |shear| < 1.5): damped
   * Newton from p = a, the Jacobian I + ∂e/∂p by central differences of the spline,
   * invertible wherever the warp does not fold. */
  double m[4];
  affine(d, m);
  double det = m[0] * m[3] - m[1] * m[2];
  double ux = sx - cx, uy = sy - cy;
  double ax = cx + (m[3] * ux - m[1] * uy) / det, ay = cy + (-m[2] * ux + m[0] * uy) / det;
  double x = ax, y = ay, fx = 0.0, fy = 0.0;
  if (d->grid != 0) {
    double ex, ey;
    elastic_at(aug, x, y, &ex, &ey);
    fx = x + ex - ax;
    fy = y + ey - ay;
  }
  for (int it = 0; d->grid != 0 && it < 30 && fabs(fx) + fabs(fy) > 1e-3; it++) {
    double e1x, e1y, e2x, e2y, e3x, e3y, e4x, e4y;
    elastic_at(aug, x + 0.5, y, &e1x, &e1y);
    elastic_at(aug, x - 0.5, y, &e2x, &e2y);
    elastic_at(aug, x, y + 0.5, &e3x, &e3y);
    elastic_at(aug, x, y - 0.5, &e4x, &e4y);
    double j00 = 1.0 + (e1x - e2x), j01 = e3x - e4x;
    double j10 = e1y - e2y, j11 = 1.0 + (e3y - e4y);
    double jd = j00 * j11 - j01 * j10;
    if (fabs(jd) < 1e-6)
      break; /* a fold: keep the best so far */
    double dx = (j11 * fx - j01 * fy) / jd, dy = (-j10 * fx + j00 * fy) / jd;
    /* damped: halve the step until the residual shrinks */
    double step = 1.0;
    for (; step > 1e-3; step *= 0.5) {
      double nx = x - step * dx, ny = y - step * dy, ex, ey;
      elastic_at(aug, nx, ny, &ex, &ey);
      double gx = nx + ex - ax, gy = ny + ey - ay;
      if (fabs(gx) + fabs(gy) < fabs(fx) + fabs(fy)) {
        x = nx, y = ny, fx = gx, fy = gy;
        break;
      }
    }
    if (step <= 1e-3)
      break;
  }
  *px = x;
  *py = y;
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
apply_rows(void *ctx, size_t row0, size_t row1)
{
  const Apply *a = ctx;
  size_t W = a->aug->width, H = a->aug->height, WW = a->aug->win_w;
  for (size_t r = row0; r < row1; r++)
    for (size_t c = 0; c < WW; c++) {
      size_t o = r * WW + c;
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
  eng_parallel_for(aug->win_h, 8, apply_rows, &a);
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
