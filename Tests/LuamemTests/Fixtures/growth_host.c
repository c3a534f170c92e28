/*
 * The tracker's tables grow while the flusher reads them: two states on two threads each load
 * 6,000 chunks named gen1..gen6000 that keep one table apiece, so every chunk is a new site,
 * its frame, its strings and its counter slots, and the chunk directories and the arrays of
 * changed marks are replaced several times while the flusher writes every 10 ms.
 * scripts/tsan-host.sh runs it under ThreadSanitizer and checks what reached the database.
 *
 *   growth_host DB
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "luamem.h"

static const char *database;

static const char code[] =
    "kept = {}\n"
    "for n = 1, 6000 do\n"
    "  kept[n] = assert(load('return { ' .. n .. ' }', '=gen' .. n))()\n"
    "end\n";

static void *grow(void *argument) {
    char name[32];
    luamem_options options = {0};
    snprintf(name, sizeof name, "grow-%d", (int)(intptr_t)argument);
    options.db = database;
    options.interval = 0.01;
    options.name = name;
    lua_State *L = luamem_newstate(&options);
    if (L == NULL) {
        fprintf(stderr, "%s: %s\n", name, luamem_last_error());
        exit(1);
    }
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", name, lua_tostring(L, -1));
        exit(1);
    }
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t threads[2];
    if (argc < 2) {
        fprintf(stderr, "usage: growth_host DB\n");
        return 2;
    }
    database = argv[1];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&threads[i], NULL, grow, (void *)(intptr_t)(i + 1)) != 0)
            return 1;
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("2 states grown\n");
    return 0;
}
