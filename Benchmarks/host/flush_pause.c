/*
 * How long can a flush hold up the Lua thread, and what does the flusher cost? One Lua state
 * with 100k distinct live sites runs a loop for a few seconds that only reads a clock, while
 * the flusher writes a snapshot every 50 ms (a full one before the loop, then the few changed
 * rows).
 * Prints the longest gap between loop iterations, tracked and untracked, and the flusher's CPU
 * time per snapshot (process CPU minus the Lua thread's). Build and run:
 *
 *   swift build -c release
 *   cc -O2 $(pkg-config --cflags lua5.3) -I Sources/Luamem/include Benchmarks/host/flush_pause.c -o flush_pause \
 *      -L .build/release -lluamem-embed -llua5.3 -lpthread -Wl,-rpath,$PWD/.build/release
 *   ./flush_pause /tmp/flush_pause.db 99000 10 5     # db, sites, seconds per loop, rounds
 *
 * (99000 sites stay under the tracker's default cap of 100k sites.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "luamem.h"

static double seconds(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int monotonic(lua_State *L) {
    lua_pushnumber(L, seconds(CLOCK_MONOTONIC));
    return 1;
}

static const char setup[] =
    "local sites = ...\n"
    "kept = {}\n"
    "for i = 1, sites do kept[i] = assert(load('return {' .. i .. '}', '=s' .. i))() end\n";

static const char workload[] =
    "local duration, now = ...\n"
    "local worst, stop, last = 0, now() + duration, now()\n"
    "while last < stop do\n"
    "  local t = now()\n"
    "  if t - last > worst then worst = t - last end\n"
    "  last = t\n"
    "end\n"
    "return worst\n";

static void create_sites(lua_State *L, int sites) {
    if (luaL_loadbuffer(L, setup, sizeof setup - 1, "=flush_pause_setup") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_pushinteger(L, sites);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
}

static double run(lua_State *L, double duration) {
    double worst;
    if (luaL_loadbuffer(L, workload, sizeof workload - 1, "=flush_pause") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_pushnumber(L, duration);
    lua_pushcfunction(L, monotonic);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
    worst = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return worst;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *db = argc > 1 ? argv[1] : "flush_pause.db";
    int sites = argc > 2 ? atoi(argv[2]) : 100000;
    double duration = argc > 3 ? atof(argv[3]) : 3;
    int rounds = argc > 4 ? atoi(argv[4]) : 1;
    double plain_gaps[64], tracked_gaps[64], flusher[64];
    if (rounds < 1 || rounds > 64) {
        fprintf(stderr, "rounds: 1 to 64\n");
        return 1;
    }
    // The machine is shared: a single longest gap says more about its other tenants than about
    // luamem, so the two loops alternate and the medians are printed too.
    for (int round = 0; round < rounds; round++) {
        luamem_options options = {0};
        lua_State *plain, *tracked;
        double thread_cpu, process_cpu;

        plain = luaL_newstate();
        luaL_openlibs(plain);
        create_sites(plain, sites);
        plain_gaps[round] = run(plain, duration);
        lua_close(plain);

        options.db = db;
        options.interval = 0.05;
        options.name = "flush_pause";
        tracked = luamem_newstate(&options);
        if (tracked == NULL) {
            fprintf(stderr, "%s\n", luamem_last_error());
            return 1;
        }
        // The first snapshot, with every site and row, is written before the loop: the loop
        // measures what a snapshot of a few changed rows costs.
        create_sites(tracked, sites);
        luamem_flush();
        thread_cpu = seconds(CLOCK_THREAD_CPUTIME_ID);
        process_cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
        tracked_gaps[round] = run(tracked, duration);
        thread_cpu = seconds(CLOCK_THREAD_CPUTIME_ID) - thread_cpu;
        process_cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - process_cpu;
        luamem_flush();
        lua_close(tracked);
        flusher[round] = (process_cpu - thread_cpu) / (duration / 0.05);
        printf("%d sites, %.0f s loop: longest gap %.3f ms untracked, %.3f ms tracked; "
               "flusher CPU %.2f ms per snapshot (%.0f snapshots)\n",
               sites, duration, plain_gaps[round] * 1000, tracked_gaps[round] * 1000,
               flusher[round] * 1000, duration / 0.05);
    }
    if (rounds > 1) {
        qsort(plain_gaps, rounds, sizeof(double), compare);
        qsort(tracked_gaps, rounds, sizeof(double), compare);
        qsort(flusher, rounds, sizeof(double), compare);
        printf("median of %d rounds: longest gap %.3f ms untracked, %.3f ms tracked; flusher CPU "
               "%.2f ms per snapshot\n",
               rounds, plain_gaps[rounds / 2] * 1000, tracked_gaps[rounds / 2] * 1000,
               flusher[rounds / 2] * 1000);
    }
    return 0;
}
