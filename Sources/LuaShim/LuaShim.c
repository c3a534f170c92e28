#define _GNU_SOURCE  // SCHED_BATCH, pthread_setname_np
#include "LuaShim.h"
#include "Internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static luamem_hooks hooks;

void luamem_become_flusher_thread(void) {
    struct sched_param parameters = {0};
    // On Linux, a thread id names that thread alone. Either call may be refused (a seccomp
    // filter, another kernel): the thread then runs as it was created, which is only less polite.
    (void)sched_setscheduler((pid_t)syscall(SYS_gettid), SCHED_BATCH, &parameters);
    (void)pthread_setname_np(pthread_self(), "luamem-flusher");
}

uint64_t luamem_random_seed(void) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&seed;
    return seed;
}

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

/// CallInfo starts with func, top, previous and next in every 5.3 release. The first CallInfo
/// of a thread (base_ci, which lua_getstack never reports) is the one without a previous.
typedef struct mirror_callinfo_links {
    void *func, *top;
    struct mirror_callinfo_links *previous, *next;
} mirror_callinfo_links;

int luamem_next_level(lua_Debug *ar) {
    const mirror_callinfo_links *ci = (const mirror_callinfo_links *)(const void *)ar->i_ci;
    mirror_callinfo_links *up = ci->previous;
    if (up == NULL || up->previous == NULL)
        return 0;
    ar->i_ci = (struct CallInfo *)(void *)up;
    return 1;
}

/// Compares luamem_next_level with lua_getstack at every level of the stack it runs on.
static int probe_walk(lua_State *L) {
    lua_Debug walked, expected;
    int level = 0, ok = lua_getstack(L, 0, &walked);
    while (ok) {
        level++;
        int has = lua_getstack(L, level, &expected);
        int next = luamem_next_level(&walked);
        if (has != next || (has && walked.i_ci != expected.i_ci))
            ok = 0;
        if (!has)
            break;
    }
    lua_pushboolean(L, ok && level >= 5);
    return 1;
}

/// Calls its argument: a C frame between Lua frames, as pcall or table.sort make.
static int probe_through(lua_State *L) {
    lua_call(L, 0, 1);
    return 1;
}

/// Lua frames inside a C frame inside Lua frames, on several lines, around the probe.
static const char probe_chunk[] = "local probe, through = ...\n"
                                  "local function a()\n"
                                  "  local r = probe()\n"
                                  "  return r\n"
                                  "end\n"
                                  "local function b() local r = through(a) return r end\n"
                                  "local function c()\n"
                                  "  local x = 1\n"
                                  "  local r = b()\n"
                                  "  return r and x == 1\n"
                                  "end\n"
                                  "return (c())";

/// Lua frames inside a C frame inside Lua frames, on one line each: enough for the stack walk.
static const char walk_chunk[] = "local probe, through = ...\n"
                                 "local function a() local r = probe() return r end\n"
                                 "local function b() local r = through(a) return r end\n"
                                 "local function c() local r = b() return r end\n"
                                 "return (c())";

/// Runs `chunk` (`size` bytes), loaded under `name` (the walk probe is named by its own text, as
/// luaL_loadstring names a chunk), with `probe` at its deepest call; returns
/// what the probe returned (1 when it found what it checks). Runs before the libraries are open.
static int run_probe(lua_State *L, const char *chunk, size_t size, lua_CFunction probe,
                     const char *name) {
    int top = lua_gettop(L), ok = 0;
    if (*lua_version(L) != 503)
        return 0;
    if (luaL_loadbuffer(L, chunk, size, name) == LUA_OK) {
        lua_pushcfunction(L, probe);
        lua_pushcfunction(L, probe_through);
        ok = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    }
    lua_settop(L, top);
    return ok;
}

int luamem_probe_stack_walk(lua_State *L) {
    return run_probe(L, walk_chunk, sizeof walk_chunk - 1, probe_walk, walk_chunk);
}

/// Proto, LClosure and the Lua part of CallInfo as every 5.3 release lays them out.
typedef struct mirror_proto {
    void *next;
    unsigned char tt, marked, numparams, is_vararg, maxstacksize;
    int sizeupvalues, sizek, sizecode, sizelineinfo, sizep, sizelocvars;
    int linedefined, lastlinedefined;
    void *k;
    const unsigned int *code;
    void *p;
    const int *lineinfo;
    void *locvars, *upvalues, *cache;
    void *source;
    void *gclist;
} mirror_proto;

