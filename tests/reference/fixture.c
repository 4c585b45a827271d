/* fixture.c — parses the parity fixture format documented in fixture.h.
 *
 * The whole file is read into memory and walked with a cursor that checks every length
 * against the bytes left before using it, so a truncated or hostile file yields a message,
 * never an out-of-bounds read. Values are decoded byte by byte from little-endian, so the
 * reader is correct on any host byte order. */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const unsigned char *p;
  size_t left;
  size_t offset; /* from the start of the file, for messages */
} Cursor;

static uint32_t
le32(const unsigned char *b)
{
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void
advance(Cursor *c, size_t n)
{
  c->p += n;
  c->left -= n;
  c->offset += n;
}

/* Reads a u32 field `what` of the tensor record `index` (or the header when index < 0). */
static EngStatus
read_u32(Cursor *c, uint32_t *out, const char *label, long index, const char *what,
         EngError *err)
{
  if (c->left < 4) {
    if (index < 0)
      return eng_error_set(err, ENG_ERR_FORMAT,
                           "%s: truncated header: %s at byte %zu needs 4 bytes, %zu left",
                           label, what, c->offset, c->left);
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: truncated in tensor record %ld: %s at byte %zu needs 4 bytes, "
                         "%zu left",
                         label, index, what, c->offset, c->left);
  }
  *out = le32(c->p);
  advance(c, 4);
  return ENG_OK;
}

static EngStatus
parse_record(Cursor *c, FixtureTensor *t, const char *label, long index, EngError *err)
{
  uint32_t name_len = 0, ndim = 0;
  EngStatus st = read_u32(c, &name_len, label, index, "name length", err);
  if (st != ENG_OK)
    return st;
  if (name_len == 0 || name_len > FIXTURE_MAX_NAME)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: tensor record %ld at byte %zu: name length %u, expected 1..%d",
                         label, index, c->offset - 4, name_len, FIXTURE_MAX_NAME);
  if (c->left < name_len)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: truncated in tensor record %ld: name needs %u bytes, %zu left",
                         label, index, name_len, c->left);
  t->name = malloc((size_t)name_len + 1);
  if (!t->name)
    return eng_error_set(err, ENG_ERR_NOMEM, "%s: no memory for a tensor name", label);
  memcpy(t->name, c->p, name_len);
  t->name[name_len] = '\0';
  if (strlen(t->name) != name_len)
    return eng_error_set(err, ENG_ERR_FORMAT, "%s: tensor record %ld: name contains NUL",
                         label, index);
  advance(c, name_len);

  st = read_u32(c, &ndim, label, index, "ndim", err);
  if (st != ENG_OK)
    return st;
  if (ndim > FIXTURE_MAX_DIMS)
    return eng_error_set(err, ENG_ERR_FORMAT, "%s: tensor '%s': %u dimensions, at most %d",
                         label, t->name, ndim, FIXTURE_MAX_DIMS);
  t->ndim = ndim;
  t->numel = 1;
  for (uint32_t d = 0; d < ndim; d++) {
    uint32_t dim = 0;
    st = read_u32(c, &dim, label, index, "shape", err);
    if (st != ENG_OK)
      return st;
    t->shape[d] = dim;
    if (dim != 0 && t->numel > SIZE_MAX / 4 / dim)
      return eng_error_set(err, ENG_ERR_FORMAT, "%s: tensor '%s': shape overflows size_t",
                           label, t->name);
    t->numel *= dim;
  }

  size_t bytes = t->numel * 4;
  if (c->left < bytes)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: truncated in tensor '%s' (record %ld): expected %zu floats "
                         "(%zu bytes) at byte %zu, found %zu bytes",
                         label, t->name, index, t->numel, bytes, c->offset, c->left);
  if (t->numel > 0) {
    t->data = malloc(bytes);
    if (!t->data)
      return eng_error_set(err, ENG_ERR_NOMEM, "%s: no memory for tensor '%s' (%zu floats)",
                           label, t->name, t->numel);
    for (size_t i = 0; i < t->numel; i++) {
      uint32_t bits = le32(c->p + 4 * i);
      memcpy(&t->data[i], &bits, sizeof bits);
    }
  }
  advance(c, bytes);
  return ENG_OK;
}

