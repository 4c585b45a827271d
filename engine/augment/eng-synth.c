/* eng-synth.c — the synthetic EM-like stack of eng-synth.h.
 *
 * Cells are a power diagram (Voronoi with per-cell weights, so sizes vary and cells can
 * shrink to nothing along z) of centres that live one or two to a coarse bucket and wander
 * smoothly with the slice index. Looking the diagram up through a smooth sinusoidal domain
 * warp bends the straight power-diagram edges into wavy membranes. The distance from a pixel
 * to its cell's boundary is the minimum over neighbours of the distance to the bisector,
 * which is exact for a power diagram and gives membranes of controlled width. All random
 * choices come from streams derived from (seed, bucket) or (seed, slice, row), so the
 * output does not depend on image size or thread count. */
#include "eng-synth.h"

#include <math.h>
#include <stdlib.h>

#include "eng-mirror.h"
#include "eng-parallel.h"
#include "eng-rng.h"

#define TWO_PI 6.283185307179586f
#define MAX_ORGANELLES 3
#define MAX_PER_BUCKET 2
#define SEARCH_R 3 /* buckets searched on each side of the query's bucket */
#define WAVES 3
#define MAX_SIZE 16384

/* Stream tags, so that different uses of one seed never share a stream. */
enum { TAG_BUCKET = 1, TAG_FIELD = 2, TAG_TEXTURE = 3, TAG_NOISE = 4 };

typedef struct {
  float dx, dy;    /* centre relative to the cell centre, px */
  float a, b;      /* semi-axes at full size, px */
  float cs, sn;    /* orientation */
  float period, life, offset; /* sectioned sphere: present while (z+offset) mod period < life */
  int vesicle;     /* 0 = mitochondrion (dark body, darker rim), 1 = vesicle (dark ring) */
} Organelle;

typedef struct {
  float x, y, w;   /* position and power weight at the current slice */
  float tone;      /* cytoplasm brightness offset, grey levels */
  int n_org;
  Organelle org[MAX_ORGANELLES]; /* a, b already scaled for the current slice; 0 = absent */
} Cell;

/* A smooth scalar field: sum of WAVES plane waves, evaluated through separable tables. */
typedef struct {
  float amp[WAVES];
  float *col; /* (WAVES, width, 2) cos/sin of kx*x */
  float *row; /* (WAVES, height, 2) cos/sin of ky*y + phase(z) */
} Field;

enum { F_WARP_X, F_WARP_Y, F_WIDTH, F_ILLUM, N_FIELDS };

typedef struct {
  const EngSynthParams *p;
  size_t width, height, slice;
  /* cells, bucketed: cells of bucket b are cells[start[b] .. start[b+1]) */
  Cell *cells;
  size_t *start;
  long gx0, gy0;   /* bucket coordinates of bucket 0 */
  long nbx, nby;
  Field field[N_FIELDS];
  float *a;        /* (height, width) rendered slice before blur, then after */
  float *b;        /* (height, width) after the horizontal blur pass */
  float *kernel;   /* (2*kr+1) Gaussian taps */
  int kr;
  uint8_t *image, *labels;
} Synth;

void
eng_synth_params_init(EngSynthParams *p, uint64_t seed)
{
  p->seed = seed;
  p->cell_size = 44.0f;
  p->membrane_min = 2.0f;
  p->membrane_max = 4.0f;
  p->organelles = 1.8f;
  p->blur_sigma = 1.0f;
  p->noise_sigma = 12.0f;
}

static float
uniform(EngRng *r, float lo, float hi)
{
  return lo + (hi - lo) * eng_rng_uniform(r);
}

/* Wavelengths and amplitudes of the four fields, relative to the cell size where it
 * matters: the warp bends membranes without folding them (amplitude * k < 1). */
