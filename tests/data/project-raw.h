/* project-raw.h — tests' access to project files behind the store's back: one SQL value,
 * raw statements (with a blob), an independent zlib, and a current project rewritten as
 * schema 3 or 2 stored it (for the migration tests of the store and of `emseg project
 * upgrade`). Every failure is a test failure (g_assert / g_error). The returned GBytes is
 * the caller's. */
#pragma once

#include <glib.h>

#include "emseg-project.h"

/* The first column of the first row of sql, run read-only on the file at path. */
gint64 raw_int(const char *path, const char *sql);
/* Runs sql (any number of statements). */
void raw_exec(const char *path, const char *sql);
/* Runs sql with ?1 bound to blob (one statement, no rows). */
void raw_exec_blob(const char *path, const char *sql, const void *blob, gsize len);
/* zlib, written independently of the store's codec (whole input in one call). */
GBytes *zlib_compress(const void *data, gsize len);
/* Rewrites a current project as schema version 3 had it: no table uncertainty. */
void downgrade_to_v3(const char *path);
/* Rewrites a current project the way schema version 2 stored masks: one zlib blob per
 * slice in table masks (no row for a slice without labels), no table mask_tiles (nor
 * uncertainty). The masks of stack id are read through the store first, so the file holds
 * the same labels. */
void downgrade_to_v2(const char *path, gint64 id);
