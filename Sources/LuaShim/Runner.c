// Running a command line the way lua.c (Lua 5.3.6) does: its options, `arg`, LUA_INIT, error
// reports with a traceback, the interactive loop, and SIGINT turned into an "interrupted!"
// error in the running Lua code.
#include "LuaShim.h"
#include "Internal.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/// The program name in error messages, copied: the caller's string may not outlive the call.
static char progname[64] = "lua";

static void report_message(const char *message) {
    if (progname[0] != '\0')
        fprintf(stderr, "%s: ", progname);
    fprintf(stderr, "%s\n", message);
    fflush(stderr);
}

static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *message = lua_tostring(L, -1);
        report_message(message != NULL ? message : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

static int message_handler(lua_State *L) {
    const char *message = lua_tostring(L, 1);
    if (message == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, message, 1);
    return 1;
}

/// The state a SIGINT interrupts (lua.c's globalL).
static lua_State *interrupted_state = NULL;

static void stop_on_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/// lua.c's laction: a second SIGINT ends the process; the first raises an error in Lua code
/// at its next call, return or instruction.
static void on_interrupt(int signal_number) {
    signal(signal_number, SIG_DFL);
    lua_sethook(interrupted_state, stop_on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    int status;
    lua_pushcfunction(L, message_handler);
    lua_insert(L, base);
    interrupted_state = L;
    signal(SIGINT, on_interrupt);
    status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status) {
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return report(L, status);
}

static int handle_luainit(lua_State *L) {
    const char *name = "=LUA_INIT_5_3";
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL)
        return LUA_OK;
    if (init[0] == '@')
        return dochunk(L, luaL_loadfile(L, init + 1));
    return dochunk(L, luaL_loadbuffer(L, init, strlen(init), name));
}

/// The file luaL_loadfile reads for the script: NULL (standard input) for "-", unless "--"
/// came right before it.
static const char *script_name(char **argv, int script) {
    if (strcmp(argv[script], "-") == 0 && (script == 0 || strcmp(argv[script - 1], "--") != 0))
        return NULL;
    return argv[script];
}

// ---------------------------------------------------------------------------------------------
// lua.c's command line: options (-e -l -i -v -E -- -), then the script and its arguments.

int luamem_lua_options(char **argv, int first, int *script) {
    int args = 0, i;
    for (i = first; argv[i] != NULL; i++) {
        *script = i;
        if (argv[i][0] != '-')                  /* not an option: the script */
            return args;
        switch (argv[i][1]) {
        case '-':                               /* '--' */
            if (argv[i][2] != '\0')
                return LUAMEM_LUA_ERROR;
            *script = i + 1;
            return args;
        case '\0':                              /* '-': the script is standard input */
            return args;
        case 'E':
            if (argv[i][2] != '\0')
                return LUAMEM_LUA_ERROR;
            args |= LUAMEM_LUA_NOENV;
            break;
        case 'i':
            args |= LUAMEM_LUA_INTERACTIVE;     /* -i implies -v */
            /* fall through */
        case 'v':
            if (argv[i][2] != '\0')
                return LUAMEM_LUA_ERROR;
            args |= LUAMEM_LUA_VERSION;
            break;
        case 'e':
            args |= LUAMEM_LUA_EXECUTE;
            /* fall through */
        case 'l':
            args |= LUAMEM_LUA_LIBRARY;
            if (argv[i][2] == '\0') {           /* the argument is the next word */
                i++;
                if (argv[i] == NULL || argv[i][0] == '-')
                    return LUAMEM_LUA_ERROR;
            }
            break;
        default:
            return LUAMEM_LUA_ERROR;
        }
    }
    *script = i;                                /* no script */
    return args;
}

void luamem_lua_usage(const char *name, const char *bad) {
    fprintf(stderr, "%s: ", name);
    if (bad[1] == 'e' || bad[1] == 'l')
        fprintf(stderr, "'%s' needs argument\n", bad);
    else
        fprintf(stderr, "unrecognized option '%s'\n", bad);
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "Available options are:\n"
            "  -e stat  execute string 'stat'\n"
            "  -i       enter interactive mode after executing 'script'\n"
            "  -l name  require library 'name' into global 'name'\n"
            "  -v       show version information\n"
            "  -E       ignore environment variables\n"
            "  --       stop handling options\n"
            "  -        stop handling options and execute stdin\n",
            name);
    fflush(stderr);
}