typedef struct mirror_lclosure {
    void *next;
    unsigned char tt, marked, nupvalues;
    void *gclist;
    const mirror_proto *p;
} mirror_lclosure;

typedef struct mirror_lua_callinfo {
    const mirror_tvalue *func;
    void *top, *previous, *next;
    void *base;
    const unsigned int *savedpc;
} mirror_lua_callinfo;

/// A TString's characters follow its header, padded to the maximum alignment (UTString).
typedef union mirror_utstring {
    struct { void *next; unsigned char tt, marked, extra, shrlen; unsigned int hash; size_t u; } s;
    double d; void *p; long long i; long l;
} mirror_utstring;

#define MIRROR_TLCL (LUA_TFUNCTION | (0 << 4))   /// Lua closure

void luamem_frame_info(lua_Debug *ar) {
    const mirror_lua_callinfo *ci = (const mirror_lua_callinfo *)(const void *)ar->i_ci;
    if ((ci->func->tt & MIRROR_TAG_MASK) != MIRROR_TLCL) {
        ar->source = "=[C]";
        ar->linedefined = -1;
        ar->currentline = -1;
        ar->what = "C";
        return;
    }
    const mirror_proto *p = ((const mirror_lclosure *)ci->func->value.gc)->p;
    ar->source = p->source ? (const char *)p->source + sizeof(mirror_utstring) : "=?";
    ar->linedefined = p->linedefined;
    ar->currentline = p->lineinfo ? p->lineinfo[(int)(ci->savedpc - p->code) - 1] : -1;
    ar->what = p->linedefined == 0 ? "main" : "Lua";
}

int luamem_collect_frames(lua_Debug *ar, int level, int depth, luamem_raw_frame *frames,
                          int *levels, int by_pc) {
    int count = 1;
    while (count < depth && luamem_next_level(ar)) {
        level++;
        if (by_pc) {
            const void *pc = luamem_frame_pc(ar);
            if (pc == NULL)
                continue;
            frames[count].source = (const char *)pc;
            frames[count].line = 0;
            frames[count].line_defined = 0;
        } else {
            luamem_frame_info(ar);
            if (ar->what[0] == 'C')
                continue;
            frames[count].source = ar->source;
            frames[count].line = ar->currentline;
            frames[count].line_defined = ar->linedefined;
        }
        levels[count] = level;
        count++;
    }
    return count;
}

int luamem_collect_pcs(const lua_Debug *ar, int depth, luamem_raw_frame *frames, uint64_t *hash) {
    const mirror_callinfo_links *ci = (const mirror_callinfo_links *)(const void *)ar->i_ci;
    uint64_t folded = *hash;
    int count = 1;
    while (count < depth) {
        const mirror_callinfo_links *up = ci->previous;
        if (up == NULL || up->previous == NULL)
            break;
        ci = up;
        const mirror_lua_callinfo *frame = (const mirror_lua_callinfo *)(const void *)ci;
        if ((frame->func->tt & MIRROR_TAG_MASK) != MIRROR_TLCL)
            continue;
        frames[count].source = (const char *)frame->savedpc;
        folded = luamem_fold_pc(folded, (uint64_t)(uintptr_t)frame->savedpc);
        count++;
    }
    *hash = folded;
    return count;
}

const void *luamem_frame_pc(const lua_Debug *ar) {
    const mirror_lua_callinfo *ci = (const mirror_lua_callinfo *)(const void *)ar->i_ci;
    if ((ci->func->tt & MIRROR_TAG_MASK) != MIRROR_TLCL)
        return NULL;
    return ci->savedpc;
}

const void *luamem_frame_proto(const lua_Debug *ar) {
    const mirror_lua_callinfo *ci = (const mirror_lua_callinfo *)(const void *)ar->i_ci;
    if ((ci->func->tt & MIRROR_TAG_MASK) != MIRROR_TLCL)
        return NULL;
    return ((const mirror_lclosure *)ci->func->value.gc)->p;
}

