/* bench_lines N: stdout throughput in small writes. Writes N lines of exactly
 * 20 bytes to stdout, one write(2) per line, as a line-buffered logger
 * would ("line 0000000000 ...\n": the line number in ten digits), then prints
 * on stderr one line:
 *
 *   lines N=<N> ns_per_line=<nanoseconds per line over the write loop>
 *
 * Exits 2 on a bad argument, 1 if a write fails or is short. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0 || n > 9999999999L) {
        fprintf(stderr, "usage: bench_lines N (0 < N < 10^10)\n");
        return 2;
    }
    char line[20] = "line 0000000000 ...\n";
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        long v = i;
        for (int d = 14; d >= 5; d--, v /= 10)
            line[d] = (char)('0' + v % 10);
        if (write(1, line, sizeof line) != (ssize_t)sizeof line)
            return 1;
    }
    long long t1 = now_ns();
    fprintf(stderr, "lines N=%ld ns_per_line=%.1f\n", n, (double)(t1 - t0) / (double)n);
    return 0;
}