static void print_version(void) {
    fwrite(LUA_COPYRIGHT, 1, strlen(LUA_COPYRIGHT), stdout);
    fwrite("\n", 1, 1, stdout);
    fflush(stdout);
}

static int dostring(lua_State *L, const char *text, const char *name) {
    return dochunk(L, luaL_loadbuffer(L, text, strlen(text), name));
}

static int dolibrary(lua_State *L, const char *name) {
    int status;
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    status = docall(L, 1, 1);
    if (status == LUA_OK)
        lua_setglobal(L, name);
    return report(L, status);
}

/// The -e and -l options between argv[first] and the script, in order.
static int runargs(lua_State *L, char **argv, int first, int script) {
    int i;
    for (i = first; i < script; i++) {
        int option = argv[i][1];
        if (argv[i][0] == '-' && (option == 'e' || option == 'l')) {
            const char *extra = argv[i] + 2;
            int status;
            if (*extra == '\0')
                extra = argv[++i];
            status = option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
            if (status != LUA_OK)
                return 0;
        }
    }
    return 1;
}

/// Pushes arg[1..n], as lua.c does (LUA_INIT and -e may have changed `arg`).
static int pushargs(lua_State *L) {
    int i, n;
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
        luaL_error(L, "'arg' is not a table");
    n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    return n;
}

static int run_chunk(lua_State *L) {
    int n = pushargs(L);
    return report(L, docall(L, n, LUA_MULTRET));
}

// The interactive loop, as lua.c's doREPL without readline.

#define REPL_MAXINPUT 512
#define EOFMARK "<eof>"

static const char *get_prompt(lua_State *L, int firstline) {
    const char *prompt;
    lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2");
    prompt = lua_tostring(L, -1);
    if (prompt == NULL)
        prompt = firstline ? "> " : ">> ";
    return prompt;
}

