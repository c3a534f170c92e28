/* Forks repeatedly while a tracked state runs and the flusher writes every 10 ms; each child
 * keeps running Lua on its copy of the state and exits. Usage: fork_host DATABASE */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua5.3/lauxlib.h>

#include "luamem.h"

static void run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(3);
    }
}

int main(int argc, char **argv) {
    luamem_options options = {0};
    lua_State *L;
    int round;
    options.db = argc > 1 ? argv[1] : "fork.db";
    options.interval = 0.01;
    options.name = "parent";
    L = luamem_newstate(&options);
    if (L == NULL) {
        fprintf(stderr, "%s\n", luamem_last_error());
        return 2;
    }
    run(L, "kept = {} for i = 1, 1000 do kept[i] = { i } end");
    for (round = 0; round < 20; round++) {
        pid_t child = fork();
        if (child < 0)
            return 4;
        if (child == 0) {
            run(L, "local t = {} for i = 1, 20000 do t[i] = { i, tostring(i) } end");
            lua_close(L);
            exit(0);
        }
        run(L, "for i = 1, 2000 do kept[#kept + 1] = { i } end");
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 5;
    }
    lua_close(L);
    printf("forked 20 children\n");
    return 0;
}
