/* eng-status.h — errors as values for the whole engine.
 *
 * Every fallible engine function returns an EngStatus and, where a person needs detail
 * (file, slice, expected vs found), fills a caller-owned EngError. The engine never prints
 * and never exits. */
#pragma once

#include <stddef.h>

typedef enum {
  ENG_OK = 0,
  ENG_ERR_INVALID,    /* bad argument or spec (programmer or user input) */
  ENG_ERR_NOMEM,      /* allocation failed */
  ENG_ERR_IO,         /* file could not be read or written */
  ENG_ERR_FORMAT,     /* file is truncated, corrupt or of another kind */
  ENG_ERR_NUMERIC,    /* NaN/Inf appeared (loss, gradient) */
  ENG_ERR_CANCELLED,  /* the cancel flag was raised */
  ENG_ERR_UNSUPPORTED,
} EngStatus;

/* A detail message, owned by whoever declares it (usually on the stack). */
typedef struct {
  EngStatus status;
  char message[512];
} EngError;

const char *eng_status_to_string(EngStatus status);

/* Sets err (if non-NULL) to status and a printf-formatted message; returns status so
 * callers can write `return eng_error_set(err, ENG_ERR_IO, "…", …);`. */
EngStatus eng_error_set(EngError *err, EngStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
