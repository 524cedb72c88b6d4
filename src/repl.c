/* The REPL: reads Lua statements, runs them, prints every expression's value.
 * Input handling follows lua.c (try `return <line>` first; a syntax error at
 * <eof> means "keep reading"); on a terminal it adds readline editing,
 * persistent history, tab completion of globals and fields, and Ctrl-C that
 * cancels the line being typed without leaving the REPL. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "repl.h"

#define PROMPT "> "
#define PROMPT_MORE ">> "
#define CHUNK_NAME "=stdin"
#define HISTORY_LINES 1000
#define SHOW_MAX_DEPTH 3   /* nesting shown when printing tables */
#define SHOW_MAX_ITEMS 40  /* entries shown per table */
#define SHOW_BUDGET 120    /* entries shown per printed value, nested ones included */
#define COMPLETION_MAX 4096

/* ---- Ctrl-C and window size while waiting for input ---------------------- */

static volatile sig_atomic_t sigint_pending, sigwinch_pending, sigtstp_pending;

static void note_sigint(int sig) { (void)sig; sigint_pending = 1; }
static void note_sigwinch(int sig) { (void)sig; sigwinch_pending = 1; }
static void note_sigtstp(int sig) { (void)sig; sigtstp_pending = 1; }

static void install_handler(int sig, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* ---- reading lines ------------------------------------------------------- */

typedef enum { LINE_OK, LINE_EOF, LINE_CANCELLED } line_status;

static char *accepted_line;
static bool line_accepted;

static void on_line_accepted(char *line)
{
    accepted_line = line; /* NULL on Ctrl-D at an empty line */
    line_accepted = true;
    rl_callback_handler_remove();
}

/* readline's callback interface, so that a Ctrl-C can be noticed between
 * keystrokes and the line abandoned cleanly (readline() itself would have to
 * be longjmp'ed out of). pselect unblocks SIGINT atomically: a Ctrl-C cannot
 * slip in between the check and the wait. */
static line_status read_line_interactive(const char *prompt, char **out)
{
    sigset_t blocked, original;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGWINCH);
    sigaddset(&blocked, SIGTSTP);
    sigprocmask(SIG_BLOCK, &blocked, &original);
    sigtstp_pending = 0;
    install_handler(SIGTSTP, note_sigtstp); /* only while reading: Ctrl-Z still stops a running statement */

    fflush(stdout);
    fflush(stderr);
    line_accepted = false;
    accepted_line = NULL;
    rl_callback_handler_install(prompt, on_line_accepted);
    line_status result = LINE_OK;
    int fd = fileno(rl_instream ? rl_instream : stdin);
    while (!line_accepted) {
        if (sigint_pending) {
            sigint_pending = 0;
            rl_free_line_state();
            rl_callback_sigcleanup();
            rl_replace_line("", 0);
            rl_point = rl_end = 0;
            rl_callback_handler_remove();
            fputs("\n", rl_outstream ? rl_outstream : stdout);
            result = LINE_CANCELLED;
            break;
        }
        if (sigwinch_pending) {
            sigwinch_pending = 0;
            rl_resize_terminal();
        }
        if (sigtstp_pending) {
            /* Ctrl-Z: hand the shell a sane terminal, stop, and on `fg`
             * take the terminal back and redraw the line being edited. */
            sigtstp_pending = 0;
            rl_deprep_terminal();
            install_handler(SIGTSTP, SIG_DFL);
            sigset_t tstp;
            sigemptyset(&tstp);
            sigaddset(&tstp, SIGTSTP);
            raise(SIGTSTP); /* pending until unblocked just below */
            sigprocmask(SIG_UNBLOCK, &tstp, NULL);
            sigprocmask(SIG_BLOCK, &tstp, NULL);
            install_handler(SIGTSTP, note_sigtstp);
            rl_prep_terminal(1);
            rl_forced_update_display();
        }
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(fd, &readable);
        int ready = pselect(fd + 1, &readable, NULL, NULL, NULL, &original);
        if (ready < 0) {
            if (errno == EINTR) continue;
            rl_callback_handler_remove();
            result = LINE_EOF;
            break;
        }
        rl_callback_read_char();
    }
    install_handler(SIGTSTP, SIG_DFL);
    sigprocmask(SIG_SETMASK, &original, NULL);
    if (result != LINE_OK) return result;
    if (accepted_line == NULL) {
        fputs("\n", stdout); /* leave the shell's prompt on a line of its own */
        return LINE_EOF;
    }
    *out = accepted_line;
    return LINE_OK;
}

