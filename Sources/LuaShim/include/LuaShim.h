#ifndef LUAMEM_LUA_SHIM_H
#define LUAMEM_LUA_SHIM_H

// The C side of luamem's contact with Lua: what Swift cannot import (macros), what must not run
// in Swift frames (anything that may raise a Lua error, which longjmps), and the one place that
// reads Lua's internal layout (verified at run time, see luamem_probe_layout).
// Headers only: liblua5.3 is linked by the executable, never by this target.

#include <stddef.h>
#include <stdint.h>
#include <lua5.3/lua.h>
#include <lua5.3/lauxlib.h>
#include <lua5.3/lualib.h>

/// Deepest chain of nested coroutine resumes whose resumers are remembered (Lua's own limit of
/// nested C calls, LUAI_MAXCCALLS, is 200).
#define LUAMEM_MAX_RESUMERS 256

/// Which Lua thread of a tracked state is running. lua_Alloc gets no lua_State, so the resume
/// wrappers keep this up to date; `ud` of the tracked allocator points here.
typedef struct luamem_context {
    lua_State *main;                  /// the state's main thread, NULL until known
    lua_State *current;               /// the running thread
    int resumer_count;                /// threads waiting in a resume, innermost last
    int resumer_overflow;             /// resumes nested deeper than LUAMEM_MAX_RESUMERS
    lua_State *resumers[LUAMEM_MAX_RESUMERS];
    int closing;                      /// set before lua_close: no new GC sentinel
    void *tracker;                    /// the Swift tracker's storage (Lua thread only)
    void *shared;                     /// what other threads read of the tracker
} luamem_context;

/// The resumer at `index` (0 is the outermost); a C array field Swift sees as a tuple.
static inline lua_State *luamem_context_resumer(const luamem_context *context, int index) {
    return context->resumers[index];
}

/// Replaces every resumer equal to `thread` (a thread being freed) with the main thread.
static inline void luamem_context_forget_thread(luamem_context *context, lua_State *thread) {
    int index;
    if (context->current == thread)
        context->current = context->main;
    for (index = 0; index < context->resumer_count; index++)
        if (context->resumers[index] == thread)
            context->resumers[index] = context->main;
}

/// Totals a tracker reports to `luamem.stats()`.
typedef struct luamem_totals {
    int64_t live_bytes, live_count, alloc_bytes, alloc_count, peak_bytes;
    int64_t gc_live_bytes, gc_live_count, gc_cycles;
    int64_t sites, snapshots, untracked_bytes;
    int tracking;                     /// 0 after luamem.stop()
} luamem_totals;

/// The longest interval between snapshots, in seconds (about 31 years), everywhere options are
/// checked (`luamem run`, `luamem.start{}`, the C API, LUAMEM_INTERVAL).
#define LUAMEM_MAX_INTERVAL 1e9
/// The largest mean distance between samples, in bytes (1 GiB): past it, a sampled block's
/// weight would not fit the counters.
#define LUAMEM_MAX_SAMPLE 1073741824.0

/// Options of `luamem.start{…}`, `luamem_attach` and `luamem_newstate`.
typedef struct luamem_start_options {
    const char *db;                   /// SQLite file
    double interval;                  /// seconds between snapshots
    const char *build;                /// NULL when not given
    const char *name;                 /// NULL when not given
    int depth;                        /// Lua frames per site, 1 to 32
    double sample;                    /// mean bytes between sampled allocations; 0: all
    const char *keep;                 /// remove history older than this ("30d"), or NULL
    const char *keep_full;            /// thin history older than this ("1d"), or NULL
    const char *max_db_size;          /// cap on the file ("512MB"), or NULL
    const char *host;                 /// host label; NULL: $LUAMEM_HOST, else the host name
} luamem_start_options;

