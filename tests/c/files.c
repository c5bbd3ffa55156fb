/* files MODE ARGS: the container's file system as the program sees it.
 *
 *   cat PATH      prints the contents of PATH (relative paths resolve against
 *                 the working directory from the spec)
 *   create PATH   tries to create PATH and write to it; prints whether that
 *                 worked (the test checks the host side, not this line)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: files cat|create PATH\n");
        return 2;
    }
    const char *path = argv[2];
    if (strcmp(argv[1], "cat") == 0) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            printf("open %s failed: %s\n", path, strerror(errno));
            return 1;
        }
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            fwrite(buf, 1, (size_t)n, stdout);
        if (n < 0) {
            printf("read %s failed: %s\n", path, strerror(errno));
            return 1;
        }
        close(fd);
        return 0;
    }
    if (strcmp(argv[1], "create") == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
            printf("create %s failed: %s\n", path, strerror(errno));
            return 0;
        }
        ssize_t n = write(fd, "written inside\n", 15);
        close(fd);
        printf("create %s wrote %zd bytes\n", path, n);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
