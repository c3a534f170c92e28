/* A C host that loads luamem, tracks a state, then crashes as asked: its stderr, exit status and
 * core dump must be exactly what they would be without luamem. Also resumes a coroutine with
 * from = NULL, which the Lua manual allows. Usage: crash_host DATABASE abort|segv|resume */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "luamem.h"

int main(int argc, char **argv) {
    luamem_options options = {0};
    lua_State *L, *co;
    if (argc < 3)
        return 2;
    options.db = argv[1];
    options.name = "crash";
    L = luamem_newstate(&options);
    if (L == NULL) {
        fprintf(stderr, "%s\n", luamem_last_error());
        return 2;
    }
    if (luaL_dostring(L, "kept = {} for i = 1, 100 do kept[i] = { i } end") != LUA_OK)
        return 3;
    if (strcmp(argv[2], "resume") == 0) {
        co = lua_newthread(L);
        luaL_loadstring(co, "local t = {} for i = 1, 50 do t[i] = { i } end "
                            "coroutine.yield(#t) kept.co = t return 1");
        if (luamem_resume(co, NULL, 0) != LUA_YIELD || luamem_resume(co, NULL, 0) != LUA_OK)
            return 4;
        if (luaL_dostring(L, "for i = 1, 100 do kept[#kept + 1] = { i } end") != LUA_OK)
            return 5;
        lua_close(L);
        printf("resumed\n");
        return 0;
    }
    fprintf(stderr, "crash_host: crashing by %s\n", argv[2]);
    if (strcmp(argv[2], "abort") == 0)
        abort();
    if (strcmp(argv[2], "segv") == 0)
        *(volatile int *)(uintptr_t)argc = 1;
    return 6;
}