static line_status read_line_plain(char **out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return LINE_EOF;
    }
    if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    *out = line;
    return LINE_OK;
}

/* ---- history ------------------------------------------------------------- */

static char *history_file;

static void history_open(void)
{
    const char *env = getenv("BNLAB_HISTORY");
    if (env) {
        if (env[0]) history_file = strdup(env);
    } else {
        const char *home = getenv("HOME");
        if (home && home[0]) {
            size_t size = strlen(home) + sizeof "/.bnlab_history";
            history_file = malloc(size);
            if (history_file) snprintf(history_file, size, "%s/.bnlab_history", home);
        }
    }
    using_history();
    stifle_history(HISTORY_LINES);
    /* Timestamps delimit entries in the file, so a multi-line statement
     * comes back as one entry in the next session. */
    history_comment_char = '#'; /* what marks a timestamp line */
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    if (history_file && read_history(history_file) == ENOENT) write_history(history_file);
}

/* Appends at once, so the history survives os.exit() and a killed session. */
static void history_add(const char *entry)
{
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, entry) == 0) return;
    add_history(entry);
    if (history_file) append_history(1, history_file);
}

static void history_close(void)
{
    if (history_file) history_truncate_file(history_file, HISTORY_LINES);
    free(history_file);
    history_file = NULL;
}

/* ---- printing values ----------------------------------------------------- */

static void show_value(lua_State *L, int idx, int depth, bool nested);

/* Entries left to print in the current value: tables nest, so a per-table
 * limit alone would still let _G print tens of thousands of lines. */
static int show_budget;

static bool is_identifier(const char *s)
{
    static const char *const keywords[] = { "and", "break", "do", "else", "elseif", "end", "false",
                                            "for", "function", "goto", "if", "in", "local", "nil",
                                            "not", "or", "repeat", "return", "then", "true", "until",
                                            "while" };
    if (!(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_')) return false;
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (strcmp(s, keywords[i]) == 0) return false;
    return true;
}

static void show_quoted(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 32 || c == 127) printf("\\%d", c);
        else putchar(c);
    }
    putchar('"');
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* {1, 2, 3, name = "x", [true] = 4}: the sequence first, then string keys
 * sorted (so output is stable), then other keys. Bounded in depth and
 * length, since a table can be huge or contain itself. */
static void show_table(lua_State *L, int t, int depth)
{
    if (depth >= SHOW_MAX_DEPTH) {
        fputs("{...}", stdout);
        return;
    }
    luaL_checkstack(L, 8, "printing a table");
    int shown = 0, total = 0;
    fputs("{", stdout);
    lua_Integer n = (lua_Integer)lua_rawlen(L, t);
    for (lua_Integer i = 1; i <= n; i++, total++) {
        if (shown >= SHOW_MAX_ITEMS || show_budget <= 0) continue;
        show_budget--;
        lua_rawgeti(L, t, i);
        fputs(shown++ ? ", " : "", stdout);
        show_value(L, -1, depth + 1, true);
        lua_pop(L, 1);
    }
    /* Other keys: string keys go to an anchored list to be sorted. */
    lua_newtable(L);
    int keys = lua_gettop(L);
    lua_Integer n_string_keys = 0;
    lua_newtable(L);
    int other_keys = lua_gettop(L);
    lua_Integer n_other_keys = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k >= 1 && k <= n) continue;
        }
        lua_pushvalue(L, -1);
        if (lua_type(L, -1) == LUA_TSTRING) lua_rawseti(L, keys, ++n_string_keys);
        else lua_rawseti(L, other_keys, ++n_other_keys);
    }
    total += (int)(n_string_keys + n_other_keys);
    /* Sort pointers to the strings, which `keys` keeps alive. */
    const char **names = n_string_keys ? lua_newuserdatauv(L, (size_t)n_string_keys * sizeof *names, 0) : NULL;
    for (lua_Integer i = 0; i < n_string_keys; i++) {
        lua_rawgeti(L, keys, i + 1);
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    if (names) qsort(names, (size_t)n_string_keys, sizeof *names, compare_strings);
    for (lua_Integer i = 0; i < n_string_keys && shown < SHOW_MAX_ITEMS && show_budget > 0; i++) {
        show_budget--;
        fputs(shown++ ? ", " : "", stdout);
        if (is_identifier(names[i])) printf("%s = ", names[i]);
        else {
            fputs("[", stdout);
            show_quoted(names[i], strlen(names[i]));
            fputs("] = ", stdout);
        }
        lua_pushstring(L, names[i]);
        lua_rawget(L, t);
        show_value(L, -1, depth + 1, true);
        lua_pop(L, 1);
    }
    for (lua_Integer i = 1; i <= n_other_keys && shown < SHOW_MAX_ITEMS && show_budget > 0; i++) {
        show_budget--;
        fputs(shown++ ? ", " : "", stdout);
        lua_rawgeti(L, other_keys, i);
        fputs("[", stdout);
        show_value(L, -1, SHOW_MAX_DEPTH, true);
        fputs("] = ", stdout);
        lua_rawget(L, t);
        show_value(L, -1, depth + 1, true);
        lua_pop(L, 1);
    }
    if (total > shown) printf("%s... (%d more)", shown ? ", " : "", total - shown);
    fputs("}", stdout);
    lua_settop(L, keys - 1);
}

