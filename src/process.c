/* Child processes, signals and directory listings (see process.h). */
#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_SECONDS 0.02

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- signals ------------------------------------------------------------- */

static const int trapped[] = { SIGINT, SIGTERM, SIGHUP };
#define N_TRAPPED (sizeof trapped / sizeof *trapped)

static atomic_int pending_signal;    /* trapped, not yet taken */
static atomic_llong last_signal_ns;  /* CLOCK_MONOTONIC of the last one, for de-duplication */
static struct sigaction previous[N_TRAPPED];
static bool installed[N_TRAPPED];
static bool trapping;

/* Handlers may run on any thread (OpenMP workers): lock-free atomics only. */
static void on_trapped_signal(int sig)
{
    int saved = errno;
    long long now = (long long)(now_seconds() * 1e9);
    long long last = atomic_exchange(&last_signal_ns, now);
    if (now - last >= 200000000LL) atomic_store(&pending_signal, sig);
    errno = saved;
}

bn_status bn_trap_signals(bool on)
{
    if (on == trapping) return BN_OK;
    for (size_t i = 0; i < N_TRAPPED; i++) {
        int rc = 0;
        if (on) {
            /* An ignored signal stays ignored (nohup's SIGHUP). */
            rc = sigaction(trapped[i], NULL, &previous[i]);
            installed[i] = rc == 0 && previous[i].sa_handler != SIG_IGN;
            if (installed[i]) {
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_handler = on_trapped_signal;
                sa.sa_flags = 0; /* no SA_RESTART: a sleep or wait returns at once */
                sigemptyset(&sa.sa_mask);
                rc = sigaction(trapped[i], &sa, NULL);
            }
        } else if (installed[i]) {
            rc = sigaction(trapped[i], &previous[i], NULL);
            installed[i] = false;
        }
        if (rc != 0) return bn_fail(BN_ESTATE, "trap_signals: sigaction: %s", strerror(errno));
    }
    if (on) {
        atomic_store(&pending_signal, 0);
        atomic_store(&last_signal_ns, -1000000000000LL);
    }
    trapping = on;
    return BN_OK;
}

int bn_take_signal(void) { return atomic_exchange(&pending_signal, 0); }

static const struct {
    int sig;
    const char *name;
} signal_names[] = {
    { SIGHUP, "SIGHUP" },   { SIGINT, "SIGINT" },   { SIGQUIT, "SIGQUIT" }, { SIGILL, "SIGILL" },
    { SIGTRAP, "SIGTRAP" }, { SIGABRT, "SIGABRT" }, { SIGBUS, "SIGBUS" },   { SIGFPE, "SIGFPE" },
    { SIGKILL, "SIGKILL" }, { SIGUSR1, "SIGUSR1" }, { SIGSEGV, "SIGSEGV" }, { SIGUSR2, "SIGUSR2" },
    { SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" }, { SIGTERM, "SIGTERM" }, { SIGCHLD, "SIGCHLD" },
    { SIGCONT, "SIGCONT" }, { SIGSTOP, "SIGSTOP" }, { SIGTSTP, "SIGTSTP" }, { SIGXCPU, "SIGXCPU" },
    { SIGXFSZ, "SIGXFSZ" },
};
#define N_SIGNAL_NAMES (sizeof signal_names / sizeof *signal_names)

int bn_signal_number(const char *name)
{
    if (name == NULL || *name == '\0') return 0;
    if (name[0] >= '0' && name[0] <= '9') {
        char *end;
        long n = strtol(name, &end, 10);
        return (*end == '\0' && n > 0 && n < NSIG) ? (int)n : 0;
    }
    const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
    for (size_t i = 0; i < N_SIGNAL_NAMES; i++)
        if (strcmp(signal_names[i].name + 3, bare) == 0) return signal_names[i].sig;
    return 0;
}

const char *bn_signal_name(int sig, char *buf, size_t size)
{
    for (size_t i = 0; i < N_SIGNAL_NAMES; i++)
        if (signal_names[i].sig == sig) return signal_names[i].name;
    snprintf(buf, size, "SIG%d", sig);
    return buf;
}

bool bn_sleep(double seconds)
{
    if (!(seconds > 0)) return true;
    if (seconds > 1e9) seconds = 1e9;
    struct timespec ts = { (time_t)seconds, (long)((seconds - floor(seconds)) * 1e9) };
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    return nanosleep(&ts, NULL) == 0 && atomic_load(&pending_signal) == 0;
}

/* ---- processes ----------------------------------------------------------- */

/* An fd >= 3 with close-on-exec, so that dup2 onto 0/1/2 always makes a
 * fresh descriptor (dup2(fd, fd) would keep close-on-exec). */
static int open_high(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0666);
    if (fd < 0 || fd >= 3) return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return high;
}

