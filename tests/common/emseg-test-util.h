/* emseg-test-util.h — small helpers shared by the test programs (GLib allowed here). */
#pragma once

/* Removes a file or a folder and everything below it; missing paths are fine. */
void emseg_test_remove_tree(const char *path);
