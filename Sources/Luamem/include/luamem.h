/*
 * luamem — track where a Lua 5.3 program's memory goes, from a C or C++ host.
 *
 * Compile and link with `pkg-config --cflags --libs luamem` (the archive's lib/pkgconfig, or the
 * .deb's): that gives this header, Lua 5.3's headers (<lua.h>) and -lluamem-embed with the
 * host's own Lua 5.3. Every tracked state of a process writes into one SQLite file, through
 * one background thread; `luamem query` and sqlite3 read it.
 *
 *     luamem_options options = { .db = "mem.db", .interval = 10, .name = "gate" };
 *     lua_State *L = luamem_newstate(&options);   // like luaL_newstate + luaL_openlibs
 *     ...                                         // run Lua code as usual, on any thread
 *     lua_close(L);                               // writes the state's final snapshot
 *
 * $LUAMEM_SAMPLE, $LUAMEM_KEEP, $LUAMEM_KEEP_FULL and $LUAMEM_MAX_DB_SIZE set those options for
 * `lua5.3 -l luamem.auto`.
 * The same library is the Lua module: `require "luamem"` in a stock lua5.3 (see README).
 */
#ifndef LUAMEM_H
#define LUAMEM_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Options for a tracked state. Zeroed fields take their defaults. */
typedef struct luamem_options {
    const char *db;        /* SQLite file; NULL: $LUAMEM_DB, else "luamem.db" */
    double interval;       /* seconds between snapshots; 0: 10 */
    const char *build;     /* build label stored with the run (e.g. a git sha), or NULL */
    const char *name;      /* the state's name (`luamem query --state NAME`), or NULL */
    int depth;             /* Lua frames per allocation site, 1 to 32; 0: 1 */
    double sample;         /* sample about one allocation per this many bytes (per-site figures
                              become estimates, totals stay exact); 0: record every allocation */
    const char *keep;      /* remove history older than this while running, e.g. "30d"; NULL: keep */
    const char *keep_full; /* thin history older than this to rollup snapshots, e.g. "1d"; NULL */
    const char *max_db_size; /* cap on the file, e.g. "512MB": the oldest history goes first; NULL */
    const char *host;      /* host label stored with the run; NULL: $LUAMEM_HOST, else the
                              machine's host name (a fleet's processes are told apart by it) */
} luamem_options;

/* A new state tracked from its first allocation, with the standard libraries open; close it
 * with lua_close, which writes its final snapshot (or, while another snapshot is being written
 * or another process holds the file, has the flusher thread write it from the figures of that
 * moment, at the latest at exit). Neither call waits for another state's snapshot. NULL on
 * failure (see luamem_last_error).
 * The first state of a process fixes the database, interval and build for all of them. */
lua_State *luamem_newstate(const luamem_options *options);

/* Starts tracking a state that already exists (call from the thread that runs it, while it is
 * not running). Blocks allocated before are reported as untracked. 0, or -1 on failure. */
int luamem_attach(lua_State *L, const luamem_options *options);

/* Writes the state's final snapshot and stops recording it; its allocator stays installed,
 * idle, because Lua still holds blocks from it. luamem_attach tracks it again. 0 or -1. */
int luamem_detach(lua_State *L);

/* lua_resume for hosts that resume coroutines themselves: allocations inside the coroutine are
 * charged to its own lines. (coroutine.resume and coroutine.wrap already do this.) */
int luamem_resume(lua_State *co, lua_State *from, int nargs);

/* Writes a snapshot of every tracked state now. 0, or -1 on failure. */
int luamem_flush(void);

/* The message of this thread's last failed luamem call. */
const char *luamem_last_error(void);

/* The Lua module: `require "luamem"` and, to start from the environment ($LUAMEM_DB,
 * $LUAMEM_INTERVAL, $LUAMEM_BUILD, $LUAMEM_NAME, $LUAMEM_DEPTH), `lua5.3 -l luamem.auto`. */
int luaopen_luamem(lua_State *L);
int luaopen_luamem_auto(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
