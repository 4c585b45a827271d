/* emseg-model-meta.h — reading a model file's metadata: the free-form "key=value" lines
 * eng_model_load hands back (trainer progress for resuming, the export exponent, ...).
 *
 * Ownership: the returned table and its strings are the caller's (g_hash_table_unref). */
#pragma once

#include <glib.h>

/* Every "key=value" line of meta (may be NULL) as key -> value; lines without '=' are
 * skipped, and a key given twice keeps its last value. */
GHashTable *emseg_model_meta_parse(const char *meta);
