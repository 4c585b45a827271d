/* eng-average.c — running means of model weights (see eng-average.h). */
#include "eng-average.h"

#include <string.h>

EngStatus
eng_model_running_mean(EngModel *mean, const EngModel *src, uint64_t n_before, EngError *err)
{
  /* dropout is a training setting, not part of the weights' shape: compare the rest */
  EngSpec sa = *eng_model_spec(mean), sb = *eng_model_spec(src);
  sa.dropout = sb.dropout = 0;
  char a[512], b[512];
  eng_spec_format(&sa, a, sizeof a);
  eng_spec_format(&sb, b, sizeof b);
  size_t n = 0, ns = 0;
  float *m = eng_model_params_arena(mean, &n);
  const float *s = eng_model_params_const(src, &ns);
  if (n != ns || strcmp(a, b) != 0)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "cannot average models of different architectures (%s vs %s)", a, b);
  if (n_before == 0) {
    memcpy(m, s, n * sizeof(float));
    return ENG_OK;
  }
  /* the fraction in double: with hundreds of snapshots 1/(n+1) in float would round */
  const double f = 1.0 / ((double) n_before + 1.0);
  for (size_t i = 0; i < n; i++)
    m[i] += (float) (((double) s[i] - (double) m[i]) * f);
  return ENG_OK;
}
