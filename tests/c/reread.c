/* Reads the same file again and again (as programs read their modules and
 * configuration), with read, pread and a short read at the end, and prints
 * a checksum of each pass: the page cache must serve the same bytes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/data/blob";
    int passes = argc > 2 ? atoi(argv[2]) : 100;
    static char buf[1 << 20];
    unsigned long first = 0;
    for (int i = 0; i < passes; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror("open");
            return 1;
        }
        unsigned long sum = 0, total = 0;
        ssize_t n;
        /* Odd-sized reads cross page boundaries. */
        while ((n = read(fd, buf, 4093)) > 0) {
            for (ssize_t j = 0; j < n; j++)
                sum = sum * 31 + (unsigned char)buf[j];
            total += n;
        }
        if (n < 0) {
            perror("read");
            return 1;
        }
        unsigned char tail[16];
        ssize_t t = pread(fd, tail, sizeof tail, total - 5);
        close(fd);
        if (i == 0) {
            first = sum;
            printf("bytes %lu sum %lx tail %zd %02x%02x%02x%02x%02x\n", total, sum, t, tail[0],
                   tail[1], tail[2], tail[3], tail[4]);
        } else if (sum != first) {
            printf("pass %d: sum %lx differs\n", i, sum);
            return 1;
        }
    }
    printf("%d passes agree\n", passes);
    return 0;
}
