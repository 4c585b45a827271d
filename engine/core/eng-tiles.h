/* eng-tiles.h — overlap-tile prediction: a plane larger than the graph is predicted in
 * windows of the graph's size that overlap by a margin on every inner side, and each
 * output pixel is taken from the window whose core (the window less its margins, or up to
 * the plane's edge) holds it. Why: the inference graph of this network needs about 650 MB
 * per megapixel, so an EM slice of 4096² would need 10 GB in one piece; in 1024² windows
 * it needs 650 MB. A pixel's result equals the whole-plane one when the network's
 * receptive field around it lies inside its window; the margin bounds how far from that
 * it can be (see tests/engine/test-tiles.c and bench-tiles for measured differences).
 *
 * Ownership: the graph is borrowed; image, prob_out and std_out are the caller's. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "eng-model.h"

/* One axis of a tiling: window k starts at start, and its output core is [core0, core1). */
typedef struct {
  size_t start, core0, core1;
} EngTile;

/* The windows along an axis of length len for windows of win pixels and the margin:
 * returns their count and, when tiles is non-NULL, fills tiles[0..count-1] (at most cap).
 * win >= len gives one window (the whole axis; the caller's graph must then be len long).
 * Otherwise 2 * margin < win is required (else 0 is returned). With len, win and margin
 * multiples of the model's size multiple, every start is one too, so the decimation grid
 * of a window lines up with the whole plane's. The cores partition [0, len), and each core
 * edge has margin pixels of context in its window or lies where the window meets the
 * plane's edge (where it sees what the whole plane does). */
size_t eng_tiles_plan(size_t len, size_t win, size_t margin, EngTile *tiles, size_t cap);

/* Cell-interior probabilities (as eng_predict) of one (h, w) plane through graph, whose
 * size (1, th, tw) sets the windows. A plane whose sides are not multiples of the model's
 * size multiple, or shorter than the graph's, is mirrored at its bottom and right edges up
 * to multiples (at least the graph's size) and the result cropped, so slices of any size
 * can be predicted and every window starts on the decimation grid; tta: each window as
 * eng_predict_tta (8 transforms when th == tw). MC samples draw their dropout masks per
 * window (seed varied by window). prob_out and std_out (may be NULL): (h, w). Allocates
 * three window-sized scratch planes (and the padded plane, when padding). ENG_ERR_INVALID
 * for a margin too wide for the windows; ENG_ERR_CANCELLED from the graph's cancel flag. */
EngStatus eng_predict_tiled(EngGraph *graph, const float *image, size_t h, size_t w,
                            size_t margin, int tta, EngMode mode, int samples, uint64_t seed,
                            float *prob_out, float *std_out, EngError *err);

/* The forward passes eng_predict_tiled makes for one (h, w) plane with these arguments:
 * windows x transforms (8, or 4 for non-square windows, with tta) x samples. For progress
 * reports (eng_graph_set_forward_hook); 0 where eng_predict_tiled would refuse. */
size_t eng_predict_tiled_passes(const EngGraph *graph, size_t h, size_t w, size_t margin,
                                int tta, int samples);
