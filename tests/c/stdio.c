/* stdio MODE: standard streams as a program in a pipe sees them.
 *
 *   checks      isatty/TCGETS on a pipe, fstat of stdout, writev, stdin at
 *               EOF (the harness gives /dev/null), write to a bad fd; one
 *               line per check
 *   big N M     writes N bytes to stdout and M bytes to stderr, interleaved
 *               in odd-sized chunks, with write(2) and partial-write retries.
 *               Byte i of either stream is 'a' + (i % 26), except every
 *               4096th byte, which is '\n'.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case ENOTTY: return "ENOTTY";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case 0: return "none";
    default: return "other";
    }
}

static const char *ftype(mode_t m) {
    if (S_ISFIFO(m)) return "fifo";
    if (S_ISCHR(m)) return "chr";
    if (S_ISREG(m)) return "reg";
    if (S_ISSOCK(m)) return "sock";
    if (S_ISDIR(m)) return "dir";
    return "other";
}

static char byte_at(size_t i) {
    return (i % 4096 == 4095) ? '\n' : (char)('a' + i % 26);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int big(size_t nout, size_t nerr) {
    static char buf[70000];
    size_t done[2] = {0, 0};
    size_t total[2] = {nout, nerr};
    size_t chunk = 1;
    while (done[0] < total[0] || done[1] < total[1]) {
        for (int s = 0; s < 2; s++) {
            size_t n = total[s] - done[s];
            if (n > chunk)
                n = chunk;
            for (size_t i = 0; i < n; i++)
                buf[i] = byte_at(done[s] + i);
            if (n > 0 && write_all(s + 1, buf, n) != 0)
                return 1;
            done[s] += n;
        }
        /* Chunk sizes 1, 8, 57, 400, ... up to 65535, then wrap. */
        chunk = chunk * 7 + 1;
        if (chunk > 65535)
            chunk = 3;
    }
    return 0;
}

static int checks(void) {
    errno = 0;
    int t = isatty(1);
    printf("isatty(1)=%d errno=%s\n", t, errname(errno));

    struct termios tio;
    errno = 0;
    int r = ioctl(1, TCGETS, &tio);
    printf("ioctl(1, TCGETS)=%d errno=%s\n", r, errname(errno));

    struct stat st;
    if (fstat(1, &st) != 0) {
        printf("fstat(1) failed errno=%s\n", errname(errno));
    } else {
        printf("fstat(1) type=%s\n", ftype(st.st_mode));
    }
    fflush(stdout);

    struct iovec iov[4] = {
        {.iov_base = "writev: ", .iov_len = 8},
        {.iov_base = "a", .iov_len = 1},
        {.iov_base = "", .iov_len = 0},
        {.iov_base = "bcdef\n", .iov_len = 6},
    };
    ssize_t w = writev(1, iov, 4);
    printf("writev returned %zd\n", w);

    char c;
    ssize_t n = read(0, &c, 1);
    printf("read(0)=%zd\n", n);

    errno = 0;
    w = write(100, "x", 1);
    printf("write(100)=%zd errno=%s\n", w, errname(errno));

    errno = 0;
    w = write(-1, "x", 1);
    printf("write(-1)=%zd errno=%s\n", w, errname(errno));

    fprintf(stderr, "stderr line 1\n");
    fputs("stderr line 2\n", stderr);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "checks";
    if (strcmp(mode, "checks") == 0)
        return checks();
    if (strcmp(mode, "big") == 0 && argc == 4)
        return big(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
    fprintf(stderr, "usage: stdio checks | stdio big N M\n");
    return 2;
}
