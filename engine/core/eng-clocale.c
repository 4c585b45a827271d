/* eng-clocale.c — a per-thread switch to the C locale for machine-read text (see the
 * header for why). */
#include "eng-clocale.h"

#include <pthread.h>

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void
make_c_locale(void)
{
  c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
}

locale_t
eng_c_locale_enter(void)
{
  pthread_once(&c_locale_once, make_c_locale);
  if (c_locale == (locale_t) 0)
    return (locale_t) 0;
  return uselocale(c_locale);
}

void
eng_c_locale_leave(locale_t previous)
{
  if (previous != (locale_t) 0)
    uselocale(previous);
}