/* Between fork and exec only async-signal-safe calls: this runs in a copy
 * of a process that may have other threads. */
static void child_exec(const char *const *argv, int in_fd, int out_fd, int report_fd, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Trapped signals' handlers, inherited, only set a flag in this copy
     * until exec resets them to the defaults. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
    if (in_fd >= 0 && dup2(in_fd, STDIN_FILENO) < 0) goto fail;
    if (out_fd >= 0 && (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)) goto fail;
#ifdef CLOSE_RANGE_CLOEXEC
    /* Lua's io.open files have no close-on-exec: keep them from the child. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    execv(argv[0], (char *const *)argv);
fail:;
    int e = errno;
    ssize_t w = write(report_fd, &e, sizeof e);
    (void)w;
    _exit(127);
}

pid_t bn_process_spawn(const char *const *argv, const bn_spawn_opts *opts)
{
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
        return bn_fail(BN_EARG, "spawn: argv expected a program path and its arguments, got none"), -1;
    bn_spawn_opts none = { 0 };
    if (opts == NULL) opts = &none;
    int in_fd = -1, out_fd = -1, report[2] = { -1, -1 };
    if (opts->input && (in_fd = open_high(opts->input, O_RDONLY)) < 0) {
        bn_fail(BN_EIO, "spawn: cannot open input %s: %s", opts->input, strerror(errno));
        goto fail;
    }
    if (opts->output &&
        (out_fd = open_high(opts->output, O_WRONLY | O_CREAT | (opts->append ? O_APPEND : O_TRUNC))) < 0) {
        bn_fail(BN_EIO, "spawn: cannot open output %s: %s", opts->output, strerror(errno));
        goto fail;
    }
    if (pipe2(report, O_CLOEXEC) != 0) {
        bn_fail(BN_EIO, "spawn: pipe: %s", strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) child_exec(argv, in_fd, out_fd, report[1], parent);
    int fork_errno = errno;
    close(report[1]);
    report[1] = -1;
    if (pid < 0) {
        bn_fail(BN_EIO, "spawn: fork: %s", strerror(fork_errno));
        goto fail;
    }
    /* exec succeeded when the pipe closes with nothing in it */
    int child_errno = 0;
    ssize_t got;
    do got = read(report[0], &child_errno, sizeof child_errno);
    while (got < 0 && errno == EINTR);
    close(report[0]);
    if (in_fd >= 0) close(in_fd);
    if (out_fd >= 0) close(out_fd);
    if (got == (ssize_t)sizeof child_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        return bn_fail(BN_EIO, "spawn: cannot run %s: %s", argv[0], strerror(child_errno)), -1;
    }
    return pid;

fail:
    if (in_fd >= 0) close(in_fd);
    if (out_fd >= 0) close(out_fd);
    if (report[0] >= 0) close(report[0]);
    if (report[1] >= 0) close(report[1]);
    return -1;
}

