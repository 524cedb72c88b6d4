/* The bnlab command: runs Lua scripts with the bnlab library, starts the REPL,
 * reports versions. It follows lua.c wherever a Lua user has expectations (the
 * `arg` table, -e/-l/-i, `-` for stdin, error messages, Ctrl-C), so a script
 * behaves here as under the stock interpreter. Every form is in docs/cli.md. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <png.h>

#include "bindings/bindings.h"
#include "blas.h"
#include "profile.h"
#include "repl.h"

#define MAX_THREADS 4096

/* ---- errors and Ctrl-C --------------------------------------------------- */

/* The state a Ctrl-C interrupts; set for the duration of cli_call. */
static lua_State *volatile interrupt_target;
static volatile sig_atomic_t interrupt_raised;  /* the hook raised "interrupted!" */
static bool failed_by_interrupt;                /* the last cli_call's error is that one */
static int failed_by_signal;                    /* ... raised by bn.raise_interrupt for this signal */
static volatile sig_atomic_t interrupt_pending; /* armed, not yet raised */
static double last_interrupt;                   /* CLOCK_MONOTONIC seconds; handler-only */
static double last_terminate;                   /* the same for SIGTERM */

/* Raises "file:line: interrupted!" naming the innermost Lua line running.
 * Level 0 is the interrupted function itself (a hook has no frame of its
 * own); when that is a C function (the hook fired on its call or return),
 * the line is its Lua caller's. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
    lua_sethook(L, NULL, 0, 0);
    interrupt_pending = 0;
    interrupt_raised = 1;
    for (int level = 0; lua_getstack(L, level, ar); level++) {
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) {
            lua_pushfstring(L, "%s:%d: interrupted!", ar->short_src, ar->currentline);
            lua_error(L);
        }
    }
    lua_pushliteral(L, "interrupted!");
    lua_error(L);
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* As lua.c's laction, the handler only arms a hook (lua_sethook may be called
 * from a signal handler), and the hook raises the error at the next Lua
 * instruction, where unwinding is safe. Unlike lua.c:
 *  - a SIGINT within 0.2 s of the last one is the same interrupt delivered
 *    twice (timeout(1) signals the process and its group) and is ignored;
 *  - a second Ctrl-C while the first still waits (a long C kernel has not
 *    returned to Lua) kills the process: the way out;
 *  - a Ctrl-C after the error was raised (a script caught it with pcall and
 *    went on) interrupts again instead of killing;
 *  - while Lua code defers interrupts (bn.train.fit: it finishes the step and
 *    writes a checkpoint first), the first one is only recorded for it. */
