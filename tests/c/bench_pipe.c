/* bench_pipe N: a one-byte ping-pong between two processes over two pipes.
 * The parent writes a byte, the child reads it and writes it back, the
 * parent reads it: one round trip. N/10 warm-up round trips, then N timed
 * with CLOCK_MONOTONIC in the parent. Prints one line:
 *
 *   pipe N=<N> ns_per_op=<nanoseconds per round trip, one decimal>
 *
 * Exits 2 on bad arguments, 1 on a failed call. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int trip(int out, int in) {
    char c = 'x';
    if (write(out, &c, 1) != 1 || read(in, &c, 1) != 1)
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_pipe N (N > 0)\n");
        return 2;
    }
    int ping[2], pong[2];
    if (pipe(ping) != 0 || pipe(pong) != 0)
        return 1;
    long warm = n / 10;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        char c;
        for (long i = 0; i < warm + n; i++)
            if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1)
                _exit(1);
        _exit(0);
    }
    for (long i = 0; i < warm; i++)
        if (trip(ping[1], pong[0]) != 0)
            return 1;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (trip(ping[1], pong[0]) != 0)
            return 1;
    long long t1 = now_ns();
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    printf("pipe N=%ld ns_per_op=%.1f\n", n, (double)(t1 - t0) / (double)n);
    return 0;
}
