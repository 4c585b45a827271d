/* emseg-volume.c — allocation and bookkeeping of the workbench's stack, and the image
 * planes and masks of project volumes read on demand (see the header). Sizes are checked for
 * overflow before anything is allocated, so a corrupt header that claims a
 * 100000×100000×1000 stack gives an error message, not a crash. */
#include "emseg-volume.h"

#include <gio/gio.h>
#include <math.h>
#include <string.h>

#include "emseg-labels.h"
#include "emseg-stack.h"
#include "eng-synth.h"

G_DEFINE_QUARK (emseg-volume-error-quark, emseg_volume_error)

static gboolean
checked_plane_count (guint width, guint height, guint n_slices, gsize *out, GError **error)
{
  gsize plane;
  gsize total;

  if (width == 0 || height == 0 || n_slices == 0)
    {
      g_set_error (error, emseg_volume_error_quark (), 1,
                   "Stack size %u×%u×%u is empty: every dimension must be at least 1",
                   width, height, n_slices);
      return FALSE;
    }
  if (!g_size_checked_mul (&plane, width, height) ||
      !g_size_checked_mul (&total, plane, n_slices) ||
      total > G_MAXSIZE / sizeof (float))
    {
      g_set_error (error, emseg_volume_error_quark (), 2,
                   "Stack size %u×%u×%u is too large to hold in memory",
                   width, height, n_slices);
      return FALSE;
    }
  *out = total;
  return TRUE;
}

/* A volume with, unless lazy, all-zero image and all-unlabeled masks; a lazy one (read from
 * a project) allocates only its per-slice plane pointers. */
static EmsegVolume *
volume_alloc (guint width, guint height, guint n_slices, gboolean lazy, GError **error)
{
  gsize total;
  EmsegVolume *v;

  if (!checked_plane_count (width, height, n_slices, &total, error))
    return NULL;

  v = g_new0 (EmsegVolume, 1);
  g_atomic_ref_count_init (&v->ref);
  v->width = width;
  v->height = height;
  v->n_slices = n_slices;
  v->image = lazy ? NULL : g_try_new0 (float, total);
  v->labels = lazy ? NULL : g_try_malloc (total);
  v->planes = lazy ? g_new0 (float *, n_slices) : NULL;
  v->masks = lazy ? g_new0 (guint8 *, n_slices) : NULL;
  v->mask_gen = lazy ? g_new0 (guint, n_slices) : NULL;
  v->pred_order = g_new (guint, n_slices);
  v->unc_order = g_new (guint, n_slices);
  v->pred_capacity = (guint) MIN (MAX (EMSEG_VOLUME_PREDICTION_BUDGET / (total / n_slices * sizeof (float)), 4),
                                  n_slices);
  if (!lazy && (v->image == NULL || v->labels == NULL))
    {
      g_set_error (error, emseg_volume_error_quark (), 3,
                   "Not enough memory for a %u×%u×%u stack (%.1f MiB)",
                   width, height, n_slices, total * 5.0 / (1024.0 * 1024.0));
      emseg_volume_unref (v);
      return NULL;
    }
  if (!lazy)
    memset (v->labels, EMSEG_LABEL_UNLABELED, total);
  v->image_min = 0.0f;
  v->image_max = 1.0f;
  return v;
}

EmsegVolume *
emseg_volume_new (guint width, guint height, guint n_slices, GError **error)
{
  return volume_alloc (width, height, n_slices, FALSE, error);
}

/* Frees every plane of a per-slice array (which stays allocated). */
static void
free_planes (EmsegVolume *volume, float **planes)
{
  for (guint z = 0; planes != NULL && z < volume->n_slices; z++)
    g_clear_pointer (&planes[z], g_free);
}

EmsegVolume *
emseg_volume_ref (EmsegVolume *volume)
{
  g_atomic_ref_count_inc (&volume->ref);
  return volume;
}

