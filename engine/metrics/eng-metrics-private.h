/* eng-metrics-private.h — internals shared by eng-metrics.c and eng-metrics-segment.c.
 *
 * Fiji walks an image column by column (x outer, y inner: WatershedTransform2D
 * .extractPixelValues and the stable sort of PixelRecord by value then creation order), and
 * that order decides where a dam lands when a boundary is an even number of pixels wide.
 * To follow it without striding through memory, the segmentation code works on images
 * stored "x-major" with a one-pixel frame: pixel (x, y) of an nx x ny image sits at
 * ENG_METRICS_PAD(x, y, ny) of an (nx + 2) x (ny + 2) array, visited in index order. The
 * frame spares the bounds checks in the floods. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest slice we accept (pixels): indices and counts stay in int32_t. */
#define ENG_METRICS_MAX_PIXELS ((size_t) 1 << 30)

#define ENG_METRICS_PAD(x, y, ny) (((x) + 1) * ((ny) + 2) + (y) + 1)

/* 4-connected components of mask != 0 (framed x-major, nx * ny pixels), labelled 1..k in Fiji's
 * visiting order; 0 elsewhere. The frame of labels is written here; mask's frame is not read.
 * fifo: nx * ny scratch. Returns k. */
int32_t eng_metrics_components4_xmajor(int32_t *labels, const uint8_t *mask, size_t nx,
                                       size_t ny, int32_t *fifo);

/* Fiji's watershed thinning of a binary proposal (cell != 0), framed x-major. Cell pixels keep
 * their 4-connected component label (1..k), so the un-thinned components can be read back
 * as cell ? labels : 0; membrane pixels get the label of the region that floods them or 0
 * on a dam. fifo: nx * ny scratch. Returns the number of labels. */
int32_t eng_metrics_thin_xmajor(int32_t *labels, const uint8_t *cell, size_t nx, size_t ny,
                                int32_t *fifo);