/// What the C side calls back into Swift for; set once by the tracker before any state exists.
typedef struct luamem_hooks {
    lua_Alloc alloc;                                          /// the tracking allocator
    void (*gc_cycle_completed)(luamem_context *context);
    void (*totals)(luamem_context *context, luamem_totals *out);
    /// Writes a snapshot now; returns 0, or -1 with a message in `error`.
    int (*flush)(luamem_context *context, char *error, size_t error_size);
    void (*name_cfunction)(luamem_context *context, lua_CFunction function, const char *name);
    /// os.exit was called with `status`: write the final snapshot before the process ends.
    void (*exiting)(luamem_context *context, int status);
    /// `luamem.start`: track `L` (attach, or resume a stopped tracker). 0, or -1 and `error`.
    int (*start)(lua_State *L, const luamem_start_options *options, char *error, size_t error_size);
    /// `luamem.stop`: final snapshot of the state; the tracker stays installed but idle.
    int (*stop)(luamem_context *context, char *error, size_t error_size);
    /// lua_close reached the close sentinel: final snapshot, the flusher lets go of the state.
    void (*closing)(luamem_context *context);
    /// Checks the options given as text (keep, keep_full, max_db_size): 0, or -1 and `error`.
    int (*check_options)(const luamem_start_options *options, char *error, size_t error_size);
} luamem_hooks;

void luamem_set_hooks(const luamem_hooks *hooks);

/// 8 random bytes from the system (getrandom), for seeding the sampler; called when a tracker is
/// created, never from the allocator.
uint64_t luamem_random_seed(void);

/// Makes the calling thread (only) the flusher as `top -H` and the scheduler see it: named
/// "luamem-flusher", and SCHED_BATCH at the host's nice value, so that waking every interval it
/// does not preempt the host's threads, yet keeps its fair share of the CPU. Not a lower nice
/// value: the host's threads wait for the flusher whenever it holds what they need (a flush in
/// progress, the file's write lock), and on a saturated machine a niced holder made them wait
/// for hundreds of milliseconds (Linux boosts no priority of a holder outside real-time classes).
void luamem_become_flusher_thread(void);

/// The context of a state whose allocator is luamem's, else NULL.
luamem_context *luamem_context_of(lua_State *L);

/// Checks, by calling probe functions, that Lua's internal layout is the one
/// luamem_running_cfunction reads. Returns 1 when it is.
int luamem_probe_layout(lua_State *L);

/// The C function of a frame that lua_getinfo("S") reported as "C". Only valid after
/// luamem_probe_layout returned 1 for this Lua library.
lua_CFunction luamem_running_cfunction(const lua_Debug *ar);

/// Moves `ar`, filled by lua_getstack or by this function, one level up the stack, as
/// lua_getstack(L, level + 1) would, but in constant time (lua_getstack walks from the top on
/// every call). Returns 0, leaving `ar` alone, when there is no level above. Only valid after
/// luamem_probe_stack_walk returned 1 for this Lua library.
int luamem_next_level(lua_Debug *ar);

/// Checks, on a real nested call, that luamem_next_level finds every level lua_getstack finds,
/// and stops where it stops. Returns 1 when it does.
int luamem_probe_stack_walk(lua_State *L);

/// What lua_getinfo(L, "Sl", ar) gives for the tracker's needs (source, linedefined,
/// currentline, and what: "C" or "Lua"), read straight from the frame `ar` was filled for by
/// lua_getstack or luamem_next_level. lua_getinfo formats short_src on every call, which made it
/// most of the tracker's cost. Only valid after luamem_probe_frame_info returned 1.
void luamem_frame_info(lua_Debug *ar);

/// A Lua frame as the tracker keys sites: chunk name (Lua's own string), current line, and
/// first line of its function.
typedef struct luamem_raw_frame {
    const char *source;
    int line;
    int line_defined;
} luamem_raw_frame;

/// Fills frames[1..<depth] (and their stack levels) with the Lua frames above the Lua frame `ar`
/// describes, at stack level `level`, skipping C frames; returns how many frames there are in
/// all, the one `ar` describes (frames[0], filled by the caller) included. With `by_pc`, each
/// frame is its saved pc (luamem_frame_pc) in `source`, with lines 0. Uses luamem_next_level
/// and luamem_frame_info, so only valid after both probes returned 1.
int luamem_collect_frames(lua_Debug *ar, int level, int depth, luamem_raw_frame *frames,
                          int *levels, int by_pc);

