/* Descriptors past the sandbox's budget: 8 processes raise RLIMIT_NOFILE
 * to its hard limit and open eventfds until that fails. The sentry's
 * file-max answers ENFILE long before their memory would outgrow the
 * sentry's. Each child reports its count and error; the parent says how
 * many stopped on ENFILE and whether they held all of
 * /proc/sys/fs/file-max between them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

int main(void) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) {
        perror("setrlimit");
        return 1;
    }
    /* Read first: once the children are full, nothing more opens. */
    long max = 0;
    FILE *f = fopen("/proc/sys/fs/file-max", "r");
    if (!f || fscanf(f, "%ld", &max) != 1)
        printf("no /proc/sys/fs/file-max\n");
    if (f)
        fclose(f);
    int rep[2], go[2];
    if (pipe(rep) || pipe(go))
        return 1;
    for (int c = 0; c < 8; c++) {
        if (fork() == 0) {
            close(rep[0]);
            close(go[1]);
            long n = 0;
            int e = 0;
            for (;;) {
                if (eventfd(0, 0) < 0) {
                    e = errno;
                    break;
                }
                n++;
            }
            long msg[2] = {n, e};
            write(rep[1], msg, sizeof msg);
            char ch;
            read(go[0], &ch, 1); /* hold them until every child is full */
            _exit(0);
        }
    }
    close(rep[1]);
    close(go[0]);
    long total = 0;
    int enfile = 0;
    for (int c = 0; c < 8; c++) {
        long msg[2];
        if (read(rep[0], msg, sizeof msg) != sizeof msg)
            return 2;
        total += msg[0];
        if (msg[1] == ENFILE)
            enfile++;
        else
            printf("child stopped by %s after %ld\n", strerror((int)msg[1]), msg[0]);
    }
    /* What the processes hold besides: stdio, the pipes, per process. */
    long others = max - total;
    printf("children stopped by ENFILE: %d\ntotal within 100 of file-max: %s\n", enfile,
           others >= 0 && others <= 100 ? "yes" : "no");
    printf("total %ld, file-max %ld\n", total, max);
    return 0;
}