void
emseg_volume_unref (EmsegVolume *volume)
{
  if (volume == NULL || !g_atomic_ref_count_dec (&volume->ref))
    return;
  g_free (volume->image);
  g_free (volume->labels);
  free_planes (volume, volume->prediction);
  g_free (volume->prediction);
  g_free (volume->pred_order);
  g_free (volume->unc_order);
  free_planes (volume, volume->uncertainty);
  g_free (volume->uncertainty);
  free_planes (volume, volume->planes);
  g_free (volume->planes);
  for (guint z = 0; volume->masks != NULL && z < volume->n_slices; z++)
    g_free (volume->masks[z]);
  g_free (volume->masks);
  g_free (volume->mask_gen);
  g_clear_pointer (&volume->source, emseg_project_close);
  g_free (volume);
}

gsize
emseg_volume_plane_size (const EmsegVolume *volume)
{
  return (gsize) volume->width * volume->height;
}

/* The sample range of n values, into *lo / *hi (widened, not reset). */
static void
widen_range (const float *s, gsize n, float *lo, float *hi)
{
  for (gsize i = 0; i < n; i++)
    {
      if (!isfinite (s[i]))
        continue;
      *lo = MIN (*lo, s[i]);
      *hi = MAX (*hi, s[i]);
    }
}

static void
set_range (EmsegVolume *volume, float lo, float hi)
{
  if (!(lo < hi))
    {
      /* A constant (or all-NaN) stack still needs a non-empty window to display. */
      lo = isfinite (lo) ? lo : 0.0f;
      hi = lo + 1.0f;
    }
  volume->image_min = lo;
  volume->image_max = hi;
}

void
emseg_volume_update_range (EmsegVolume *volume)
{
  float lo = INFINITY;
  float hi = -INFINITY;

  g_return_if_fail (volume->image != NULL);
  widen_range (volume->image, emseg_volume_plane_size (volume) * volume->n_slices, &lo, &hi);
  set_range (volume, lo, hi);
}

/* Copies src in as the slice's plane of a per-slice array (*planes allocated on first use;
 * prediction, uncertainty). */
static void
copy_plane (EmsegVolume *volume, float ***planes, guint slice, const float *src)
{
  gsize plane = emseg_volume_plane_size (volume);

  g_return_if_fail (slice < volume->n_slices);
  if (*planes == NULL)
    *planes = g_new0 (float *, volume->n_slices);
  if ((*planes)[slice] == NULL)
    (*planes)[slice] = g_new (float, plane);
  memcpy ((*planes)[slice], src, plane * sizeof (float));
}

static guint lru_touch (guint *order, guint *n, guint capacity, guint slice);

/* Predictions and uncertainty planes are each kept under the budget (pred_capacity planes),
 * their own order (least recently set or shown first) saying which to drop. */

/* Copies src in as the slice's plane of *planes, the most recent in order[0..*n); drops the
 * least recently used one when the budget is full. */
static void
keep_plane (EmsegVolume *volume, float ***planes, guint *order, guint *n, guint slice,
            const float *src)
{
  guint out;

  g_return_if_fail (slice < volume->n_slices);
  out = lru_touch (order, n, volume->pred_capacity, slice);
  if (out != G_MAXUINT)
    g_clear_pointer (&(*planes)[out], g_free);
  copy_plane (volume, planes, slice, src);
}

/* The slice's kept plane, NULL if none; marks it the most recent. */
static float *
kept_plane (EmsegVolume *volume, float **planes, guint *order, guint *n, guint slice)
{
  g_return_val_if_fail (slice < volume->n_slices, NULL);
  if (planes == NULL || planes[slice] == NULL)
    return NULL;
  lru_touch (order, n, volume->pred_capacity, slice); /* listed: no eviction */
  return planes[slice];
}

void
emseg_volume_set_prediction (EmsegVolume *volume, guint slice, const float *prob)
{
  keep_plane (volume, &volume->prediction, volume->pred_order, &volume->n_pred, slice, prob);
}

const float *
emseg_volume_uncertainty_plane (EmsegVolume *volume, guint slice)
{
  return kept_plane (volume, volume->uncertainty, volume->unc_order, &volume->n_unc, slice);
}

void
emseg_volume_set_uncertainty (EmsegVolume *volume, guint slice, const float *std)
{
  keep_plane (volume, &volume->uncertainty, volume->unc_order, &volume->n_unc, slice, std);
}

void
emseg_volume_clear_predictions (EmsegVolume *volume)
{
  free_planes (volume, volume->prediction);
  volume->n_pred = 0;
}

