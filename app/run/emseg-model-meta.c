/* emseg-model-meta.c — the model metadata parser (see the header). */
#include "emseg-model-meta.h"

#include <string.h>

GHashTable *
emseg_model_meta_parse(const char *meta)
{
  GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) lines = g_strsplit(meta ? meta : "", "\n", -1);
  for (char **l = lines; *l; l++) {
    char *eq = strchr(*l, '=');
    if (eq)
      g_hash_table_replace(t, g_strndup(*l, (gsize) (eq - *l)), g_strdup(eq + 1));
  }
  return t;
}