/// Compares luamem_frame_info with lua_getinfo "Sl" at every level of the stack it runs on.
static int probe_info(lua_State *L) {
    lua_Debug expected, fast;
    int level = 0, ok = 1;
    while (ok && lua_getstack(L, level, &expected)) {
        fast = expected;
        lua_getinfo(L, "Sl", &expected);
        luamem_frame_info(&fast);
        int c = expected.what[0] == 'C';
        ok = c == (fast.what[0] == 'C') && expected.currentline == fast.currentline &&
             (c || (expected.source == fast.source && expected.linedefined == fast.linedefined &&
                    strcmp(expected.what, fast.what) == 0));
        level++;
    }
    lua_pushboolean(L, ok && level >= 5);
    return 1;
}

int luamem_probe_frame_info(lua_State *L) {
    // The second chunk name is a long string in Lua.
    return run_probe(L, probe_chunk, sizeof probe_chunk - 1, probe_info, "=probe") &&
           run_probe(L, probe_chunk, sizeof probe_chunk - 1, probe_info,
                     "@a/chunk/name/long/enough/to/be/a/long/string/in/lua/5.3.lua");
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
    luaL_argcheck(L, co, 1, "thread expected");
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
// The arguments are checked before, by the stock os.exit's rules and with its messages (it is
// named 'os.exit' through package.loaded, as the stock one is), so that a call that fails
// leaves tracking as it was. A replacement the host installed (a Lua function) checks its own.

/// Registry key of the os.exit that luamem's replaces (kept out of upvalues: the stock one has
/// none, and `debug.getinfo(os.exit).nups` must not tell them apart).
static const char original_exit_key = 0;

static int collect_fully(lua_State *L) {
    lua_gc(L, LUA_GCCOLLECT, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

void luamem_collect_fully(lua_State *L) {
    lua_pushcfunction(L, collect_fully);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        lua_pop(L, 1);                          /* a finalizer's error: the figures stay as they are */
}

static int os_exit(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    int status = EXIT_SUCCESS;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &original_exit_key);
    if (lua_isboolean(L, 1))
        status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
    else if (lua_iscfunction(L, -1))
        status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
    if (context != NULL && hooks.exiting != NULL) {
        luamem_collect_fully(L);
        hooks.exiting(context, status);
    }
    luamem_die_if_terminating();
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

// ---------------------------------------------------------------------------------------------
// GC-cycle sentinel: an unreachable table with a __gc metamethod. Lua runs finalizers after a
// cycle's sweep, so each time it fires, one cycle has completed; it then plants the next one.

static const char sentinel_key = 0;
static int instrument(lua_State *L);
static int prepare(lua_State *L);
static int prepare_without_environment(lua_State *L);
static int collect_fully(lua_State *L);

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
// Close sentinel: a userdata kept in the registry, so its __gc runs only in lua_close, while the
// state is still whole. It writes the state's final snapshot.

static const char close_key = 0;

static int close_gc(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    if (context == NULL)
        return 0;
    context->closing = 1;
    if (hooks.closing != NULL)
        hooks.closing(context);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The `luamem` Lua module: preloaded by `luamem run`, and what `require "luamem"` loads from the
// shared library in a stock lua5.3.

/// Pushes option `key` of the table at index 1 and returns 1 when set; raises when it is set to
/// something other than `expected`; pushes nothing and returns 0 when it is nil.
static int option(lua_State *L, const char *key, int expected) {
    int type = lua_getfield(L, 1, key);
    if (type == expected)
        return 1;
    if (type != LUA_TNIL)
        luaL_argerror(L, 1, lua_pushfstring(L, "option '%s' must be a %s, got %s", key,
                                            lua_typename(L, expected), luaL_typename(L, -1)));
    lua_pop(L, 1);
    return 0;
}

/// The string option `key`, or NULL; the string stays referenced by the options table.
static const char *option_string(lua_State *L, const char *key) {
    const char *value = NULL;
    if (option(L, key, LUA_TSTRING)) {
        value = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    return value;
}

static double option_number(lua_State *L, const char *key, double fallback) {
    double value = fallback;
    if (option(L, key, LUA_TNUMBER)) {
        value = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return value;
}

/// Raises for a key of the options table (at index 1) that is not an option: a misspelt
/// option would otherwise be silently ignored.
static void check_option_names(lua_State *L) {
    static const char *const names[] = {"db",     "build", "name",      "interval",    "depth",
                                        "sample", "keep",  "keep_full", "max_db_size", "host",
                                        NULL};
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        int index;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, 1, lua_pushfstring(L, "options are named; got a %s key",
                                                luaL_typename(L, -1)));
        for (index = 0; names[index] != NULL; index++)
            if (strcmp(lua_tostring(L, -1), names[index]) == 0)
                break;
        if (names[index] == NULL)
            luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s' (options: db, build, "
                                                "name, interval, depth, sample, keep, keep_full, "
                                                "max_db_size, host)",
                                                lua_tostring(L, -1)));
    }
}

static int module_start(lua_State *L) {
    luamem_start_options options = {NULL, 10, NULL, NULL, 1, 0, NULL, NULL, NULL, NULL};
    char error[512];
    double depth;
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    else
        lua_settop(L, 0), lua_newtable(L);
    check_option_names(L);
    options.db = option_string(L, "db");
    options.build = option_string(L, "build");
    options.name = option_string(L, "name");
    options.keep = option_string(L, "keep");
    options.keep_full = option_string(L, "keep_full");
    options.max_db_size = option_string(L, "max_db_size");
    options.host = option_string(L, "host");
    if (hooks.check_options != NULL && hooks.check_options(&options, error, sizeof error) != 0)
        luaL_argerror(L, 1, lua_pushstring(L, error));
    options.interval = option_number(L, "interval", 10);
    depth = option_number(L, "depth", 1);
    options.sample = option_number(L, "sample", 0);
    if (!(options.sample >= 0) || options.sample > LUAMEM_MAX_SAMPLE)
        luaL_argerror(L, 1, "option 'sample' must be a number of bytes from 0 to 1GiB");
    if (!(options.interval > 0) || options.interval > LUAMEM_MAX_INTERVAL)
        luaL_argerror(L, 1, "option 'interval' must be a positive number of seconds up to 1e9");
    if (!(depth >= 1 && depth <= 32) || depth != (int)depth)
        luaL_argerror(L, 1, "option 'depth' must be an integer from 1 to 32");
    options.depth = (int)depth;
    if (options.db == NULL)
        options.db = getenv("LUAMEM_DB") != NULL && *getenv("LUAMEM_DB") ? getenv("LUAMEM_DB") : "luamem.db";
    if (hooks.start == NULL || hooks.start(L, &options, error, sizeof error) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, hooks.start == NULL ? "luamem is not available" : error);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int not_tracking(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "luamem is not tracking this Lua state");
    return 2;
}

static int module_stop(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    char error[512];
    if (context != NULL)
        luamem_collect_fully(L);                /* the final snapshot's post-GC figures are exact */
    if (context == NULL || hooks.stop(context, error, sizeof error) != 0)
        return context == NULL ? not_tracking(L) : (lua_pushnil(L), lua_pushstring(L, error), 2);
    lua_pushboolean(L, 1);
    return 1;
}

static int module_stats(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    luamem_totals totals;
    if (context == NULL)
        return not_tracking(L);
    hooks.totals(context, &totals);          // read before the result table is allocated
    lua_createtable(L, 0, 12);
#define SET_FIELD(name) (lua_pushinteger(L, (lua_Integer)totals.name), lua_setfield(L, -2, #name))
    SET_FIELD(live_bytes); SET_FIELD(live_count); SET_FIELD(alloc_bytes);
    SET_FIELD(alloc_count); SET_FIELD(peak_bytes); SET_FIELD(gc_live_bytes);
    SET_FIELD(gc_live_count); SET_FIELD(gc_cycles); SET_FIELD(sites);
    SET_FIELD(snapshots); SET_FIELD(untracked_bytes);
#undef SET_FIELD
    lua_pushboolean(L, totals.tracking);
    lua_setfield(L, -2, "tracking");
    return 1;
}

static int module_flush(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    char error[512];
    if (context == NULL)
        return not_tracking(L);
    if (hooks.flush(context, error, sizeof error) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, error);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int luamem_open_module(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"start", module_start},
        {"stop", module_stop},
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

/// Replaces `table[field]` with `replacement` when the table exists; `upvalue` keeps the old one.
static void replace_function(lua_State *L, const char *table, const char *field,
                             lua_CFunction replacement, int upvalue) {
    if (lua_getglobal(L, table) == LUA_TTABLE) {
        if (upvalue) {
            lua_getfield(L, -1, field);
            lua_pushcclosure(L, replacement, 1);
        } else {
            lua_pushcfunction(L, replacement);
        }
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1);
}

/// Everything a tracked state needs besides its allocator: coroutine and os.exit wrappers, C
/// function names, the GC-cycle sentinel and the close sentinel.
static int instrument(lua_State *L) {
    luamem_context *context = luamem_context_of(L);
    if (context == NULL)
        return luaL_error(L, "luamem: the state's allocator is not luamem's");
    replace_function(L, "coroutine", "resume", coroutine_resume, 0);
    replace_function(L, "coroutine", "wrap", coroutine_wrap, 0);
    if (lua_getglobal(L, "os") == LUA_TTABLE && lua_getfield(L, -1, "exit") == LUA_TFUNCTION &&
        lua_tocfunction(L, -1) != os_exit) {
        lua_rawsetp(L, LUA_REGISTRYINDEX, &original_exit_key);
        lua_pushcfunction(L, os_exit);
        lua_setfield(L, -2, "exit");
        lua_pop(L, 1);
    } else {
        lua_pop(L, 2);
    }

    name_cfunctions(L, context);

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinel_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, sentinel_gc);
        lua_setfield(L, -2, "__gc");
        lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_key);
        plant_sentinel(L);

        lua_newuserdata(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, close_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &close_key);
    } else {
        lua_pop(L, 1);
    }
    return 0;
}