void
emseg_volume_clear_uncertainty (EmsegVolume *volume)
{
  free_planes (volume, volume->uncertainty);
  volume->n_unc = 0;
}

/* ---- the caches' order: slices least recently used first ------------------------- */

/* Removes slice from order[0..*n); whether it was there. */
static gboolean
lru_remove (guint *order, guint *n, guint slice)
{
  for (guint i = 0; i < *n; i++)
    if (order[i] == slice)
      {
        memmove (&order[i], &order[i + 1], (*n - i - 1) * sizeof (guint));
        (*n)--;
        return TRUE;
      }
  return FALSE;
}

/* Moves (or adds) slice to the most recent end of order; when a new one would overflow
 * capacity the least recently used slice leaves and is returned, else G_MAXUINT. */
static guint
lru_touch (guint *order, guint *n, guint capacity, guint slice)
{
  guint evicted = G_MAXUINT;

  if (!lru_remove (order, n, slice) && *n == capacity)
    {
      evicted = order[0];
      lru_remove (order, n, evicted);
    }
  order[(*n)++] = slice;
  return evicted;
}

static void
touch_plane (EmsegVolume *v, guint slice)
{
  guint out = lru_touch (v->recent, &v->n_recent, EMSEG_VOLUME_CACHED_PLANES, slice);

  if (out != G_MAXUINT)
    g_clear_pointer (&v->planes[out], g_free);
}

/* A project volume's mask becomes (or stays) clean, most recently used; only clean masks
 * are ever evicted. */
static void
touch_mask (EmsegVolume *v, guint slice)
{
  guint out = lru_touch (v->clean_masks, &v->n_clean_masks, EMSEG_VOLUME_CACHED_MASKS, slice);

  if (out != G_MAXUINT)
    g_clear_pointer (&v->masks[out], g_free);
}

/* With the image cache full, the plane a new one would evict, taken out of the cache so
 * the read can fill its buffer: memory the process has touched already. A fresh 64 MB
 * buffer made a 4096² read on a prefetch worker take 0.24 s against 0.07 s (a quarter of
 * the worker's time went to zeroing new pages); NULL while the cache has room. */
static float *
take_lru_plane (EmsegVolume *v)
{
  guint lru;

  if (v->n_recent < EMSEG_VOLUME_CACHED_PLANES)
    return NULL;
  lru = v->recent[0];
  lru_remove (v->recent, &v->n_recent, lru);
  return g_steal_pointer (&v->planes[lru]);
}

/* A plane just read becomes the slice's (a project volume's cache), most recently used. */
static void
insert_plane (EmsegVolume *v, guint slice, float *plane)
{
  touch_plane (v, slice); /* may evict another plane, never this one: it is not yet listed */
  v->planes[slice] = plane;
}

const float *
emseg_volume_image_plane (EmsegVolume *volume, guint slice)
{
  g_return_val_if_fail (slice < volume->n_slices, NULL);
  if (volume->image != NULL)
    return volume->image + emseg_volume_plane_size (volume) * slice;
  if (volume->planes[slice] == NULL)
    {
      g_autoptr (GError) error = NULL;
      float *plane = take_lru_plane (volume);

      if (plane == NULL)
        plane = g_new (float, emseg_volume_plane_size (volume));
      if (!emseg_project_read_slice_float (volume->source, volume->stack_id, slice, plane, &error))
        {
          g_warning ("slice %u: %s; it shows as zeros", slice, error->message);
          memset (plane, 0, emseg_volume_plane_size (volume) * sizeof (float));
        }
      insert_plane (volume, slice, plane);
    }
  else
    touch_plane (volume, slice);
  return volume->planes[slice];
}

/* A project volume's mask, read from its connection if not loaded (not yet listed in the
 * cache's order: the caller decides whether it is clean). */
