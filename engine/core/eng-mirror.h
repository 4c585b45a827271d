/* eng-mirror.h — whole-sample mirror indexing for padding: index i of an axis of n samples
 * reflected at both ends without repeating the edge (… 2 1 | 0 1 2 … n-1 | n-2 …),
 * periodically, so any distance outside works on any length (n = 1: always 0). Used where
 * a plane is padded by mirroring: tiled prediction of odd-sized slices (eng-tiles.c) and
 * the synthetic stacks' blur (eng-synth.c). */
#pragma once

#include <stddef.h>

static inline size_t
eng_mirror(long i, long n)
{
  if (i >= 0 && i < n) /* the common case first: blur taps and most pixels are inside */
    return (size_t) i;
  if (n <= 1)
    return 0;
  long period = 2 * (n - 1), j = (i < 0 ? -i : i) % period; /* symmetric about 0 */
  return (size_t) (j < n ? j : period - j);
}