static int incomplete(lua_State *L, int status) {
    if (status == LUA_ERRSYNTAX) {
        size_t length;
        const char *message = lua_tolstring(L, -1, &length);
        if (length >= sizeof EOFMARK - 1 &&
            strcmp(message + length - (sizeof EOFMARK - 1), EOFMARK) == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

static int pushline(lua_State *L, int firstline) {
    char buffer[REPL_MAXINPUT];
    size_t length;
    fputs(get_prompt(L, firstline), stdout);
    fflush(stdout);
    if (fgets(buffer, sizeof buffer, stdin) == NULL)
        return 0;                               /* the prompt is popped by the caller */
    lua_pop(L, 1);
    length = strlen(buffer);
    if (length > 0 && buffer[length - 1] == '\n')
        buffer[--length] = '\0';
    if (firstline && buffer[0] == '=')
        lua_pushfstring(L, "return %s", buffer + 1);
    else
        lua_pushlstring(L, buffer, length);
    return 1;
}

static int addreturn(lua_State *L) {
    const char *line = lua_tostring(L, -1);
    const char *retline = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
    if (status == LUA_OK)
        lua_remove(L, -2);
    else
        lua_pop(L, 2);
    return status;
}

static int multiline(lua_State *L) {
    for (;;) {
        size_t length;
        const char *line = lua_tolstring(L, 1, &length);
        int status = luaL_loadbuffer(L, line, length, "=stdin");
        if (!incomplete(L, status) || !pushline(L, 0))
            return status;
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

static int loadline(lua_State *L) {
    int status;
    lua_settop(L, 0);
    if (!pushline(L, 1))
        return -1;
    if ((status = addreturn(L)) != LUA_OK)
        status = multiline(L);
    lua_remove(L, 1);
    return status;
}

static void print_results(lua_State *L) {
    int n = lua_gettop(L);
    if (n > 0) {
        luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
        lua_getglobal(L, "print");
        lua_insert(L, 1);
        if (lua_pcall(L, n, 0, 0) != LUA_OK)
            report_message(lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1)));
    }
}

static void do_repl(lua_State *L) {
    int status;
    char saved[sizeof progname];
    memcpy(saved, progname, sizeof progname);
    progname[0] = '\0';                         /* no program name on errors in the loop */
    while ((status = loadline(L)) != -1) {
        if (status == LUA_OK)
            status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK)
            print_results(L);
        else
            report(L, status);
    }
    lua_settop(L, 0);
    fputs("\n", stdout);
    fflush(stdout);
    memcpy(progname, saved, sizeof progname);
}

// The script's end. When the main chunk returns, its locals (which hold much of what a script
// keeps) become unreachable at once, so a collection after the return would report them freed,
// and a return hook would cost every function return in the program. Instead the chunk is
// changed, once, as it is loaded: its final instruction, the `return` that the compiler puts at
// the end of every chunk (and where a chunk that runs off its end, or jumps there, ends), becomes
// a call to script_end followed by that return. script_end collects fully while the locals are
// still in their registers, so the final snapshot's figures after GC are exact. The change goes
// through lua_dump and lua_load of the chunk's bytecode: code, line info and debug names stay as
// they were, the chunk gains one register and one upvalue (the function called). An explicit
// `return` of the main chunk skips the call (there is no room for one before it without moving
// jumps); a chunk this code cannot read is left as it is.

static int script_end(lua_State *L) {
    luamem_collect_fully(L);
    return 0;
}

struct dump_buffer {
    unsigned char *data;
    size_t size, capacity;
    int failed;
};

static int write_dump(lua_State *L, const void *bytes, size_t size, void *context) {
    struct dump_buffer *buffer = (struct dump_buffer *)context;
    (void)L;
    if (buffer->failed)
        return 1;
    if (size > buffer->capacity - buffer->size) {
        size_t capacity = buffer->capacity ? buffer->capacity : 4096;
        while (capacity - buffer->size < size) {
            if (capacity > SIZE_MAX / 2) {
                buffer->failed = 1;
                return 1;
            }
            capacity *= 2;
        }
        unsigned char *data = (unsigned char *)realloc(buffer->data, capacity);
        if (data == NULL) {
            buffer->failed = 1;
            return 1;
        }
        buffer->data = data;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, bytes, size);
    buffer->size += size;
    return 0;
}

/// A reader of a dump, as ldump.c writes it for this Lua; `ok` turns 0 past the end.
struct dump_cursor {
    const unsigned char *start, *at, *end;
    size_t int_size, size_t_size, instruction_size, integer_size, number_size;
    int ok;
};

static const unsigned char *take(struct dump_cursor *c, size_t n) {
    const unsigned char *at = c->at;
    if (!c->ok || (size_t)(c->end - c->at) < n) {
        c->ok = 0;
        return NULL;
    }
    c->at += n;
    return at;
}

static unsigned take_byte(struct dump_cursor *c) {
    const unsigned char *at = take(c, 1);
    return at ? *at : 0;
}

static long long take_int(struct dump_cursor *c) {
    int value = 0;
    const unsigned char *at = take(c, c->int_size);
    if (at == NULL || c->int_size != sizeof value)
        return c->ok = 0, 0;
    memcpy(&value, at, sizeof value);
    if (value < 0)
        c->ok = 0;
    return value;
}

static void skip_string(struct dump_cursor *c) {
    size_t size = take_byte(c);
    if (size == 0xFF) {
        const unsigned char *at = take(c, c->size_t_size);
        if (at == NULL || c->size_t_size != sizeof size)
            return (void)(c->ok = 0);
        memcpy(&size, at, sizeof size);
    }
    if (size > 0)
        take(c, size - 1);
}

static void skip_function(struct dump_cursor *c, int depth);

/// Constants, upvalues and nested functions: what lies between a function's code and its line
/// info.
static void skip_constants(struct dump_cursor *c) {
    long long n = take_int(c), i;
    for (i = 0; i < n && c->ok; i++) {
        switch (take_byte(c)) {
        case LUA_TNIL: break;
        case LUA_TBOOLEAN: take(c, 1); break;
        case LUA_TNUMBER: take(c, c->number_size); break;          /* float */
        case LUA_TNUMBER | (1 << 4): take(c, c->integer_size); break; /* integer */
        case LUA_TSTRING: case LUA_TSTRING | (1 << 4): skip_string(c); break;
        default: c->ok = 0;
        }
    }
}

static void skip_protos(struct dump_cursor *c, int depth) {
    long long n = take_int(c), i;
    for (i = 0; i < n && c->ok; i++)
        skip_function(c, depth + 1);
}

static void skip_debug(struct dump_cursor *c) {
    long long n = take_int(c), i;
    take(c, (size_t)n * c->int_size);                         /* line info */
    n = take_int(c);
    for (i = 0; i < n && c->ok; i++) {                        /* local variables */
        skip_string(c);
        take(c, 2 * c->int_size);
    }
    n = take_int(c);
    for (i = 0; i < n && c->ok; i++)                          /* upvalue names */
        skip_string(c);
}

static void skip_function(struct dump_cursor *c, int depth) {
    if (depth > 200)                                          /* the parser's own limit */
        return (void)(c->ok = 0);
    skip_string(c);
    take(c, 2 * c->int_size + 3);
    take(c, (size_t)take_int(c) * c->instruction_size);
    skip_constants(c);
    take(c, (size_t)take_int(c) * 2);
    skip_protos(c, depth);
    skip_debug(c);
}

/// Lua 5.3's instruction format (lopcodes.h): opcode in 6 bits, then A (8), C (9), B (9).
#define OPCODE_GETUPVAL 5
#define OPCODE_CALL 36
#define OPCODE_RETURN 38
static uint32_t instruction(unsigned opcode, unsigned a, unsigned b, unsigned c) {
    return (uint32_t)opcode | (uint32_t)a << 6 | (uint32_t)c << 14 | (uint32_t)b << 23;
}

static void put(struct dump_buffer *out, const void *bytes, size_t size) {
    write_dump(NULL, bytes, size, out);
}

static void put_int(struct dump_buffer *out, int value) { put(out, &value, sizeof value); }

static void put_byte(struct dump_buffer *out, unsigned value) {
    unsigned char byte = (unsigned char)value;
    put(out, &byte, 1);
}

/// `dump` with its main function ending in a call to its upvalue number `*upvalue` (0-based)
/// before the final return; out->failed when it cannot be changed.
static void end_with_a_call(const struct dump_buffer *dump, struct dump_buffer *out,
                            unsigned *upvalue) {
    static const unsigned char signature[] = LUA_SIGNATURE;
    struct dump_cursor c = {dump->data, dump->data, dump->data + dump->size, 0, 0, 0, 0, 0, 1};
    const unsigned char *header = take(&c, sizeof signature - 1 + 2 + 6);
    if (header == NULL || memcmp(header, signature, sizeof signature - 1) != 0 ||
        header[sizeof signature - 1] != 0x53)
        return (void)(out->failed = 1);
    c.int_size = take_byte(&c);
    c.size_t_size = take_byte(&c);
    c.instruction_size = take_byte(&c);
    c.integer_size = take_byte(&c);
    c.number_size = take_byte(&c);
    take(&c, c.integer_size + c.number_size);                 /* LUAC_INT, LUAC_NUM */
    const unsigned char *closure_upvalues = take(&c, 1);
    /* The main function: source, lines, parameters, vararg, registers. */
    skip_string(&c);
    take(&c, 2 * c.int_size + 2);
    const unsigned char *registers = take(&c, 1);
    long long instructions = take_int(&c);
    const unsigned char *code = take(&c, (size_t)instructions * c.instruction_size);
    const unsigned char *constants = c.at;
    skip_constants(&c);
    const unsigned char *upvalues_at = c.at;
    long long upvalues = take_int(&c);
    take(&c, (size_t)upvalues * 2);
    const unsigned char *protos = c.at;
    skip_protos(&c, 0);
    const unsigned char *lines_at = c.at;
    long long lines = take_int(&c);
    const unsigned char *line_values = take(&c, (size_t)lines * c.int_size);
    const unsigned char *locals = c.at;
    long long n = take_int(&c), i;
    for (i = 0; i < n && c.ok; i++) {
        skip_string(&c);
        take(&c, 2 * c.int_size);
    }
    const unsigned char *names_at = c.at;
    long long names = take_int(&c);
    const unsigned char *names_start = c.at;
    for (i = 0; i < names && c.ok; i++)
        skip_string(&c);
    uint32_t last = 0;
    if (c.ok && instructions > 0 && c.instruction_size == sizeof last)
        memcpy(&last, code + (instructions - 1) * sizeof last, sizeof last);
    if (!c.ok || c.at != c.end || last != instruction(OPCODE_RETURN, 0, 1, 0) ||
        *registers >= 254 || upvalues != *closure_upvalues || upvalues >= 255 ||
        (lines != 0 && lines != instructions) || (names != 0 && names != upvalues) ||
        instructions > 0x7fffff00)
        return (void)(out->failed = 1);

    unsigned free_register = *registers;
    *upvalue = (unsigned)upvalues;
    put(out, dump->data, (size_t)(closure_upvalues - dump->data));
    put_byte(out, *closure_upvalues + 1);
    put(out, closure_upvalues + 1, (size_t)(registers - closure_upvalues - 1));
    put_byte(out, free_register + 1);
    put_int(out, (int)instructions + 2);
    put(out, code, (size_t)(instructions - 1) * sizeof last);
    uint32_t ending[3] = {
        instruction(OPCODE_GETUPVAL, free_register, *upvalue, 0),
        instruction(OPCODE_CALL, free_register, 1, 1),
        last,
    };
    put(out, ending, sizeof ending);
    put(out, constants, (size_t)(upvalues_at - constants));
    put_int(out, (int)upvalues + 1);
    put(out, upvalues_at + c.int_size, (size_t)(protos - upvalues_at - c.int_size));
    put_byte(out, 0);                                         /* not on the stack: set after load */
    put_byte(out, 0);
    put(out, protos, (size_t)(lines_at - protos));
    put_int(out, (int)(lines ? lines + 2 : 0));
    put(out, line_values, (size_t)lines * c.int_size);
    for (i = 0; lines && i < 2; i++)                          /* the line of the final return */
        put(out, line_values + (lines - 1) * c.int_size, c.int_size);
    put(out, locals, (size_t)(names_at - locals));
    put_int(out, (int)(names ? names + 1 : 0));
    put(out, names_start, (size_t)(c.end - names_start));
    if (names) {
        static const char name[] = "luamem.script_end";
        put_byte(out, sizeof name);
        put(out, name, sizeof name - 1);
    }
}

struct dump_reader {
    const struct dump_buffer *buffer;
    int done;
};

static const char *read_dump(lua_State *L, void *context, size_t *size) {
    struct dump_reader *reader = (struct dump_reader *)context;
    (void)L;
    if (reader->done) {
        *size = 0;
        return NULL;
    }
    reader->done = 1;
    *size = reader->buffer->size;
    return (const char *)reader->buffer->data;
}

/// The Lua function on top of the stack, replaced by the same chunk ending with a call to
/// script_end before its final return, when it can be.
static void end_with_a_collection(lua_State *L) {
    struct dump_buffer dump = {NULL, 0, 0, 0}, changed = {NULL, 0, 0, 0};
    unsigned upvalue = 0;
    if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1))
        return;
    if (lua_dump(L, write_dump, &dump, 0) == 0 && !dump.failed)
        end_with_a_call(&dump, &changed, &upvalue);
    if (dump.failed || changed.failed || changed.size == 0) {
        free(dump.data);
        free(changed.data);
        return;
    }
    struct dump_reader reader = {&changed, 0};
    if (lua_load(L, read_dump, &reader, "=script", "b") == LUA_OK) {
        lua_pushcfunction(L, script_end);
        if (lua_setupvalue(L, -2, (int)upvalue + 1) != NULL)
            lua_replace(L, -2);                               /* the changed chunk in its place */
        else
            lua_pop(L, 2);
    } else {
        lua_pop(L, 1);                                        /* the message; the chunk stays */
    }
    free(dump.data);
    free(changed.data);
}

