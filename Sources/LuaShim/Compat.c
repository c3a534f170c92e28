// glibc compatibility for the release build (scripts/package.sh), which links libstdc++
// statically: its std::random_device calls arc4random, which glibc has only since 2.36, and the
// reference would make every binary need glibc 2.36 (no Ubuntu 22.04). This definition, hidden
// in each binary, satisfies it with getrandom (glibc 2.25). Nothing of luamem calls it.
#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

__attribute__((visibility("hidden"))) uint32_t arc4random(void) {
    uint32_t value = 0;
    for (;;) {
        if (getrandom(&value, sizeof value, 0) == (ssize_t)sizeof value) return value;
        if (errno != EINTR) break;
    }
    // No getrandom (a kernel before 3.17): never loop, never fail.
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint32_t)now.tv_nsec ^ (uint32_t)now.tv_sec * 2654435761u ^ (uint32_t)getpid();
}
