/* emseg-dataset.c — training / validation slices in memory (see emseg-dataset.h). */
#include "emseg-dataset.h"

#include <math.h>
#include <string.h>

#include "emseg-labels.h"
#include "emseg-predict.h"
#include "eng-preprocess.h"
#include "eng-synth.h"
#include "eng-train.h"

G_DEFINE_QUARK(emseg-dataset-error-quark, emseg_dataset_error)

static gsize
sample_size(EngPixelType type)
{
  return type == ENG_PIXEL_U8 ? 1 : type == ENG_PIXEL_U16 ? 2 : 4;
}

EmsegDataset *
emseg_dataset_new(guint width, guint height, guint n, EngPixelType type, const char *source)
{
  EmsegDataset *ds = g_new0(EmsegDataset, 1);
  gsize plane = (gsize) width * height;
  ds->width = width;
  ds->height = height;
  ds->n = n;
  ds->type = type;
  /* g_new0 aborts on overflow of n * plane, which is what we want for programmer input. */
  ds->samples = g_malloc0_n(plane * MAX(n, 1), sample_size(type));
  ds->mean = g_new0(double, MAX(n, 1));
  ds->scale = g_new0(double, MAX(n, 1));
  ds->labels = g_new0(guint8, plane * MAX(n, 1));
  ds->slice = g_new0(guint, MAX(n, 1));
  ds->n_labeled = g_new0(guint64, MAX(n, 1));
  for (guint i = 0; i < n; i++) {
    ds->slice[i] = i;
    ds->n_labeled[i] = plane;
  }
  ds->source = g_strdup(source ? source : "(memory)");
  return ds;
}

void
emseg_dataset_free(EmsegDataset *ds)
{
  if (!ds)
    return;
  g_free(ds->samples);
  g_free(ds->mean);
  g_free(ds->scale);
  g_free(ds->labels);
  g_free(ds->slice);
  g_free(ds->n_labeled);
  g_free(ds->source);
  g_free(ds);
}

gsize
emseg_dataset_plane(const EmsegDataset *ds)
{
  return (gsize) ds->width * ds->height;
}

/* Slice i's samples (not yet standardized). */
static guint8 *
samples_of(const EmsegDataset *ds, guint i)
{
  return ds->samples + (gsize) i * emseg_dataset_plane(ds) * sample_size(ds->type);
}

void
emseg_dataset_read_window(const EmsegDataset *ds, guint i, guint x0, guint y0, guint width,
                          guint height, float *out)
{
  g_return_if_fail(i < ds->n && x0 + width <= ds->width && y0 + height <= ds->height);
  gsize size = sample_size(ds->type);
  const guint8 *in = samples_of(ds, i);
  if (x0 == 0 && width == ds->width) { /* whole rows: one run */
    eng_standardize_apply(out, in + (gsize) y0 * width * size, ds->type, (gsize) width * height,
                          ds->mean[i], ds->scale[i]);
    return;
  }
  for (guint y = 0; y < height; y++)
    eng_standardize_apply(out + (gsize) y * width, in + ((gsize) (y0 + y) * ds->width + x0) * size,
                          ds->type, width, ds->mean[i], ds->scale[i]);
}

void
emseg_dataset_read_image(const EmsegDataset *ds, guint i, float *out)
{
  emseg_dataset_read_window(ds, i, 0, 0, ds->width, ds->height, out);
}

/* Measures slice i's samples for standardization; FALSE with err set on a non-finite one. */
static gboolean
measure(EmsegDataset *ds, guint i, EngError *err)
{
  EngStandardizeInfo info;
  if (eng_standardize_stats(samples_of(ds, i), ds->type, ds->width, ds->height, &info,
                            &ds->scale[i], err) != ENG_OK)
    return FALSE;
  ds->mean[i] = info.mean;
  return TRUE;
}

guint8 *
emseg_dataset_labels(const EmsegDataset *ds, guint i)
{
  g_return_val_if_fail(i < ds->n, NULL);
  return ds->labels + (gsize) i * emseg_dataset_plane(ds);
}

static guint64
count_labeled(const guint8 *labels, gsize count)
{
  guint64 n = 0;
  for (gsize i = 0; i < count; i++)
    n += labels[i] == ENG_LABEL_MEMBRANE || labels[i] == ENG_LABEL_CELL;
  return n;
}

