/* bindrw DIR MODE: changes to a bind-mounted host directory.
 *
 *   rw      creates, writes, appends, truncates, renames, links, chmods,
 *           touches and removes files in DIR, printing each result; run
 *           natively on a host directory and in the sandbox on a read-write
 *           bind of another, the output and the directories must match
 *   ro      tries the same changes on a read-only bind (every one must
 *           fail with EROFS) and reads what is there
 *   escape  tries to write outside DIR through the symlinks the test put
 *           in it (rel, abs, dangling, dirlink) and `..`
 *   file    DIR is a bind-mounted file: read it, append a line if it is
 *           writable, and try to remove and rename it (EBUSY)
 *
 * The output never contains DIR, so native and sandboxed runs compare.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *dir;

static const char *P(const char *name) {
    static char bufs[4][4096];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

static void report(const char *what, long r) {
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok %ld\n", what, r);
}

static void show(const char *name) {
    char buf[256];
    int fd = open(P(name), O_RDONLY);
    if (fd < 0) {
        printf("read %s: %s\n", name, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        printf("read %s: %s\n", name, strerrorname_np(errno));
        return;
    }
    buf[n] = 0;
    printf("read %s: [%s]\n", name, buf);
}

static void stat_of(const char *name) {
    struct stat st;
    if (lstat(P(name), &st) < 0) {
        printf("lstat %s: %s\n", name, strerrorname_np(errno));
        return;
    }
    printf("lstat %s: mode %o size %lld\n", name, st.st_mode, (long long)st.st_size);
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(void) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("opendir: %s\n", strerrorname_np(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("entries:");
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
}

static long write_file(const char *name, int flags, const char *text) {
    int fd = open(P(name), flags, 0640);
    if (fd < 0)
        return -1;
    long r = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static void rw(void) {
    report("access W_OK", access(dir, W_OK));
    int fd = open(P("new.txt"), O_CREAT | O_WRONLY | O_TRUNC, 0640);
    report("create", fd < 0 ? -1 : 0);
    report("write", write(fd, "hello world\n", 12));
    report("pwrite", pwrite(fd, "J", 1, 0));
    report("fsync", fsync(fd));
    report("fdatasync", fdatasync(fd));
    report("getfl O_WRONLY", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY ? 0 : -1);
    report("read of O_WRONLY", read(fd, (char[4]){0}, 4));
    close(fd);
    report("append", write_file("new.txt", O_WRONLY | O_APPEND, "more\n"));
    show("new.txt");
    report("excl", open(P("new.txt"), O_CREAT | O_EXCL | O_WRONLY, 0600));
    fd = open(P("new.txt"), O_RDWR);
    report("ftruncate", ftruncate(fd, 9));
    struct stat st;
    fstat(fd, &st);
    printf("size after ftruncate: %lld\n", (long long)st.st_size);
    report("lseek end", lseek(fd, 0, SEEK_END));
    report("write at end", write(fd, "!", 1));
    close(fd);
    show("new.txt");
    report("truncate", truncate(P("new.txt"), 5));
    show("new.txt");
    report("open O_TRUNC", write_file("new.txt", O_WRONLY | O_TRUNC, "fresh"));
    show("new.txt");

    report("mkdir", mkdir(P("sub"), 0750));
    report("mkdir again", mkdir(P("sub"), 0750));
    report("create in sub", write_file("sub/f", O_CREAT | O_WRONLY, "in sub\n"));
    report("rename", rename(P("sub/f"), P("moved")));
    report("rename noreplace", syscall(SYS_renameat2, AT_FDCWD, P("moved"), AT_FDCWD, P("new.txt"), 1));
    report("rmdir", rmdir(P("sub")));
    report("rmdir missing", rmdir(P("sub")));
    report("mkdir full", mkdir(P("full"), 0755));
    report("fill full", write_file("full/x", O_CREAT | O_WRONLY, "x"));
    report("rmdir non-empty", rmdir(P("full")));
    report("unlink a dir", unlink(P("full")));
    report("rmdir a file", rmdir(P("moved")));
    report("rename over", rename(P("moved"), P("replaced")));
    show("replaced");
    report("link", link(P("replaced"), P("hardlink")));
    report("link exists", link(P("replaced"), P("hardlink")));
    stat(P("hardlink"), &st);
    printf("nlink %ld\n", (long)st.st_nlink);

    report("symlink", symlink("new.txt", P("link")));
    report("symlink exists", symlink("x", P("link")));
    char target[64] = {0};
    report("readlink", readlink(P("link"), target, sizeof target - 1));
    printf("link -> %s\n", target);
    show("link");
    report("write through link", write_file("link", O_WRONLY | O_APPEND, "+"));
    show("new.txt");

    report("chmod", chmod(P("new.txt"), 0604));
    report("fchmod", ({ int f = open(P("replaced"), O_RDONLY); long r = fchmod(f, 0611); close(f); r; }));
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    report("utimensat", utimensat(AT_FDCWD, P("new.txt"), ts, 0));
    stat(P("new.txt"), &st);
    printf("mtime %lld.%ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    report("utimensat nofollow", utimensat(AT_FDCWD, P("link"), ts, AT_SYMLINK_NOFOLLOW));
    lstat(P("link"), &st);
    printf("link mtime %lld\n", (long long)st.st_mtim.tv_sec);

    report("chown", chown(P("new.txt"), 1234, 5678));
    report("fchown", ({ int f = open(P("replaced"), O_RDONLY); long r = fchown(f, -1, 99); close(f); r; }));
    report("lchown", lchown(P("link"), 77, 88));
    stat(P("new.txt"), &st);
    printf("owner %d:%d\n", (int)st.st_uid, (int)st.st_gid);
    stat(P("replaced"), &st);
    printf("replaced group %d\n", (int)st.st_gid);
    lstat(P("link"), &st);
    printf("link owner %d:%d\n", (int)st.st_uid, (int)st.st_gid);
    stat(P("link"), &st);
    printf("its target owner %d:%d\n", (int)st.st_uid, (int)st.st_gid);
    report("unlink", unlink(P("full/x")));
    report("unlink missing", unlink(P("full/x")));
    report("rmdir emptied", rmdir(P("full")));
    report("remove the link", unlink(P("link")));
    report("create in missing dir", write_file("nodir/x", O_CREAT | O_WRONLY, "x"));
    stat_of("new.txt");
    stat_of("replaced");
    list();
}

static void ro(void) {
    show("hello.txt");
    report("access W_OK", access(P("hello.txt"), W_OK));
    report("open for write", write_file("hello.txt", O_WRONLY, "x"));
    report("open O_TRUNC", open(P("hello.txt"), O_RDONLY | O_TRUNC));
    report("create", write_file("new", O_CREAT | O_WRONLY, "x"));
    report("mkdir", mkdir(P("d"), 0755));
    report("unlink", unlink(P("hello.txt")));
    report("rmdir", rmdir(P("sub")));
    report("rename", rename(P("hello.txt"), P("moved")));
    report("symlink", symlink("hello.txt", P("link")));
    report("chmod", chmod(P("hello.txt"), 0777));
    report("utimensat", utimensat(AT_FDCWD, P("hello.txt"), NULL, 0));
    report("truncate", truncate(P("hello.txt"), 0));
    report("link", link(P("hello.txt"), P("hard")));
    report("chown", chown(P("hello.txt"), 1, 1));
    list();
}

static void escape(void) {
    report("write rel", write_file("rel", O_WRONLY | O_TRUNC, "pwned"));
    report("write abs", write_file("abs", O_WRONLY | O_CREAT | O_TRUNC, "pwned"));
    report("create dangling", write_file("dangling", O_WRONLY | O_CREAT, "pwned"));
    report("create abs-dangling", write_file("absdangling", O_WRONLY | O_CREAT, "pwned"));
    report("write dirlink/victim", write_file("dirlink/victim", O_WRONLY | O_TRUNC, "pwned"));
    report("create dirlink/new", write_file("dirlink/new", O_WRONLY | O_CREAT, "pwned"));
    report("write ../outside/victim", write_file("../outside/victim", O_WRONLY | O_TRUNC, "pwned"));
    report("mkdir dirlink/d", mkdir(P("dirlink/d"), 0755));
    report("chmod rel", chmod(P("rel"), 0777));
    report("chmod abs", chmod(P("abs"), 0777));
    report("utimensat rel", utimensat(AT_FDCWD, P("rel"), NULL, 0));
    report("truncate rel", truncate(P("rel"), 0));
    report("truncate abs", truncate(P("abs"), 0));
    report("unlink dirlink/victim", unlink(P("dirlink/victim")));
    report("rename into dirlink", rename(P("mine"), P("dirlink/mine")));
    report("symlink in dirlink", symlink("x", P("dirlink/s")));
    report("rename out via ..", rename(P("mine2"), P("../outside/mine2")));
}

static void file(void) {
    char buf[256] = {0};
    int fd = open(dir, O_RDONLY);
    if (fd < 0) {
        printf("open: %s\n", strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("read %zd: [%s]\n", n, n > 0 ? buf : "");
    fd = open(dir, O_WRONLY | O_APPEND);
    report("open for append", fd);
    if (fd >= 0) {
        report("append", write(fd, "appended\n", 9));
        close(fd);
    }
    report("unlink", unlink(dir));
    char other[4200];
    snprintf(other, sizeof other, "%s.moved", dir);
    report("rename", rename(dir, other));
}

/* As a non-root user: what the sandbox creates is the user's, as the
 * container's own kernel would make it (the host creates it as the VMM). */
