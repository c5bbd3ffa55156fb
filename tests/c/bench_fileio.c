/* bench_fileio MODE ARGS: issue 5's file measures, timing its own loop with
 * CLOCK_MONOTONIC and printing `ns_per_op=N` (and a readable line on stderr).
 *   seqread PATH BUF     read PATH to its end with BUF-byte reads; op = 1 MiB
 *   stat PATH N          N stat(2) calls of PATH, after N/10 warm-up
 *   randread DIR MIB N   write a MIB MiB file in DIR (a tmpfs), then N
 *                        4 KiB preads at pseudo-random aligned offsets */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "seqread")) {
        size_t bs = strtoul(argv[3], NULL, 0);
        char *buf = malloc(bs);
        int fd = open(argv[2], O_RDONLY);
        if (!buf || fd < 0)
            die("open");
        double t = now_ns();
        long long total = 0;
        ssize_t n;
        while ((n = read(fd, buf, bs)) > 0)
            total += n;
        if (n < 0)
            die("read");
        t = now_ns() - t;
        double mib = total / 1048576.0;
        fprintf(stderr, "%lld bytes, %.0f MiB/s\n", total, mib / (t / 1e9));
        printf("ns_per_op=%.1f\n", t / mib);
    } else if (argc >= 4 && !strcmp(argv[1], "stat")) {
        long n = atol(argv[3]);
        struct stat st;
        for (long i = 0; i < n / 10; i++)
            if (stat(argv[2], &st) != 0)
                die("stat");
        double t = now_ns();
        for (long i = 0; i < n; i++)
            stat(argv[2], &st);
        t = now_ns() - t;
        printf("ns_per_op=%.1f\n", t / n);
    } else if (argc >= 5 && !strcmp(argv[1], "randread")) {
        long mib = atol(argv[3]), n = atol(argv[4]);
        char path[256];
        snprintf(path, sizeof path, "%s/bench_fileio.%d", argv[2], getpid());
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        static char chunk[1 << 20];
        memset(chunk, 'r', sizeof chunk);
        if (fd < 0)
            die("open");
        for (long i = 0; i < mib; i++)
            if (write(fd, chunk, sizeof chunk) != sizeof chunk)
                die("write");
        uint64_t x = 88172645463325252ull, pages = (uint64_t)mib * 256;
        char buf[4096];
        for (long i = 0; i < n / 10; i++)
            pread(fd, buf, 4096, (off_t)(i % pages) * 4096);
        double t = now_ns();
        for (long i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (pread(fd, buf, 4096, (off_t)(x % pages) * 4096) != 4096)
                die("pread");
        }
        t = now_ns() - t;
        unlink(path);
        printf("ns_per_op=%.1f\n", t / n);
    } else {
        fprintf(stderr, "usage: bench_fileio seqread PATH BUF | stat PATH N | randread DIR MIB N\n");
        return 2;
    }
    return 0;
}
