/* eng-border-weight.h — U-Net's separation weights (Ronneberger et al. 2015, eq. 2) for the
 * loss mask: membrane pixels that separate two cells closely count more.
 *
 * The errors left in this project's ISBI model are merges through faint, thin membranes
 * between two cells (data/models/README.md); in an unweighted loss those few pixels weigh
 * no more than any thick membrane. Not in Drozdzal et al.: an option of `emseg train`,
 * off by default. */
#pragma once

#include <stddef.h>

#include "eng-status.h"

/* Multiplies mask (height, width) in place: every membrane pixel (target 1, mask > 0) gets
 * mask *= 1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), d1 and d2 its Euclidean distances
 * (8-neighbour chamfer, exact along rows, columns and diagonals) to the nearest and
 * second-nearest cell (4-connected region of target 0, mask > 0). A membrane pixel with
 * fewer than two cells within 3 sigma of it, every cell pixel and every unlabeled pixel
 * keep their mask. target and mask as eng_labels_to_target writes them; both
 * caller-owned. w0 >= 0, sigma > 0, else ENG_ERR_INVALID; ENG_ERR_NOMEM if the
 * workspace (about 13 bytes per pixel, freed before return) cannot be had. */
EngStatus eng_border_weights(float *mask, const float *target, size_t width, size_t height,
                             float w0, float sigma, EngError *err);
