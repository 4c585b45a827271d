/* eng-spec.c — defaults, validation and the text form of EngSpec. */
#include "eng-spec.h"

#include "eng-clocale.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
eng_spec_default(EngSpec *spec)
{
  static const int down[] = { 3, 8, 10 };
  static const int up[] = { 10, 8, 3 };
  memset(spec, 0, sizeof *spec);
  spec->in_channels = 1;
  spec->base_width = 32;
  spec->init_block = ENG_BLOCK_SIMPLE;
  spec->init_reps = 1;
  spec->main_block = ENG_BLOCK_BOTTLENECK;
  spec->n_levels = 3;
  memcpy(spec->down_reps, down, sizeof down);
  spec->across_reps = 3;
  memcpy(spec->up_reps, up, sizeof up);
  spec->long_skip = 1;
  spec->short_skip = 1;
  spec->batchnorm = 1;
  spec->dropout = 0.0f;
  spec->bn_eps = 1e-5f;
  spec->bn_momentum = 0.9f;
}

const char *
eng_block_type_name(EngBlockType type)
{
  switch (type) {
  case ENG_BLOCK_SIMPLE: return "simple";
  case ENG_BLOCK_BASIC: return "basic";
  case ENG_BLOCK_BOTTLENECK: return "bottleneck";
  }
  return "?";
}

int
eng_spec_level_out(const EngSpec *spec, int level)
{
  int w = spec->base_width << level;
  return spec->main_block == ENG_BLOCK_BOTTLENECK ? 4 * w : w;
}

int
eng_spec_size_multiple(const EngSpec *spec)
{
  return 1 << (spec->n_levels + 2);
}

EngStatus
eng_spec_validate(const EngSpec *s, EngError *err)
{
  if (s->in_channels < 1 || s->in_channels > 16)
    return eng_error_set(err, ENG_ERR_INVALID, "spec: in_channels must be 1..16, got %d",
                         s->in_channels);
  if (s->base_width < 1 || s->base_width > 1024)
    return eng_error_set(err, ENG_ERR_INVALID, "spec: base_width must be 1..1024, got %d",
                         s->base_width);
  if (s->n_levels < 1 || s->n_levels > ENG_MAX_LEVELS)
    return eng_error_set(err, ENG_ERR_INVALID, "spec: levels must be 1..%d, got %d",
                         ENG_MAX_LEVELS, s->n_levels);
  if (s->init_reps < 1 || s->across_reps < 1)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "spec: init and across stages need at least one block");
  for (int i = 0; i < s->n_levels; i++)
    if (s->down_reps[i] < 1 || s->up_reps[i] < 1 || s->down_reps[i] > 256 || s->up_reps[i] > 256)
      return eng_error_set(err, ENG_ERR_INVALID,
                           "spec: level %d has %d down and %d up blocks; each must be 1..256", i,
                           s->down_reps[i], s->up_reps[i]);
  if ((unsigned) s->init_block > ENG_BLOCK_BOTTLENECK ||
      (unsigned) s->main_block > ENG_BLOCK_BOTTLENECK)
    return eng_error_set(err, ENG_ERR_INVALID, "spec: unknown block type");
  if (s->init_block == ENG_BLOCK_BOTTLENECK && s->base_width % 4)
    return eng_error_set(err, ENG_ERR_INVALID,
                         "spec: a bottleneck init stage needs base_width divisible by 4");
  if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
    return eng_error_set(err, ENG_ERR_INVALID, "spec: dropout must be in [0, 1), got %g",
                         (double) s->dropout);
  if (!(s->bn_eps > 0.0f) || !(s->bn_momentum >= 0.0f && s->bn_momentum < 1.0f))
    return eng_error_set(err, ENG_ERR_INVALID, "spec: bn_eps must be > 0, bn_momentum in [0,1)");
  return ENG_OK;
}

static int
parse_block(const char *v, EngBlockType *out)
{
  if (!strcmp(v, "simple")) *out = ENG_BLOCK_SIMPLE;
  else if (!strcmp(v, "basic")) *out = ENG_BLOCK_BASIC;
  else if (!strcmp(v, "bottleneck")) *out = ENG_BLOCK_BOTTLENECK;
  else return 0;
  return 1;
}

static int
parse_list(const char *v, int *out, int *count)
{
  int n = 0;
  const char *p = v;
  while (*p) {
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p || n >= ENG_MAX_LEVELS)
      return 0;
    out[n++] = (int) x;
    if (*end == '/')
      end++;
    else if (*end)
      return 0;
    p = end;
  }
  *count = n;
  return n > 0;
}

static int
parse_int(const char *v, int *out)
{
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v || *end)
    return 0;
  *out = (int) x;
  return 1;
}

static int
parse_float(const char *v, float *out)
{
  char *end;
  double x = strtod(v, &end);
  if (end == v || *end)
    return 0;
  *out = (float) x;
  return 1;
}