static void
field_init(Field *f, const EngSynthParams *p, int which, size_t width, size_t height,
           size_t slice)
{
  EngRng r;
  eng_rng_derive(&r, p->seed, ((uint64_t) TAG_FIELD << 56) | (uint64_t) which);
  float s = p->cell_size;
  for (int k = 0; k < WAVES; k++) {
    float lambda, amp, speed;
    switch (which) {
    case F_WARP_X:
    case F_WARP_Y:
      lambda = s * uniform(&r, 1.2f, 3.0f);
      amp = s * uniform(&r, 0.03f, 0.07f);
      speed = uniform(&r, 0.02f, 0.06f);
      break;
    case F_WIDTH:
      lambda = uniform(&r, 18.0f, 60.0f);
      amp = 1.0f;
      speed = uniform(&r, 0.05f, 0.15f);
      break;
    default: /* F_ILLUM: slow shading across the slice */
      lambda = uniform(&r, 250.0f, 700.0f);
      amp = uniform(&r, 5.0f, 9.0f);
      speed = uniform(&r, 0.01f, 0.03f);
      break;
    }
    float theta = uniform(&r, 0.0f, TWO_PI);
    float kx = TWO_PI / lambda * cosf(theta), ky = TWO_PI / lambda * sinf(theta);
    float phase = uniform(&r, 0.0f, TWO_PI) + speed * (float) slice;
    f->amp[k] = amp;
    for (size_t x = 0; x < width; x++) {
      f->col[(k * width + x) * 2] = cosf(kx * (float) x);
      f->col[(k * width + x) * 2 + 1] = sinf(kx * (float) x);
    }
    for (size_t y = 0; y < height; y++) {
      f->row[(k * height + y) * 2] = cosf(ky * (float) y + phase);
      f->row[(k * height + y) * 2 + 1] = sinf(ky * (float) y + phase);
    }
  }
}

static inline float
field_at(const Field *f, size_t width, size_t height, size_t x, size_t y)
{
  float v = 0.0f;
  for (int k = 0; k < WAVES; k++) {
    const float *c = f->col + (k * width + x) * 2;
    const float *r = f->row + (k * height + y) * 2;
    v += f->amp[k] * (c[1] * r[0] + c[0] * r[1]); /* sin(kx x + ky y + phase) */
  }
  return v;
}

/* The cells of bucket (gx, gy) at slice z. Their count and fixed traits come from the
 * bucket's own stream; only the motion, weight and organelle sizes depend on z. */
static int
bucket_cells(Cell *out, const EngSynthParams *p, long gx, long gy, float z)
{
  EngRng r;
  uint64_t id = ((uint64_t) (uint32_t) gx << 32) | (uint64_t) (uint32_t) gy;
  eng_rng_derive(&r, p->seed ^ ((uint64_t) TAG_BUCKET << 56), id);
  float s = p->cell_size;
  float u = eng_rng_uniform(&r);
  int n = u < 0.25f ? 0 : u < 0.8f ? 1 : 2;
  for (int i = 0; i < n; i++) {
    Cell *c = &out[i];
    float jx = uniform(&r, -0.32f, 0.32f) * s, jy = uniform(&r, -0.32f, 0.32f) * s;
    float wob = 0.12f * s;
    float w1 = TWO_PI / uniform(&r, 40.0f, 90.0f), p1 = uniform(&r, 0.0f, TWO_PI);
    float w2 = TWO_PI / uniform(&r, 40.0f, 90.0f), p2 = uniform(&r, 0.0f, TWO_PI);
    c->x = ((float) gx + 0.5f) * s + jx + wob * sinf(w1 * z + p1);
    c->y = ((float) gy + 0.5f) * s + jy + wob * sinf(w2 * z + p2);
    float w0 = uniform(&r, -0.08f, 0.08f), wa = uniform(&r, 0.0f, 0.12f);
    float ww = TWO_PI / uniform(&r, 25.0f, 70.0f), wp = uniform(&r, 0.0f, TWO_PI);
    c->w = s * s * (w0 + wa * sinf(ww * z + wp));
    /* some profiles are much darker (dense axoplasm), as in the ISBI slices */
    c->tone = eng_rng_uniform(&r) < 0.12f ? uniform(&r, -55.0f, -35.0f)
                                          : uniform(&r, -16.0f, 12.0f);
    /* Poisson-ish organelle count with mean p->organelles, capped */
    int k = 0;
    float limit = expf(-p->organelles), prod = eng_rng_uniform(&r);
    while (prod > limit && k < MAX_ORGANELLES) {
      k++;
      prod *= eng_rng_uniform(&r);
    }
    c->n_org = k;
    for (int j = 0; j < k; j++) {
      Organelle *o = &c->org[j];
      float rad = uniform(&r, 0.0f, 0.28f) * s, ang = uniform(&r, 0.0f, TWO_PI);
      o->dx = rad * cosf(ang);
      o->dy = rad * sinf(ang);
      o->vesicle = eng_rng_uniform(&r) < 0.45f;
      if (o->vesicle) {
        o->a = uniform(&r, 2.5f, 4.5f);
        o->b = o->a * uniform(&r, 0.85f, 1.0f);
      } else {
        o->a = uniform(&r, 6.0f, 15.0f);
        o->b = o->a * uniform(&r, 0.45f, 0.8f);
      }
      float th = uniform(&r, 0.0f, TWO_PI);
      o->cs = cosf(th);
      o->sn = sinf(th);
      o->period = uniform(&r, 16.0f, 48.0f);
      o->life = o->period * uniform(&r, 0.4f, 0.8f);
      o->offset = uniform(&r, 0.0f, o->period);
      /* cross-section of a sphere cut at height t in [-1, 1] of its life */
      float ph = fmodf(z + o->offset, o->period);
      float scale = 0.0f;
      if (ph < o->life) {
        float t = 2.0f * ph / o->life - 1.0f;
        scale = sqrtf(1.0f - t * t);
      }
      o->a *= scale;
      o->b *= scale;
      if (o->b < 1.2f)
        o->a = o->b = 0.0f;
    }
  }
  return n;
}

