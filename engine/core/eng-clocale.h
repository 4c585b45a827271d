/* eng-clocale.h — the "C" locale, per thread, for text that is written to be read back
 * (model specs, run records). A host program that calls setlocale(LC_ALL, "") — every GTK
 * program does — may use a decimal comma: "%g" would then write "dropout=0,1" into a
 * comma-separated spec, and strtod would stop at the '.' of a stored "0.1". These switch
 * only the calling thread (uselocale), so other threads' display formatting stays the
 * user's. Nothing to free: the C locale object lives until exit. */
#pragma once

#include <locale.h>

/* Makes the calling thread use the C locale; returns what it used before, for
 * eng_c_locale_leave. If the C locale object cannot be made (out of memory), nothing
 * changes and (locale_t) 0 is returned. */
locale_t eng_c_locale_enter(void);

/* Restores what eng_c_locale_enter returned ((locale_t) 0: nothing to restore). */
void eng_c_locale_leave(locale_t previous);