void luamem_name_own_functions(luamem_context *context) {
    hooks.name_cfunction(context, sentinel_gc, "luamem.gc_sentinel");
    hooks.name_cfunction(context, close_gc, "luamem.close");
    hooks.name_cfunction(context, luamem_runner_load_script, "luamem.load_script");
    hooks.name_cfunction(context, luamem_runner_run_script, "luamem.run_script");
    hooks.name_cfunction(context, instrument, "luamem.instrument");
    hooks.name_cfunction(context, prepare, "luamem.prepare");
    hooks.name_cfunction(context, collect_fully, "luamem.collect");
    hooks.name_cfunction(context, prepare_without_environment, "luamem.prepare");
    hooks.name_cfunction(context, module_start, "luamem.start");
    hooks.name_cfunction(context, module_stop, "luamem.stop");
    hooks.name_cfunction(context, module_stats, "luamem.stats");
    hooks.name_cfunction(context, module_flush, "luamem.flush");
}

static int prepare(lua_State *L) {
    luaL_checkversion(L);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luamem_open_module);
    lua_setfield(L, -2, "luamem");
    lua_pop(L, 1);
    return instrument(L);
}

static void copy_error(lua_State *L, char *error, size_t error_size) {
    const char *message = lua_tostring(L, -1);
    snprintf(error, error_size, "%s", message != NULL ? message : "(error object is not a string)");
    lua_pop(L, 1);
}

