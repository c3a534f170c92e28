#ifndef LUAMEM_LUA_SHIM_INTERNAL_H
#define LUAMEM_LUA_SHIM_INTERNAL_H

// What the C files of LuaShim share with each other and not with Swift.

#include "LuaShim.h"

/// The Lua C functions of luamem_load_script and luamem_run_script, named for the tracker.
int luamem_runner_load_script(lua_State *L);
int luamem_runner_run_script(lua_State *L);

#endif