static float
smoothstep(float e0, float e1, float x)
{
  float t = (x - e0) / (e1 - e0);
  t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
  return t * t * (3.0f - 2.0f * t);
}

/* Renders rows [y0, y1) into syn->a (grey levels, with texture) and syn->labels. */
static void
render_rows(void *ctx, size_t y0, size_t y1)
{
  Synth *syn = ctx;
  const EngSynthParams *p = syn->p;
  size_t W = syn->width, H = syn->height;
  float s = p->cell_size;
  float hmin = 0.5f * p->membrane_min, hspan = 0.5f * (p->membrane_max - p->membrane_min);
  enum { MAXC = (2 * SEARCH_R + 1) * (2 * SEARCH_R + 1) * MAX_PER_BUCKET };
  const Cell *cand[MAXC];
  float fval[MAXC];
  for (size_t y = y0; y < y1; y++) {
    EngRng r;
    eng_rng_derive(&r, p->seed ^ ((uint64_t) TAG_TEXTURE << 56),
                   ((uint64_t) syn->slice << 24) ^ (uint64_t) y);
    for (size_t x = 0; x < W; x++) {
      float qx = (float) x + field_at(&syn->field[F_WARP_X], W, H, x, y);
      float qy = (float) y + field_at(&syn->field[F_WARP_Y], W, H, x, y);
      long bx = (long) floorf(qx / s) - syn->gx0, by = (long) floorf(qy / s) - syn->gy0;
      int n = 0, best = -1;
      for (long j = by - SEARCH_R; j <= by + SEARCH_R; j++) {
        if (j < 0 || j >= syn->nby)
          continue;
        for (long i = bx - SEARCH_R; i <= bx + SEARCH_R; i++) {
          if (i < 0 || i >= syn->nbx)
            continue;
          size_t b = (size_t) (j * syn->nbx + i);
          for (size_t c = syn->start[b]; c < syn->start[b + 1]; c++) {
            const Cell *cell = &syn->cells[c];
            float dx = qx - cell->x, dy = qy - cell->y;
            cand[n] = cell;
            fval[n] = dx * dx + dy * dy - cell->w;
            if (best < 0 || fval[n] < fval[best])
              best = n;
            n++;
          }
        }
      }
      if (best < 0) { /* 49 empty buckets in a row: cannot happen at sane densities */
        syn->a[y * W + x] = 170.0f;
        if (syn->labels)
          syn->labels[y * W + x] = 255;
        continue;
      }
      const Cell *own = cand[best];
      float dist = 1e9f;
      for (int c = 0; c < n; c++) {
        if (c == best)
          continue;
        float ex = cand[c]->x - own->x, ey = cand[c]->y - own->y;
        float sep = sqrtf(ex * ex + ey * ey);
        if (sep < 1e-3f)
          continue;
        float d = (fval[c] - fval[best]) / (2.0f * sep);
        if (d < dist)
          dist = d;
      }
      float wf = field_at(&syn->field[F_WIDTH], W, H, x, y) / (float) WAVES;
      float half = hmin + hspan * (0.5f + 0.5f * wf);
      float illum = field_at(&syn->field[F_ILLUM], W, H, x, y);

      float v = 170.0f + own->tone + illum;
      if (dist > half + 1.0f) {
        float ox = qx - own->x, oy = qy - own->y;
        for (int k = 0; k < own->n_org; k++) {
          const Organelle *o = &own->org[k];
          if (o->a <= 0.0f)
            continue;
          float ux = ox - o->dx, uy = oy - o->dy;
          float ru = (ux * o->cs + uy * o->sn) / o->a, rv = (-ux * o->sn + uy * o->cs) / o->b;
          float rr = sqrtf(ru * ru + rv * rv);
          if (rr >= 1.0f)
            continue;
          float depth = (1.0f - rr) * o->b; /* px inside the outline, roughly */
          if (o->vesicle)
            v = depth < 1.3f ? 84.0f + 0.4f * illum : 150.0f + 0.5f * illum;
          else
            v = depth < 1.6f ? 80.0f + 0.4f * illum : 116.0f + 0.5f * illum;
          break;
        }
      }
      /* membrane ink with a soft 1 px edge; the label edge sits at its middle */
      float m = smoothstep(half + 0.5f, half - 0.5f, dist);
      v = v * (1.0f - m) + (58.0f + 0.4f * illum) * m;
      v += 16.0f * eng_rng_normal(&r); /* fine granular texture, softened by the blur */
      syn->a[y * W + x] = v;
      if (syn->labels)
        syn->labels[y * W + x] = dist < half ? 0 : 255;
    }
  }
}