static int protected_call(lua_State *L, lua_CFunction function, char *error, size_t error_size) {
    lua_pushcfunction(L, function);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        copy_error(L, error, error_size);
        return -1;
    }
    return 0;
}

/// prepare, after telling the libraries to ignore environment variables (lua.c's -E).
static int prepare_without_environment(lua_State *L) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    return prepare(L);
}

int luamem_prepare_state(lua_State *L, int ignore_environment, char *error, size_t error_size) {
    return protected_call(L, ignore_environment ? prepare_without_environment : prepare, error,
                          error_size);
}

int luamem_instrument_state(lua_State *L, char *error, size_t error_size) {
    return protected_call(L, instrument, error, error_size);
}

lua_State *luamem_main_thread(lua_State *L) {
    lua_State *main;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main = lua_tothread(L, -1);
    lua_pop(L, 1);
    return main;
}

int luamem_resume_tracked(lua_State *co, lua_State *from, int nargs) {
    luamem_context *context = luamem_context_of(co);
    lua_State *resumer = from;
    int status;
    // The manual allows from == NULL: the thread running until now resumes, as far as luamem
    // knows it, and never NULL, which the allocator would read.
    if (context != NULL && resumer == NULL)
        resumer = context->current != NULL ? context->current
                  : context->main != NULL  ? context->main
                                           : co;
    if (context != NULL)
        enter_thread(context, resumer, co);
    status = lua_resume(co, from, nargs);
    if (context != NULL)
        leave_thread(context, resumer);
    return status;
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
