/* eng-metrics-private.h — internals shared by eng-metrics.c and eng-metrics-segment.c.
 *
 * Fiji walks an image column by column (x outer, y inner: WatershedTransform2D
 * .extractPixelValues and the stable sort of PixelRecord by value then creation order), and
 * that order decides where a dam lands when a boundary is an even number of pixels wide.
 * To follow it without striding through memory, the segmentation code works on images
 * stored "x-major": pixel (x, y) at index x * ny + y, visited in index order. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest slice we accept (pixels): indices and counts stay in int32_t. */
#define ENG_METRICS_MAX_PIXELS ((size_t) 1 << 30)

/* 4-connected components of mask != 0 (x-major, nx * ny pixels), labelled 1..k in Fiji's
 * visiting order; 0 elsewhere. fifo: nx * ny scratch. Returns k. */
int32_t eng_metrics_components4_xmajor(int32_t *labels, const uint8_t *mask, size_t nx,
                                       size_t ny, int32_t *fifo);

/* Fiji's watershed thinning of a binary proposal (cell != 0), x-major. Cell pixels keep
 * their 4-connected component label (1..k), so the un-thinned components can be read back
 * as cell ? labels : 0; membrane pixels get the label of the region that floods them or 0
 * on a dam. fifo: nx * ny scratch. Returns the number of labels. */
int32_t eng_metrics_thin_xmajor(int32_t *labels, const uint8_t *cell, size_t nx, size_t ny,
                                int32_t *fifo);