/* Values print as tostring() would, except plain tables, which are shown
 * with their contents, and strings inside tables, which are quoted. */
static void show_value(lua_State *L, int idx, int depth, bool nested)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 4, "printing a value");
    int type = lua_type(L, idx);
    if (type == LUA_TSTRING && nested) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        show_quoted(s, len);
        return;
    }
    if (type == LUA_TTABLE) {
        bool has_own_text = luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL;
        if (has_own_text) lua_pop(L, 1);
        else if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
            lua_pop(L, 1);
            has_own_text = true;
        }
        if (!has_own_text) {
            show_table(L, idx, depth);
            return;
        }
    }
    size_t len;
    const char *s = luaL_tolstring(L, idx, &len);
    /* Inside a table, a multi-line text (a tensor's summary) keeps its
     * first line, so the table stays readable. */
    const char *newline = nested ? memchr(s, '\n', len) : NULL;
    if (newline) len = (size_t)(newline - s);
    fwrite(s, 1, len, stdout);
    if (newline) fputs(" ...", stdout);
    lua_pop(L, 1);
}

/* Protected: prints all values on the stack, tab-separated, like print(),
 * and keeps the first in the global `_`, as Python's REPL does (raw, so a
 * strict-mode _G does not refuse it). */
static int show_results(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushglobaltable(L);
    lua_pushliteral(L, "_");
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    for (int i = 1; i <= n; i++) {
        if (i > 1) fputs("\t", stdout);
        show_budget = SHOW_BUDGET;
        show_value(L, i, 0, false);
    }
    fputs("\n", stdout);
    fflush(stdout);
    return 0;
}

/* ---- tab completion ------------------------------------------------------ */

static lua_State *completion_state;
static char **completion_list;
static int completion_count;

static const char *const lua_keywords[] = { "and", "break", "do", "else", "elseif", "end", "false",
                                            "for", "function", "goto", "if", "in", "local", "nil", "not",
                                            "or", "repeat", "return", "then", "true", "until", "while" };

static bool is_callable(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TFUNCTION) return true;
    if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return false;
    lua_pop(L, 1);
    return true;
}

/* Appends prefix..name to the result table at `out` when name starts with
 * `partial`; hides __metamethods unless asked for. */
