/* eng-modelfile.c — model (de)serialization; see eng-modelfile.h for the layout. */
#include "eng-modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "EMSEGMDL"
#define VERSION 1u

static uint64_t
fnv1a(const uint8_t *p, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint16_t
eng_f32_to_f16(float f)
{
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t man = x & 0x7fffffu;
  if (exp == 0xff) /* Inf or NaN */
    return (uint16_t) (sign | 0x7c00u | (man ? 0x200u : 0));
  int e = (int) exp - 127 + 15;
  if (e >= 31)
    return (uint16_t) (sign | 0x7c00u);
  if (e <= 0) { /* subnormal half or zero */
    if (e < -10)
      return (uint16_t) sign;
    man |= 0x800000u;
    int shift = 14 - e;
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      half++;
    return (uint16_t) (sign | half);
  }
  uint32_t half = sign | ((uint32_t) e << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
    half++; /* may carry into the exponent, which is the correct rounding */
  return (uint16_t) half;
}

float
eng_f16_to_f32(uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (man == 0) {
      x = sign;
    } else { /* normalize the subnormal */
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while (!(man & 0x400u));
      x = sign | ((uint32_t) (127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (man << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* ---- writing ------------------------------------------------------------------------- */
typedef struct {
  uint8_t *p;
  size_t len, cap;
  int fail;
} Out;

static void
put(Out *o, const void *data, size_t n)
{
  if (o->fail)
    return;
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n)
      cap *= 2;
    uint8_t *p = realloc(o->p, cap);
    if (!p) {
      o->fail = 1;
      return;
    }
    o->p = p;
    o->cap = cap;
  }
  memcpy(o->p + o->len, data, n);
  o->len += n;
}

static void
put_u16(Out *o, uint16_t v)
{
  uint8_t b[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
  put(o, b, 2);
}

static void
put_u32(Out *o, uint32_t v)
{
  uint8_t b[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24) };
  put(o, b, 4);
}

static void
put_u64(Out *o, uint64_t v)
{
  put_u32(o, (uint32_t) v);
  put_u32(o, (uint32_t) (v >> 32));
}

EngStatus
eng_model_serialize(const EngModel *model, EngDtype dtype, const char *meta, uint8_t **out,
                    size_t *out_len, EngError *err)
{
  Out o = { 0 };
  char spec[1024];
  eng_spec_format(eng_model_spec(model), spec, sizeof spec);
  if (!meta)
    meta = "";
  put(&o, MAGIC, 8);
  put_u32(&o, VERSION);
  put_u32(&o, (uint32_t) dtype);
  put_u32(&o, (uint32_t) strlen(spec));
  put(&o, spec, strlen(spec));
  put_u32(&o, (uint32_t) strlen(meta));
  put(&o, meta, strlen(meta));
  size_t n = eng_model_n_params(model);
  put_u32(&o, (uint32_t) n);
  for (size_t i = 0; i < n; i++) {
    const EngParam *p = eng_model_param(model, i);
    put_u16(&o, (uint16_t) strlen(p->name));
    put(&o, p->name, strlen(p->name));
    put_u32(&o, (uint32_t) p->ndim);
    for (int d = 0; d < p->ndim; d++)
      put_u64(&o, p->shape[d]);
  }
  size_t total;
  const float *data = eng_model_params_const(model, &total);
  for (size_t i = 0; i < total; i++) {
    if (dtype == ENG_DTYPE_F16) {
      put_u16(&o, eng_f32_to_f16(data[i]));
    } else {
      uint32_t x;
      memcpy(&x, &data[i], 4);
      put_u32(&o, x);
    }
  }
  if (!o.fail)
    put_u64(&o, fnv1a(o.p, o.len));
  if (o.fail) {
    free(o.p);
    return eng_error_set(err, ENG_ERR_NOMEM, "out of memory serializing the model");
  }
  *out = o.p;
  *out_len = o.len;
  return ENG_OK;
}

/* ---- reading ------------------------------------------------------------------------- */
typedef struct {
  const uint8_t *p;
  size_t len, pos;
} In;

static int
get(In *in, void *dst, size_t n)
{
  if (in->len - in->pos < n)
    return 0;
  memcpy(dst, in->p + in->pos, n);
  in->pos += n;
  return 1;
}

static int
get_u16(In *in, uint16_t *v)
{
  uint8_t b[2];
  if (!get(in, b, 2))
    return 0;
  *v = (uint16_t) (b[0] | (b[1] << 8));
  return 1;
}

static int
get_u32(In *in, uint32_t *v)
{
  uint8_t b[4];
  if (!get(in, b, 4))
    return 0;
  *v = (uint32_t) b[0] | ((uint32_t) b[1] << 8) | ((uint32_t) b[2] << 16) |
       ((uint32_t) b[3] << 24);
  return 1;
}

static int
get_u64(In *in, uint64_t *v)
{
  uint32_t lo, hi;
  if (!get_u32(in, &lo) || !get_u32(in, &hi))
    return 0;
  *v = (uint64_t) lo | ((uint64_t) hi << 32);
  return 1;
}

EngStatus
eng_model_deserialize(const uint8_t *buf, size_t len, EngModel **out, char **meta_out,
                      EngError *err)
{
  In in = { buf, len, 0 };
  char magic[8];
  uint32_t version = 0, dtype = 0, slen = 0, mlen = 0, n = 0;
  *out = NULL;
  if (meta_out)
    *meta_out = NULL;
  if (!get(&in, magic, 8) || memcmp(magic, MAGIC, 8))
    return eng_error_set(err, ENG_ERR_FORMAT, "not an emseg model file (bad magic)");
  if (!get_u32(&in, &version))
    return eng_error_set(err, ENG_ERR_FORMAT, "model file truncated in its header");
  if (version > VERSION)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "model file version %u is newer than this emseg reads (%u); update emseg",
                         version, VERSION);
  if (len < 8 + 8)
    return eng_error_set(err, ENG_ERR_FORMAT, "model file truncated (%zu bytes)", len);
  In tail = { buf, len, len - 8 };
  uint64_t stored = 0;
  get_u64(&tail, &stored);
  if (fnv1a(buf, len - 8) != stored)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "model file checksum mismatch: the file is truncated or corrupt "
                         "(%zu bytes)", len);
  if (!get_u32(&in, &dtype) || dtype > ENG_DTYPE_F16)
    return eng_error_set(err, ENG_ERR_FORMAT, "model file has an unknown data type");
  char spec_text[1024];
  if (!get_u32(&in, &slen) || slen >= sizeof spec_text || !get(&in, spec_text, slen))
    return eng_error_set(err, ENG_ERR_FORMAT, "model file has a bad spec record");
  spec_text[slen] = 0;
  if (!get_u32(&in, &mlen) || mlen > len - in.pos)
    return eng_error_set(err, ENG_ERR_FORMAT, "model file has a bad metadata record");
  const uint8_t *meta = buf + in.pos;
  in.pos += mlen;

  EngSpec spec;
  eng_spec_default(&spec);
  EngError sub;
  if (eng_spec_parse(&spec, spec_text, &sub) != ENG_OK)
    return eng_error_set(err, ENG_ERR_FORMAT, "model file spec is invalid: %s", sub.message);
  EngModel *m = eng_model_new_zeroed(&spec, &sub); /* every weight is read below */
  if (!m)
    return eng_error_set(err, sub.status, "%s", sub.message);
  if (!get_u32(&in, &n) || n != eng_model_n_params(m)) {
    eng_model_free(m);
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "model file lists %u tensors but its spec needs %zu", n,
                         eng_model_n_params(m));
  }
  for (uint32_t i = 0; i < n; i++) {
    const EngParam *p = eng_model_param(m, i);
    uint16_t nl;
    char name[64];
    uint32_t ndim;
    int ok = get_u16(&in, &nl) && nl < sizeof name && get(&in, name, nl);
    if (ok) {
      name[nl] = 0;
      ok = get_u32(&in, &ndim) && (int) ndim == p->ndim && !strcmp(name, p->name);
    }
    for (uint32_t d = 0; ok && d < ndim; d++) {
      uint64_t dim;
      ok = get_u64(&in, &dim) && dim == p->shape[d];
    }
    if (!ok) {
      eng_model_free(m);
      return eng_error_set(err, ENG_ERR_FORMAT,
                           "model file tensor %u does not match its spec (expected %s)", i,
                           p->name);
    }
  }
  size_t total;
  float *data = eng_model_params_arena(m, &total);
  size_t need = total * (dtype == ENG_DTYPE_F16 ? 2 : 4);
  if (len - 8 - in.pos != need) {
    eng_model_free(m);
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "model file holds %zu bytes of weights, expected %zu",
                         len - 8 - in.pos, need);
  }
  for (size_t i = 0; i < total; i++) {
    if (dtype == ENG_DTYPE_F16) {
      uint16_t h = 0;
      get_u16(&in, &h);
      data[i] = eng_f16_to_f32(h);
    } else {
      uint32_t x = 0;
      get_u32(&in, &x);
      memcpy(&data[i], &x, 4);
    }
  }
  if (meta_out) {
    *meta_out = malloc(mlen + 1);
    if (*meta_out) {
      memcpy(*meta_out, meta, mlen);
      (*meta_out)[mlen] = 0;
    }
  }
  *out = m;
  return ENG_OK;
}

EngStatus
eng_model_save(const EngModel *model, const char *path, EngDtype dtype, const char *meta,
               EngError *err)
{
  uint8_t *buf;
  size_t len;
  EngStatus st = eng_model_serialize(model, dtype, meta, &buf, &len, err);
  if (st != ENG_OK)
    return st;
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) {
    free(buf);
    return eng_error_set(err, ENG_ERR_NOMEM, "out of memory");
  }
  snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long) getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    st = eng_error_set(err, ENG_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, buf + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      st = eng_error_set(err, ENG_ERR_IO, "%s: write failed after %zu of %zu bytes: %s", tmp,
                         done, len, w < 0 ? strerror(errno) : "no progress");
      close(fd);
      unlink(tmp);
      goto out;
    }
    done += (size_t) w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    st = eng_error_set(err, ENG_ERR_IO, "%s: cannot flush to disk: %s", tmp, strerror(errno));
    unlink(tmp);
    goto out;
  }
  if (rename(tmp, path) != 0) {
    st = eng_error_set(err, ENG_ERR_IO, "%s: cannot replace: %s", path, strerror(errno));
    unlink(tmp);
  }
out:
  free(tmp);
  free(buf);
  return st;
}

EngStatus
eng_model_load(const char *path, EngModel **out, char **meta_out, EngError *err)
{
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return eng_error_set(err, ENG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) {
    fclose(f);
    return eng_error_set(err, ENG_ERR_IO, "%s: cannot seek", path);
  }
  long size = ftell(f);
  rewind(f);
  if (size < 0 || size > (1L << 31)) {
    fclose(f);
    return eng_error_set(err, ENG_ERR_FORMAT, "%s: implausible size for a model file", path);
  }
  uint8_t *buf = malloc((size_t) size + 1);
  if (!buf) {
    fclose(f);
    return eng_error_set(err, ENG_ERR_NOMEM, "out of memory reading %s", path);
  }
  size_t got = fread(buf, 1, (size_t) size, f);
  fclose(f);
  if (got != (size_t) size) {
    free(buf);
    return eng_error_set(err, ENG_ERR_IO, "%s: read %zu of %ld bytes", path, got, size);
  }
  EngError sub;
  EngStatus st = eng_model_deserialize(buf, got, out, meta_out, &sub);
  free(buf);
  if (st != ENG_OK)
    return eng_error_set(err, st, "%s: %s", path, sub.message);
  return ENG_OK;
}