struct script_call {
    int argc;
    char **argv;
    int first;                                  /* lua.c's options start here */
    int script;                                 /* argc when there is no script */
    int options;                                /* LUAMEM_LUA_* */
    int status;
};

/// Builds `arg` and, when asked, loads the script: the chunk (or the error message) is the
/// result; nil when not loaded.
int luamem_runner_load_script(lua_State *L) {
    struct script_call *call = (struct script_call *)lua_touserdata(L, 1);
    int load = lua_toboolean(L, 2), script = call->script == call->argc ? 0 : call->script, i;
    lua_createtable(L, call->argc - script - 1, script + 1);
    for (i = 0; i < call->argc; i++) {
        lua_pushstring(L, call->argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
    if (!load) {
        lua_pushnil(L);
        return 1;
    }
    call->status = luaL_loadfile(L, script_name(call->argv, call->script));
    if (call->status == LUA_OK && !(call->options & LUAMEM_LUA_INTERACTIVE))
        end_with_a_collection(L);
    return 1;
}

/// The rest of lua.c's pmain: version, LUA_INIT, -e and -l, the script (argument 2, or loaded
/// now when nil), then the interactive loop or standard input when asked or when nothing else
/// was given.
int luamem_runner_run_script(lua_State *L) {
    struct script_call *call = (struct script_call *)lua_touserdata(L, 1);
    int options = call->options;
    call->status = EXIT_FAILURE;
    if (options & LUAMEM_LUA_VERSION)
        print_version();
    if (!(options & LUAMEM_LUA_NOENV) && handle_luainit(L) != LUA_OK)
        return 0;
    if (!runargs(L, call->argv, call->first, call->script))
        return 0;
    if (call->script < call->argc) {            /* the chunk loaded before, or load it now */
        int status = LUA_OK;
        if (lua_isfunction(L, 2))
            lua_pushvalue(L, 2);
        else if ((status = luaL_loadfile(L, script_name(call->argv, call->script))) == LUA_OK &&
                 !(options & LUAMEM_LUA_INTERACTIVE))
            end_with_a_collection(L);
        if ((status == LUA_OK ? run_chunk(L) : report(L, status)) != LUA_OK)
            return 0;
    }
    call->status = EXIT_SUCCESS;                /* the loop below reports its own errors */
    if (options & LUAMEM_LUA_INTERACTIVE) {
        do_repl(L);
    } else if (call->script == call->argc &&
               !(options & (LUAMEM_LUA_EXECUTE | LUAMEM_LUA_VERSION))) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            do_repl(L);
        } else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) {
            call->status = EXIT_FAILURE;
        }
    }
    return 0;
}

int luamem_load_script(lua_State *L, const char *name, int argc, char **argv, int first,
                       int script, int options, int load) {
    struct script_call call = {argc, argv, first, script, options, LUA_OK};
    int status;
    snprintf(progname, sizeof progname, "%s", name);
    lua_pushcfunction(L, luamem_runner_load_script);
    lua_pushlightuserdata(L, &call);
    lua_pushboolean(L, load);
    status = lua_pcall(L, 2, 1, 0);
    if (status == LUA_OK && call.status == LUA_OK)
        return 0;                               /* the chunk (or nil) stays on the stack */
    report(L, LUA_ERRRUN);
    return EXIT_FAILURE;
}

int luamem_run_script(lua_State *L, int argc, char **argv, int first, int script, int options) {
    struct script_call call = {argc, argv, first, script, options, EXIT_FAILURE};
    int status;
    lua_pushcfunction(L, luamem_runner_run_script);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, &call);
    lua_insert(L, -2);
    status = lua_pcall(L, 2, 0, 0);
    report(L, status);
    return status == LUA_OK ? call.status : EXIT_FAILURE;
}
