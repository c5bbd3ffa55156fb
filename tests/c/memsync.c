/* memsync: msync(2) and mincore(2) results and errors, printed one per
 * line; the same output is expected natively and in the sandbox.
 *
 * Anonymous pages are only asked about when none or all of a range were
 * touched (Linux maps anonymous pages one at a time; the sentry maps
 * neighbours of a fault too, so a half-touched range may differ).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096
#define N 8

static void report(const char *what, int r) {
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok %d\n", what, r);
}

static void residency(const char *what, void *p, size_t len) {
    unsigned char v[64];
    memset(v, 0xee, sizeof v);
    if (mincore(p, len, v) < 0) {
        printf("%s: %s\n", what, strerrorname_np(errno));
        return;
    }
    printf("%s: ", what);
    for (size_t i = 0; i < (len + PG - 1) / PG; i++)
        printf("%d", v[i]);
    printf(" next=%x\n", v[(len + PG - 1) / PG]);
}

int main(void) {
    char *a = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return 1;
    /* mincore */
    residency("fresh", a, N * PG);
    for (int i = 0; i < N; i++)
        a[i * PG] = 1;
    residency("touched", a, N * PG);
    residency("partial last page", a, 2 * PG + 1);
    residency("len 0", a, 0);
    madvise(a, N * PG, MADV_DONTNEED);
    residency("after MADV_DONTNEED", a, N * PG);
    report("mincore unaligned", mincore(a + 1, PG, (unsigned char[8]){0}));
    report("mincore bad vec", mincore(a, PG, (unsigned char *)8));
    report("mincore past the top", mincore((void *)0x7ffffffff000, 2 * PG, (unsigned char[8]){0}));
    report("mincore wraps", mincore(a, (size_t)-PG, (unsigned char[8]){0}));
    munmap(a + 3 * PG, PG);
    report("mincore over a hole", mincore(a, N * PG, (unsigned char[8]){0}));
    report("mincore of unmapped", mincore(a + 3 * PG, PG, (unsigned char[8]){0}));

    /* msync */
    report("msync anon", msync(a, PG, MS_SYNC));
    report("msync async", msync(a, PG, MS_ASYNC));
    report("msync invalidate", msync(a, PG, MS_INVALIDATE));
    report("msync len 0", msync(a, 0, MS_SYNC));
    report("msync unaligned", msync(a + 1, PG, MS_SYNC));
    report("msync bad flags", msync(a, PG, 8));
    report("msync async|sync", msync(a, PG, MS_ASYNC | MS_SYNC));
    report("msync over a hole", msync(a, N * PG, MS_SYNC));
    report("msync async over a hole", msync(a, N * PG, MS_ASYNC));
    report("msync of unmapped", msync(a + 3 * PG, PG, MS_SYNC));
    report("msync wraps", msync(a, (size_t)-PG, MS_SYNC));
    munmap(a, N * PG);

    /* a shared mapping of a tmpfs file: stores reach the file */
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/rf-memsync-%d", getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, 2 * PG) < 0) {
        printf("shm file: %s\n", strerrorname_np(errno));
        return 1;
    }
    unlink(path);
    char *s = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    residency("shared fresh", s, 2 * PG);
    memcpy(s + PG + 10, "stored", 6);
    report("msync shared", msync(s + PG, PG, MS_SYNC));
    char buf[8] = {0};
    report("pread", (int)pread(fd, buf, 6, PG + 10));
    printf("file holds [%s]\n", buf);
    report("pwrite", (int)pwrite(fd, "WRITE", 5, 20));
    report("msync invalidate shared", msync(s, 2 * PG, MS_INVALIDATE));
    printf("mapping holds [%.5s]\n", s + 20);
    residency("shared touched", s, 2 * PG);
    munmap(s, 2 * PG);
    close(fd);
    printf("done\n");
    return 0;
}