EmsegDataset *
emseg_dataset_crop_labelled(const EmsegDataset *ds, guint height, guint width, guint step)
{
  height = MIN(height, ds->height);
  width = MIN(width, ds->width);
  step = MAX(step, 1u);
  EmsegDataset *out = emseg_dataset_new(width, height, ds->n, ds->type, ds->source);
  gsize size = sample_size(ds->type);
  /* labelled pixels per row segment are summed through a (height + 1, width + 1) table */
  g_autofree guint64 *sat = g_new(guint64, (gsize) (ds->height + 1) * (ds->width + 1));
  for (guint i = 0; i < ds->n; i++) {
    const guint8 *lab = emseg_dataset_labels(ds, i);
    gsize sw = ds->width + 1;
    memset(sat, 0, sw * sizeof *sat);
    for (guint y = 0; y < ds->height; y++) {
      guint64 row = 0;
      sat[(y + 1) * sw] = 0;
      for (guint x = 0; x < ds->width; x++) {
        guint8 v = lab[(gsize) y * ds->width + x];
        row += v == ENG_LABEL_MEMBRANE || v == ENG_LABEL_CELL;
        sat[(y + 1) * sw + x + 1] = sat[y * sw + x + 1] + row;
      }
    }
    guint best_y = 0, best_x = 0;
    guint64 best = 0;
    double best_off = G_MAXDOUBLE;
    for (guint y0 = 0; y0 + height <= ds->height; y0 += step)
      for (guint x0 = 0; x0 + width <= ds->width; x0 += step) {
        guint64 n = sat[(y0 + height) * sw + x0 + width] - sat[y0 * sw + x0 + width] -
                    sat[(y0 + height) * sw + x0] + sat[y0 * sw + x0];
        double off = fabs(y0 + height / 2.0 - ds->height / 2.0) +
                     fabs(x0 + width / 2.0 - ds->width / 2.0);
        if (n > best || (n == best && off < best_off)) {
          best = n;
          best_off = off;
          best_y = y0;
          best_x = x0;
        }
      }
    for (guint y = 0; y < height; y++) {
      gsize from = (gsize) (best_y + y) * ds->width + best_x, to = (gsize) y * width;
      memcpy(samples_of(out, i) + to * size, samples_of(ds, i) + from * size, width * size);
      memcpy(emseg_dataset_labels(out, i) + to, emseg_dataset_labels(ds, i) + from, width);
    }
    out->mean[i] = ds->mean[i]; /* the whole slice's standardization */
    out->scale[i] = ds->scale[i];
    out->slice[i] = ds->slice[i];
  }
  emseg_dataset_recount(out);
  return out;
}

void
emseg_dataset_recount(EmsegDataset *ds)
{
  for (guint i = 0; i < ds->n; i++)
    ds->n_labeled[i] = count_labeled(emseg_dataset_labels(ds, i), emseg_dataset_plane(ds));
}

static EngPixelType
pixel_type(EmsegSampleType t, gboolean *ok)
{
  *ok = TRUE;
  switch (t) {
  case EMSEG_SAMPLE_U8:
    return ENG_PIXEL_U8;
  case EMSEG_SAMPLE_U16:
    return ENG_PIXEL_U16;
  case EMSEG_SAMPLE_F32:
    return ENG_PIXEL_F32;
  default:
    *ok = FALSE;
    return ENG_PIXEL_F32;
  }
}

EmsegDataset *
emseg_dataset_from_stacks(EmsegStack *images, EmsegStack *labels, const guint *slices,
                          guint n, GError **error)
{
  guint w = emseg_stack_get_width(images), h = emseg_stack_get_height(images);
  if (emseg_stack_get_width(labels) != w || emseg_stack_get_height(labels) != h) {
    g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT,
                "%s is %ux%u but %s is %ux%u; they must match", emseg_stack_get_path(images),
                w, h, emseg_stack_get_path(labels), emseg_stack_get_width(labels),
                emseg_stack_get_height(labels));
    return NULL;
  }
  /* The samples as read where the engine reads the type (8-bit stacks keep a byte per
   * pixel), other types as floats; standardized the same either way. */
  gboolean raw_ok;
  EngPixelType pt = pixel_type(emseg_stack_get_sample_type(images), &raw_ok);
  g_autoptr(EmsegDataset) ds = emseg_dataset_new(w, h, n, pt, emseg_stack_get_path(images));
  for (guint i = 0; i < n; i++) {
    guint s = slices[i];
    ds->slice[i] = s;
    if (s >= emseg_stack_get_n_slices(images) || s >= emseg_stack_get_n_slices(labels)) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT,
                  "slice %u requested, but %s has %u slices and %s has %u label slices", s,
                  emseg_stack_get_path(images), emseg_stack_get_n_slices(images),
                  emseg_stack_get_path(labels), emseg_stack_get_n_slices(labels));
      return NULL;
    }
    if (!(raw_ok ? emseg_stack_read_raw(images, s, samples_of(ds, i), error)
                 : emseg_stack_read_float(images, s, (float *) samples_of(ds, i), error)) ||
        !emseg_labels_read(labels, s, emseg_dataset_labels(ds, i), error))
      return NULL;
    EngError err;
    if (!measure(ds, i, &err)) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_ENGINE, "%s, slice %u: %s",
                  emseg_stack_get_path(images), s, err.message);
      return NULL;
    }
    ds->n_labeled[i] = count_labeled(emseg_dataset_labels(ds, i), emseg_dataset_plane(ds));
    if (ds->n_labeled[i] == 0) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT,
                  "%s, slice %u: no labeled pixels (expected 0 = membrane, 255 = cell)",
                  emseg_stack_get_path(labels), s);
      return NULL;
    }
  }
  return g_steal_pointer(&ds);
}

