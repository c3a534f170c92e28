#include "LuaShim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static luamem_hooks hooks;

void luamem_set_hooks(const luamem_hooks *new_hooks) {
    hooks = *new_hooks;
}

luamem_context *luamem_context_of(lua_State *L) {
    void *ud = NULL;
    if (hooks.alloc == NULL || lua_getallocf(L, &ud) != hooks.alloc)
        return NULL;
    return (luamem_context *)ud;
}

// ---------------------------------------------------------------------------------------------
// Lua 5.3 internals: just enough to read which C function a frame runs without pushing it on
// the stack (lua_getinfo "f" pushes, which the allocator must not do).

typedef struct mirror_tvalue {
    union { void *gc; lua_CFunction f; } value;
    int tt;
} mirror_tvalue;

typedef struct mirror_callinfo {
    mirror_tvalue *func;              /// CallInfo.func is the first field in every 5.3 release
} mirror_callinfo;

typedef struct mirror_cclosure {
    void *next;
    unsigned char tt, marked, nupvalues;
    void *gclist;
    lua_CFunction f;
} mirror_cclosure;

#define MIRROR_TLCF (LUA_TFUNCTION | (1 << 4))   /// light C function
#define MIRROR_TCCL (LUA_TFUNCTION | (2 << 4))   /// C closure
#define MIRROR_TAG_MASK 0x3f                     /// strips the "collectable" bit

lua_CFunction luamem_running_cfunction(const lua_Debug *ar) {
    const mirror_tvalue *func = ((const mirror_callinfo *)(const void *)ar->i_ci)->func;
    int tag = func->tt & MIRROR_TAG_MASK;
    if (tag == MIRROR_TLCF)
        return func->value.f;
    if (tag == MIRROR_TCCL)
        return ((const mirror_cclosure *)func->value.gc)->f;
    return NULL;
}

static int probe_self(lua_State *L, lua_CFunction self) {
    lua_Debug ar;
    int ok = lua_getstack(L, 0, &ar) && lua_getinfo(L, "S", &ar) && strcmp(ar.what, "C") == 0 &&
             luamem_running_cfunction(&ar) == self;
    lua_pushboolean(L, ok);
    return 1;
}

static int probe_light(lua_State *L) { return probe_self(L, probe_light); }
static int probe_closure(lua_State *L) { return probe_self(L, probe_closure); }

