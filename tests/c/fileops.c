/* fileops: file-system calls on a fresh directory under /tmp, printing
 * results that do not depend on where they ran (no inode numbers or host
 * paths), so a sandboxed run compares with a native one. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
    DIR *d = opendir(dir);
    check(d != NULL, "opendir");
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], cmp);
    printf("list:");
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(void) {
    char dir[] = "/tmp/rf-fileops-XXXXXX";
    check(mkdtemp(dir) != NULL, "mkdtemp");
    check(chdir(dir) == 0, "chdir");
    int fd = open("f", O_RDWR | O_CREAT | O_EXCL, 0640);
    check(fd >= 0, "create");
    printf("excl again: %s\n", open("f", O_RDWR | O_CREAT | O_EXCL, 0640) < 0 && errno == EEXIST ? "EEXIST" : "?");
    check(write(fd, "hello world", 11) == 11, "write");
    char buf[64] = {0};
    check(pread(fd, buf, 5, 6) == 5, "pread");
    printf("pread: %s\n", buf);
    check(pwrite(fd, "W", 1, 6) == 1, "pwrite");
    check(lseek(fd, 0, SEEK_SET) == 0, "lseek");
    memset(buf, 0, sizeof buf);
    check(read(fd, buf, sizeof buf) == 11, "read");
    printf("read: %s\n", buf);
    check(ftruncate(fd, 5) == 0, "ftruncate");
    struct stat st;
    check(fstat(fd, &st) == 0, "fstat");
    printf("size %lld mode %o regular %d\n", (long long)st.st_size, st.st_mode & 07777, S_ISREG(st.st_mode));
    close(fd);
    fd = open("f", O_WRONLY | O_APPEND);
    check(write(fd, "+app", 4) == 4, "append");
    close(fd);
    fd = open("f", O_RDONLY);
    memset(buf, 0, sizeof buf);
    check(read(fd, buf, sizeof buf) == 9, "read2");
    printf("after append: %s\n", buf);
    printf("write to O_RDONLY: %s\n", write(fd, "x", 1) < 0 && errno == EBADF ? "EBADF" : "?");
    char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    check(m != MAP_FAILED, "mmap");
    printf("mmap: %.9s\n", m);
    munmap(m, 4096);
    close(fd);
    check(link("f", "hard") == 0, "link");
    check(stat("f", &st) == 0, "stat");
    printf("nlink %d\n", (int)st.st_nlink);
    check(symlink("f", "sym") == 0, "symlink");
    memset(buf, 0, sizeof buf);
    check(readlink("sym", buf, sizeof buf) == 1, "readlink");
    check(lstat("sym", &st) == 0, "lstat");
    printf("symlink -> %s, is link %d\n", buf, S_ISLNK(st.st_mode));
    check(stat("sym", &st) == 0 && st.st_size == 9, "stat through symlink");
    check(mkdir("sub", 0755) == 0, "mkdir");
    printf("mkdir again: %s\n", mkdir("sub", 0755) < 0 && errno == EEXIST ? "EEXIST" : "?");
    check(rename("hard", "sub/moved") == 0, "rename");
    printf("rmdir non-empty: %s\n", rmdir("sub") < 0 && errno == ENOTEMPTY ? "ENOTEMPTY" : "?");
    list(".");
    list("sub");
    check(chmod("f", 0600) == 0, "chmod");
    struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
    check(utimensat(AT_FDCWD, "f", times, 0) == 0, "utimensat");
    check(stat("f", &st) == 0, "stat2");
    printf("mode %o mtime %lld\n", st.st_mode & 07777, (long long)st.st_mtime);
    printf("access R: %d X: %d\n", access("f", R_OK) == 0, access("sub", X_OK) == 0);
    printf("missing: %s\n", open("nope", O_RDONLY) < 0 && errno == ENOENT ? "ENOENT" : "?");
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = 0;
    printf("long name: %s\n", open(longname, O_RDWR | O_CREAT, 0600) < 0 && errno == ENAMETOOLONG ? "ENAMETOOLONG" : "?");
    printf("unlink dir: %s\n", unlink("sub") < 0 && errno == EISDIR ? "EISDIR" : "?");
    char cwd[4096];
    check(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    printf("cwd matches: %d\n", strcmp(cwd, dir) == 0);
    check(unlink("sub/moved") == 0 && rmdir("sub") == 0 && unlink("sym") == 0 && unlink("f") == 0, "cleanup");
    list(".");
    check(chdir("/") == 0 && rmdir(dir) == 0, "rmdir");
    printf("done\n");
    return 0;
}