static void on_sigint(int sig)
{
    double now = monotonic_seconds();
    if (now - last_interrupt < 0.2) return;
    last_interrupt = now;
    if (lt_interrupt_defer(sig)) return;
    if (interrupt_pending) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    interrupt_pending = 1;
    lua_sethook(interrupt_target, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* SIGTERM kills as by default, unless Lua code defers interrupts: then,
 * like a deferred Ctrl-C, it is recorded (exit status 143 once handled). */
static void on_sigterm(int sig)
{
    double now = monotonic_seconds();
    if (now - last_terminate < 0.2) return; /* timeout(1) signals the group too */
    last_terminate = now;
    if (lt_interrupt_defer(sig)) return;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Adds a traceback to string errors; other error objects go through __tostring.
 * The error of bn.raise_interrupt (an interrupted training run saying where
 * its checkpoint is) is one line: it is shown as is. */
static int traceback_handler(lua_State *L)
{
    failed_by_signal = lt_interrupt_error_signal(L, 1);
    if (failed_by_signal) {
        failed_by_interrupt = true;
        return 1;
    }
    const char *msg = lua_tostring(L, 1);
    /* Runs for the error that ends the call only (a pcall inside catches the
     * others), so this tells whether Ctrl-C is what stopped the script. */
    static const char mark[] = "interrupted!";
    size_t len = msg ? strlen(msg) : 0;
    failed_by_interrupt = interrupt_raised && len >= sizeof mark - 1 &&
                          strcmp(msg + len - (sizeof mark - 1), mark) == 0;
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int cli_call(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);

    struct sigaction armed, armed_term, previous, previous_term;
    memset(&armed, 0, sizeof armed);
    armed.sa_handler = on_sigint;
    armed.sa_flags = 0;
    sigemptyset(&armed.sa_mask);
    armed_term = armed;
    armed_term.sa_handler = on_sigterm;
    interrupt_target = L;
    interrupt_raised = 0;
    interrupt_pending = 0;
    failed_by_interrupt = false;
    failed_by_signal = 0;
    last_interrupt = -1.0;
    last_terminate = -1.0;
    sigaction(SIGINT, &armed, &previous);
    sigaction(SIGTERM, &armed_term, &previous_term);
    int status = lua_pcall(L, narg, nres, base);
    sigaction(SIGTERM, &previous_term, NULL);
    sigaction(SIGINT, &previous, NULL);
    /* A Ctrl-C that came as the call returned left the hook armed: disarm it
     * so it cannot fire in whatever runs next (a user's own hook stays). */
    if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
    interrupt_pending = 0;

    lua_remove(L, base);
    return status;
}

int cli_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        /* after the terminal's "^C", start the message on a line of its own */
        if (cli_was_interrupted() && isatty(STDERR_FILENO)) fputc('\n', stderr);
        fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

bool cli_was_interrupted(void) { return failed_by_interrupt; }

static int exit_status_of(int status)
{
    if (status == LUA_OK) return BNLAB_EXIT_OK;
    if (cli_was_interrupted() && failed_by_signal) return 128 + failed_by_signal; /* 130, 143 */
    return cli_was_interrupted() ? BNLAB_EXIT_INTERRUPTED : BNLAB_EXIT_ERROR;
}

/* ---- versions ------------------------------------------------------------ */

static const char *libpng_version(void) { return png_get_libpng_ver(NULL); }

void cli_print_banner(FILE *f)
{
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." -> "OpenBLAS 0.3.21": --version has the rest */
    const char *blas = bn_blas_version();
    int blas_len = (int)strcspn(blas, " ");
    if (blas[blas_len] == ' ') blas_len += 1 + (int)strcspn(blas + blas_len + 1, " ");
    int threads = bn_get_num_threads();
    fprintf(f, "bnlab %s (%s, %.*s, %d thread%s). `bn` is loaded; Tab completes, Ctrl-D exits.\n",
            BNLAB_VERSION, LUA_RELEASE, blas_len, blas, threads, threads == 1 ? "" : "s");
}

static void print_version(void)
{
    printf("bnlab %s\n", BNLAB_VERSION);
    printf("%s\n", LUA_RELEASE);
    printf("%s\n", bn_blas_version());
    printf("libpng %s\n", libpng_version());
    printf("threads %d\n", bn_get_num_threads());
}

/* package.preload["bnlab.build"]: what this binary was built with, as bn.build. */
static int open_build_info(lua_State *L)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, BNLAB_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    lua_pushstring(L, bn_blas_version());
    lua_setfield(L, -2, "blas");
    lua_pushstring(L, libpng_version());
    lua_setfield(L, -2, "libpng");
    /* Tests that limit address space (ulimit -v) cannot run under ASan, whose
     * shadow memory reserves terabytes of it. */
#ifdef __SANITIZE_ADDRESS__
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "sanitize");
    return 1;
}

/* ---- the command line ---------------------------------------------------- */

static const char *program_name = "bnlab";

static void print_help(void)
{
    printf("usage: %s [options] [script.lua [args...]]\n"
           "       %s [options] run script.lua [args...]\n"
           "       %s [options] repl\n"
           "\n"
           "Runs Lua 5.4 with the bnlab library: `require \"bnlab\"` works, and the\n"
           "global `bn` is already loaded. With no script: the REPL on a terminal,\n"
           "else the script read from standard input.\n"
           "\n"
           "commands:\n"
           "  run SCRIPT [ARGS]  run SCRIPT; it sees ARGS in `arg` as under `lua`\n"
           "  SCRIPT [ARGS]      the same\n"
           "  -                  run the script read from standard input\n"
           "  repl               start the REPL\n"
           "  sweep SCRIPT ...   run SCRIPT over a grid of options x seeds, resumable\n"
           "                     (bnlab sweep --help; docs/batch.md)\n"
           "  merge DIR...       one table of every summary.json below DIR (bnlab merge --help)\n"
           "\n"
           "options (before the script; everything after it goes to the script):\n"
           "  -e CODE            run CODE (repeatable; runs before the script)\n"
           "  -l NAME            NAME = require \"NAME\" (-l g=NAME sets global g)\n"
           "  -i                 enter the REPL after the script or -e code\n"
           "  -t, --threads N    N threads for kernels and BLAS (overrides BNLAB_THREADS)\n"
           "  -W                 turn Lua warnings on\n"
           "  --profile          time every op; print a per-op table to stderr at exit\n"
           "  -v, --version      print bnlab, Lua, OpenBLAS, libpng versions and threads\n"
           "  -h, --help         print this help\n"
           "  --                 stop handling options\n"
           "\n"
           "environment:\n"
           "  BNLAB_THREADS      thread count when -t is not given (default: all cores)\n"
           "  BNLAB_LUA_PATH     extra module directories (or ?-templates), ';'-separated,\n"
           "                     searched before the bnlab library\n"
           "  BNLAB_HISTORY      REPL history file (default ~/.bnlab_history; empty: none)\n"
           "\n"
           "exit status: 0 success, 1 script error, 2 usage error, 130 interrupted (Ctrl-C),\n"
           "             143 training stopped by SIGTERM (after writing its checkpoint)\n"
           "REPL: Tab completes, Ctrl-C cancels the line or stops the statement, Ctrl-D exits.\n"
           "More: docs/cli.md\n",
           program_name, program_name, program_name);
}

static int usage_error(const char *fmt, const char *detail)
{
    fprintf(stderr, "%s: ", program_name);
    fprintf(stderr, fmt, detail);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", program_name);
    return BNLAB_EXIT_USAGE;
}

typedef struct cli_action {
    char kind; /* 'e' run code, 'l' require a library */
    const char *value;
} cli_action;

typedef struct cli_options {
    int argc;
    char **argv;
    cli_action *actions; /* -e and -l, in command-line order */
    int n_actions;
    int script;      /* index in argv of the script, or 0 when none */
    bool from_stdin; /* the script is `-` */
    bool repl;       /* `repl` command */
    const char *tool; /* `sweep` or `merge`: lua/bnlab/<tool>.lua's main gets the words after it */
    int tool_status;  /* what that main returned */
    bool interactive_after; /* -i */
    bool version;
    bool warnings;
    bool profile;    /* --profile */
    int threads;     /* 0: not given */
    int exit_status; /* set by the protected main */
} cli_options;

/* A thread count from -t or BNLAB_THREADS: a whole number in 1..MAX_THREADS. */
static bool parse_threads(const char *s, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || n < 1 || n > MAX_THREADS) return false;
    *out = (int)n;
    return true;
}

