/*
 * Is the pool's placement, not the tracking, what luamem costs a real program? A plain host
 * (no luamem at all) that runs a Lua script with one of five allocators:
 *
 *   glibc          realloc/free, as lua5.3 does
 *   pool           luamem's pool layout without the tracking: an 8-byte header, blocks up to
 *                  512 bytes (header included) from 64 KiB slabs in 16-byte size classes with a
 *                  last-in first-out free list per class, larger ones from malloc
 *   pool-noheader  the same pool without the header
 *   pool-aligned   the pool with its header, each block starting 8 bytes past a 16-byte
 *                  boundary so that what Lua gets is 16-byte aligned, as glibc's blocks are
 *   pages          a prototype without headers: 64 KiB pages of one size class each, every
 *                  block's 8 bytes of metadata (what the header holds) in a table at the start
 *                  of its page, written when the block is handed out and read when it is freed
 *
 * Build and compare (luacheck, as Benchmarks/compare.py runs it):
 *
 *   cc -O2 $(pkg-config --cflags lua5.3) Benchmarks/host/alloc_host.c -o alloc_host -llua5.3
 *   export LUA_PATH="/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"
 *   L="/usr/bin/luacheck --no-color --codes --no-cache -q /usr/share/lua"
 *   hyperfine -N -i -r 6 "./alloc_host glibc $L" "./alloc_host pool $L" "./alloc_host pool-noheader $L" \
 *     "./alloc_host pool-aligned $L" "./alloc_host pages $L"
 *
 * hyperfine runs each command's rounds back to back, so the machine's drift between commands
 * shows as a difference; for figures to compare, run the commands in turn several times over
 * (README, "What sampling still pays for").
 */
#include <stdint.h>
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

/* pages: header-less blocks in pages of one size class, metadata in a table per page */
#define NCLASSES (MAX_POOLED / 16 + 1)
static void *page_lists[NCLASSES];
static char *page_bump[NCLASSES], *page_end[NCLASSES];
static uint32_t reciprocal[NCLASSES];            /* 2^32 / class size, rounded up */
static volatile uint64_t metadata_read;

struct page_head {
    uint32_t first;                              /* offset of block 0 */
};

static uint64_t *page_metadata(char *block, size_t size_class) {
    char *page = (char *)((uintptr_t)block & ~(uintptr_t)(SLAB - 1));
    uint32_t offset = (uint32_t)(block - page) - ((struct page_head *)page)->first;
    uint32_t index = (uint32_t)(((uint64_t)offset * reciprocal[size_class]) >> 32);
    return (uint64_t *)(page + 16) + index;
}

static void *page_take(size_t size) {
    size_t size_class = (size + 15) >> 4;
    void *block = page_lists[size_class];
    if (block) {
        page_lists[size_class] = *(void **)block;
    } else {
        size_t rounded = size_class << 4;
        if (!page_bump[size_class] || (size_t)(page_end[size_class] - page_bump[size_class]) < rounded) {
            void *page;
            if (posix_memalign(&page, SLAB, SLAB) != 0)
                return NULL;
            size_t blocks = (SLAB - 16) / (rounded + 8);
            size_t first = (16 + blocks * 8 + 15) & ~(size_t)15;
            ((struct page_head *)page)->first = (uint32_t)first;
            page_bump[size_class] = (char *)page + first;
            page_end[size_class] = (char *)page + first + blocks * rounded;
        }
        block = page_bump[size_class];
        page_bump[size_class] += rounded;
    }
    *page_metadata(block, size_class) = size;
    return block;
}

static void page_give(void *block, size_t size) {
    size_t size_class = (size + 15) >> 4;
    metadata_read += *page_metadata(block, size_class);
    *(void **)block = page_lists[size_class];
    page_lists[size_class] = block;
}

/* Blocks above MAX_POOLED come from malloc with 16 bytes in front, so they stay aligned. */
static void page_release(void *ptr, size_t size) {
    if (size <= MAX_POOLED)
        page_give(ptr, size);
    else
        free((char *)ptr - 16);
}

static void *pages_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        if (ptr)
            page_release(ptr, osize);
        return NULL;
    }
    if (ptr && osize <= MAX_POOLED && nsize <= MAX_POOLED && (osize + 15) >> 4 == (nsize + 15) >> 4)
        return ptr;
    if (ptr && osize > MAX_POOLED && nsize > MAX_POOLED) {
        char *moved = realloc((char *)ptr - 16, nsize + 16);
        return moved ? moved + 16 : NULL;
    }
    char *block;
    if (nsize <= MAX_POOLED) {
        block = page_take(nsize);
    } else {
        block = malloc(nsize + 16);
        if (block)
            block += 16;
    }
    if (!block)
        return NULL;
    if (ptr) {
        memcpy(block, ptr, osize < nsize ? osize : nsize);
        page_release(ptr, osize);
    }
    return block;
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
        fprintf(stderr, "usage: alloc_host glibc|pool|pool-noheader|pool-aligned|pages script.lua [args]\n");
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
    } else if (strcmp(argv[1], "pages") == 0) {
        alloc = pages_alloc;
        for (size_t size_class = 1; size_class < NCLASSES; size_class++)
            reciprocal[size_class] = (uint32_t)(((1ull << 32) + size_class * 16 - 1) / (size_class * 16));
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
