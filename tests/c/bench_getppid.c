/* bench_getppid N: the system-call round trip. Makes N/10 warm-up calls of
 * syscall(SYS_getppid), then times N more with CLOCK_MONOTONIC around the
 * loop itself (start-up and exit are not counted) and prints one line:
 *
 *   getppid N=<N> ns_per_op=<nanoseconds per call, one decimal>
 *
 * With a second argument `wrapper`, the calls are glibc's getppid(): its
 * site is the one the ptrace platform patches (`mov $110, %eax; syscall`),
 * which syscall(2)'s is not.
 *
 * syscall(2) is used rather than getppid() so that every call really enters
 * the kernel (or the sentry). Exits 2 on a bad argument, 1 if a call fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long raw_getppid(void) {
    return syscall(SYS_getppid);
}

static long wrapper_getppid(void) {
    return getppid();
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    int wrapper = argc > 2 && strcmp(argv[2], "wrapper") == 0;
    if (n <= 0 || (argc > 2 && !wrapper)) {
        fprintf(stderr, "usage: bench_getppid N [wrapper] (N > 0)\n");
        return 2;
    }
    long (*call)(void) = wrapper ? wrapper_getppid : raw_getppid;
    for (long i = 0; i < n / 10; i++)
        if (call() < 0)
            return 1;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (call() < 0)
            return 1;
    long long t1 = now_ns();
    printf("getppid N=%ld ns_per_op=%.1f\n", n, (double)(t1 - t0) / (double)n);
    return 0;
}