/// The site cache's hot path at depth > 1 with keys of pcs: fills frames[1..<depth].source with
/// the saved pcs of the Lua frames above the Lua frame `ar` describes (skipping C frames, as
/// luamem_collect_frames does, but leaving lines, levels and `ar` alone) and folds each pc into
/// *hash with luamem_fold_pc; returns the count of frames, frames[0] included. Only valid after
/// luamem_probe_stack_walk and luamem_probe_frame_info returned 1.
int luamem_collect_pcs(const lua_Debug *ar, int depth, luamem_raw_frame *frames, uint64_t *hash);

/// One step of the pc-key hash: one multiply per frame (FxHash's), so that eight frames are not
/// a chain of sixteen full mixes; the caller finishes with one full mix.
static inline uint64_t luamem_fold_pc(uint64_t hash, uint64_t pc) {
    return ((hash << 5 | hash >> 59) ^ pc) * 0x517cc1b727220a95ull;
}

/// The instruction the Lua frame `ar` is at: its saved pc, an address inside its function's code,
/// so it names one instruction of one loaded function for as long as that function's prototype
/// lives. NULL for a C frame. Reads only the frame (no prototype, no line table), which makes it
/// the tracker's site-cache key. Only valid after luamem_probe_frame_info returned 1.
const void *luamem_frame_pc(const lua_Debug *ar);

/// The prototype of the Lua frame `ar` (the object whose freeing frees its code), NULL for C.
const void *luamem_frame_proto(const lua_Debug *ar);

/// Checks luamem_frame_info against lua_getinfo at every level of real nested calls (Lua
/// functions, a main chunk, C frames, short and long chunk names). Returns 1 when they agree.
int luamem_probe_frame_info(lua_State *L);

/// Opens the standard libraries, replaces coroutine.resume and coroutine.wrap with versions that
/// keep `context->current` right, wraps os.exit to write a final snapshot first, names the C functions of package.loaded, installs the GC-cycle
/// sentinel and preloads the `luamem` module. With `ignore_environment` (lua.c's -E), the
/// libraries ignore LUA_PATH and LUA_CPATH. Runs protected; returns 0 or -1 with a message.
int luamem_prepare_state(lua_State *L, int ignore_environment, char *error, size_t error_size);

/// Installs what a tracked state needs in a state that already has its libraries (the module's
/// and the C API's attach): wrappers, C function names and sentinels. 0, or -1 and `error`.
int luamem_instrument_state(lua_State *L, char *error, size_t error_size);

/// Names luamem's own Lua C functions, whose allocations are charged to [host]. Call right
/// after creating a tracker, before it sees any allocation.
void luamem_name_own_functions(luamem_context *context);

/// The `luamem` Lua module's open function (start, stop, stats, flush).
int luamem_open_module(lua_State *L);

/// Two full garbage collections, protected: afterwards the post-GC figures are exact (the
/// second cycle's survivors are what the first one kept). For a finished run's final snapshot;
/// an error in a finalizer leaves the figures as they are.
void luamem_collect_fully(lua_State *L);

/// The main thread of L's state.
lua_State *luamem_main_thread(lua_State *L);

/// lua_resume with the running thread recorded, for hosts that resume coroutines themselves.
int luamem_resume_tracked(lua_State *co, lua_State *from, int nargs);

/// lua.c's options, as luamem_lua_options reports them.
#define LUAMEM_LUA_ERROR -1
#define LUAMEM_LUA_INTERACTIVE 1              /* -i */
#define LUAMEM_LUA_VERSION 2                  /* -v (and -i) */
#define LUAMEM_LUA_EXECUTE 4                  /* -e */
#define LUAMEM_LUA_LIBRARY 8                  /* -e or -l: code runs before the script */
#define LUAMEM_LUA_NOENV 16                   /* -E */

/// Reads lua.c's options (-e stat, -l name, -i, -v, -E, --, -) from argv[first] on (argv ends
/// with NULL): returns the LUAMEM_LUA_* flags they set and, in *script, the index of the script
/// (argc when there is none); LUAMEM_LUA_ERROR with *script at the bad word when one is wrong.
int luamem_lua_options(char **argv, int first, int *script);

/// lua.c's usage message for the bad option `bad`, on stderr.
void luamem_lua_usage(const char *progname, const char *bad);

