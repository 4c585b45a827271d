/* emseg-gamma.h — the export exponent γ: a submission writes P(cell)^γ instead of P(cell).
 *
 * Why: the ISBI 2012 scorer thresholds a submission only at 0.0, 0.1, ..., 0.9 and keeps the
 * best V_rand. A gap of one pixel in a membrane merges two cells, and a network trained with
 * a pixel loss often marks such gaps with P(cell) between 0.9 and 0.99: no threshold the
 * scorer tries closes them. Writing p^γ moves the scorer's threshold t to t^(1/γ) on the
 * network's scale (γ = 4: 0.56 ... 0.974), so it can find the threshold the map needs. The
 * transform is monotone, so the ranking of pixels, the pixel error at matched thresholds and
 * any threshold-free use of the map are unchanged. γ is chosen on labelled validation slices
 * (emseg_gamma_sweep; `emseg calibrate-gamma`) and stored in the model's metadata as
 * `export_gamma=`, which `emseg export-isbi` uses unless told otherwise.
 *
 * Errors are EMSEG_PREDICT_ERROR_INPUT (bad exponent, unscorable labels) or _ENGINE (memory).
 * Ownership: every buffer is the caller's, except the parsed list (see there). */
#pragma once

#include <glib.h>

#include "emseg-predict.h"
#include "eng-metrics.h"

/* Accepted range: below 1 the map moves the other way (towards membrane-is-cell); above 64
 * every value under 0.95 is flushed towards 0. */
#define EMSEG_GAMMA_MIN 0.25
#define EMSEG_GAMMA_MAX 64.0

/* TRUE when gamma is a number in [EMSEG_GAMMA_MIN, EMSEG_GAMMA_MAX]; otherwise an error
 * naming `what` (e.g. "--gamma") and the accepted range. */
gboolean emseg_gamma_check(double gamma, const char *what, GError **error);

/* prob[i] = prob[i]^gamma for n values in [0, 1], in place. gamma 1 leaves them as they are. */
void emseg_gamma_apply(float *prob, gsize n, double gamma);

/* The exponents tried when none are given (`emseg calibrate-gamma`, the choice a training
 * run makes with each checkpoint), in emseg_gamma_parse_list's form: smallest first, so ties
 * keep the smaller one. */
#define EMSEG_GAMMA_DEFAULT_LIST "1,2,3,4,6,8"

/* The metadata lines that store an exponent: "export_gamma=G\n" and, when how is not NULL,
 * "export_gamma_chosen_by=HOW\n" (G in the C locale). Returns a g_malloc'd string. */
char *emseg_gamma_meta_lines(double gamma, const char *how);

/* The model metadata's `export_gamma=` value (text of "key=value" lines, may be NULL);
 * 1 when the key is absent or not a valid exponent. */
double emseg_gamma_from_meta(const char *meta);

/* Scores prob^gammas[k] against gt (ISBI convention, (n_slices, h, w), as
 * eng_metrics_evaluate) for each k: results[k] (n_gammas entries, the caller's). *best: the
 * index of the highest V_rand, the first one on ties, so list the gammas in the order you
 * prefer them (smallest first). prob is not modified. */
gboolean emseg_gamma_sweep(const float *prob, const guint8 *gt, gsize n_slices, gsize h,
                           gsize w, const double *gammas, guint n_gammas,
                           EngMetricsResult *results, guint *best, GError **error);

/* Parses "1,2,3,4" into ascending, distinct exponents each passing emseg_gamma_check.
 * Returns a g_new array the caller frees, or NULL with error. */
double *emseg_gamma_parse_list(const char *text, guint *n_out, GError **error);
