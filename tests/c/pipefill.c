/* Eight processes each open as many pipes (or, with argument "socket",
 * AF_UNIX stream socket pairs) as their descriptor limit allows and fill
 * them: far more than the sandbox's buffer budget. Past it, each holds one
 * page; nothing fails but the descriptor limit, and the sentry does not
 * run out of memory. Prints each child's count, sorted; a child whose
 * write moved less than a page reports a negative count. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[65536];
static int sockets;

static int fill(void) {
    int pipes = 0;
    for (;;) {
        int fds[2];
        int r = sockets ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds)
                        : pipe2(fds, O_NONBLOCK);
        if (r != 0)
            return errno == EMFILE ? pipes : -errno;
        pipes++;
        ssize_t n, total = 0;
        while ((n = write(fds[1], buf, sizeof buf)) > 0)
            total += n;
        if ((n < 0 && errno != EAGAIN) || total < 4096)
            return -1000 - pipes;
    }
}

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int main(int argc, char **argv) {
    sockets = argc > 1 && !strcmp(argv[1], "socket");
    memset(buf, 'x', sizeof buf);
    int report[2], go[2];
    if (pipe(report) || pipe(go))
        return 1;
    for (int c = 0; c < 8; c++) {
        if (fork() == 0) {
            close(report[0]);
            close(go[1]);
            int n = fill();
            write(report[1], &n, sizeof n);
            char ch;
            read(go[0], &ch, 1); /* hold the pipes until all have filled */
            _exit(0);
        }
    }
    close(report[1]);
    close(go[0]);
    int counts[8];
    for (int c = 0; c < 8; c++)
        if (read(report[0], &counts[c], sizeof counts[c]) != sizeof counts[c])
            return 2;
    close(go[1]);
    while (wait(NULL) > 0) {
    }
    qsort(counts, 8, sizeof counts[0], cmp);
    for (int c = 0; c < 8; c++)
        printf("child: %d %s filled\n", counts[c], sockets ? "socket pairs" : "pipes");
    return 0;
}
