/* enosys [all]: calls system call number 1000, which no Linux kernel
 * implements, and reports the result, then keeps running. With the argument
 * `all` it also calls numbers 500 and 100000 (unassigned too, but only 1000 is
 * compared with the host: hosts with extra or filtered numbers exist) and
 * add_key, a real system call the sandbox does not implement (natively
 * it fails with some other errno, so only the fact that it returns -1 and the
 * program survives is comparable). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case ENOSYS: return "ENOSYS";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case 0: return "none";
    default: return "other";
    }
}

static void try(const char *label, long nr) {
    errno = 0;
    long r = syscall(nr, 0, 0, 0, 0, 0, 0);
    printf("%s: ret=%ld errno=%s\n", label, r, errname(errno));
}

int main(int argc, char **argv) {
    try("syscall(1000)", 1000);
    if (argc > 1 && strcmp(argv[1], "all") == 0) {
        try("syscall(500)", 500);
        try("syscall(100000)", 100000);
        errno = 0;
        /* Null type and description: natively EFAULT, never a real key. */
        long r = syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
        printf("add_key: ret=%ld errno=%s\n", r, errname(errno));
    }
    printf("still alive\n");
    return 0;
}
