/* Child processes, signals and the few file-system calls batch runs need
 * (`bnlab sweep`, `bnlab merge`): start a program with its output in a file,
 * wait for any of several children without blocking signals out, send
 * signals, trap SIGINT/SIGTERM/SIGHUP into a flag, list a directory.
 * Linux (POSIX + prctl and /proc/self/exe).
 *
 * Like the rest of the core, failures return a status (or NULL / -1) and
 * leave a message naming the operation and the system's reason. */
#ifndef BN_PROCESS_H
#define BN_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

typedef struct bn_spawn_opts {
    const char *output; /* stdout and stderr go to this file (NULL: inherited) */
    bool append;        /* append to output instead of truncating it */
    const char *input;  /* stdin comes from this file (NULL: inherited) */
} bn_spawn_opts;

/* Starts argv[0] (a path: no PATH search) with arguments argv (NULL-ended).
 * The child gets SIGTERM when this process dies (prctl PR_SET_PDEATHSIG), so
 * a killed parent leaves no orphans; it inherits the environment, the
 * working directory and the process group. Returns the pid, or -1 with the
 * error (the output file cannot be opened, the program cannot be run). */
pid_t bn_process_spawn(const char *const *argv, const bn_spawn_opts *opts);

typedef struct bn_process_end {
    pid_t pid;
    int exit_code; /* exit status, or -1 when killed by a signal */
    int signal;    /* the signal that killed it, or 0 */
} bn_process_end;

enum { BN_WAIT_ERROR = -1, BN_WAIT_TIMEOUT = 0, BN_WAIT_ENDED = 1, BN_WAIT_INTERRUPTED = 2 };

/* Waits until one of the n children in pids ends (BN_WAIT_ENDED, *end filled;
 * it is reaped), `timeout` seconds passed (BN_WAIT_TIMEOUT; a negative
 * timeout waits forever), or a signal arrived (BN_WAIT_INTERRUPTED: a signal
 * handler ran, or a trapped signal is pending, see bn_trap_signals).
 * BN_WAIT_ERROR when a pid is not a child of this process. Polls every
 * 20 ms at most, so no signal mask games are needed. */
int bn_process_wait(const pid_t *pids, size_t n, double timeout, bn_process_end *end);

/* Sends sig to one process (pid > 0 only: never a group or everyone).
 * Returns BN_OK, or BN_ESTATE when the process no longer exists. */
bn_status bn_process_kill(pid_t pid, int sig);

/* "TERM", "SIGTERM" or "15" -> 15; 0 when unknown. */
int bn_signal_number(const char *name);
/* 15 -> "SIGTERM" (in buf when not a common one: "SIG37"). */
const char *bn_signal_name(int sig, char *buf, size_t size);

/* on: SIGINT, SIGTERM and SIGHUP only record themselves (the previous
 * handlers are kept aside; a signal ignored before, as nohup does with
 * SIGHUP, stays ignored); off: the previous handlers come back. Signals
 * less than 0.2 s apart count as one (timeout(1) and a terminal deliver to
 * the process and to its group). */
bn_status bn_trap_signals(bool on);
/* The trapped signal that came since the last call (0 when none); taking it
 * clears it. */
int bn_take_signal(void);

/* Sleeps; false when a signal cut it short. */
bool bn_sleep(double seconds);

/* The running executable's path (/proc/self/exe). */
bn_status bn_executable_path(char *buf, size_t size);

/* Directory listing, one name at a time ("." and ".." left out). */
typedef struct bn_dir bn_dir;
bn_dir *bn_dir_open(const char *path);
/* The next name, NULL at the end or on error (then bn_last_status() is
 * set; it is BN_OK at the end). Valid until the next call. */
const char *bn_dir_next(bn_dir *d);
void bn_dir_close(bn_dir *d); /* NULL is fine */

/* What is at path, without following a final symbolic link unless `follow`:
 * "file", "directory", "link", "other", or NULL when nothing is there
 * (status BN_OK) or it cannot be looked at (status BN_EIO). */
const char *bn_file_type(const char *path, bool follow);

#endif