static guint8 *
load_mask (EmsegVolume *v, guint slice, gboolean *was_loaded)
{
  *was_loaded = v->masks[slice] != NULL;
  if (v->masks[slice] == NULL)
    {
      g_autoptr (GError) error = NULL;
      guint8 *plane = g_new (guint8, emseg_volume_plane_size (v));

      if (!emseg_project_read_mask (v->source, v->stack_id, slice, plane, NULL, &error))
        {
          g_warning ("slice %u: %s; its mask shows as unlabeled", slice, error->message);
          memset (plane, EMSEG_LABEL_UNLABELED, emseg_volume_plane_size (v));
        }
      v->masks[slice] = plane;
    }
  return v->masks[slice];
}

/* A slice's mask, to read or to edit: in a project volume, a mask handed out for editing
 * leaves the order of clean masks (never evicted) until emseg_volume_reload_mask; one read
 * becomes the most recently used, unless it is out for editing. */
static guint8 *
mask_plane (EmsegVolume *volume, guint slice, gboolean edit)
{
  gboolean was_loaded;
  guint8 *plane;

  g_return_val_if_fail (slice < volume->n_slices, NULL);
  if (volume->labels != NULL)
    return volume->labels + emseg_volume_plane_size (volume) * slice;
  plane = load_mask (volume, slice, &was_loaded);
  if (edit)
    lru_remove (volume->clean_masks, &volume->n_clean_masks, slice);
  else if (!was_loaded || lru_remove (volume->clean_masks, &volume->n_clean_masks, slice))
    touch_mask (volume, slice);
  return plane;
}

const guint8 *
emseg_volume_labels (EmsegVolume *volume, guint slice)
{
  return mask_plane (volume, slice, FALSE);
}

guint8 *
emseg_volume_label_plane (EmsegVolume *volume, guint slice)
{
  return mask_plane (volume, slice, TRUE);
}

/* ---- prefetching on a worker thread ----------------------------------------------- */

typedef struct {
  EmsegVolume *volume; /* a reference, dropped on the main thread (prefetch_done) */
  char *path;
  gint64 stack_id;
  guint slice;
  gsize n;
  gboolean want_plane, want_mask;
  float *plane;        /* the samples, NULL when they could not be read */
  guint8 *mask;        /* the mask, NULL when not wanted or not read */
  guint mask_gen;      /* the slice's mask_gen when the read was asked for */
} Prefetch;

static void
prefetch_free (gpointer data)
{
  Prefetch *pf = data;

  g_free (pf->path);
  g_free (pf->plane);
  g_free (pf->mask);
  g_free (pf);
}

/* Worker thread: only pf's own fields and a connection of its own are touched. */
static void
prefetch_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  Prefetch *pf = data;
  g_autoptr (GError) error = NULL;
  EmsegProject *p = emseg_project_open (pf->path, EMSEG_PROJECT_OPEN_READ_ONLY | EMSEG_PROJECT_OPEN_SKIP_CHECK,
                                        &error);

  (void) source;
  (void) cancellable;
  if (p != NULL)
    {
      if (pf->want_plane && pf->plane == NULL)
        pf->plane = g_try_new (float, pf->n);
      if (pf->plane != NULL && !emseg_project_read_slice_float (p, pf->stack_id, pf->slice, pf->plane, &error))
        g_clear_pointer (&pf->plane, g_free);
      if (pf->want_mask)
        pf->mask = g_try_new (guint8, pf->n);
      if (pf->mask != NULL && !emseg_project_read_mask (p, pf->stack_id, pf->slice, pf->mask, NULL, NULL))
        g_clear_pointer (&pf->mask, g_free);
      emseg_project_close (p);
    }
  g_task_return_boolean (task, TRUE);
}

/* Main thread: a plane still missing takes the read one (a synchronous read may have
 * been faster); a failed read is left to emseg_volume_image_plane, which warns. */
static void
prefetch_done (GObject *source, GAsyncResult *result, gpointer data)
{
  Prefetch *pf = g_task_get_task_data (G_TASK (result));
  EmsegVolume *v = pf->volume;

  (void) source;
  (void) data;
  for (guint i = 0; i < v->n_prefetching; i++)
    if (v->prefetching[i] == pf->slice)
      {
        v->prefetching[i] = v->prefetching[--v->n_prefetching];
        break;
      }
  if (pf->plane != NULL && v->planes[pf->slice] == NULL)
    insert_plane (v, pf->slice, g_steal_pointer (&pf->plane));
  /* a mask read before a reload of the slice (a stroke, undo or import) may be stale */
  if (pf->mask != NULL && v->masks[pf->slice] == NULL && v->mask_gen[pf->slice] == pf->mask_gen)
    {
      v->masks[pf->slice] = g_steal_pointer (&pf->mask);
      touch_mask (v, pf->slice);
    }
  pf->volume = NULL;
  emseg_volume_unref (v);
}