static void owner(void) {
    char p[4096];
    snprintf(p, sizeof p, "%s/made.txt", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0640);
    report("create", fd < 0 ? -1 : 0);
    if (fd >= 0)
        close(fd);
    snprintf(p, sizeof p, "%s/again.txt", dir);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    report("create without O_EXCL", fd < 0 ? -1 : 0);
    if (fd >= 0)
        close(fd);
    snprintf(p, sizeof p, "%s/madedir", dir);
    report("mkdir", mkdir(p, 0750));
    snprintf(p, sizeof p, "%s/madelink", dir);
    report("symlink", symlink("made.txt", p));
    const char *names[] = {"made.txt", "again.txt", "madedir", "madelink"};
    for (int i = 0; i < 4; i++) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (lstat(p, &st) == 0)
            printf("%s owner %u:%u\n", names[i], st.st_uid, st.st_gid);
        else
            printf("%s: %s\n", names[i], strerror(errno));
    }
}

/* A shared writable mapping of a file in the bind: what the mapping, a
 * child's mapping and write(2) change is one file, on the host too. */
static void shared_map(void) {
    char p[4096];
    snprintf(p, sizeof p, "%s/mapped", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 8192) != 0) {
        printf("setup: %s\n", strerrorname_np(errno));
        return;
    }
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        printf("mmap: %s\n", strerrorname_np(errno));
        return;
    }
    memcpy(m, "from the mapping", 16);
    pid_t pid = fork();
    if (pid == 0) {
        memcpy(m + 4096, "from the child", 14);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    char buf[32] = {0};
    pread(fd, buf, 16, 0);
    printf("read sees the mapping: [%s]\n", buf);
    pread(fd, buf, 14, 4096);
    buf[14] = 0;
    printf("read sees the child's write: [%s]\n", buf);
    pwrite(fd, "WRITE", 5, 100);
    printf("the mapping sees write(2): [%.5s]\n", m + 100);
    memcpy(m + 200, "synced", 6);
    report("msync", msync(m, 8192, MS_SYNC));
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    printf("a second mapping sees it: [%.6s]\n", ro == MAP_FAILED ? "?" : ro + 200);
    munmap(ro, 4096);
    memcpy(m + 300, "at unmap", 8);
    munmap(m, 8192);
    close(fd);
    int rd = open(p, O_RDONLY);
    char *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rd, 0);
    printf("writable shared map of a read-only fd: %s\n", r == MAP_FAILED ? strerrorname_np(errno) : "mapped");
    close(rd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bindrw DIR rw|ro|escape|file|owner|mmap\n");
        return 2;
    }
    dir = argv[1];
    umask(022);
    if (!strcmp(argv[2], "rw"))
        rw();
    else if (!strcmp(argv[2], "ro"))
        ro();
    else if (!strcmp(argv[2], "escape"))
        escape();
    else if (!strcmp(argv[2], "file"))
        file();
    else if (!strcmp(argv[2], "owner"))
        owner();
    else if (!strcmp(argv[2], "mmap"))
        shared_map();
    else
        return 2;
    return 0;
}