static void offer(lua_State *L, int out, const char *prefix, const char *name, const char *partial)
{
    size_t plen = strlen(partial);
    if (strncmp(name, partial, plen) != 0) return;
    if (name[0] == '_' && name[1] == '_' && strncmp(partial, "__", 2) != 0) return;
    if (!is_identifier(name)) return;
    lua_pushfstring(L, "%s%s", prefix, name);
    lua_rawseti(L, out, (lua_Integer)lua_rawlen(L, out) + 1);
}

/* Offers the fields of the value at `v`: its own keys when it is a table,
 * then those its metatables' __index tables provide (methods of userdata,
 * string methods, classes), plus names a __complete metamethod lists (how a
 * lazy module table tells what it can load). */
static void offer_fields(lua_State *L, int v, int out, const char *prefix, const char *partial, bool methods_only)
{
    luaL_checkstack(L, 10, "completion");
    lua_pushvalue(L, v);
    for (int level = 0; level < 16 && !lua_isnil(L, -1); level++) {
        int cur = lua_gettop(L);
        if (lua_type(L, cur) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, cur)) {
                if (lua_type(L, -2) == LUA_TSTRING && (!methods_only || is_callable(L, -1)))
                    offer(L, out, prefix, lua_tostring(L, -2), partial);
                lua_pop(L, 1);
            }
        }
        if (!lua_getmetatable(L, cur)) break;
        if (lua_getfield(L, -1, "__complete") == LUA_TFUNCTION) {
            lua_pushvalue(L, cur);
            lua_call(L, 1, 1);
            if (lua_type(L, -1) == LUA_TTABLE) {
                lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
                for (lua_Integer i = 1; i <= n; i++) {
                    if (lua_rawgeti(L, -1, i) == LUA_TSTRING) offer(L, out, prefix, lua_tostring(L, -1), partial);
                    lua_pop(L, 1);
                }
            }
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "__index"); /* the next level, if a table */
        if (lua_type(L, -1) == LUA_TFUNCTION) {
            /* An __index function cannot be enumerated, but bindings keep
             * their methods nearby: in the metatable itself, or in a table
             * that a C __index closes over (the Tensor methods do). Lua
             * closures are skipped: their upvalues are arbitrary tables. */
            int mt = lua_gettop(L) - 1, index_fn = lua_gettop(L);
            lua_pushnil(L);
            while (lua_next(L, mt)) {
                if (lua_type(L, -2) == LUA_TSTRING && is_callable(L, -1))
                    offer(L, out, prefix, lua_tostring(L, -2), partial);
                lua_pop(L, 1);
            }
            for (int up = 1; lua_iscfunction(L, index_fn) && lua_getupvalue(L, index_fn, up); up++) {
                int methods = lua_gettop(L);
                if (lua_type(L, methods) == LUA_TTABLE) {
                    lua_pushnil(L);
                    while (lua_next(L, methods)) {
                        if (lua_type(L, -2) == LUA_TSTRING && is_callable(L, -1))
                            offer(L, out, prefix, lua_tostring(L, -2), partial);
                        lua_pop(L, 1);
                    }
                }
                lua_pop(L, 1);
            }
        }
        lua_remove(L, -2);
        if (lua_type(L, -1) != LUA_TTABLE) break;
        lua_remove(L, cur);
    }
    lua_settop(L, v);
}

/* Protected: candidates for the word `text` ("bn.ar", "t:si", "pri"), as a
 * table of full replacement words. */
