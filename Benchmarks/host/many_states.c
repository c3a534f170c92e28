/*
 * What does each tracked state cost a host that runs many small ones (a skynet-style server,
 * one state per service)? Opens N states, plain (luaL_newstate) or tracked (luamem_newstate),
 * runs the same small script in each, keeps them all open and prints the process's RSS.
 * Build and run:
 *
 *   swift build -c release --product luamem-embed
 *   cc -O2 $(pkg-config --cflags lua5.3) -I Sources/Luamem/include Benchmarks/host/many_states.c -o many_states \
 *      -L .build/release -lluamem-embed -llua5.3 -lpthread -Wl,-rpath,$PWD/.build/release
 *   ./many_states plain 500 && ./many_states tracked 500 /tmp/many.db
 *
 * The difference over N is luamem's cost per state: its tracker, pool pages and caches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "luamem.h"

/* A service's start: a few tables, closures and strings, some of them kept. */
static const char script[] =
    "local service = {handlers = {}, names = {}}\n"
    "for i = 1, 200 do\n"
    "  service.handlers[i] = function(x) return x + i end\n"
    "  service.names[i] = 'handler' .. i\n"
    "end\n"
    "local queue = {}\n"
    "for i = 1, 500 do queue[#queue + 1] = {id = i, body = string.rep('x', i % 64)} end\n"
    "for i = 1, 400 do queue[i] = nil end\n"
    "collectgarbage()\n"
    "_G.service = service\n";

static long rss_kib(void) {
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (status)
        fclose(status);
    return kib;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "plain") != 0 && strcmp(argv[1], "tracked") != 0)) {
        fprintf(stderr, "usage: many_states plain|tracked STATES [DB]\n");
        return 2;
    }
    int tracked = strcmp(argv[1], "tracked") == 0;
    int count = atoi(argv[2]);
    if (count <= 0) {
        fprintf(stderr, "many_states: STATES must be a positive number\n");
        return 2;
    }
    lua_State **states = calloc((size_t)count, sizeof *states);
    luamem_options options = {.db = argc > 3 ? argv[3] : "many_states.db", .interval = 3600};
    for (int i = 0; i < count; i++) {
        if (tracked) {
            states[i] = luamem_newstate(&options);
            if (!states[i]) {
                fprintf(stderr, "many_states: %s\n", luamem_last_error());
                return 1;
            }
        } else {
            states[i] = luaL_newstate();
            luaL_openlibs(states[i]);
        }
        if (luaL_dostring(states[i], script) != LUA_OK) {
            fprintf(stderr, "many_states: %s\n", lua_tostring(states[i], -1));
            return 1;
        }
    }
    long rss = rss_kib();
    printf("%s %d states: RSS %.1f MiB, %.1f KiB per state\n", argv[1], count, rss / 1024.0,
           (double)rss / count);
    for (int i = 0; i < count; i++)
        lua_close(states[i]);
    free(states);
    return 0;
}