void
emseg_volume_prefetch (EmsegVolume *volume, guint slice)
{
  g_autoptr (GTask) task = NULL;
  Prefetch *pf;

  if (volume->source == NULL || slice >= volume->n_slices ||
      (volume->planes[slice] != NULL && volume->masks[slice] != NULL) ||
      volume->n_prefetching >= EMSEG_VOLUME_PREFETCH_READS)
    return;
  for (guint i = 0; i < volume->n_prefetching; i++)
    if (volume->prefetching[i] == slice)
      return;
  pf = g_new0 (Prefetch, 1);
  pf->volume = emseg_volume_ref (volume);
  pf->path = g_strdup (emseg_project_get_path (volume->source));
  pf->stack_id = volume->stack_id;
  pf->slice = slice;
  pf->n = emseg_volume_plane_size (volume);
  pf->want_plane = volume->planes[slice] == NULL;
  pf->plane = pf->want_plane ? take_lru_plane (volume) : NULL;
  pf->want_mask = volume->masks[slice] == NULL;
  pf->mask_gen = volume->mask_gen[slice];
  volume->prefetching[volume->n_prefetching++] = slice;
  task = g_task_new (NULL, NULL, prefetch_done, NULL);
  g_task_set_task_data (task, pf, prefetch_free);
  g_task_run_in_thread (task, prefetch_thread);
}

float *
emseg_volume_prediction_plane (EmsegVolume *volume, guint slice)
{
  return kept_plane (volume, volume->prediction, volume->pred_order, &volume->n_pred, slice);
}

const char *
emseg_label_to_string (guint8 label)
{
  switch (label)
    {
    case EMSEG_LABEL_MEMBRANE:
      return "membrane";
    case EMSEG_LABEL_CELL:
      return "cell";
    case EMSEG_LABEL_UNLABELED:
      return "unlabeled";
    default:
      return "other";
    }
}

EmsegVolume *
emseg_volume_new_from_stack (const char *image_path, const char *labels_path, GError **error)
{
  g_autoptr (EmsegStack) images = NULL;
  g_autoptr (EmsegStack) labels = NULL;
  g_autoptr (EmsegVolume) v = NULL;

  images = emseg_stack_open (image_path, error);
  if (images == NULL)
    return NULL;
  if (labels_path != NULL)
    {
      labels = emseg_stack_open (labels_path, error);
      if (labels == NULL)
        return NULL;
      if (emseg_stack_get_width (labels) != emseg_stack_get_width (images) ||
          emseg_stack_get_height (labels) != emseg_stack_get_height (images) ||
          emseg_stack_get_n_slices (labels) != emseg_stack_get_n_slices (images))
        {
          g_set_error (error, emseg_volume_error_quark (), 4,
                       "Labels %s are %u×%u×%u but images %s are %u×%u×%u: they must match",
                       labels_path, emseg_stack_get_width (labels), emseg_stack_get_height (labels),
                       emseg_stack_get_n_slices (labels), image_path, emseg_stack_get_width (images),
                       emseg_stack_get_height (images), emseg_stack_get_n_slices (images));
          return NULL;
        }
    }
  v = emseg_volume_new (emseg_stack_get_width (images), emseg_stack_get_height (images),
                        emseg_stack_get_n_slices (images), error);
  if (v == NULL)
    return NULL;
  for (guint z = 0; z < v->n_slices; z++)
    {
      if (!emseg_stack_read_float (images, z, v->image + emseg_volume_plane_size (v) * z, error))
        return NULL;
      if (labels != NULL && !emseg_labels_read (labels, z, emseg_volume_label_plane (v, z), error))
        return NULL;
    }
  emseg_volume_update_range (v);
  return g_steal_pointer (&v);
}