static void
blur_h_rows(void *ctx, size_t y0, size_t y1)
{
  Synth *syn = ctx;
  long W = (long) syn->width;
  for (size_t y = y0; y < y1; y++) {
    const float *in = syn->a + y * (size_t) W;
    float *out = syn->b + y * (size_t) W;
    for (long x = 0; x < W; x++) {
      float acc = 0.0f;
      for (int k = -syn->kr; k <= syn->kr; k++)
        acc += syn->kernel[k + syn->kr] * in[eng_mirror(x + k, W)];
      out[x] = acc;
    }
  }
}

/* Vertical blur of b into a, then noise and quantization into the image. */
static void
blur_v_rows(void *ctx, size_t y0, size_t y1)
{
  Synth *syn = ctx;
  size_t W = syn->width;
  long H = (long) syn->height;
  for (size_t y = y0; y < y1; y++) {
    float *out = syn->a + y * W;
    for (size_t x = 0; x < W; x++)
      out[x] = 0.0f;
    for (int k = -syn->kr; k <= syn->kr; k++) {
      const float *in = syn->b + eng_mirror((long) y + k, H) * W;
      float t = syn->kernel[k + syn->kr];
      for (size_t x = 0; x < W; x++)
        out[x] += t * in[x];
    }
    EngRng r;
    eng_rng_derive(&r, syn->p->seed ^ ((uint64_t) TAG_NOISE << 56),
                   ((uint64_t) syn->slice << 24) ^ (uint64_t) y);
    for (size_t x = 0; x < W; x++) {
      float v = out[x] + syn->p->noise_sigma * eng_rng_normal(&r);
      v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
      syn->image[y * W + x] = (uint8_t) lrintf(v);
    }
  }
}

static void
synth_free(Synth *syn)
{
  free(syn->cells);
  free(syn->start);
  for (int f = 0; f < N_FIELDS; f++) {
    free(syn->field[f].col);
    free(syn->field[f].row);
  }
  free(syn->a);
  free(syn->b);
  free(syn->kernel);
}

