/* The pre-fork worker pattern: a master with a tracked state (its flusher writing every 10 ms)
 * forks ROUNDS rounds of WORKERS workers at once. Each worker runs Lua on the state it inherited
 * (unrecorded), then tracks a state of its own, flushes, closes it and exits. Usage:
 * fork_host DATABASE [ROUNDS [WORKERS]] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>

#include "luamem.h"

static void run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(3);
    }
}

static void work(lua_State *inherited, const char *db) {
    luamem_options options = {0};
    lua_State *L;
    run(inherited, "local t = {} for i = 1, 2000 do t[i] = { i, tostring(i) } end");
    options.db = db;
    options.interval = 0.01;
    options.name = "worker";
    L = luamem_newstate(&options);
    if (L == NULL) {
        fprintf(stderr, "worker: %s\n", luamem_last_error());
        exit(6);
    }
    run(L, "kept = {}\nfor i = 1, 500 do kept[i] = { i } end");
    if (luamem_flush() != 0) {
        fprintf(stderr, "worker flush: %s\n", luamem_last_error());
        exit(7);
    }
    lua_close(L);
    lua_close(inherited);
    exit(0);
}

int main(int argc, char **argv) {
    luamem_options options = {0};
    lua_State *L;
    int rounds = argc > 2 ? atoi(argv[2]) : 20, workers = argc > 3 ? atoi(argv[3]) : 20;
    int round, worker, failed = 0;
    options.db = argc > 1 ? argv[1] : "fork.db";
    options.interval = 0.01;
    options.name = "master";
    L = luamem_newstate(&options);
    if (L == NULL) {
        fprintf(stderr, "%s\n", luamem_last_error());
        return 2;
    }
    run(L, "kept = {} for i = 1, 1000 do kept[i] = { i } end");
    for (round = 0; round < rounds; round++) {
        for (worker = 0; worker < workers; worker++) {
            pid_t child = fork();
            if (child < 0)
                return 4;
            if (child == 0)
                work(L, options.db);
        }
        run(L, "for i = 1, 2000 do kept[#kept + 1] = { i } end");
        for (worker = 0; worker < workers; worker++) {
            int status;
            if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                failed++;
        }
    }
    lua_close(L);
    printf("forked %d workers, %d failed\n", rounds * workers, failed);
    return failed != 0 ? 5 : 0;
}
