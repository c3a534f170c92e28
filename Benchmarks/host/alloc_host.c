/*
 * Is the pool's placement, not the tracking, what luamem costs a real program? A plain host
 * (no luamem at all) that runs a Lua script with one of four allocators:
 *
 *   glibc          realloc/free, as lua5.3 does
 *   pool           luamem's pool layout without the tracking: an 8-byte header, blocks up to
 *                  512 bytes (header included) from 64 KiB slabs in 16-byte size classes with a
 *                  last-in first-out free list per class, larger ones from malloc
 *   pool-noheader  the same pool without the header
 *   pool-aligned   the pool with its header, each block starting 8 bytes past a 16-byte
 *                  boundary so that what Lua gets is 16-byte aligned, as glibc's blocks are
 *
 * Build and compare (luacheck, as Benchmarks/compare.py runs it):
 *
 *   cc -O2 $(pkg-config --cflags lua5.3) Benchmarks/host/alloc_host.c -o alloc_host -llua5.3
 *   export LUA_PATH="/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"
 *   L="/usr/bin/luacheck --no-color --codes --no-cache -q /usr/share/lua"
 *   hyperfine -N -i -r 6 "./alloc_host glibc $L" "./alloc_host pool $L" "./alloc_host pool-noheader $L" \
 *     "./alloc_host pool-aligned $L"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#define MAX_POOLED 512
#define SLAB (64 * 1024)

static size_t header, first = 16;
static void *free_lists[MAX_POOLED / 16 + 1];
static char *bump, *bump_end;

static void *pool_take(size_t size) {
    size_t size_class = (size + 15) >> 4;
    void *head = free_lists[size_class];
    if (head) {
        free_lists[size_class] = *(void **)head;
        return head;
    }
    size_t rounded = size_class << 4;
    if (!bump || (size_t)(bump_end - bump) < rounded) {
        void *slab;
        if (posix_memalign(&slab, SLAB, SLAB) != 0)
            return NULL;
        bump = (char *)slab + first;
        bump_end = (char *)slab + SLAB;
    }
    void *block = bump;
    bump += rounded;
    return block;
}

static void pool_give(void *block, size_t size) {
    size_t size_class = (size + 15) >> 4;
    *(void **)block = free_lists[size_class];
    free_lists[size_class] = block;
}

static void release(char *start, size_t size) {
    if (size <= MAX_POOLED)
        pool_give(start, size);
    else
        free(start - (first & 8));
}

static void *pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    char *start = ptr ? (char *)ptr - header : NULL;
    size_t old = ptr ? osize + header : 0, need = nsize + header;
    if (nsize == 0) {
        if (ptr)
            release(start, old);
        return NULL;
    }
    if (ptr && old <= MAX_POOLED && need <= MAX_POOLED && (old + 15) >> 4 == (need + 15) >> 4)
        return ptr;
    if (ptr && old > MAX_POOLED && need > MAX_POOLED) {
        char *moved = realloc(start - (first & 8), need + (first & 8));
        return moved ? moved + (first & 8) + header : NULL;
    }
    char *block = need <= MAX_POOLED ? pool_take(need) : malloc(need + (first & 8));
    if (block && need > MAX_POOLED)
        block += first & 8;
    if (!block)
        return NULL;
    if (header)
        memcpy(block, &nsize, sizeof(unsigned));
    if (ptr) {
        memcpy(block + header, ptr, osize < nsize ? osize : nsize);
        release(start, old);
    }
    return block + header;
}

static void *glibc_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: alloc_host glibc|pool|pool-noheader|pool-aligned script.lua [args]\n");
        return 2;
    }
    lua_Alloc alloc = glibc_alloc;
    if (strcmp(argv[1], "pool") == 0) {
        alloc = pool_alloc;
        header = 8;
    } else if (strcmp(argv[1], "pool-aligned") == 0) {
        alloc = pool_alloc;
        header = 8;
        first = 8;
    } else if (strcmp(argv[1], "pool-noheader") == 0) {
        alloc = pool_alloc;
    } else if (strcmp(argv[1], "glibc") != 0) {
        fprintf(stderr, "alloc_host: unknown allocator '%s'\n", argv[1]);
        return 2;
    }
    lua_State *L = lua_newstate(alloc, NULL);
    luaL_openlibs(L);
    lua_createtable(L, argc - 3, 1);                  /* arg, as lua.c builds it */
    for (int i = 2; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 2);
    }
    lua_setglobal(L, "arg");
    int status = luaL_loadfile(L, argv[2]);
    if (status == LUA_OK) {
        for (int i = 3; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 3, 0, 0);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "alloc_host: %s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_close(L);
    return 0;
}
