/* cli-commands.h — the `emseg` subcommands. Each takes the arguments after its own name
 * (argv[0] is the command name), prints results on stdout and one-line reasons on stderr,
 * and returns the process exit code (0 ok, 1 failure, 2 bad usage). */
#pragma once

#include <string.h>

#include <glib.h>

#include "emseg-project.h"
#include "emseg-stack.h"
#include "eng-augment.h"
#include "eng-model.h"

/* An entry of a command table (emseg's commands, emseg project's subcommands): its name,
 * its entry point (argv[0] is the name) and the text its usage line shows. */
typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *text;
} EmsegCliCommand;

/* Runs the entry of commands[0..n) that argv[1] names with argv shifted by one, returning
 * its exit code; -1 when argv[1] names none (the caller reports it). */
static inline int
emseg_cli_dispatch(const EmsegCliCommand *commands, size_t n, int argc, char **argv)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].run(argc - 1, argv + 1);
  return -1;
}

int emseg_cli_train(int argc, char **argv);          /* cli-train.c */
int emseg_cli_predict(int argc, char **argv);        /* cli-predict.c */
int emseg_cli_info(int argc, char **argv);           /* cli-info.c */
int emseg_cli_bench(int argc, char **argv);          /* cli-bench.c */
int emseg_cli_project(int argc, char **argv);        /* cli-project.c */
int emseg_cli_export_isbi(int argc, char **argv);    /* cli-export.c */
int emseg_cli_evaluate(int argc, char **argv);       /* cli-evaluate.c */
int emseg_cli_augment_preview(int argc, char **argv); /* cli-augment.c */
int emseg_cli_synth(int argc, char **argv);          /* cli-synth.c */
int emseg_cli_calibrate_bn(int argc, char **argv);   /* cli-calibrate.c */
int emseg_cli_calibrate_gamma(int argc, char **argv); /* cli-calibrate-gamma.c */
int emseg_cli_average(int argc, char **argv);         /* cli-average.c */
int emseg_cli_experiment(int argc, char **argv);     /* cli-experiment.c */
int emseg_cli_labels_from_ids(int argc, char **argv); /* cli-labels-from-ids.c */

/* cli-progress.c: the progress of commands that predict slices, on stderr when it is a
 * terminal: "\rCOMMAND: predicted 3/30 slices", and within a slice that takes long
 * ", slice 4 at 37 %". */
/* A progress line redrawn at most this often: passes of a small slice, or the items of a
 * project check, take milliseconds. */
#define EMSEG_CLI_REDRAW_US (250 * 1000)

typedef struct {
  const char *command; /* borrowed: the command's name */
  guint done, total;   /* slices */
  gint64 drawn_us;     /* the last redraw */
} CliProgress;
void emseg_cli_progress_init(CliProgress *p, const char *command, guint total);
/* An EmsegProgressFunc and an EmsegPassProgressFunc (emseg-predict.h); progress: a
 * CliProgress. */
gboolean emseg_cli_show_progress(guint done, guint total, gpointer progress);
void emseg_cli_show_pass_progress(double fraction, gpointer progress);

/* cli-conv-kernel.c. For --bf16: one line on stderr, "COMMAND: convolutions in bfloat16 (...)" or that this CPU
 * has no bfloat16 kernel and float32 is used. */
void emseg_cli_report_bf16(const char *command);
/* cli-windows.c: one line on stderr when stack's slices are predicted in windows. */
void emseg_cli_report_windows(const char *command, const EngModel *model, EmsegStack *stack);

/* cli-sources.c: where predict and export-isbi read the images and the model. */
typedef struct {
  const char *images_path;  /* --images, or NULL */
  const char *project_path; /* --project, or NULL */
  gint64 stack_id;          /* --stack; 0 = the project's only stack */
  const char *checkpoint;   /* --checkpoint; NULL = the project's current model */
  const char *model_path;   /* --model, or NULL (then the project's checkpoint) */
  gboolean adapt_bn;        /* --adapt-bn: the model's BN statistics over the images first */
} CliSources;
/* Usage: exactly one of images / project; --stack and --checkpoint only with a project;
 * not --model with --checkpoint. Prints the reason and returns 2, else 0. */
int emseg_cli_check_sources(const char *cmd, const CliSources *src);
/* *stack_id when not 0, else the project's only stack; with none, or several (the error
 * lists them: choose with --stack), FALSE with *rc the exit code (1 none, 2 several). */
gboolean emseg_cli_pick_stack(EmsegProject *project, gint64 *stack_id, int *rc, GError **error);
/* Opens the images and, when want_model, the model (the --model file, else the project's
 * checkpoint, else the shipped model with a line on stderr saying so) with its metadata
 * (*meta, free() it; meta may be NULL), with src->adapt_bn its BN statistics recomputed over
 * the images (emseg_calibrate_bn_on_stack, EMSEG_ADAPT_BN_TILES) and a line saying so.
 * Returns 0, or the exit code with the reason printed on stderr and nothing left open. The
 * caller frees *images (emseg_stack_free) and *model (eng_model_free). */
int emseg_cli_open_sources(const char *cmd, const CliSources *src, gboolean want_model,
                           EmsegStack **images, EngModel **model, char **meta);

/* cli-augment.c: the augmentation's strengths as train and augment-preview take them. */
typedef struct {
  double rotate, shear, elastic_sigma; /* degrees, radians, pixels */
  char help[3][128]; /* the options' help texts, naming the defaults as the engine has them */
} CliAugmentStrengths;
/* The recipe's defaults (eng_augment_params_init), and the help texts that name them. */
void emseg_cli_augment_strengths_init(CliAugmentStrengths *s);
/* The three option entries, to list among a command's GOptionEntry (after _init). */
#define EMSEG_CLI_AUGMENT_ENTRIES(s)                                                           \
  { "rotate", 0, 0, G_OPTION_ARG_DOUBLE, &(s).rotate, (s).help[0], "DEG" },                  \
  { "shear", 0, 0, G_OPTION_ARG_DOUBLE, &(s).shear, (s).help[1], "RAD" },                    \
  { "elastic-sigma", 0, 0, G_OPTION_ARG_DOUBLE, &(s).elastic_sigma, (s).help[2], "PX" }
/* Checks the ranges (rotate 0-180, shear 0 to < 1.5, elastic_sigma 0-100) and sets them in p;
 * FALSE with the reason printed ("emseg CMD: ...") when one is out of range. */
gboolean emseg_cli_augment_strengths_apply(const char *cmd, const CliAugmentStrengths *s,
                                           EngAugmentParams *p);