/* Option value: either glued (-eCODE, --threads=N) or the next word. */
static const char *option_value(int argc, char **argv, int *i, size_t name_len)
{
    const char *arg = argv[*i];
    if (arg[name_len] == '=' && arg[1] == '-') return arg + name_len + 1;
    if (arg[name_len] != '\0') return arg[1] == '-' ? NULL : arg + name_len;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* Returns -1 to go on, or an exit status (help printed, usage error). */
static int parse_command_line(int argc, char **argv, cli_options *o)
{
    bool have_command = false;
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (!have_command && strcmp(a, "run") == 0) {
                have_command = true;
                i++;
                if (i >= argc) return usage_error("%s", "run: missing script (use - for standard input)");
                continue;
            }
            if (!have_command && (strcmp(a, "sweep") == 0 || strcmp(a, "merge") == 0)) {
                o->tool = a;
                o->script = i; /* arg[0] = the command, arg[1..] = its words */
                return -1;
            }
            if (!have_command && strcmp(a, "repl") == 0) {
                have_command = true;
                o->repl = true;
                i++;
                continue;
            }
            break; /* the script */
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help();
            return BNLAB_EXIT_OK;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            o->version = true;
        } else if (strcmp(a, "-i") == 0) {
            o->interactive_after = true;
        } else if (strcmp(a, "-W") == 0) {
            o->warnings = true;
        } else if (strcmp(a, "--profile") == 0) {
            o->profile = true;
        } else if (strncmp(a, "-e", 2) == 0 || strncmp(a, "-l", 2) == 0) {
            const char *v = option_value(argc, argv, &i, 2);
            if (v == NULL) return usage_error("option '%s' needs an argument", a);
            o->actions[o->n_actions++] = (cli_action){ a[1], v };
        } else if (strncmp(a, "-t", 2) == 0 || strncmp(a, "--threads", 9) == 0) {
            bool long_form = a[1] == '-';
            if (long_form && a[9] != '\0' && a[9] != '=') return usage_error("unknown option '%s'", a);
            const char *v = option_value(argc, argv, &i, long_form ? 9 : 2);
            if (v == NULL) return usage_error("option '%s' needs a thread count", a);
            if (!parse_threads(v, &o->threads))
                return usage_error("-t/--threads expects a whole number from 1 to 4096, got '%s'", v);
        } else {
            return usage_error("unknown option '%s'", a);
        }
        i++;
    }
    if (i < argc) {
        if (o->repl) return usage_error("repl takes no script, got '%s'", argv[i]);
        o->script = i;
        /* As in lua.c: `-` is stdin, unless it came right after `--`. */
        o->from_stdin = strcmp(argv[i], "-") == 0 && strcmp(argv[i - 1], "--") != 0;
    }
    return -1;
}

