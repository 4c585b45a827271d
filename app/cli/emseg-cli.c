/* emseg-cli.c — entry point of the headless `emseg` program: dispatches to subcommands
 * (cli-*.c) that call the same app/ and engine/ functions as the GUI. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli-commands.h"

static const EmsegCliCommand commands[] = {
  { "train", emseg_cli_train, "train a model on a labeled stack" },
  { "predict", emseg_cli_predict, "write cell-interior probabilities as a float TIFF" },
  { "info", emseg_cli_info, "show a model file's spec and parameter count" },
  { "bench", emseg_cli_bench, "measure training and inference speed" },
  { "project", emseg_cli_project, "create, inspect and export projects" },
  { "export-isbi", emseg_cli_export_isbi, "write an ISBI 2012 submission TIFF" },
  { "evaluate", emseg_cli_evaluate, "score a prediction: V_rand, V_info, pixel error" },
  { "augment-preview", emseg_cli_augment_preview, "write augmented samples as PNG" },
  { "labels-from-ids", emseg_cli_labels_from_ids, "turn object ids into labels (membrane where objects touch)" },
  { "synth", emseg_cli_synth, "write a synthetic EM-like stack with labels" },
  { "calibrate-bn", emseg_cli_calibrate_bn, "recompute BN statistics over slices (precise BN)" },
  { "calibrate-gamma", emseg_cli_calibrate_gamma, "choose the export exponent on labelled slices" },
  { "average", emseg_cli_average, "average model files' weights (SWA), BN recomputed" },
  { "experiment", emseg_cli_experiment, "the paper's experiments (skip-ablation, update-depth)" },
};

static void
usage(FILE *out)
{
  fprintf(out, "usage: emseg COMMAND [OPTIONS]   (emseg COMMAND --help for details)\n"
               "       emseg --version\n\n");
  for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
    fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].text);
}

int
main(int argc, char **argv)
{
  /* The character set only, so help texts with γ or an em dash reach a UTF-8 terminal as
   * written (GLib converts them to the locale's charset, '?' in plain C). Numbers stay in
   * the C locale: the CSV files, model specs and figures this program writes are read by
   * other programs, which expect a '.' decimal point. */
  setlocale(LC_CTYPE, "");
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("emseg %s\n", PACKAGE_VERSION);
    return 0;
  }
  int rc = emseg_cli_dispatch(commands, G_N_ELEMENTS(commands), argc, argv);
  if (rc >= 0)
    return rc;
  fprintf(stderr, "emseg: unknown command '%s' (try emseg --help)\n", argv[1]);
  return 2;
}
