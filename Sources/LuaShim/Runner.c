// Running a command line the way lua.c (Lua 5.3.6) does: its options, `arg`, LUA_INIT, error
// reports with a traceback, the interactive loop, and SIGINT turned into an "interrupted!"
// error in the running Lua code.
#include "LuaShim.h"
#include "Internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/// The program name in error messages, copied: the caller's string may not outlive the call.
static char progname[64] = "lua";

static void report_message(const char *message) {
    if (progname[0] != '\0')
        fprintf(stderr, "%s: ", progname);
    fprintf(stderr, "%s\n", message);
    fflush(stderr);
}

static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *message = lua_tostring(L, -1);
        report_message(message != NULL ? message : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

static int message_handler(lua_State *L) {
    const char *message = lua_tostring(L, 1);
    if (message == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, message, 1);
    return 1;
}

/// The state a SIGINT interrupts (lua.c's globalL).
static lua_State *interrupted_state = NULL;

static void stop_on_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/// lua.c's laction: a second SIGINT ends the process; the first raises an error in Lua code
/// at its next call, return or instruction.
static void on_interrupt(int signal_number) {
    signal(signal_number, SIG_DFL);
    lua_sethook(interrupted_state, stop_on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    int status;
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    interrupted_state = L;
    signal(SIGINT, on_interrupt);
    status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status) {
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return report(L, status);
}

static int handle_luainit(lua_State *L) {
    const char *name = "=LUA_INIT_5_3";
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL)
        return LUA_OK;
    if (init[0] == '@')
        return dochunk(L, luaL_loadfile(L, init + 1));
    return dochunk(L, luaL_loadbuffer(L, init, strlen(init), name));
}

/// The file luaL_loadfile reads for the script: NULL (standard input) for "-", unless "--"
/// came right before it.
static const char *script_name(char **argv, int script) {
    if (strcmp(argv[script], "-") == 0 && (script == 0 || strcmp(argv[script - 1], "--") != 0))
        return NULL;
    return argv[script];
}

// ---------------------------------------------------------------------------------------------
// lua.c's command line: options (-e -l -i -v -E -- -), then the script and its arguments.

int luamem_lua_options(char **argv, int first, int *script) {
    int args = 0, i;
    for (i = first; argv[i] != NULL; i++) {
        *script = i;
        if (argv[i][0] != '-')                  /* not an option: the script */
            return args;
        switch (argv[i][1]) {
        case '-':                               /* '--' */
            if (argv[i][2] != '\0')
                return LUAMEM_LUA_ERROR;
            *script = i + 1;
            return args;
        case '\0':                              /* '-': the script is standard input */
            return args;
        case 'E':
            if (argv[i][2] != '\0')
                return LUAMEM_LUA_ERROR;
            args |= LUAMEM_LUA_NOENV;
            break;
        case 'i':
            args |= LUAMEM_LUA_INTERACTIVE;     /* -i implies -v */
            /* fall through */
        case 'v':
            if (argv[i][2] != '\0')
                return LUAMEM_LUA_ERROR;
            args |= LUAMEM_LUA_VERSION;
            break;
        case 'e':
            args |= LUAMEM_LUA_EXECUTE;
            /* fall through */
        case 'l':
            args |= LUAMEM_LUA_LIBRARY;
            if (argv[i][2] == '\0') {           /* the argument is the next word */
                i++;
                if (argv[i] == NULL || argv[i][0] == '-')
                    return LUAMEM_LUA_ERROR;
            }
            break;
        default:
            return LUAMEM_LUA_ERROR;
        }
    }
    *script = i;                                /* no script */
    return args;
}

void luamem_lua_usage(const char *name, const char *bad) {
    fprintf(stderr, "%s: ", name);
    if (bad[1] == 'e' || bad[1] == 'l')
        fprintf(stderr, "'%s' needs argument\n", bad);
    else
        fprintf(stderr, "unrecognized option '%s'\n", bad);
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "Available options are:\n"
            "  -e stat  execute string 'stat'\n"
            "  -i       enter interactive mode after executing 'script'\n"
            "  -l name  require library 'name' into global 'name'\n"
            "  -v       show version information\n"
            "  -E       ignore environment variables\n"
            "  --       stop handling options\n"
            "  -        stop handling options and execute stdin\n",
            name);
    fflush(stderr);
}

