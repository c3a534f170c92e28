// Signals: luamem must leave a host's signal handling exactly as it found it, and `luamem run`
// must end on a signal the way lua5.3 does, with the final snapshot written.
#define _GNU_SOURCE /* dladdr */
#include "LuaShim.h"

#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

// Any symbol of the Swift runtime: where it is mapped tells which handlers are the runtime's.
extern void swift_retain(void);

/// The signals the Swift runtime's crash handler takes (CrashHandlerLinux.cpp), when their
/// disposition is SIG_DFL at load time.
static const int crash_signals[] = {SIGQUIT, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};

void luamem_drop_runtime_crash_handler(void) {
    Dl_info runtime, owner;
    size_t index;
    if (dladdr((void *)swift_retain, &runtime) == 0)
        return;
    for (index = 0; index < sizeof crash_signals / sizeof crash_signals[0]; index++) {
        struct sigaction current;
        if (sigaction(crash_signals[index], NULL, &current) != 0 || !(current.sa_flags & SA_SIGINFO))
            continue;
        // The runtime installs its handler only over SIG_DFL, so SIG_DFL is what was there.
        if (dladdr((void *)current.sa_sigaction, &owner) != 0 &&
            owner.dli_fbase == runtime.dli_fbase) {
            struct sigaction original;
            sigemptyset(&original.sa_mask);
            original.sa_flags = 0;
            original.sa_handler = SIG_DFL;
            sigaction(crash_signals[index], &original, NULL);
        }
    }
}

// Runs when the library (or executable) is loaded, after the Swift runtime it depends on has
// installed its handler.
__attribute__((constructor)) static void drop_crash_handler_at_load(void) {
    luamem_drop_runtime_crash_handler();
}

void luamem_block_async_signals(void) {
    static const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    sigset_t blocked;
    size_t index;
    sigfillset(&blocked);
    for (index = 0; index < sizeof synchronous / sizeof synchronous[0]; index++)
        sigdelset(&blocked, synchronous[index]);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
}

// ---------------------------------------------------------------------------------------------
// SIGTERM and SIGHUP under `luamem run`: the handler only posts a semaphore (async-signal-safe);
// a thread of its own writes the final snapshot, then the process dies of the same signal.

static sem_t termination_posted;
static volatile sig_atomic_t termination_signal;
static void (*termination_snapshot)(void);

static void die_of(int signal_number) {
    struct sigaction fatal;
    sigset_t only;
    sigemptyset(&fatal.sa_mask);
    fatal.sa_flags = 0;
    fatal.sa_handler = SIG_DFL;
    sigaction(signal_number, &fatal, NULL);
    sigemptyset(&only);
    sigaddset(&only, signal_number);
    pthread_sigmask(SIG_UNBLOCK, &only, NULL);
    raise(signal_number);
}

static void on_termination(int signal_number) {
    if (termination_signal != 0) {          /* a second signal: no more waiting */
        die_of(signal_number);
        return;
    }
    termination_signal = signal_number;
    sem_post(&termination_posted);
}

static void *termination_thread(void *unused) {
    (void)unused;
    while (sem_wait(&termination_posted) != 0) {}
    termination_snapshot();
    die_of(termination_signal);
    return NULL;
}

int luamem_finish_on_termination(void (*final_snapshot)(void)) {
    static const int signals[] = {SIGTERM, SIGHUP};
    sigset_t all, previous;
    pthread_attr_t attributes;
    pthread_t thread;
    size_t index;
    int created;
    termination_snapshot = final_snapshot;
    if (sem_init(&termination_posted, 0, 0) != 0)
        return -1;
    // The thread takes no signal itself: they stay with the script's thread, as in lua5.3.
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    created = pthread_create(&thread, &attributes, termination_thread, NULL);
    pthread_attr_destroy(&attributes);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (created != 0)
        return -1;
    for (index = 0; index < sizeof signals / sizeof signals[0]; index++) {
        struct sigaction current, handler;
        // An ignored signal (nohup) stays ignored, as it would for lua5.3.
        if (sigaction(signals[index], NULL, &current) != 0 || current.sa_handler != SIG_DFL)
            continue;
        sigemptyset(&handler.sa_mask);
        handler.sa_flags = SA_RESTART;
        handler.sa_handler = on_termination;
        sigaction(signals[index], &handler, NULL);
    }
    return 0;
}

void luamem_die_if_terminating(void) {
    if (termination_signal != 0)
        die_of(termination_signal);
}

int luamem_termination_signal(void) {
    return termination_signal;
}