int luamem_probe_layout(lua_State *L) {
    int top = lua_gettop(L), ok = 0;
    if (*lua_version(L) != 503)
        return 0;
    lua_pushcfunction(L, probe_light);
    if (lua_pcall(L, 0, 1, 0) == LUA_OK && lua_toboolean(L, -1)) {
        lua_pushinteger(L, 1);
        lua_pushcclosure(L, probe_closure, 1);
        ok = lua_pcall(L, 0, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    }
    lua_settop(L, top);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// Coroutines: lcorolib's resume and wrap, plus bookkeeping of the running thread.

static void enter_thread(luamem_context *context, lua_State *from, lua_State *co) {
    if (context->resumer_count < LUAMEM_MAX_RESUMERS)
        context->resumers[context->resumer_count++] = from;
    else
        context->resumer_overflow++;
    context->current = co;
}

static void leave_thread(luamem_context *context, lua_State *from) {
    if (context->resumer_overflow > 0)
        context->resumer_overflow--;
    else
        context->resumer_count--;
    context->current = from;
}

static int auxresume(lua_State *L, lua_State *co, int narg) {
    luamem_context *context;
    int status;
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
        lua_pushliteral(L, "cannot resume dead coroutine");
        return -1;
    }
    lua_xmove(L, co, narg);
    context = luamem_context_of(L);
    if (context != NULL)
        enter_thread(context, L, co);
    status = lua_resume(co, L, narg);
    if (context != NULL)
        leave_thread(context, L);
    if (status == LUA_OK || status == LUA_YIELD) {
        int nres = lua_gettop(co);
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int coroutine_resume(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    int r;
    luaL_argcheck(L, co, 1, "coroutine expected");
    r = auxresume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int coroutine_wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = auxresume(L, co, lua_gettop(L));
    if (r < 0) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int coroutine_wrap(lua_State *L) {
    lua_State *co;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, coroutine_wrapped, 1);
    return 1;
}

// ---------------------------------------------------------------------------------------------
// os.exit ends the process without returning to the host: the final snapshot is written first.

static int os_exit(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    if (context != NULL && hooks.exiting != NULL)
        hooks.exiting(context);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

// ---------------------------------------------------------------------------------------------
// GC-cycle sentinel: an unreachable table with a __gc metamethod. Lua runs finalizers after a
// cycle's sweep, so each time it fires, one cycle has completed; it then plants the next one.

static const char sentinel_key = 0;
static int load_script(lua_State *L);
static int run_script(lua_State *L);

static void plant_sentinel(lua_State *L) {
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinel_key);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

static int sentinel_gc(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    if (context == NULL || context->closing)
        return 0;
    hooks.gc_cycle_completed(context);
    plant_sentinel(L);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The `luamem` module preloaded by `luamem run`.

static int module_stats(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    luamem_totals totals;
    if (context == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "this Lua state is not tracked by luamem");
        return 2;
    }
    hooks.totals(context, &totals);          // read before the result table is allocated
    lua_createtable(L, 0, 11);
#define SET_FIELD(name) (lua_pushinteger(L, (lua_Integer)totals.name), lua_setfield(L, -2, #name))
    SET_FIELD(live_bytes); SET_FIELD(live_count); SET_FIELD(alloc_bytes);
    SET_FIELD(alloc_count); SET_FIELD(peak_bytes); SET_FIELD(gc_live_bytes);
    SET_FIELD(gc_live_count); SET_FIELD(gc_cycles); SET_FIELD(sites);
    SET_FIELD(snapshots); SET_FIELD(untracked_bytes);
#undef SET_FIELD
    return 1;
}

static int module_flush(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    char error[256];
    if (context == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "this Lua state is not tracked by luamem");
        return 2;
    }
    if (hooks.flush(context, error, sizeof error) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, error);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int open_module(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"stats", module_stats},
        {"flush", module_flush},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    lua_pushliteral(L, "luamem 0.1");
    lua_setfield(L, -2, "_VERSION");
    return 1;
}

// ---------------------------------------------------------------------------------------------
// State preparation.

/// Names every C function reachable as package.loaded[module][field] ("string.rep"; globals
/// without prefix), so the allocator can say which C function allocated.
static void name_cfunctions(lua_State *L, luamem_context *context) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
            const char *module = lua_tostring(L, -2);
            int global = strcmp(module, "_G") == 0;
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                lua_CFunction f = lua_tocfunction(L, -1);
                if (f != NULL && lua_type(L, -2) == LUA_TSTRING) {
                    const char *field = lua_tostring(L, -2);
                    if (global) {
                        hooks.name_cfunction(context, f, field);
                    } else {
                        lua_pushfstring(L, "%s.%s", module, field);
                        hooks.name_cfunction(context, f, lua_tostring(L, -1));
                        lua_pop(L, 1);
                    }
                }
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int prepare(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    luaL_checkversion(L);
    luaL_openlibs(L);

    lua_getglobal(L, "coroutine");
    lua_pushcfunction(L, coroutine_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, coroutine_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);

    lua_getglobal(L, "os");
    lua_getfield(L, -1, "exit");
    lua_pushcclosure(L, os_exit, 1);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open_module);
    lua_setfield(L, -2, "luamem");
    lua_pop(L, 1);

    if (context != NULL) {
        name_cfunctions(L, context);
        hooks.name_cfunction(context, sentinel_gc, "luamem.gc_sentinel");
        hooks.name_cfunction(context, load_script, "luamem.load_script");
        hooks.name_cfunction(context, run_script, "luamem.run_script");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, sentinel_gc);
        lua_setfield(L, -2, "__gc");
        lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_key);
        plant_sentinel(L);
    }
    return 0;
}

static void copy_error(lua_State *L, char *error, size_t error_size) {
    const char *message = lua_tostring(L, -1);
    snprintf(error, error_size, "%s", message != NULL ? message : "(error object is not a string)");
    lua_pop(L, 1);
}

int luamem_prepare_state(lua_State *L, char *error, size_t error_size) {
    lua_pushcfunction(L, prepare);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        copy_error(L, error, error_size);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Running a script the way lua.c does.

static const char *progname = "lua";

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

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    int status;
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    status = lua_pcall(L, narg, nres, base);
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
static int load_script(lua_State *L) {
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
static int run_script(lua_State *L) {
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
    progname = name;
    lua_pushcfunction(L, load_script);
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
    lua_pushcfunction(L, run_script);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, &call);
    lua_insert(L, -2);
    status = lua_pcall(L, 2, 0, 0);
    report(L, status);
    return status == LUA_OK ? call.status : EXIT_FAILURE;
}

// ---------------------------------------------------------------------------------------------
// Probes for the tracker (see luamem_probe_objects in the header).

static int probe_objects(lua_State *L) {
    const char **string_bytes = (const char **)lua_touserdata(L, 1);
    lua_State **thread = (lua_State **)lua_touserdata(L, 2);
    *string_bytes = lua_pushstring(L, "luamem probe: a string long enough to be a long string in Lua 5.3");
    *thread = lua_newthread(L);
    return 0;
}

int luamem_probe_objects(lua_State *L, const char **string_bytes, lua_State **thread) {
    int status;
    lua_pushcfunction(L, probe_objects);
    lua_pushlightuserdata(L, (void *)string_bytes);
    lua_pushlightuserdata(L, (void *)thread);
    status = lua_pcall(L, 2, 0, 0);
    if (status != LUA_OK)
        lua_pop(L, 1);
    return status == LUA_OK ? 0 : -1;
}