static void print_version(void) {
    fwrite(LUA_COPYRIGHT, 1, strlen(LUA_COPYRIGHT), stdout);
    fwrite("\n", 1, 1, stdout);
    fflush(stdout);
}

static int dostring(lua_State *L, const char *text, const char *name) {
    return dochunk(L, luaL_loadbuffer(L, text, strlen(text), name));
}

static int dolibrary(lua_State *L, const char *name) {
    int status;
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    status = docall(L, 1, 1);
    if (status == LUA_OK)
        lua_setglobal(L, name);
    return report(L, status);
}

/// The -e and -l options between argv[first] and the script, in order.
static int runargs(lua_State *L, char **argv, int first, int script) {
    int i;
    for (i = first; i < script; i++) {
        int option = argv[i][1];
        if (argv[i][0] == '-' && (option == 'e' || option == 'l')) {
            const char *extra = argv[i] + 2;
            int status;
            if (*extra == '\0')
                extra = argv[++i];
            status = option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
            if (status != LUA_OK)
                return 0;
        }
    }
    return 1;
}

/// Pushes arg[1..n], as lua.c does (LUA_INIT and -e may have changed `arg`).
static int pushargs(lua_State *L) {
    int i, n;
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
        luaL_error(L, "'arg' is not a table");
    n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    return n;
}

static int run_chunk(lua_State *L) {
    int n = pushargs(L);
    return report(L, docall(L, n, LUA_MULTRET));
}

// The interactive loop, as lua.c's doREPL without readline.

#define REPL_MAXINPUT 512
#define EOFMARK "<eof>"

static const char *get_prompt(lua_State *L, int firstline) {
    const char *prompt;
    lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2");
    prompt = lua_tostring(L, -1);
    if (prompt == NULL)
        prompt = firstline ? "> " : ">> ";
    return prompt;
}