static int collect_completions(lua_State *L)
{
    const char *text = luaL_checkstring(L, 1);
    lua_newtable(L);
    int out = lua_gettop(L);
    const char *sep = strpbrk(text, ".:");
    if (sep == NULL) {
        for (size_t i = 0; i < sizeof lua_keywords / sizeof *lua_keywords; i++) {
            if (strncmp(lua_keywords[i], text, strlen(text)) == 0) {
                lua_pushstring(L, lua_keywords[i]);
                lua_rawseti(L, out, (lua_Integer)lua_rawlen(L, out) + 1);
            }
        }
        lua_pushglobaltable(L);
        offer_fields(L, lua_gettop(L), out, "", text, false);
        lua_settop(L, out);
        return 1;
    }
    /* Walk a.b.c from the globals; only the last separator may be ':'. */
    const char *last_sep = text + strlen(text);
    while (last_sep > text && last_sep[-1] != '.' && last_sep[-1] != ':') last_sep--;
    last_sep--;
    lua_pushglobaltable(L);
    const char *segment = text;
    while (segment <= last_sep) {
        const char *end = strpbrk(segment, ".:");
        if (*end == ':' && end != last_sep) break;
        lua_pushlstring(L, segment, (size_t)(end - segment));
        int type = lua_type(L, -2);
        bool indexable = type == LUA_TTABLE || type == LUA_TUSERDATA || type == LUA_TSTRING;
        if (!indexable || !is_identifier(lua_tostring(L, -1))) break;
        lua_gettable(L, -2); /* may run __index: we are protected */
        lua_remove(L, -2);
        segment = end + 1;
    }
    if (segment <= last_sep) { /* the walk stopped early: nothing to offer */
        lua_settop(L, out);
        return 1;
    }
    lua_pushlstring(L, text, (size_t)(last_sep + 1 - text));
    const char *prefix = lua_tostring(L, -1);
    offer_fields(L, lua_gettop(L) - 1, out, prefix, last_sep + 1, *last_sep == ':');
    lua_settop(L, out);
    return 1;
}

static char *next_completion(const char *text, int state)
{
    (void)text;
    static int next;
    if (state == 0) next = 0;
    return next < completion_count ? strdup(completion_list[next++]) : NULL;
}

static void free_completion_list(void)
{
    for (int i = 0; i < completion_count; i++) free(completion_list[i]);
    free(completion_list);
    completion_list = NULL;
    completion_count = 0;
}

/* Inside an unfinished string literal, readline's own file name completion
 * is the useful one (bn.load("data/ci<TAB>). */
static bool inside_string(const char *line, int upto)
{
    char quote = 0;
    for (int i = 0; i < upto && line[i]; i++) {
        char c = line[i];
        if (quote) {
            if (c == '\\' && line[i + 1]) i++;
            else if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '-' && line[i + 1] == '-') {
            return false;
        }
    }
    return quote != 0;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    rl_completion_append_character = '\0';
    if (inside_string(rl_line_buffer, start)) return NULL;
    rl_attempted_completion_over = 1;
    lua_State *L = completion_state;
    int top = lua_gettop(L);
    lua_pushcfunction(L, collect_completions);
    lua_pushstring(L, text);
    /* Completion runs user code (__index, lazy requires): let Ctrl-C stop it. */
    sigset_t interrupt, previous;
    sigemptyset(&interrupt);
    sigaddset(&interrupt, SIGINT);
    sigprocmask(SIG_UNBLOCK, &interrupt, &previous);
    int status = cli_call(L, 1, 1);
    sigprocmask(SIG_SETMASK, &previous, NULL);
    if (status != LUA_OK || lua_type(L, -1) != LUA_TTABLE) {
        lua_settop(L, top);
        return NULL;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n > COMPLETION_MAX) n = COMPLETION_MAX;
    free_completion_list();
    completion_list = calloc((size_t)(n > 0 ? n : 1), sizeof *completion_list);
    for (lua_Integer i = 1; completion_list && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        char *copy = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (copy) completion_list[completion_count++] = copy;
    }
    lua_settop(L, top);
    char **matches = rl_completion_matches(text, next_completion);
    free_completion_list();
    return matches;
}

static void readline_setup(lua_State *L)
{
    completion_state = L;
    rl_readline_name = "bnlab"; /* for $if bnlab in ~/.inputrc */
    rl_attempted_completion_function = complete;
    /* '.' and ':' are not breaks, so a whole bn.args.pa is completed at once. */
    rl_basic_word_break_characters = " \t\n\"'`<>=;|&{}()[],+-*/%^~#";
    rl_catch_signals = 0; /* Ctrl-C is ours: see read_line_interactive */
    rl_catch_sigwinch = 0;
}

