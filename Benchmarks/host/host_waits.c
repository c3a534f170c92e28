/*
 * How long does a host's own thread wait for luamem on a saturated machine? One state holds
 * BIG distinct live sites and changes 2000 of them between rounds, so the flusher (every 50 ms)
 * has large snapshots, rollups and checkpoints to write; meanwhile the host creates STATES small
 * tracked states one after another, each running a little code, flushing once (unless the fifth
 * argument is "noflush") and closing, and BUSY child processes spin at the host's priority.
 * Prints, for luamem_newstate, luamem_flush and lua_close, the median, the 99th percentile and
 * the longest call. A flush waits for the flusher's snapshot in progress, so the next close
 * seldom meets one: "noflush" shows what lua_close meets.
 *
 *   swift build -c release --product luamem-embed
 *   cc -O2 $(pkg-config --cflags lua5.3) -I Sources/Luamem/include Benchmarks/host/host_waits.c -o host_waits \
 *      -L .build/release -lluamem-embed -llua5.3 -lpthread -Wl,-rpath,$PWD/.build/release
 *   ./host_waits /tmp/host_waits.db 50000 100 12          # db, big state's sites, states, busy children
 *   ./host_waits /tmp/host_waits.db 50000 100 12 noflush
 *
 * Link it against two builds of the library (-L and -rpath) to compare them, and run them
 * alternately: the longest figures move with the other tenants of a shared machine.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "luamem.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
}

static void print(const char *what, double *calls, int count) {
    qsort(calls, count, sizeof(double), compare);
    printf("  %-15s median %8.2f ms, p99 %8.2f ms, longest %8.2f ms\n", what,
           calls[count / 2] * 1000, calls[count * 99 / 100] * 1000, calls[count - 1] * 1000);
}

int main(int argc, char **argv) {
    const char *db = argc > 1 ? argv[1] : "host_waits.db";
    int big = argc > 2 ? atoi(argv[2]) : 50000;
    int states = argc > 3 ? atoi(argv[3]) : 100;
    int busy = argc > 4 ? atoi(argv[4]) : 12;
    int flush = !(argc > 5 && strcmp(argv[5], "noflush") == 0);
    pid_t children[256];
    double *opens, *flushes, *closes;
    char code[256];
    luamem_options options = {0};
    lua_State *B;
    if (big < 1 || states < 1 || busy < 0 || busy > 256) {
        fprintf(stderr, "usage: host_waits DB BIG_SITES (>= 1) STATES (>= 1) BUSY (0 to 256) [noflush]\n");
        return 1;
    }
    opens = malloc(states * sizeof(double));
    flushes = malloc(states * sizeof(double));
    closes = malloc(states * sizeof(double));
    options.db = db;
    options.interval = 0.05;
    options.name = "big";
    B = luamem_newstate(&options);
    if (B == NULL || opens == NULL || flushes == NULL || closes == NULL) {
        fprintf(stderr, "%s\n", B == NULL ? luamem_last_error() : "out of memory");
        return 1;
    }
    snprintf(code, sizeof code,
             "kept = {} for i = 1, %d do kept[i] = assert(load('return {' .. i .. '}', '=s' .. i))() end",
             big);
    run(B, code);
    for (int i = 0; i < busy; i++) {
        children[i] = fork();
        if (children[i] == 0)
            for (volatile unsigned long spin = 0;; spin++) {}
    }
    options.name = "session";
    for (int i = 0; i < states; i++) {
        double start = now();
        lua_State *L = luamem_newstate(&options);
        if (L == NULL) {
            fprintf(stderr, "%s\n", luamem_last_error());
            return 1;
        }
        opens[i] = now() - start;
        run(L, "local t = {} for i = 1, 100 do t[i] = { i } end");
        start = now();
        if (flush) luamem_flush();
        flushes[i] = now() - start;
        start = now();
        lua_close(L);
        closes[i] = now() - start;
        run(B, "for i = 1, 2000 do kept[math.random(#kept)] = { i } end");
    }
    for (int i = 0; i < busy; i++) {
        kill(children[i], SIGKILL);
        waitpid(children[i], NULL, 0);
    }
    lua_close(B);
    printf("%d states beside one of %d sites, %d busy children:\n", states, big, busy);
    print("luamem_newstate", opens, states);
    if (flush) print("luamem_flush", flushes, states);
    print("lua_close", closes, states);
    return 0;
}