/* ---- the Lua state ------------------------------------------------------- */

/* Adds the module templates of one library directory to the buffer. */
static void add_lua_dir(luaL_Buffer *b, const char *dir)
{
    luaL_addstring(b, dir);
    luaL_addstring(b, "/?.lua;");
    luaL_addstring(b, dir);
    luaL_addstring(b, "/?/init.lua;");
}

/* BNLAB_LUA_PATH entries: a template (has '?') as is, else a directory. */
static void add_env_lua_path(luaL_Buffer *b, const char *spec)
{
    while (*spec) {
        size_t len = strcspn(spec, ";:");
        if (len > 0 && len < PATH_MAX) {
            char entry[PATH_MAX];
            memcpy(entry, spec, len);
            entry[len] = '\0';
            if (strchr(entry, '?')) {
                luaL_addstring(b, entry);
                luaL_addchar(b, ';');
            } else {
                add_lua_dir(b, entry);
            }
        }
        spec += len;
        if (*spec) spec++;
    }
}

/* The directory holding this executable (no trailing slash), or "" when
 * neither /proc/self/exe nor argv[0] tells. */
static void executable_dir(char *out, size_t size, const char *argv0)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
    } else if (argv0 && strchr(argv0, '/') && strlen(argv0) < sizeof path) {
        strcpy(path, argv0);
    } else {
        out[0] = '\0';
        return;
    }
    char *slash = strrchr(path, '/');
    if (slash == path) slash++; /* the executable is in / */
    *slash = '\0';
    snprintf(out, size, "%s", path);
}

/* Adds dir's templates when it holds the bnlab library (so that a stray
 * "lua" directory near an installed binary is not searched). */
static void add_library_dir(luaL_Buffer *b, const char *dir)
{
    char init[PATH_MAX];
    int n = snprintf(init, sizeof init, "%s/bnlab/init.lua", dir);
    if (n > 0 && (size_t)n < sizeof init && access(init, R_OK) == 0) add_lua_dir(b, dir);
}

/* package.path = BNLAB_LUA_PATH, then the library near the executable, then
 * Lua's own default (which honours LUA_PATH). Near the executable means:
 * <exe dir>/lua (./bnlab in a checkout), <exe dir>/../lua (a build directory
 * of a checkout, build-asan/bnlab) and <exe dir>/../share/bnlab/lua (an
 * installation, PREFIX/bin/bnlab). */
