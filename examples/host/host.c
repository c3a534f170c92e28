/*
 * A sample host: four "services", each a Lua state on its own thread, tracked through the
 * luamem C API into one database. Build and run (see README):
 *
 *   cc $(pkg-config --cflags lua5.3) -I Sources/Luamem/include examples/host/host.c -o host \
 *      -L .build/release -lluamem-embed -llua5.3 -lpthread -Wl,-rpath,$PWD/.build/release
 *   ./host host.db
 *
 * Service N keeps N*100 tables (line 3 of its chunk "serviceN"), allocates garbage every tick,
 * and runs a worker coroutine that the host resumes from C N*10 times (line 6).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "luamem.h"

static const char *database = "host.db";

static const char service_code[] =
    "local n = ...\n"
    "cache = {}\n"
    "for i = 1, n * 100 do cache[i] = { i } end\n"
    "function tick(k) local t = {} for i = 1, 10 do t[i] = tostring(k + i) end return #t end\n"
    "worker = coroutine.create(function()\n"
    "  local mine = {} while true do mine[#mine + 1] = {} coroutine.yield(#mine) end\n"
    "end)\n";

static void fail(const char *service, const char *message) {
    fprintf(stderr, "%s: %s\n", service, message);
    exit(1);
}

static void *service(void *argument) {
    int n = (int)(intptr_t)argument, k;
    char name[32], chunk[32];
    luamem_options options = {0};
    lua_State *L, *worker;

    snprintf(name, sizeof name, "svc-%d", n);
    snprintf(chunk, sizeof chunk, "=service%d", n);
    options.db = database;
    options.interval = 0.05;
    options.name = name;
    options.build = "host-example";
    L = luamem_newstate(&options);
    if (L == NULL)
        fail(name, luamem_last_error());

    if (luaL_loadbuffer(L, service_code, strlen(service_code), chunk) != LUA_OK)
        fail(name, lua_tostring(L, -1));
    lua_pushinteger(L, n);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        fail(name, lua_tostring(L, -1));

    for (k = 0; k < 3000; k++) {
        lua_getglobal(L, "tick");
        lua_pushinteger(L, k);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            fail(name, lua_tostring(L, -1));
        lua_pop(L, 1);
    }

    lua_getglobal(L, "worker");
    worker = lua_tothread(L, -1);
    for (k = 0; k < n * 10; k++) {
        if (luamem_resume(worker, L, 0) != LUA_YIELD)
            fail(name, "worker did not yield");
        lua_pop(worker, lua_gettop(worker));
    }
    lua_pop(L, 1);

    lua_close(L);   /* writes this state's final snapshot */
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t threads[4];
    int i;
    if (argc > 1)
        database = argv[1];
    for (i = 0; i < 4; i++)
        if (pthread_create(&threads[i], NULL, service, (void *)(intptr_t)(i + 1)) != 0)
            fail("host", "cannot start a thread");
    for (i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    printf("4 services done\n");
    return 0;
}
