// Running a script the way lua.c (Lua 5.3.6) does: `arg`, LUA_INIT, error reports with a
// traceback, and SIGINT turned into an "interrupted!" error in the running Lua code.
#include "LuaShim.h"
#include "Internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// The program name in error messages, copied: the caller's string may not outlive the call.
static char progname[64] = "lua";

static void report_message(const char *message) {
    fprintf(stderr, "%s: %s\n", progname, message);
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

struct script_call {
    int argc;
    char **argv;
    int script;
    int status;
};

/// Builds `arg` and loads the script; the chunk is left as the result.
int luamem_runner_load_script(lua_State *L) {
    struct script_call *call = (struct script_call *)lua_touserdata(L, 1);
    const char *fname = call->argv[call->script];
    int i;

    lua_createtable(L, call->argc - call->script - 1, call->script + 1);
    for (i = 0; i < call->argc; i++) {
        lua_pushstring(L, call->argv[i]);
        lua_rawseti(L, -2, i - call->script);
    }
    lua_setglobal(L, "arg");

    if (strcmp(fname, "-") == 0 && (call->script == 0 || strcmp(call->argv[call->script - 1], "--") != 0))
        fname = NULL;
    call->status = luaL_loadfile(L, fname);
    return 1;                                   /* the chunk, or the error message */
}

/// Runs LUA_INIT, then the chunk (argument 2) with the script's arguments.
int luamem_runner_run_script(lua_State *L) {
    struct script_call *call = (struct script_call *)lua_touserdata(L, 1);
    int i, narg, status;
    if (handle_luainit(L) != LUA_OK) {
        call->status = EXIT_FAILURE;
        return 0;
    }
    lua_pushvalue(L, 2);
    narg = call->argc - call->script - 1;
    luaL_checkstack(L, narg, "too many arguments to script");
    for (i = call->script + 1; i < call->argc; i++)
        lua_pushstring(L, call->argv[i]);
    status = docall(L, narg, LUA_MULTRET);
    call->status = report(L, status) == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
    return 0;
}

int luamem_load_script(lua_State *L, const char *name, int argc, char **argv, int script) {
    struct script_call call = {argc, argv, script, LUA_OK};
    int status;
    snprintf(progname, sizeof progname, "%s", name);
    lua_pushcfunction(L, luamem_runner_load_script);
    lua_pushlightuserdata(L, &call);
    status = lua_pcall(L, 1, 1, 0);
    if (status == LUA_OK && call.status == LUA_OK)
        return 0;                               /* the chunk stays on the stack */
    report(L, LUA_ERRRUN);
    return EXIT_FAILURE;
}

int luamem_run_script(lua_State *L, int argc, char **argv, int script) {
    struct script_call call = {argc, argv, script, EXIT_FAILURE};
    int status;
    lua_pushcfunction(L, luamem_runner_run_script);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, &call);
    lua_insert(L, -2);
    status = lua_pcall(L, 2, 0, 0);
    report(L, status);
    return status == LUA_OK ? call.status : EXIT_FAILURE;
}