static void set_package_path(lua_State *L, const char *argv0)
{
    luaL_Buffer b;
    lua_getglobal(L, "package");
    luaL_buffinit(L, &b);
    const char *env = getenv("BNLAB_LUA_PATH");
    if (env) add_env_lua_path(&b, env);

    char exe_dir[PATH_MAX], candidate[PATH_MAX + 32];
    executable_dir(exe_dir, sizeof exe_dir, argv0);
    if (exe_dir[0]) {
        static const char *const beside_exe[] = { "lua", "../lua", "../share/bnlab/lua" };
        for (size_t i = 0; i < sizeof beside_exe / sizeof *beside_exe; i++) {
            int n = snprintf(candidate, sizeof candidate, "%s/%s", exe_dir, beside_exe[i]);
            if (n > 0 && (size_t)n < sizeof candidate) add_library_dir(&b, candidate);
        }
    }
    lua_getfield(L, -2, "path");
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

static void preload(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* As lua.c: arg[0] is the script, arg[1..n] its arguments, and the words
 * before the script (the interpreter and its options) get negative indices.
 * Without a script, arg[0] is the program name. */
static void create_arg_table(lua_State *L, const cli_options *o)
{
    int script = o->script;
    int narg = o->argc - (script + 1);
    lua_createtable(L, narg > 0 ? narg : 0, script + 1);
    for (int i = 0; i < o->argc; i++) {
        lua_pushstring(L, o->argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* The global `bn`, so the REPL and one-liners need no require. A broken
 * library is reported but does not stop plain Lua from running. */
static void load_bn_global(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "bnlab");
    int status = lua_pcall(L, 1, 1, 0);
    if (status == LUA_OK) {
        lua_setglobal(L, "bn");
        return;
    }
    fprintf(stderr, "%s: warning: the bnlab library did not load, `bn` is not set:\n  %s\n", program_name,
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
    lua_pop(L, 1);
}

static int run_chunk(lua_State *L, int load_status)
{
    if (load_status == LUA_OK) load_status = cli_call(L, 0, 0);
    return cli_report(L, load_status);
}

/* -l NAME or -l global=NAME: global = require(NAME). */
static int run_require(lua_State *L, const char *spec)
{
    const char *eq = strchr(spec, '=');
    const char *module = eq ? eq + 1 : spec;
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    int status = cli_call(L, 1, 1);
    if (status == LUA_OK) {
        if (eq)
            lua_pushlstring(L, spec, (size_t)(eq - spec));
        else
            lua_pushstring(L, module);
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
    return cli_report(L, status);
}

static int run_script(lua_State *L, const cli_options *o)
{
    const char *fname = o->from_stdin ? NULL : o->argv[o->script];
    int status = luaL_loadfile(L, fname);
    if (status == LUA_ERRFILE) {
        /* "cannot open x.lua: No such file..." is about bnlab's argument, not a line in a script */
        fprintf(stderr, "%s: %s\n", program_name, lua_tostring(L, -1));
        lua_pop(L, 1);
        return status;
    }
    if (status != LUA_OK) return cli_report(L, status);
    int nargs = o->argc - o->script - 1;
    luaL_checkstack(L, nargs, "too many script arguments");
    for (int i = o->script + 1; i < o->argc; i++) lua_pushstring(L, o->argv[i]);
    return cli_report(L, cli_call(L, nargs, 0));
}

/* --profile: times the ops from here on; the table goes to stderr at exit
 * (atexit, so os.exit and errors print it too; not a forked child). */
static pid_t profile_pid;

static void print_profile(void)
{
    if (getpid() != profile_pid) return;
    bn_profile_stop();
    char *report = bn_profile_report();
    fflush(stdout);
    fprintf(stderr, "\n%s", report ? report : "profile: out of memory\n");
    free(report);
}

static void start_profile(void)
{
    profile_pid = getpid();
    atexit(print_profile);
    bn_profile_start();
}

/* `bnlab sweep|merge ARGS`: require("bnlab.<tool>").main({ARGS}) returns the exit status. */
static int run_tool(lua_State *L, cli_options *o)
{
    static const char code[] = "local tool = ...\n"
                               "return require('bnlab.' .. tool).main({ select(2, ...) })";
    int status = luaL_loadbuffer(L, code, sizeof code - 1, "=bnlab");
    if (status != LUA_OK) return cli_report(L, status);
    int nargs = o->argc - o->script;
    luaL_checkstack(L, nargs, "too many arguments");
    for (int i = o->script; i < o->argc; i++) lua_pushstring(L, o->argv[i]);
    status = cli_call(L, nargs, 1);
    if (status == LUA_OK) {
        o->tool_status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : BNLAB_EXIT_OK;
        lua_pop(L, 1);
    }
    return cli_report(L, status);
}

/* Everything that touches Lua runs here, under lua_pcall, so that even an
 * out-of-memory error while setting up is reported instead of aborting. */
static int protected_main(lua_State *L)
{
    cli_options *o = lua_touserdata(L, 1);
    luaL_checkversion(L);
    luaL_openlibs(L);
    if (o->warnings) lua_warning(L, "@on", 0);
    set_package_path(L, o->argv[0]);
    preload(L, "bnlab.core", luaopen_bnlab_core);
    preload(L, "bnlab.build", open_build_info);
    create_arg_table(L, o);
    load_bn_global(L);
    if (o->profile) start_profile();

    int status = LUA_OK;
    for (int i = 0; i < o->n_actions && status == LUA_OK; i++) {
        const cli_action *act = &o->actions[i];
        if (act->kind == 'e')
            status = run_chunk(L, luaL_loadbuffer(L, act->value, strlen(act->value), "=(command line)"));
        else
            status = run_require(L, act->value);
    }
    if (status == LUA_OK && o->script) status = o->tool ? run_tool(L, o) : run_script(L, o);
    o->exit_status = exit_status_of(status);
    if (status == LUA_OK && o->tool) o->exit_status = o->tool_status;

    bool stdin_is_tty = isatty(STDIN_FILENO);
    bool nothing_to_run = o->n_actions == 0 && o->script == 0;
    if (o->repl || o->interactive_after || (nothing_to_run && stdin_is_tty)) {
        if (stdin_is_tty) cli_print_banner(stdout);
        int repl_status = repl_run(L, stdin_is_tty);
        if (o->exit_status == BNLAB_EXIT_OK) o->exit_status = repl_status;
    } else if (nothing_to_run) {
        /* Not a terminal and nothing given: like lua, run the script on stdin. */
        o->from_stdin = true;
        o->exit_status = exit_status_of(run_script(L, o));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 0 && argv[0] && argv[0][0]) {
        const char *slash = strrchr(argv[0], '/');
        program_name = slash ? slash + 1 : argv[0];
    }
    cli_action *actions = calloc((size_t)(argc > 0 ? argc : 1), sizeof *actions);
    if (!actions) {
        fprintf(stderr, "%s: out of memory\n", program_name);
        return BNLAB_EXIT_ERROR;
    }
    cli_options o = { .argc = argc, .argv = argv, .actions = actions };
    int early = parse_command_line(argc, argv, &o);
    if (early >= 0) {
        free(actions);
        return early;
    }

    const char *env_threads = getenv("BNLAB_THREADS");
    if (o.threads == 0 && env_threads && env_threads[0]) {
        if (!parse_threads(env_threads, &o.threads)) {
            free(actions);
            return usage_error("BNLAB_THREADS expects a whole number from 1 to 4096, got '%s'", env_threads);
        }
    }
    if (o.threads > 0) bn_set_num_threads(o.threads);
    if (o.version) {
        print_version();
        free(actions);
        return BNLAB_EXIT_OK;
    }

    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", program_name);
        free(actions);
        return BNLAB_EXIT_ERROR;
    }
    lua_pushcfunction(L, protected_main);
    lua_pushlightuserdata(L, &o);
    int status = lua_pcall(L, 1, 0, 0);
    if (status != LUA_OK) {
        cli_report(L, status);
        o.exit_status = BNLAB_EXIT_ERROR;
    }
    lua_close(L);
    free(actions);
    fflush(stdout);
    return o.exit_status;
}