EngStatus
fixture_parse(Fixture *fx, const unsigned char *bytes, size_t len, const char *label,
              EngError *err)
{
  memset(fx, 0, sizeof *fx);
  Cursor c = { bytes, len, 0 };
  uint32_t version = 0, count = 0;
  EngStatus st;

  if (len < 8)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: truncated header: %zu bytes, a fixture starts with 16", label,
                         len);
  if (memcmp(bytes, FIXTURE_MAGIC, 8) != 0)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: not an emseg fixture (magic is not \"EMSEGFX\")", label);
  advance(&c, 8);
  if ((st = read_u32(&c, &version, label, -1, "version", err)) != ENG_OK)
    return st;
  if (version != FIXTURE_VERSION)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: fixture version %u, this reader knows version %u", label,
                         version, FIXTURE_VERSION);
  if ((st = read_u32(&c, &count, label, -1, "tensor count", err)) != ENG_OK)
    return st;
  /* Each record takes at least 9 bytes: refuse counts the file cannot hold before
   * allocating for them. */
  if (count > c.left / 9)
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: truncated: header promises %u tensors, only %zu bytes follow",
                         label, count, c.left);

  size_t label_len = strlen(label);
  fx->label = malloc(label_len + 1);
  fx->tensors = calloc(count ? count : 1, sizeof *fx->tensors);
  if (!fx->label || !fx->tensors) {
    fixture_free(fx);
    return eng_error_set(err, ENG_ERR_NOMEM, "%s: no memory for %u tensors", label, count);
  }
  memcpy(fx->label, label, label_len + 1);

  for (uint32_t i = 0; i < count; i++) {
    fx->count = i + 1; /* so fixture_free releases the partly filled record too */
    st = parse_record(&c, &fx->tensors[i], label, (long)i, err);
    if (st == ENG_OK && fixture_find(fx, fx->tensors[i].name) != &fx->tensors[i])
      st = eng_error_set(err, ENG_ERR_FORMAT, "%s: tensor '%s' appears twice", label,
                         fx->tensors[i].name);
    if (st != ENG_OK) {
      fixture_free(fx);
      return st;
    }
  }
  if (c.left != 0) {
    fixture_free(fx);
    return eng_error_set(err, ENG_ERR_FORMAT,
                         "%s: %zu unexpected bytes after the last of %u tensors (byte %zu)",
                         label, c.left, count, c.offset);
  }
  return ENG_OK;
}

EngStatus
fixture_load(Fixture *fx, const char *path, EngError *err)
{
  memset(fx, 0, sizeof *fx);
  FILE *f = fopen(path, "rb");
  if (!f)
    return eng_error_set(err, ENG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

  unsigned char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 1 << 16;
      unsigned char *nbuf = realloc(buf, ncap);
      if (!nbuf) {
        free(buf);
        fclose(f);
        return eng_error_set(err, ENG_ERR_NOMEM, "%s: no memory to read %zu bytes", path,
                             ncap);
      }
      buf = nbuf;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0)
      break;
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    free(buf);
    return eng_error_set(err, ENG_ERR_IO, "%s: read error after %zu bytes", path, len);
  }
  EngStatus st = fixture_parse(fx, buf, len, path, err);
  free(buf);
  return st;
}

void
fixture_free(Fixture *fx)
{
  if (!fx)
    return;
  for (size_t i = 0; fx->tensors && i < fx->count; i++) {
    free(fx->tensors[i].name);
    free(fx->tensors[i].data);
  }
  free(fx->tensors);
  free(fx->label);
  memset(fx, 0, sizeof *fx);
}

const FixtureTensor *
fixture_find(const Fixture *fx, const char *name)
{
  for (size_t i = 0; i < fx->count; i++)
    if (fx->tensors[i].name && strcmp(fx->tensors[i].name, name) == 0)
      return &fx->tensors[i];
  return NULL;
}

const FixtureTensor *
fixture_get(const Fixture *fx, const char *name, size_t numel, EngError *err)
{
  const FixtureTensor *t = fixture_find(fx, name);
  if (!t) {
    eng_error_set(err, ENG_ERR_FORMAT, "%s: no tensor named '%s'",
                  fx->label ? fx->label : "fixture", name);
    return NULL;
  }
  if (t->numel != numel) {
    eng_error_set(err, ENG_ERR_FORMAT, "%s: tensor '%s': expected %zu values, found %zu",
                  fx->label ? fx->label : "fixture", name, numel, t->numel);
    return NULL;
  }
  return t;
}

EngStatus
fixture_scalar(const Fixture *fx, const char *name, double *value, EngError *err)
{
  const FixtureTensor *t = fixture_get(fx, name, 1, err);
  if (!t)
    return err ? err->status : ENG_ERR_FORMAT;
  *value = t->data[0];
  return ENG_OK;
}
