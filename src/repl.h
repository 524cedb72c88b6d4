/* The bnlab command's shared pieces: main.c runs scripts and owns the
 * error/interrupt machinery; repl.c is the interactive loop built on it.
 * Only these two files (and src/bindings/) include lua.h. */
#ifndef BN_REPL_H
#define BN_REPL_H

#include <stdbool.h>
#include <stdio.h>

#include <lua.h>

#ifndef BNLAB_VERSION
#define BNLAB_VERSION "0.1.0-dev"
#endif

/* Exit statuses of the bnlab command (documented in docs/cli.md). */
enum {
    BNLAB_EXIT_OK = 0,
    BNLAB_EXIT_ERROR = 1,        /* a script failed: load, syntax or runtime error */
    BNLAB_EXIT_USAGE = 2,        /* the command line itself is wrong */
    BNLAB_EXIT_INTERRUPTED = 130 /* Ctrl-C stopped a script (128 + SIGINT, as shells report it) */
};

/* ---- from main.c --------------------------------------------------------- */
/* lua_pcall with a traceback message handler and Ctrl-C armed: a SIGINT while
 * the call runs raises the Lua error "interrupted!" at the next instruction.
 * Stack behaviour is lua_pcall's. */
int cli_call(lua_State *L, int narg, int nres);
/* Prints the error on top of the stack (if status is not LUA_OK) to stderr
 * and pops it; returns status. */
int cli_report(lua_State *L, int status);
/* True when the last failed cli_call was stopped by Ctrl-C. */
bool cli_was_interrupted(void);
/* One line: "bnlab 0.1.0  Lua 5.4.4  OpenBLAS ...  libpng ...  N threads". */
void cli_print_banner(FILE *f);

/* ---- from repl.c --------------------------------------------------------- */
/* Reads statements from stdin until EOF, printing every expression's value.
 * With `interactive` (stdin is a terminal): readline editing, completion,
 * history and prompts; otherwise plain line reading without prompts.
 * Returns an exit status. */
int repl_run(lua_State *L, bool interactive);

#endif