const char *
eng_spec_help(void)
{
  return "spec keys (comma-separated key=value): base_width=N in_channels=N "
         "init_block=simple|basic|bottleneck init_reps=N main_block=simple|basic|bottleneck "
         "down=A/B/C across=N up=C/B/A long_skip=0|1 short_skip=0|1 batchnorm=0|1 "
         "dropout=P bn_eps=E bn_momentum=M";
}

/* The parse itself; eng_spec_parse runs it in the C locale so "0.1" reads as 0.1 whatever
 * the host's decimal point. */
static EngStatus
spec_parse(EngSpec *spec, const char *text, EngError *err)
{
  char buf[1024];
  if (strlen(text) >= sizeof buf)
    return eng_error_set(err, ENG_ERR_INVALID, "spec text too long");
  strcpy(buf, text);
  int ndown = -1, nup = -1;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq)
      return eng_error_set(err, ENG_ERR_INVALID, "spec: '%s' is not key=value", tok);
    *eq = 0;
    const char *k = tok, *v = eq + 1;
    int ok;
    if (!strcmp(k, "base_width")) ok = parse_int(v, &spec->base_width);
    else if (!strcmp(k, "in_channels")) ok = parse_int(v, &spec->in_channels);
    else if (!strcmp(k, "init_block")) ok = parse_block(v, &spec->init_block);
    else if (!strcmp(k, "init_reps")) ok = parse_int(v, &spec->init_reps);
    else if (!strcmp(k, "main_block")) ok = parse_block(v, &spec->main_block);
    else if (!strcmp(k, "down")) ok = parse_list(v, spec->down_reps, &ndown);
    else if (!strcmp(k, "up")) ok = parse_list(v, spec->up_reps, &nup);
    else if (!strcmp(k, "across")) ok = parse_int(v, &spec->across_reps);
    else if (!strcmp(k, "long_skip")) ok = parse_int(v, &spec->long_skip);
    else if (!strcmp(k, "short_skip")) ok = parse_int(v, &spec->short_skip);
    else if (!strcmp(k, "batchnorm")) ok = parse_int(v, &spec->batchnorm);
    else if (!strcmp(k, "dropout")) ok = parse_float(v, &spec->dropout);
    else if (!strcmp(k, "bn_eps")) ok = parse_float(v, &spec->bn_eps);
    else if (!strcmp(k, "bn_momentum")) ok = parse_float(v, &spec->bn_momentum);
    else
      return eng_error_set(err, ENG_ERR_INVALID, "spec: unknown key '%s' (%s)", k,
                           eng_spec_help());
    if (!ok)
      return eng_error_set(err, ENG_ERR_INVALID, "spec: bad value '%s' for %s", v, k);
  }
  if (ndown >= 0 && nup < 0) {
    /* Only "down" given: mirror it on the way up, as Table 1 does. */
    for (int i = 0; i < ndown; i++)
      spec->up_reps[i] = spec->down_reps[ndown - 1 - i];
    nup = ndown;
  }
  if (ndown >= 0 || nup >= 0) {
    if (ndown < 0 || ndown != nup)
      return eng_error_set(err, ENG_ERR_INVALID,
                           "spec: down has %d levels but up has %d; they must match", ndown, nup);
    spec->n_levels = ndown;
  }
  return eng_spec_validate(spec, err);
}

EngStatus
eng_spec_parse(EngSpec *spec, const char *text, EngError *err)
{
  locale_t previous = eng_c_locale_enter();
  EngStatus st = spec_parse(spec, text, err);
  eng_c_locale_leave(previous);
  return st;
}

static void
format_list(char *buf, size_t size, const int *v, int n)
{
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < n && used < size; i++)
    used += (size_t) snprintf(buf + used, size - used, i ? "/%d" : "%d", v[i]);
}

void
eng_spec_format(const EngSpec *s, char *buf, size_t size)
{
  char down[64], up[64];
  format_list(down, sizeof down, s->down_reps, s->n_levels);
  format_list(up, sizeof up, s->up_reps, s->n_levels);
  /* a decimal comma would split "dropout=0,1" at the spec's own separator */
  locale_t previous = eng_c_locale_enter();
  snprintf(buf, size,
           "base_width=%d,in_channels=%d,init_block=%s,init_reps=%d,main_block=%s,down=%s,"
           "across=%d,up=%s,long_skip=%d,short_skip=%d,batchnorm=%d,dropout=%g,bn_eps=%g,"
           "bn_momentum=%g",
           s->base_width, s->in_channels, eng_block_type_name(s->init_block), s->init_reps,
           eng_block_type_name(s->main_block), down, s->across_reps, up, s->long_skip,
           s->short_skip, s->batchnorm, (double) s->dropout, (double) s->bn_eps,
           (double) s->bn_momentum);
  eng_c_locale_leave(previous);
}