/// Like lua.c, first half: builds `arg` (argv[0..script-1] at negative indices, the script at
/// 0, its arguments after) and, when `load` (the script is all there is to run), loads the
/// script ("-" is stdin), leaving the chunk on the stack (nil when not loaded). On failure
/// prints "<progname>: message" on stderr and returns the exit status (1).
int luamem_load_script(lua_State *L, const char *progname, int argc, char **argv, int first,
                       int script, int options, int load);

/// Second half: -v, LUA_INIT_5_3/LUA_INIT (unless -E), -e and -l in order, the script with its
/// arguments and a traceback handler, then -i or, with nothing else to do, the interactive loop
/// (standard input a terminal) or standard input. Errors are printed like lua.c. Returns the
/// exit status.
int luamem_run_script(lua_State *L, int argc, char **argv, int first, int script, int options);

/// Resets to SIG_DFL each crash signal whose handler is the Swift runtime's backtracer, which
/// the runtime installs when it loads: a host (or `luamem run`) must crash, dump core and print
/// exactly as it would without luamem. Also run by a constructor when luamem is loaded.
void luamem_drop_runtime_crash_handler(void);

/// Blocks every signal that is not a fault in the calling thread (luamem's flusher): a signal
/// sent to the process then reaches the host's threads and handlers, as it would without luamem.
void luamem_block_async_signals(void);

/// `luamem run` only: on SIGTERM or SIGHUP (unless ignored), `final_snapshot` runs on a thread
/// of its own, then the process dies of the same signal; a second signal ends it at once.
/// Returns 0, or -1 when the thread cannot be started.
int luamem_finish_on_termination(void (*final_snapshot)(void));

/// Ends the process by the termination signal received, if one was; for code that would
/// otherwise exit normally after the final snapshot.
void luamem_die_if_terminating(void);

/// The termination signal received (SIGTERM or SIGHUP), 0 when none.
int luamem_termination_signal(void);

