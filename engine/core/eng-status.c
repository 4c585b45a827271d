/* eng-status.c — names and detail messages for EngStatus. */
#include "eng-status.h"

#include <stdarg.h>
#include <stdio.h>

const char *
eng_status_to_string(EngStatus status)
{
  switch (status) {
  case ENG_OK: return "ok";
  case ENG_ERR_INVALID: return "invalid argument";
  case ENG_ERR_NOMEM: return "out of memory";
  case ENG_ERR_IO: return "input/output error";
  case ENG_ERR_FORMAT: return "bad file format";
  case ENG_ERR_NUMERIC: return "numerical failure (NaN or Inf)";
  case ENG_ERR_CANCELLED: return "cancelled";
  case ENG_ERR_UNSUPPORTED: return "unsupported";
  }
  return "unknown status";
}

EngStatus
eng_error_set(EngError *err, EngStatus status, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    err->status = status;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return status;
}
