#define _GNU_SOURCE   /* dladdr */
#include "luamem.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "LuaShim.h"

// Implemented in Swift (LuamemAgent/CEntryPoints.swift), linked into the same library.
extern void luamem_agent_install(void);
extern lua_State *luamem_agent_newstate(const luamem_start_options *options, char *error, size_t size);
extern int luamem_agent_attach(lua_State *L, const luamem_start_options *options, char *error, size_t size);
extern int luamem_agent_detach(lua_State *L, char *error, size_t size);
extern int luamem_agent_flush(char *error, size_t size);
extern int luamem_agent_environment_options(double *interval, int *depth, double *sample,
                                            char *error, size_t size);

static __thread char last_error[512];

const char *luamem_last_error(void) {
    return last_error;
}

static luamem_start_options with_defaults(const luamem_options *options) {
    luamem_start_options result = {NULL, 10, NULL, NULL, 1, 0, NULL, NULL, NULL, NULL};
    const char *environment = getenv("LUAMEM_DB");
    result.db = environment != NULL && *environment ? environment : "luamem.db";
    if (options != NULL) {
        if (options->db != NULL) result.db = options->db;
        if (options->interval > 0) result.interval = options->interval;
        if (options->depth != 0) result.depth = options->depth;
        result.sample = options->sample;
        result.build = options->build;
        result.name = options->name;
        result.keep = options->keep;
        result.keep_full = options->keep_full;
        result.max_db_size = options->max_db_size;
        result.host = options->host;
    }
    return result;
}

static int valid(const luamem_start_options *options) {
    if (options->depth < 1 || options->depth > 32) {
        snprintf(last_error, sizeof last_error, "depth must be from 1 to 32, got %d", options->depth);
        return 0;
    }
    if (!(options->sample >= 0) || options->sample > LUAMEM_MAX_SAMPLE) {
        snprintf(last_error, sizeof last_error, "sample must be a number of bytes from 0 to 1GiB");
        return 0;
    }
    if (!(options->interval > 0) || options->interval > LUAMEM_MAX_INTERVAL) {
        snprintf(last_error, sizeof last_error, "interval must be a positive number of seconds");
        return 0;
    }
    return 1;
}

lua_State *luamem_newstate(const luamem_options *options) {
    luamem_start_options resolved = with_defaults(options);
    luamem_agent_install();
    if (!valid(&resolved))
        return NULL;
    return luamem_agent_newstate(&resolved, last_error, sizeof last_error);
}

int luamem_attach(lua_State *L, const luamem_options *options) {
    luamem_start_options resolved = with_defaults(options);
    luamem_agent_install();
    if (!valid(&resolved))
        return -1;
    return luamem_agent_attach(L, &resolved, last_error, sizeof last_error);
}

int luamem_detach(lua_State *L) {
    luamem_agent_install();
    return luamem_agent_detach(L, last_error, sizeof last_error);
}

int luamem_resume(lua_State *co, lua_State *from, int nargs) {
    return luamem_resume_tracked(co, from, nargs);
}

int luamem_flush(void) {
    luamem_agent_install();
    return luamem_agent_flush(last_error, sizeof last_error);
}

/// lua_close unloads C modules (dlclose) before it frees the last blocks, which it frees
/// through this library's allocator: the library must stay mapped until the process ends.
static void stay_loaded(void) {
    Dl_info info;
    if (dladdr((void *)luaopen_luamem, &info) != 0 && info.dli_fname != NULL)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int luaopen_luamem(lua_State *L) {
    stay_loaded();
    luamem_agent_install();
    return luamem_open_module(L);
}

/// `lua5.3 -l luamem.auto`: starts tracking from the environment. A failure is reported on
/// stderr and the program runs on untracked.
int luaopen_luamem_auto(lua_State *L) {
    luamem_options options = {0};
    luamem_start_options resolved;
    char error[512];
    options.build = getenv("LUAMEM_BUILD");
    options.name = getenv("LUAMEM_NAME");
    options.keep = getenv("LUAMEM_KEEP");
    options.keep_full = getenv("LUAMEM_KEEP_FULL");
    options.max_db_size = getenv("LUAMEM_MAX_DB_SIZE");
    stay_loaded();
    luamem_agent_install();
    if (luamem_agent_environment_options(&options.interval, &options.depth, &options.sample, error,
                                         sizeof error) != 0) {
        fprintf(stderr, "luamem: %s; not tracking\n", error);
        return luamem_open_module(L);
    }
    resolved = with_defaults(&options);
    if (!valid(&resolved))
        fprintf(stderr, "luamem: %s; not tracking\n", last_error);
    else if (luamem_agent_attach(L, &resolved, error, sizeof error) != 0)
        fprintf(stderr, "luamem: %s; not tracking\n", error);
    return luamem_open_module(L);
}