EmsegDataset *
emseg_dataset_from_project(EmsegProject *project, gint64 stack_id, const guint *slices,
                           guint n, GError **error)
{
  g_auto(EmsegProjectStack) st = { 0 };
  if (!emseg_project_get_stack(project, stack_id, &st, error))
    return NULL;
  g_autoptr(GArray) labeled = NULL;
  if (!slices) {
    labeled = emseg_project_labeled_slices(project, stack_id, error);
    if (!labeled)
      return NULL;
    slices = (const guint *) labeled->data;
    n = labeled->len;
  }
  g_autofree char *source =
      g_strdup_printf("%s, stack '%s'", emseg_project_get_path(project), st.name);
  gboolean raw_ok;
  EngPixelType pt = pixel_type(st.type, &raw_ok);
  g_autoptr(EmsegDataset) ds = emseg_dataset_new(st.width, st.height, n, pt, source);
  for (guint i = 0; i < n; i++) {
    guint s = slices[i];
    ds->slice[i] = s;
    if (s >= st.n_slices) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT,
                  "%s: slice %u requested, the stack has %u", source, s, st.n_slices);
      return NULL;
    }
    EngError err;
    /* The raw samples where the engine reads the type, so 16-bit data keeps its precision
     * (and 8-bit a byte per pixel); other integer types go through float. */
    if (!(raw_ok ? emseg_project_read_slice(project, stack_id, s, samples_of(ds, i), error)
                 : emseg_project_read_slice_float(project, stack_id, s,
                                                  (float *) samples_of(ds, i), error)))
      return NULL;
    if (!measure(ds, i, &err)) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_ENGINE, "%s, slice %u: %s",
                  source, s, err.message);
      return NULL;
    }
    guint64 n_lab = 0;
    if (!emseg_project_read_mask(project, stack_id, s, emseg_dataset_labels(ds, i), &n_lab,
                                 error))
      return NULL;
    ds->n_labeled[i] = n_lab;
    if (n_lab == 0) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_INPUT,
                  "%s, slice %u: no labeled pixels; paint membrane or cell first", source, s);
      return NULL;
    }
  }
  return g_steal_pointer(&ds);
}

EmsegDataset *
emseg_dataset_synthetic(guint64 seed, guint first, guint n, guint size, GError **error)
{
  g_autofree char *source = g_strdup_printf("synthetic stack (seed %" G_GUINT64_FORMAT ")", seed);
  g_autoptr(EmsegDataset) ds = emseg_dataset_new(size, size, n, ENG_PIXEL_U8, source);
  EngSynthParams p;
  eng_synth_params_init(&p, seed);
  gsize plane = emseg_dataset_plane(ds);
  for (guint i = 0; i < n; i++) {
    EngError err;
    ds->slice[i] = first + i;
    if (eng_synth_slice(samples_of(ds, i), emseg_dataset_labels(ds, i), &p, first + i, size,
                        size, &err) != ENG_OK ||
        !measure(ds, i, &err)) {
      g_set_error(error, EMSEG_DATASET_ERROR, EMSEG_DATASET_ERROR_ENGINE, "%s, slice %u: %s",
                  source, first + i, err.message);
      return NULL;
    }
    ds->n_labeled[i] = count_labeled(emseg_dataset_labels(ds, i), plane);
  }
  return g_steal_pointer(&ds);
}
