/* A host that begins and closes a state while another process holds the file's write lock.
 * Usage: busy_file_host DATABASE READY GO DONE: the host tracks a first state, creates the file
 * READY, waits for GO (the lock is held then), creates a second state, runs it and closes it,
 * saying so on stderr, creates DONE, then closes the first state and exits (the final snapshots
 * left to the flusher are written by then). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>

#include "luamem.h"

static void run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(3);
    }
}

static void create(const char *path) {
    FILE *file = fopen(path, "w");
    if (file == NULL || fclose(file) != 0) {
        perror(path);
        exit(4);
    }
}

/* A tracked state called `name`, or the process ends with `status`. */
static lua_State *newstate(const char *db, const char *name, int status) {
    luamem_options options = {0};
    lua_State *L;
    options.db = db;
    options.interval = 0.05;
    options.name = name;
    L = luamem_newstate(&options);
    if (L == NULL) {
        fprintf(stderr, "%s: %s\n", name, luamem_last_error());
        exit(status);
    }
    return L;
}

int main(int argc, char **argv) {
    lua_State *first, *second;
    if (argc != 5) {
        fprintf(stderr, "usage: busy_file_host DATABASE READY GO DONE\n");
        return 2;
    }
    first = newstate(argv[1], "first", 5);
    run(first, "kept = {} for i = 1, 1000 do kept[i] = { i } end");
    if (luamem_flush() != 0) {
        fprintf(stderr, "flush: %s\n", luamem_last_error());
        return 6;
    }
    create(argv[2]);
    for (int waited = 0; access(argv[3], F_OK) != 0; waited++) {
        if (waited == 6000) {
            fprintf(stderr, "no %s after 60 s\n", argv[3]);
            return 7;
        }
        usleep(10000);
    }
    // The flusher's next interval snapshot is now waiting for the lock (up to a second).
    usleep(100000);
    second = newstate(argv[1], "second", 8);
    fprintf(stderr, "second state created\n");
    run(second, "kept = {} for i = 1, 100 do kept[i] = { i } end");
    lua_close(second);
    fprintf(stderr, "second state closed\n");
    create(argv[4]);
    lua_close(first);
    return 0;
}