EngStatus
eng_synth_slice(uint8_t *image, uint8_t *labels, const EngSynthParams *p, size_t slice,
                size_t width, size_t height, EngError *err)
{
  if (!image || !p)
    return eng_error_set(err, ENG_ERR_INVALID, "synthetic slice: no image buffer or parameters");
  if (width < 1 || height < 1 || width > MAX_SIZE || height > MAX_SIZE)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "synthetic slice: size %zux%zu outside 1..%d on each side", width,
                         height, MAX_SIZE);
  if (!(p->cell_size >= 12.0f && p->cell_size <= 1024.0f) || !(p->membrane_min >= 0.5f) ||
      !(p->membrane_max >= p->membrane_min) || p->membrane_max > 0.25f * p->cell_size ||
      !(p->organelles >= 0.0f) || !(p->blur_sigma >= 0.0f && p->blur_sigma <= 8.0f) ||
      !(p->noise_sigma >= 0.0f))
    return eng_error_set(err, ENG_ERR_INVALID,
                         "synthetic slice: parameters out of range (cell size %g must be "
                         "12..1024, membrane %g..%g px must be >= 0.5 and at most a quarter "
                         "of the cell size, blur %g must be 0..8)",
                         (double) p->cell_size, (double) p->membrane_min,
                         (double) p->membrane_max, (double) p->blur_sigma);

  Synth syn = { .p = p, .width = width, .height = height, .slice = slice,
                .image = image, .labels = labels };
  float s = p->cell_size;
  float margin = 0.25f * s; /* more than the warp can move a point (3 waves of <= 0.07 s) */
  syn.gx0 = (long) floorf(-margin / s) - SEARCH_R;
  syn.gy0 = (long) floorf(-margin / s) - SEARCH_R;
  syn.nbx = (long) floorf(((float) width + margin) / s) + SEARCH_R + 1 - syn.gx0;
  syn.nby = (long) floorf(((float) height + margin) / s) + SEARCH_R + 1 - syn.gy0;
  size_t nb = (size_t) syn.nbx * (size_t) syn.nby;
  syn.kr = (int) ceilf(3.0f * p->blur_sigma);
  syn.cells = malloc(nb * MAX_PER_BUCKET * sizeof *syn.cells);
  syn.start = malloc((nb + 1) * sizeof *syn.start);
  syn.a = malloc(width * height * sizeof *syn.a);
  syn.b = malloc(width * height * sizeof *syn.b);
  syn.kernel = malloc((size_t) (2 * syn.kr + 1) * sizeof *syn.kernel);
  int ok = syn.cells && syn.start && syn.a && syn.b && syn.kernel;
  for (int f = 0; f < N_FIELDS; f++) {
    syn.field[f].col = malloc(WAVES * width * 2 * sizeof(float));
    syn.field[f].row = malloc(WAVES * height * 2 * sizeof(float));
    ok = ok && syn.field[f].col && syn.field[f].row;
  }
  if (!ok) {
    synth_free(&syn);
    return eng_error_set(err, ENG_ERR_NOMEM, "synthetic slice: out of memory for %zux%zu",
                         width, height);
  }

  size_t nc = 0;
  for (long j = 0; j < syn.nby; j++)
    for (long i = 0; i < syn.nbx; i++) {
      syn.start[j * syn.nbx + i] = nc;
      nc += (size_t) bucket_cells(&syn.cells[nc], p, i + syn.gx0, j + syn.gy0, (float) slice);
    }
  syn.start[nb] = nc;
  for (int f = 0; f < N_FIELDS; f++)
    field_init(&syn.field[f], p, f, width, height, slice);

  float sum = 0.0f;
  for (int k = -syn.kr; k <= syn.kr; k++) {
    float sg = p->blur_sigma > 0.0f ? p->blur_sigma : 1.0f;
    syn.kernel[k + syn.kr] = expf(-0.5f * (float) (k * k) / (sg * sg));
    sum += syn.kernel[k + syn.kr];
  }
  for (int k = 0; k <= 2 * syn.kr; k++)
    syn.kernel[k] /= sum;

  eng_parallel_for(height, 8, render_rows, &syn);
  eng_parallel_for(height, 8, blur_h_rows, &syn);
  eng_parallel_for(height, 8, blur_v_rows, &syn);
  synth_free(&syn);
  return ENG_OK;
}

EngStatus
eng_synth_stack(uint8_t *image, uint8_t *labels, const EngSynthParams *p, size_t first,
                size_t count, size_t width, size_t height, EngError *err)
{
  for (size_t z = 0; z < count; z++) {
    EngStatus st = eng_synth_slice(image + z * width * height,
                                   labels ? labels + z * width * height : NULL, p, first + z,
                                   width, height, err);
    if (st != ENG_OK)
      return st;
  }
  return ENG_OK;
}