/// Relaxed atomic access to counters that one Lua thread writes and the flusher reads.
static inline int64_t luamem_load_relaxed(const int64_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void luamem_store_relaxed(int64_t *p, int64_t value) {
    __atomic_store_n(p, value, __ATOMIC_RELAXED);
}
static inline uint32_t luamem_load_acquire_u32(const uint32_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void luamem_store_release_u32(uint32_t *p, uint32_t value) {
    __atomic_store_n(p, value, __ATOMIC_RELEASE);
}
/// Sets `bits` in `*p` and returns what it held: the first of two threads to get there sees the
/// other's bit clear, the second sees it set (a tracker freed by whichever is done with it last).
static inline int64_t luamem_fetch_or(int64_t *p, int64_t bits) {
    return __atomic_fetch_or(p, bits, __ATOMIC_ACQ_REL);
}
/// A pointer one thread replaces (release) and others read (acquire): a chunk directory that
/// grows, an array of marks that grows.
static inline void *luamem_load_acquire_ptr(void *const *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void luamem_store_release_ptr(void **p, void *value) {
    __atomic_store_n(p, value, __ATOMIC_RELEASE);
}

/// A group of counter slots changed: stored by the Lua thread after it updated the slot (a plain
/// store on x86), so the flusher, which takes the mark before it reads the slots, either sees the
/// update or finds the mark set again at its next flush.
static inline void luamem_mark_changed(uint8_t *p) {
    __atomic_store_n(p, 1, __ATOMIC_RELEASE);
}
/// Copies `count` marks into a larger array (Lua thread), while the flusher may be taking them
/// from `from`: a mark it takes after the copy is read again once, never lost.
static inline void luamem_copy_marks(uint8_t *to, const uint8_t *from, size_t count) {
    for (size_t i = 0; i < count; i++) to[i] = __atomic_load_n(from + i, __ATOMIC_RELAXED);
}
/// Takes a group's mark (flusher): non-zero when a slot of the group changed since the last take.
static inline uint8_t luamem_take_changed(uint8_t *p) {
    return __atomic_exchange_n(p, 0, __ATOMIC_ACQ_REL);
}

/// One (site, object type) pair's counters: written by the Lua thread only, read by the flusher.
/// `young_*` count live blocks allocated since the last completed GC cycle; the post-GC figures
/// (`gc_live_*`) are published when a cycle completes (see Tracker.gcCycleCompleted).
typedef struct luamem_counters {
    int64_t live_bytes, live_count, alloc_bytes, alloc_count, peak_bytes;
    int64_t gc_live_bytes, gc_live_count;
    int64_t young_bytes, young_count;
    uint32_t site;
    uint32_t type;
} luamem_counters;

/// A copy of the figures of a slot, read with relaxed atomics (by the flusher).
static inline void luamem_counters_read(const luamem_counters *c, luamem_counters *out) {
    out->live_bytes = __atomic_load_n(&c->live_bytes, __ATOMIC_RELAXED);
    out->live_count = __atomic_load_n(&c->live_count, __ATOMIC_RELAXED);
    out->alloc_bytes = __atomic_load_n(&c->alloc_bytes, __ATOMIC_RELAXED);
    out->alloc_count = __atomic_load_n(&c->alloc_count, __ATOMIC_RELAXED);
    out->peak_bytes = __atomic_load_n(&c->peak_bytes, __ATOMIC_RELAXED);
    out->gc_live_bytes = __atomic_load_n(&c->gc_live_bytes, __ATOMIC_RELAXED);
    out->gc_live_count = __atomic_load_n(&c->gc_live_count, __ATOMIC_RELAXED);
    out->young_bytes = 0;
    out->young_count = 0;
    out->site = c->site;
    out->type = c->type;
}

/// Adds to one counter of a single-writer slot without a locked instruction.
static inline void luamem_counter_add(int64_t *p, int64_t delta) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + delta, __ATOMIC_RELAXED);
}

/// A block was allocated (or reallocated into) this slot; `count` is 1, or a sampled block's
/// weight in objects.
static inline void luamem_counters_allocated(luamem_counters *c, int64_t size, int64_t count) {
    int64_t live = __atomic_load_n(&c->live_bytes, __ATOMIC_RELAXED) + size;
    __atomic_store_n(&c->live_bytes, live, __ATOMIC_RELAXED);
    luamem_counter_add(&c->live_count, count);
    luamem_counter_add(&c->alloc_bytes, size);
    luamem_counter_add(&c->alloc_count, count);
    c->young_bytes += size;
    c->young_count += count;
    if (live > __atomic_load_n(&c->peak_bytes, __ATOMIC_RELAXED))
        __atomic_store_n(&c->peak_bytes, live, __ATOMIC_RELAXED);
}

/// A block of this slot was freed (or reallocated away). `age` counts the GC cycles completed
/// since it was allocated: 0, it is young; 1, it was young at the last cycle's end, so the
/// post-GC figures leave it out; 2 or more, they count it, and it leaves them too, so they stay
/// the live blocks that a completed cycle kept: never more than the live figures.
static inline void luamem_counters_freed(luamem_counters *c, int64_t size, int64_t count,
                                         uint32_t age) {
    luamem_counter_add(&c->live_bytes, -size);
    luamem_counter_add(&c->live_count, -count);
    if (age == 0) {
        c->young_bytes -= size;
        c->young_count -= count;
    } else if (age >= 2) {
        luamem_counter_add(&c->gc_live_bytes, -size);
        luamem_counter_add(&c->gc_live_count, -count);
    }
}

/// A GC cycle completed: blocks that were already old when it began and are still live were
/// reachable at its atomic phase, so they are the post-GC figures; every live block is old now.
static inline void luamem_counters_settle(luamem_counters *c) {
    __atomic_store_n(&c->gc_live_bytes, __atomic_load_n(&c->live_bytes, __ATOMIC_RELAXED) - c->young_bytes,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&c->gc_live_count, __atomic_load_n(&c->live_count, __ATOMIC_RELAXED) - c->young_count,
                     __ATOMIC_RELAXED);
    c->young_bytes = 0;
    c->young_count = 0;
}

/// Creates one long string and one thread so the tracker can learn, from the blocks its
/// allocator handed out, where Lua puts string bytes and lua_State inside their blocks.
/// Returns 0 with the string's bytes and the thread, or -1.
int luamem_probe_objects(lua_State *L, const char **string_bytes, lua_State **thread);

#endif