/* ---- the loop ------------------------------------------------------------ */

/* Compiles `return <line>;` so typing an expression prints it (`=expr` too,
 * for habits from Lua 5.1-5.3). Leaves the function on success. */
static bool load_as_expression(lua_State *L, const char *line)
{
    if (line[0] == '=') line++;
    const char *code = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, code, strlen(code), CHUNK_NAME);
    lua_remove(L, -2);
    if (status == LUA_OK) return true;
    lua_pop(L, 1);
    return false;
}

/* A syntax error at <eof> means the statement is unfinished (lua.c's test). */
static bool is_incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX) return false;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char mark[] = "<eof>";
    return msg && len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}

static bool is_blank(const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

static line_status read_line(bool interactive, const char *prompt, char **out)
{
    return interactive ? read_line_interactive(prompt, out) : read_line_plain(out);
}

/* Reads one whole statement and leaves its compiled function, or a syntax
 * error message, on the stack. Returns LINE_OK (then *load_status says
 * which), LINE_EOF, or LINE_CANCELLED. */
static line_status read_statement(lua_State *L, bool interactive, int *load_status)
{
    char *line;
    line_status got;
    do {
        got = read_line(interactive, PROMPT, &line);
        if (got != LINE_OK) return got;
        if (is_blank(line)) {
            free(line);
            got = LINE_CANCELLED;
        }
    } while (got != LINE_OK);

    lua_pushstring(L, line);
    free(line);

    if (load_as_expression(L, lua_tostring(L, -1))) {
        *load_status = LUA_OK;
    } else {
        for (;;) {
            size_t len;
            const char *code = lua_tolstring(L, -1, &len);
            *load_status = luaL_loadbuffer(L, code, len, CHUNK_NAME);
            if (!is_incomplete(L, *load_status)) break;
            got = read_line(interactive, PROMPT_MORE, &line);
            if (got == LINE_EOF) break; /* report the unfinished statement, as lua.c does */
            if (got == LINE_CANCELLED) {
                lua_pop(L, 2);
                return LINE_CANCELLED;
            }
            lua_pop(L, 1); /* the <eof> error */
            lua_pushfstring(L, "%s\n%s", lua_tostring(L, -1), line);
            free(line);
            lua_remove(L, -2);
        }
    }
    if (interactive) history_add(lua_tostring(L, -2));
    lua_remove(L, -2); /* the text */
    return LINE_OK;
}

static void run_statement(lua_State *L)
{
    int base = lua_gettop(L) - 1; /* below the function */
    int status = cli_call(L, 0, LUA_MULTRET);
    if (status != LUA_OK) {
        cli_report(L, status);
        return;
    }
    int n = lua_gettop(L) - base;
    if (n > 0) {
        lua_pushcfunction(L, show_results);
        lua_insert(L, base + 1);
        cli_report(L, lua_pcall(L, n, 0, 0));
    }
    lua_settop(L, base);
}

int repl_run(lua_State *L, bool interactive)
{
    if (interactive) {
        readline_setup(L);
        history_open();
        install_handler(SIGWINCH, note_sigwinch);
    }
    /* Outside a running statement Ctrl-C only cancels input (cli_call arms
     * its own handler while a statement runs and restores this one). */
    install_handler(SIGINT, note_sigint);
    int top = lua_gettop(L);
    for (;;) {
        sigint_pending = 0;
        int load_status;
        line_status got = read_statement(L, interactive, &load_status);
        if (got == LINE_EOF) break;
        if (got == LINE_CANCELLED) continue;
        if (load_status == LUA_OK) run_statement(L);
        else cli_report(L, load_status);
        lua_settop(L, top);
    }
    install_handler(SIGINT, SIG_DFL);
    if (interactive) {
        install_handler(SIGWINCH, SIG_DFL);
        history_close();
        rl_callback_handler_remove();
    }
    fflush(stdout);
    return BNLAB_EXIT_OK;
}