int bn_process_wait(const pid_t *pids, size_t n, double timeout, bn_process_end *end)
{
    if (n == 0) return bn_fail(BN_EARG, "wait: expected at least one process id, got none"), BN_WAIT_ERROR;
    for (size_t i = 0; i < n; i++)
        if (pids[i] <= 0)
            return bn_fail(BN_EARG, "wait: process ids must be positive, got %ld", (long)pids[i]), BN_WAIT_ERROR;
    double deadline = timeout >= 0 ? now_seconds() + timeout : INFINITY;
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            int st;
            pid_t r = waitpid(pids[i], &st, WNOHANG);
            if (r == pids[i]) {
                end->pid = r;
                end->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
                end->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
                return BN_WAIT_ENDED;
            }
            if (r < 0 && errno == EINTR) return BN_WAIT_INTERRUPTED;
            if (r < 0)
                return bn_fail(BN_EARG, "wait: process %ld is not a child of this process (or was already waited for)",
                               (long)pids[i]),
                       BN_WAIT_ERROR;
        }
        if (atomic_load(&pending_signal) != 0) return BN_WAIT_INTERRUPTED;
        double left = deadline - now_seconds();
        if (left <= 0) return BN_WAIT_TIMEOUT;
        double nap = left < POLL_SECONDS ? left : POLL_SECONDS;
        struct timespec ts = { 0, (long)(nap * 1e9) };
        if (nanosleep(&ts, NULL) != 0 && errno == EINTR) return BN_WAIT_INTERRUPTED;
    }
}

bn_status bn_process_kill(pid_t pid, int sig)
{
    if (pid <= 0) return bn_fail(BN_EARG, "kill: pid expected a positive process id, got %ld", (long)pid);
    if (sig < 0 || sig >= NSIG) return bn_fail(BN_EARG, "kill: signal expected 0..%d, got %d", NSIG - 1, sig);
    if (kill(pid, sig) == 0) return BN_OK;
    if (errno == ESRCH) return bn_fail(BN_ESTATE, "kill: no process %ld", (long)pid);
    return bn_fail(BN_EIO, "kill: process %ld: %s", (long)pid, strerror(errno));
}

bn_status bn_executable_path(char *buf, size_t size)
{
    if (size < 2) return bn_fail(BN_EARG, "executable: buffer too small");
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n < 0) return bn_fail(BN_EIO, "executable: /proc/self/exe: %s", strerror(errno));
    if ((size_t)n >= size - 1) return bn_fail(BN_EIO, "executable: the path is longer than %zu bytes", size - 2);
    buf[n] = '\0';
    return BN_OK;
}

/* ---- files --------------------------------------------------------------- */

struct bn_dir {
    DIR *d;
    char *path;
};

bn_dir *bn_dir_open(const char *path)
{
    bn_dir *d = calloc(1, sizeof *d);
    size_t n = strlen(path) + 1;
    char *copy = malloc(n);
    if (!d || !copy) {
        free(d);
        free(copy);
        return bn_fail_null(BN_ENOMEM, "listdir: out of memory");
    }
    memcpy(copy, path, n);
    d->path = copy;
    d->d = opendir(path);
    if (d->d == NULL) {
        int e = errno;
        free(d->path);
        free(d);
        return bn_fail_null(BN_EIO, "listdir: %s: %s", path, strerror(e));
    }
    return d;
}

const char *bn_dir_next(bn_dir *d)
{
    bn_clear_error();
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d->d);
        if (e == NULL) {
            if (errno != 0) bn_fail(BN_EIO, "listdir: %s: %s", d->path, strerror(errno));
            return NULL;
        }
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) return e->d_name;
    }
}

void bn_dir_close(bn_dir *d)
{
    if (d == NULL) return;
    closedir(d->d);
    free(d->path);
    free(d);
}

const char *bn_file_type(const char *path, bool follow)
{
    bn_clear_error();
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return NULL;
        return bn_fail_null(BN_EIO, "file_type: %s: %s", path, strerror(errno));
    }
    if (S_ISREG(st.st_mode)) return "file";
    if (S_ISDIR(st.st_mode)) return "directory";
    if (S_ISLNK(st.st_mode)) return "link";
    return "other";
}
