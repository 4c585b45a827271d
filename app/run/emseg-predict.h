/* emseg-predict.h — whole-stack prediction shared by `emseg predict`, `emseg export-isbi`
 * and the GUI's export: reads slices through app/io, standardizes them, runs the model
 * (optionally Monte-Carlo dropout averaging) and hands back cell-interior probabilities
 * in the ISBI convention (1 = cell interior, 0 = membrane).
 *
 * Ownership: the model and stack are borrowed; output arrays are the caller's. */
#pragma once

#include <glib.h>

#include "eng-model.h"
#include "emseg-stack.h"

#define EMSEG_PREDICT_ERROR (emseg_predict_error_quark())
GQuark emseg_predict_error_quark(void);

typedef enum {
  EMSEG_PREDICT_ERROR_INPUT,   /* slice size does not fit the model, bad slice index */
  EMSEG_PREDICT_ERROR_ENGINE,  /* the engine failed (memory, numerics) */
  EMSEG_PREDICT_ERROR_CANCELLED,
} EmsegPredictError;

/* Called after each slice; return FALSE to cancel. */
typedef gboolean (*EmsegProgressFunc)(guint done, guint total, gpointer user_data);
/* Called within a slice after each forward pass but its last: the fraction of its passes
 * done (windows x transforms x samples; a big slice takes minutes). */
typedef void (*EmsegPassProgressFunc)(double fraction, gpointer user_data);

/* Takes one predicted slice (k-th of the call, stack slice `slice`) as it comes, so a long
 * stack need not be held whole: prob and std (NULL without MC) are the caller's one-plane
 * buffers, reused for the next slice (the sink may change them). FALSE + error stops the
 * prediction. */
typedef gboolean (*EmsegPredictSink)(guint k, guint slice, float *prob, const float *std,
                                     gpointer user_data, GError **error);

typedef struct {
  int mc_samples;     /* 1 = deterministic inference; > 1 = MC dropout average */
  gboolean tta;       /* average over flips and quarter turns (eng_predict_tta) */
  guint64 seed;       /* for MC dropout masks */
  EmsegProgressFunc progress;          /* may be NULL */
  EmsegPassProgressFunc pass_progress; /* may be NULL */
  gpointer progress_data;              /* for both */
  EmsegPredictSink sink;               /* may be NULL: see emseg_predict_slices */
  gpointer sink_data;
} EmsegPredictOptions;

void emseg_predict_options_init(EmsegPredictOptions *opts);

/* Counts a graph's forward passes over one slice (eng_graph_set_forward_hook) and calls
 * report with the fraction done after each pass but the slice's last: the one rule for
 * emseg_predict_slices and the engine thread's progress events. Lives as long as the
 * graph's hook points at it; report and data are borrowed. */
typedef struct {
  EmsegPassProgressFunc report;
  gpointer data;
  gsize done, total;
} EmsegPassCount;
void emseg_pass_count_attach(EmsegPassCount *count, EngGraph *graph,
                             EmsegPassProgressFunc report, gpointer data);
/* Before each slice: its passes as eng_predict_tiled will make them. */
void emseg_pass_count_start(EmsegPassCount *count, const EngGraph *graph, guint h, guint w,
                            guint margin, gboolean tta, int samples);

/* Slices of more than EMSEG_PREDICT_WINDOW² pixels are predicted in overlapping windows of
 * at most that side with EMSEG_PREDICT_MARGIN pixels of context (eng_predict_tiled): the
 * whole-slice inference graph of the Table 1 network takes about 650 MB per megapixel, so
 * a 4096² slice would need 10 GB. Measured on the shipped model (bench-tiles, 256² windows
 * on ISBI slices 20–24, a harder case than 1024²): margin 64 moved the probabilities by
 * 1e-4 on average and V_rand / V_info by at most 1e-4. $EMSEG_PREDICT_WINDOW sets another
 * side (tests; machines with little memory). */
#define EMSEG_PREDICT_WINDOW 1024
#define EMSEG_PREDICT_MARGIN 64

/* The graph size (*gh, *gw) to predict h × w slices with, mult the model's size multiple:
 * (h, w) rounded up to multiples of mult when the slice fits the window area, else windows
 * of the window side (or the rounded slice side where it is shorter); eng_predict_tiled
 * pads a slice up to a graph larger than it. *margin: the context to use, a multiple of
 * mult. */
void emseg_predict_window(guint h, guint w, guint mult, guint *gh, guint *gw, guint *margin);

/* A graph of that size then predicts a slice with eng_predict_tiled (eng-tiles.h), which
 * runs it once when the graph is the slice's size. */

/* Predicts slices[0..n_slices-1] of stack. prob: n_slices * width * height floats;
 * std (may be NULL): per-pixel standard deviation over MC samples, same size. With
 * opts->sink, prob and std are one plane each, handed to the sink after every slice. */
gboolean emseg_predict_slices(EngModel *model, EmsegStack *stack, const guint *slices,
                              guint n_slices, const EmsegPredictOptions *opts, float *prob,
                              float *std, GError **error);

/* Reads slice `index` as standardized floats (width * height), the network's input. */
gboolean emseg_read_standardized(EmsegStack *stack, guint index, float *out, GError **error);

/* Recomputes model's BN running statistics as plain averages over slices[0..n) of stack,
 * standardized as for prediction (training-mode forwards, no augmentation, no dropout:
 * eng_model_calibrate_bn), in tiles of at most EMSEG_BN_TILE² pixels so that big slices
 * fit in memory (a 512² slice is one tile). max_tiles > 0 caps the tiles used, chosen
 * evenly over all the slices' tiles; 0 uses every one. *n_tiles_out: how many. The weights
 * are untouched. Why it is useful beyond training: statistics recomputed over another
 * microscope's images (no labels needed) adapt the network to their contrast and noise —
 * see data/models/README.md, "Adapting to a stack". */
#define EMSEG_BN_TILE 512
/* The cap on tiles when a model is adapted to a stack to be predicted (the workbench's Adapt
 * Model to This Stack, `--adapt-bn`): 32 training-mode forwards of the Table 1 model take
 * about 15 s on two cores (30 ISBI slices: 13 s measured); a bound on the time, not a
 * measured point past which more tiles stop mattering. */
#define EMSEG_ADAPT_BN_TILES 32
/* Called on the calling thread after each tile's forward: done of total. */
typedef void (*EmsegTileProgress)(guint done, guint total, gpointer data);
/* cancel (may be NULL, borrowed) is polled between layers: raised, the call stops with
 * EMSEG_PREDICT_ERROR_CANCELLED and the model's statistics are partly recomputed (callers
 * adapt a copy). progress may be NULL. */
gboolean emseg_calibrate_bn_on_stack(EngModel *model, EmsegStack *stack, const guint *slices,
                                     guint n, guint max_tiles, atomic_int *cancel,
                                     EmsegTileProgress progress, gpointer progress_data,
                                     guint *n_tiles_out, GError **error);
/* The same over the slices slices_text names (emseg_parse_slices: NULL = all) of the stack
 * at images_path, every tile; *n_out: how many slices. Used by `emseg calibrate-bn` and
 * `emseg average`. */
gboolean emseg_calibrate_bn_on_slices(EngModel *model, const char *images_path,
                                      const char *slices_text, guint *n_out, GError **error);

/* Parses "0-19", "3", "0,2,5-7" into a sorted list of distinct indices < n_slices.
 * NULL text or "all" gives every slice. Returns a newly allocated array (g_free). */
guint *emseg_parse_slices(const char *text, guint n_slices, guint *n_out, GError **error);
