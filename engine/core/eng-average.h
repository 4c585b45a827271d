/* eng-average.h — running means of model weights, for weight averaging (SWA, Izmailov et
 * al. 2018: the average of the weights a run visits late in training generalises better
 * than any single one of them) and for averaging saved checkpoints (`emseg average`).
 *
 * The whole parameter arena is averaged, BN running statistics included; those averages
 * mean nothing for the averaged weights, so callers recompute them afterwards
 * (eng_model_calibrate_bn) before the model is used for inference.
 *
 * Ownership: both models are borrowed; nothing is allocated. */
#pragma once

#include <stdint.h>

#include "eng-model.h"

/* mean ← mean + (src − mean) / (n_before + 1): after the call, mean holds the average of
 * the n_before models it averaged so far and src (n_before = 0 copies src). The two
 * models must have the same spec: ENG_ERR_INVALID (and mean unchanged) otherwise. */
EngStatus eng_model_running_mean(EngModel *mean, const EngModel *src, uint64_t n_before,
                                 EngError *err);
