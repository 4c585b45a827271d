/* cli-info.c — `emseg info MODEL`: what a model file holds (spec, parameter count, the
 * metadata its trainer recorded) without running it. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli-commands.h"
#include "eng-modelfile.h"

int
emseg_cli_info(int argc, char **argv)
{
  gboolean layers = FALSE;
  GOptionEntry entries[] = {
    { "layers", 0, 0, G_OPTION_ARG_NONE, &layers, "List every tensor with its shape", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("MODEL - describe a model file");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "emseg info: %s\n", error->message);
    return 2;
  }
  if (argc != 2) {
    fprintf(stderr, "emseg info: expected one model file (see --help)\n");
    return 2;
  }
  EngModel *m = NULL;
  char *meta = NULL;
  EngError err;
  if (eng_model_load(argv[1], &m, &meta, &err) != ENG_OK) {
    fprintf(stderr, "emseg info: %s\n", err.message);
    return 1;
  }
  char spec[1024];
  eng_spec_format(eng_model_spec(m), spec, sizeof spec);
  printf("file %s\nspec %s\nparams %zu\ntensors %zu\nlayers %zu\ninput_multiple %d\n", argv[1],
         spec, eng_model_count_trainable(m), eng_model_n_params(m), eng_model_n_layers(m),
         eng_spec_size_multiple(eng_model_spec(m)));
  if (meta && *meta) {
    g_auto(GStrv) lines = g_strsplit(meta, "\n", -1);
    for (int i = 0; lines[i]; i++)
      if (*lines[i])
        printf("meta.%s\n", lines[i]);
  }
  if (layers)
    for (size_t i = 0; i < eng_model_n_params(m); i++) {
      const EngParam *p = eng_model_param(m, i);
      printf("tensor %s", p->name);
      for (int d = 0; d < p->ndim; d++)
        printf("%s%zu", d ? "x" : " ", p->shape[d]);
      printf("\n");
    }
  free(meta);
  eng_model_free(m);
  return 0;
}
