/* Runs a command as a shell would start it: every signal unblocked and at its default action,
 * core dumps off. (The test runner's threads block signals, and children inherit that.)
 * Usage: default_signals COMMAND [ARGS...] */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv) {
    sigset_t none;
    struct rlimit no_core = {0, 0};
    int number;
    if (argc < 2)
        return 127;
    for (number = 1; number < NSIG; number++)
        signal(number, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setrlimit(RLIMIT_CORE, &no_core);
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