EmsegVolume *
emseg_volume_new_synthetic (guint width, guint height, guint n_slices, guint64 seed,
                            guint n_labelled, GError **error)
{
  g_autoptr (EmsegVolume) v = emseg_volume_new (width, height, n_slices, error);
  g_autofree guint8 *image = NULL;
  EngSynthParams params;
  EngError err = { 0 };
  gsize total;

  if (v == NULL)
    return NULL;
  total = emseg_volume_plane_size (v) * n_slices;
  image = g_try_malloc (total);
  if (image == NULL)
    {
      g_set_error (error, emseg_volume_error_quark (), 3, "Not enough memory for the demo stack");
      return NULL;
    }
  eng_synth_params_init (&params, seed);
  if (eng_synth_stack (image, v->labels, &params, 0, n_slices, width, height, &err) != ENG_OK)
    {
      g_set_error (error, emseg_volume_error_quark (), 5, "Could not generate the demo stack: %s",
                   err.message);
      return NULL;
    }
  for (gsize i = 0; i < total; i++)
    v->image[i] = image[i];
  n_labelled = MIN (n_labelled, n_slices);
  memset (v->labels + emseg_volume_plane_size (v) * n_labelled, EMSEG_LABEL_UNLABELED,
          emseg_volume_plane_size (v) * (n_slices - n_labelled));
  emseg_volume_update_range (v);
  return g_steal_pointer (&v);
}

EmsegVolume *
emseg_volume_new_from_project (EmsegProject *project, gint64 stack_id, GError **error)
{
  g_auto (EmsegProjectStack) info = { 0 };
  g_autoptr (EmsegVolume) v = NULL;
  float lo = INFINITY, hi = -INFINITY;
  guint n_sampled;

  if (!emseg_project_get_stack (project, stack_id, &info, error))
    return NULL;
  v = volume_alloc (info.width, info.height, info.n_slices, TRUE, error);
  if (v == NULL)
    return NULL;
  /* read-only and unchecked: the caller's connection checked the file when it opened it */
  v->source = emseg_project_open (emseg_project_get_path (project),
                                  EMSEG_PROJECT_OPEN_READ_ONLY | EMSEG_PROJECT_OPEN_SKIP_CHECK, error);
  if (v->source == NULL)
    return NULL;
  v->stack_id = stack_id;
  /* The display window from up to 5 slices spread over the stack (first, last and between),
   * which stay cached: reading every slice is what took the time. */
  n_sampled = MIN (info.n_slices, 5u);
  for (guint k = 0; k < n_sampled; k++)
    {
      guint z = n_sampled > 1 ? (guint) ((guint64) k * (info.n_slices - 1) / (n_sampled - 1)) : 0;
      float *plane = g_new (float, emseg_volume_plane_size (v));

      if (!emseg_project_read_slice_float (project, stack_id, z, plane, error))
        {
          g_free (plane);
          return NULL;
        }
      insert_plane (v, z, plane);
      widen_range (plane, emseg_volume_plane_size (v), &lo, &hi);
    }
  set_range (v, lo, hi);
  return g_steal_pointer (&v);
}

gboolean
emseg_volume_reload_mask (EmsegVolume *volume, EmsegProject *project, gint64 stack_id,
                          guint slice, gboolean *changed, GError **error)
{
  gsize n = emseg_volume_plane_size (volume);
  g_autofree guint8 *stored = NULL;
  guint8 *plane;

  g_return_val_if_fail (slice < volume->n_slices, FALSE);
  if (changed != NULL)
    *changed = FALSE;
  if (volume->mask_gen != NULL)
    volume->mask_gen[slice]++; /* a mask prefetched before now may predate the change */
  if (volume->labels == NULL && volume->masks[slice] == NULL)
    return TRUE; /* read from the store when next shown */
  stored = g_malloc (n);
  if (!emseg_project_read_mask (project, stack_id, slice, stored, NULL, error))
    return FALSE;
  plane = volume->labels != NULL ? volume->labels + n * slice : volume->masks[slice];
  if (memcmp (plane, stored, n) != 0)
    {
      memcpy (plane, stored, n);
      if (changed != NULL)
        *changed = TRUE;
    }
  if (volume->labels == NULL)
    touch_mask (volume, slice); /* equal to the store again: clean, evictable */
  return TRUE;
}