static int incomplete(lua_State *L, int status) {
    if (status == LUA_ERRSYNTAX) {
        size_t length;
        const char *message = lua_tolstring(L, -1, &length);
        if (length >= sizeof EOFMARK - 1 &&
            strcmp(message + length - (sizeof EOFMARK - 1), EOFMARK) == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

static int pushline(lua_State *L, int firstline) {
    char buffer[REPL_MAXINPUT];
    size_t length;
    fputs(get_prompt(L, firstline), stdout);
    fflush(stdout);
    if (fgets(buffer, sizeof buffer, stdin) == NULL)
        return 0;                               /* the prompt is popped by the caller */
    lua_pop(L, 1);
    length = strlen(buffer);
    if (length > 0 && buffer[length - 1] == '\n')
        buffer[--length] = '\0';
    if (firstline && buffer[0] == '=')
        lua_pushfstring(L, "return %s", buffer + 1);
    else
        lua_pushlstring(L, buffer, length);
    return 1;
}

static int addreturn(lua_State *L) {
    const char *line = lua_tostring(L, -1);
    const char *retline = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
    if (status == LUA_OK)
        lua_remove(L, -2);
    else
        lua_pop(L, 2);
    return status;
}

static int multiline(lua_State *L) {
    for (;;) {
        size_t length;
        const char *line = lua_tolstring(L, 1, &length);
        int status = luaL_loadbuffer(L, line, length, "=stdin");
        if (!incomplete(L, status) || !pushline(L, 0))
            return status;
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

static int loadline(lua_State *L) {
    int status;
    lua_settop(L, 0);
    if (!pushline(L, 1))
        return -1;
    if ((status = addreturn(L)) != LUA_OK)
        status = multiline(L);
    lua_remove(L, 1);
    return status;
}

static void print_results(lua_State *L) {
    int n = lua_gettop(L);
    if (n > 0) {
        luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
        lua_getglobal(L, "print");
        lua_insert(L, 1);
        if (lua_pcall(L, n, 0, 0) != LUA_OK)
            report_message(lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
    }
}

static void do_repl(lua_State *L) {
    int status;
    char saved[sizeof progname];
    memcpy(saved, progname, sizeof progname);
    progname[0] = '\0';                         /* no program name on errors in the loop */
    while ((status = loadline(L)) != -1) {
        if (status == LUA_OK)
            status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK)
            print_results(L);
        else
            report(L, status);
    }
    lua_settop(L, 0);
    fputs("\n", stdout);
    fflush(stdout);
    memcpy(progname, saved, sizeof progname);
}

struct script_call {
    int argc;
    char **argv;
    int first;                                  /* lua.c's options start here */
    int script;                                 /* argc when there is no script */
    int options;                                /* LUAMEM_LUA_* */
    int status;
};

/// Builds `arg` and, when asked, loads the script: the chunk (or the error message) is the
/// result; nil when not loaded.
int luamem_runner_load_script(lua_State *L) {
    struct script_call *call = (struct script_call *)lua_touserdata(L, 1);
    int load = lua_toboolean(L, 2), script = call->script == call->argc ? 0 : call->script, i;
    lua_createtable(L, call->argc - script - 1, script + 1);
    for (i = 0; i < call->argc; i++) {
        lua_pushstring(L, call->argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
    if (!load) {
        lua_pushnil(L);
        return 1;
    }
    call->status = luaL_loadfile(L, script_name(call->argv, call->script));
    return 1;
}

/// The rest of lua.c's pmain: version, LUA_INIT, -e and -l, the script (argument 2, or loaded
/// now when nil), then the interactive loop or standard input when asked or when nothing else
/// was given.
int luamem_runner_run_script(lua_State *L) {
    struct script_call *call = (struct script_call *)lua_touserdata(L, 1);
    int options = call->options;
    call->status = EXIT_FAILURE;
    if (options & LUAMEM_LUA_VERSION)
        print_version();
    if (!(options & LUAMEM_LUA_NOENV) && handle_luainit(L) != LUA_OK)
        return 0;
    if (!runargs(L, call->argv, call->first, call->script))
        return 0;
    if (call->script < call->argc) {            /* the chunk loaded before, or load it now */
        int status = LUA_OK;
        if (lua_isfunction(L, 2))
            lua_pushvalue(L, 2);
        else
            status = luaL_loadfile(L, script_name(call->argv, call->script));
        if ((status == LUA_OK ? run_chunk(L) : report(L, status)) != LUA_OK)
            return 0;
    }
    call->status = EXIT_SUCCESS;                /* the loop below reports its own errors */
    if (options & LUAMEM_LUA_INTERACTIVE) {
        do_repl(L);
    } else if (call->script == call->argc &&
               !(options & (LUAMEM_LUA_EXECUTE | LUAMEM_LUA_VERSION))) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            do_repl(L);
        } else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) {
            call->status = EXIT_FAILURE;
        }
    }
    return 0;
}

int luamem_load_script(lua_State *L, const char *name, int argc, char **argv, int first,
                       int script, int options, int load) {
    struct script_call call = {argc, argv, first, script, options, LUA_OK};
    int status;
    snprintf(progname, sizeof progname, "%s", name);
    lua_pushcfunction(L, luamem_runner_load_script);
    lua_pushlightuserdata(L, &call);
    lua_pushboolean(L, load);
    status = lua_pcall(L, 2, 1, 0);
    if (status == LUA_OK && call.status == LUA_OK)
        return 0;                               /* the chunk (or nil) stays on the stack */
    report(L, LUA_ERRRUN);
    return EXIT_FAILURE;
}

int luamem_run_script(lua_State *L, int argc, char **argv, int first, int script, int options) {
    struct script_call call = {argc, argv, first, script, options, EXIT_FAILURE};
    int status;
    lua_pushcfunction(L, luamem_runner_run_script);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, &call);
    lua_insert(L, -2);
    status = lua_pcall(L, 2, 0, 0);
    report(L, status);
    return status == LUA_OK ? call.status : EXIT_FAILURE;
}
