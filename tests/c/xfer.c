/* xfer MODE: file calls beyond plain read/write, in modes
 *   splice     sendfile, splice, tee, copy_file_range (file <-> pipe <-> file)
 *   locks      flock, fcntl record locks and OFD locks, across processes
 *   fallocate  fallocate modes and errors
 *   openat2    openat2 with RESOLVE_* restrictions
 *   sparse     huge sparse files, holes, 255-byte names
 *   shm        MAP_SHARED mappings of a /dev/shm file across fork, coherent
 *              with read and write; files used after their unlink
 *   readinto   read(2) of a host file into awkward buffers: half bad,
 *              read-only, copy-on-write after fork, huge
 *   fill       write /tmp full: ENOSPC, then the space comes back (sandbox
 *              only: natively it would fill the host's disk)
 * It works in a fresh directory under /tmp and reads `data/src.bin` (a
 * file of the bundle, relative to the cwd), and prints only results that do
 * not depend on where it ran, so a sandboxed run compares with a native one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

/* Print what a call that should fail did. */
static void expect_err(long r, const char *what) {
    printf("%s: %s\n", what, r < 0 ? strerrorname_np(errno) : "succeeded");
}

static char *at(const char *name) {
    static char buf[4][160];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 160, "%s/%s", dir, name);
    return b;
}

static uint32_t file_sum(const char *path, off_t *size) {
    int fd = open(path, O_RDONLY);
    check(fd >= 0, "open for sum");
    static unsigned char buf[1 << 20];
    ssize_t n, total = 0;
    uint32_t h = 2166136261u;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 16777619u;
        total += n;
    }
    close(fd);
    *size = total;
    return h;
}

static void msleep(int ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static void do_splice(void) {
    off_t srcsize;
    uint32_t want = file_sum("data/src.bin", &srcsize);
    printf("source: %lld bytes\n", (long long)srcsize);

    /* sendfile, file offset: the whole file in a loop. */
    int src = open("data/src.bin", O_RDONLY);
    int dst = open(at("copy1"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(src >= 0 && dst >= 0, "open");
    off_t done = 0;
    while (done < srcsize) {
        ssize_t n = sendfile(dst, src, NULL, 70000);
        check(n > 0, "sendfile");
        done += n;
    }
    printf("sendfile at EOF: %zd\n", sendfile(dst, src, NULL, 100));
    printf("src offset after sendfile: %lld\n", (long long)lseek(src, 0, SEEK_CUR));
    close(dst);
    off_t size;
    printf("sendfile copy: size %lld, same %d\n", (long long)srcsize,
           file_sum(at("copy1"), &size) == want && size == srcsize);

    /* sendfile with an offset pointer leaves the file offset alone. */
    lseek(src, 5, SEEK_SET);
    off_t off = 1000;
    int p[2];
    check(pipe(p) == 0, "pipe");
    ssize_t n = sendfile(p[1], src, &off, 300);
    printf("sendfile to pipe: %zd, off %lld, file offset %lld\n", n, (long long)off,
           (long long)lseek(src, 0, SEEK_CUR));
    unsigned char a[300], b[300];
    check(read(p[0], a, 300) == 300 && pread(src, b, 300, 1000) == 300, "read back");
    printf("pipe holds the range: %d\n", memcmp(a, b, 300) == 0);

    /* splice file -> pipe -> file, with offsets. */
    off = 4096;
    n = splice(src, &off, p[1], NULL, 20000, 0);
    printf("splice file->pipe: %zd, off %lld\n", n, (long long)off);
    dst = open(at("copy2"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    off_t doff = 10;
    n = splice(p[0], NULL, dst, &doff, 50000, 0);
    printf("splice pipe->file: %zd, doff %lld, file offset %lld\n", n, (long long)doff,
           (long long)lseek(dst, 0, SEEK_CUR));
    static unsigned char big1[20000], big2[20000];
    check(pread(dst, big1, 20000, 10) == 20000 && pread(src, big2, 20000, 4096) == 20000, "pread");
    printf("spliced range equal: %d\n", memcmp(big1, big2, 20000) == 0);

    /* tee copies without consuming. */
    int q[2];
    check(pipe(q) == 0, "pipe");
    check(write(p[1], "hello tee", 9) == 9, "write");
    n = tee(p[0], q[1], 100, 0);
    char t1[16] = {0}, t2[16] = {0};
    check(read(q[0], t2, 16) == 9 && read(p[0], t1, 16) == 9, "read tee");
    printf("tee: %zd '%s' '%s'\n", n, t1, t2);
    expect_err(tee(p[0], q[1], 10, SPLICE_F_NONBLOCK), "tee of an empty pipe, nonblock");

    /* copy_file_range between a host file and a tmp file, and tmp to tmp. */
    int c3 = open(at("copy3"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    off_t in_off = 100, out_off = 0;
    n = copy_file_range(src, &in_off, c3, &out_off, 50000, 0);
    printf("copy_file_range: %zd, in %lld, out %lld\n", n, (long long)in_off, (long long)out_off);
    n = copy_file_range(c3, NULL, dst, NULL, 1000, 0);
    printf("copy_file_range by file offsets: %zd, offsets %lld %lld\n", n,
           (long long)lseek(c3, 0, SEEK_CUR), (long long)lseek(dst, 0, SEEK_CUR));
    in_off = 0, out_off = 10;
    expect_err(copy_file_range(c3, &in_off, c3, &out_off, 100, 0), "copy_file_range overlapping");
    expect_err(copy_file_range(src, NULL, c3, NULL, 10, 1), "copy_file_range flags");
    expect_err(copy_file_range(src, NULL, p[1], NULL, 10, 0), "copy_file_range to a pipe");
    expect_err(splice(src, NULL, dst, NULL, 10, 0), "splice without a pipe");
    off = 0;
    expect_err(splice(p[0], &off, dst, NULL, 10, 0), "splice with a pipe offset");
    expect_err(sendfile(dst, p[0], NULL, 10), "sendfile from a pipe");
    expect_err(sendfile(dst, 999, NULL, 10), "sendfile from a bad fd");
    expect_err(splice(p[0], NULL, dst, NULL, 10, SPLICE_F_NONBLOCK), "splice of an empty pipe, nonblock");

    /* A large sendfile into a pipe blocks until a reader in another
     * process drains it. */
    int r[2];
    check(pipe(r) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(r[1]);
        static unsigned char buf[1 << 16];
        uint32_t h = 2166136261u;
        long total = 0;
        ssize_t m;
        while ((m = read(r[0], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < m; i++)
                h = (h ^ buf[i]) * 16777619u;
            total += m;
        }
        printf("reader got %ld bytes, same %d\n", total, h == want);
        _exit(0);
    }
    close(r[0]);
    off = 0;
    done = 0;
    while (done < srcsize) {
        n = sendfile(r[1], src, &off, srcsize - done);
        check(n > 0, "sendfile to a pipe");
        done += n;
    }
    close(r[1]);
    int st;
    waitpid(pid, &st, 0);
    printf("sent %lld bytes through a pipe\n", (long long)done);

    /* A pipe whose reader is gone: EPIPE (and SIGPIPE, ignored here). */
    signal(SIGPIPE, SIG_IGN);
    int w[2];
    check(pipe(w) == 0, "pipe");
    close(w[0]);
    off = 0;
    expect_err(sendfile(w[1], src, &off, 10), "sendfile to a closed pipe");
}

/* Lock helpers. */
static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void getlk(int fd, int cmd, short type, off_t start, off_t len, pid_t expect_pid) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    check(fcntl(fd, cmd, &fl) == 0, "F_GETLK");
    if (fl.l_type == F_UNLCK) {
        printf("  getlk [%lld,+%lld): unlocked\n", (long long)start, (long long)len);
        return;
    }
    printf("  getlk [%lld,+%lld): %s [%lld,+%lld) pid %s\n", (long long)start, (long long)len,
           fl.l_type == F_WRLCK ? "write" : "read", (long long)fl.l_start, (long long)fl.l_len,
           fl.l_pid == expect_pid ? "as expected" : fl.l_pid == -1 ? "-1" : "OTHER");
}

/* Step a child and its parent in lock-step over two pipes. */
static int to_child[2], to_parent[2];
static void signal_peer(int fd) { check(write(fd, "x", 1) == 1, "step write"); }
static void wait_peer(int fd) {
    char c;
    check(read(fd, &c, 1) == 1, "step read");
}

static void do_locks(void) {
    const char *f = at("lockfile");
    int fd1 = open(f, O_RDWR | O_CREAT, 0644);
    int fd2 = open(f, O_RDWR);
    check(fd1 >= 0 && fd2 >= 0, "open");
    check(ftruncate(fd1, 1000) == 0, "ftruncate");

    /* flock: per open file description. */
    printf("flock ex fd1: %d\n", flock(fd1, LOCK_EX));
    expect_err(flock(fd2, LOCK_EX | LOCK_NB), "flock ex fd2 while fd1 holds ex");
    expect_err(flock(fd2, LOCK_SH | LOCK_NB), "flock sh fd2 while fd1 holds ex");
    int fd3 = dup(fd1);
    printf("flock ex through a dup of fd1: %d\n", flock(fd3, LOCK_EX | LOCK_NB));
    close(fd3);
    printf("flock un fd1: %d\n", flock(fd1, LOCK_UN));
    printf("flock sh fd2: %d, sh fd1: %d\n", flock(fd2, LOCK_SH | LOCK_NB), flock(fd1, LOCK_SH | LOCK_NB));
    expect_err(flock(fd1, LOCK_EX | LOCK_NB), "flock ex fd1 while fd2 holds sh");
    close(fd2);
    printf("flock ex fd1 after fd2 closed: %d\n", flock(fd1, LOCK_EX | LOCK_NB));
    expect_err(flock(fd1, 0), "flock op 0");
    expect_err(flock(fd1, LOCK_SH | LOCK_EX), "flock sh|ex");
    fflush(stdout);

    /* A blocking flock in another process waits for the unlock. */
    check(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        int mine = open(f, O_RDWR);
        signal_peer(to_parent[1]);
        check(flock(mine, LOCK_EX) == 0, "blocking flock");
        printf("child: got the flock\n");
        fflush(stdout);
        _exit(0);
    }
    wait_peer(to_parent[0]);
    msleep(100);
    printf("parent: releasing the flock\n");
    fflush(stdout);
    flock(fd1, LOCK_UN);
    int st;
    waitpid(pid, &st, 0);
    /* The child exited holding it: the lock went with its file. */
    printf("flock ex after the holder exited: %d\n", flock(fd1, LOCK_EX | LOCK_NB));
    flock(fd1, LOCK_UN);

    /* POSIX record locks: per process. */
    printf("posix: parent write-locks [0,+100)\n");
    check(setlk(fd1, F_SETLK, F_WRLCK, 0, 100) == 0, "F_SETLK");
    fd2 = open(f, O_RDWR);
    printf("own lock does not conflict: %d\n", setlk(fd2, F_SETLK, F_WRLCK, 50, 10));
    getlk(fd2, F_GETLK, F_WRLCK, 0, 0, 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int mine = open(f, O_RDWR);
        getlk(mine, F_GETLK, F_WRLCK, 50, 10, getppid());
        getlk(mine, F_GETLK, F_RDLCK, 100, 50, getppid());
        printf("  child write [100,+100): %d\n", setlk(mine, F_SETLK, F_WRLCK, 100, 100));
        expect_err(setlk(mine, F_SETLK, F_RDLCK, 10, 10), "  child read [10,+10)");
        fflush(stdout);
        signal_peer(to_parent[1]);
        wait_peer(to_child[0]); /* parent unlocked [0,+50) */
        printf("  child read [10,+10) after the parent's partial unlock: %d\n",
               setlk(mine, F_SETLK, F_RDLCK, 10, 10));
        expect_err(setlk(mine, F_SETLK, F_RDLCK, 60, 10), "  child read [60,+10)");
        fflush(stdout);
        signal_peer(to_parent[1]);
        /* Block until the parent closes a descriptor of the file. */
        check(setlk(mine, F_SETLKW, F_WRLCK, 60, 10) == 0, "F_SETLKW");
        printf("  child: F_SETLKW got [60,+10)\n");
        fflush(stdout);
        signal_peer(to_parent[1]);
        wait_peer(to_child[0]);
        _exit(0);
    }
    wait_peer(to_parent[0]);
    getlk(fd1, F_GETLK, F_WRLCK, 150, 1, pid);
    check(setlk(fd1, F_SETLK, F_UNLCK, 0, 50) == 0, "unlock");
    signal_peer(to_child[1]);
    wait_peer(to_parent[0]);
    msleep(100);
    printf("parent: closing another descriptor of the file\n");
    fflush(stdout);
    close(fd2); /* POSIX: drops all of the parent's locks on the file */
    wait_peer(to_parent[0]);
    getlk(fd1, F_GETLK, F_RDLCK, 60, 1, pid);
    signal_peer(to_child[1]);
    waitpid(pid, &st, 0);
    getlk(fd1, F_GETLK, F_WRLCK, 0, 0, 0);

    /* OFD locks: per open file description, even in one process. */
    fd2 = open(f, O_RDWR);
    printf("ofd write fd1: %d\n", setlk(fd1, F_OFD_SETLK, F_WRLCK, 0, 10));
    expect_err(setlk(fd2, F_OFD_SETLK, F_WRLCK, 5, 1), "ofd write fd2 over it");
    getlk(fd2, F_OFD_GETLK, F_WRLCK, 0, 0, -1);
    close(fd2);

    /* Bad input. */
    int ro = open(f, O_RDONLY);
    expect_err(setlk(ro, F_SETLK, F_WRLCK, 0, 1), "write lock on a read-only fd");
    expect_err(setlk(fd1, F_SETLK, 7, 0, 1), "lock type 7");
    expect_err(setlk(fd1, F_SETLK, F_RDLCK, -5, 1), "negative start");
    struct flock fl = {.l_type = F_RDLCK, .l_pid = 1};
    expect_err(fcntl(fd1, F_OFD_SETLK, &fl), "ofd lock with l_pid set");
    expect_err(fcntl(fd1, F_SETLK, (void *)8), "bad pointer");
    expect_err(flock(999, LOCK_EX), "flock of a bad fd");
}

static void do_fallocate(void) {
    int fd = open(at("falloc"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "open");
    struct stat st;
    printf("fallocate 0..10000: %d\n", fallocate(fd, 0, 0, 10000));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    printf("keep size 20000: %d\n", fallocate(fd, FALLOC_FL_KEEP_SIZE, 10000, 10000));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    char buf[100];
    memset(buf, 'x', sizeof buf);
    check(pwrite(fd, buf, 100, 0) == 100, "pwrite");
    printf("punch 10..30: %d\n", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 20));
    check(pread(fd, buf, 100, 0) == 100, "pread");
    int zeros = 0;
    for (int i = 0; i < 100; i++)
        zeros += buf[i] == 0;
    printf("zeros after punch: %d, first %c, at 30 %c\n", zeros, buf[0], buf[30]);
    printf("zero range 9990..+20: %d\n", fallocate(fd, FALLOC_FL_ZERO_RANGE, 9990, 20));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    expect_err(fallocate(fd, 0, 0, 0), "len 0");
    expect_err(fallocate(fd, 0, -1, 10), "negative offset");
    expect_err(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10), "punch without keep size");
    int ro = open(at("falloc"), O_RDONLY);
    expect_err(fallocate(ro, 0, 0, 10), "read-only fd");
    int p[2];
    check(pipe(p) == 0, "pipe");
    expect_err(fallocate(p[1], 0, 0, 10), "pipe");
    expect_err(fallocate(fd, 0, 0x7fffffffffffff00LL, 0x1000), "past the largest offset");
}

static long openat2_(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static void try2(int dirfd, const char *path, uint64_t resolve, const char *what) {
    long fd = openat2_(dirfd, path, O_RDONLY, 0, resolve);
    if (fd >= 0) {
        char buf[32] = {0};
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0 && buf[n - 1] == '\n')
            buf[n - 1] = 0;
        printf("%s: opened '%s'\n", what, n >= 0 ? buf : "(unreadable)");
        close(fd);
    } else {
        printf("%s: %s\n", what, strerrorname_np(errno));
    }
}

static void do_openat2(void) {
    check(mkdir(at("root"), 0755) == 0 && mkdir(at("root/a"), 0755) == 0, "mkdir");
    int fd = open(at("root/a/f"), O_WRONLY | O_CREAT, 0644);
    check(fd >= 0 && write(fd, "inside\n", 7) == 7, "write");
    close(fd);
    fd = open(at("outside"), O_WRONLY | O_CREAT, 0644);
    check(fd >= 0 && write(fd, "outside\n", 8) == 8, "write");
    close(fd);
    check(symlink("../..", at("root/a/up")) == 0, "symlink");
    check(symlink("/a/f", at("root/abs")) == 0, "symlink");
    check(symlink("a/f", at("root/rel")) == 0, "symlink");
    check(symlink("rel", at("root/rel2")) == 0, "symlink");
    int root = open(at("root"), O_RDONLY | O_DIRECTORY);
    check(root >= 0, "open root");

    try2(root, "a/f", 0, "a/f");
    try2(root, "a/f", RESOLVE_BENEATH, "a/f beneath");
    try2(root, "../outside", 0, "../outside");
    try2(root, "../outside", RESOLVE_BENEATH, "../outside beneath");
    try2(root, "a/../a/f", RESOLVE_BENEATH, "a/../a/f beneath");
    try2(root, "a/up/outside", RESOLVE_BENEATH, "a/up/outside beneath");
    try2(root, "a/up/outside", 0, "a/up/outside");
    try2(root, "a/up/a/f", RESOLVE_IN_ROOT, "a/up/a/f in root");
    try2(root, "../../../a/f", RESOLVE_IN_ROOT, "../../../a/f in root");
    try2(root, "/a/f", RESOLVE_IN_ROOT, "/a/f in root");
    try2(root, "/a/f", RESOLVE_BENEATH, "/a/f beneath");
    try2(root, "abs", RESOLVE_IN_ROOT, "abs in root");
    try2(root, "abs", RESOLVE_BENEATH, "abs beneath");
    try2(root, "rel2", 0, "rel2");
    try2(root, "rel2", RESOLVE_NO_SYMLINKS, "rel2 no symlinks");
    try2(root, "a/f", RESOLVE_NO_SYMLINKS, "a/f no symlinks");
    char proc_fd[64];
    snprintf(proc_fd, sizeof proc_fd, "/proc/self/fd/%d", root);
    long r = openat2_(AT_FDCWD, proc_fd, O_RDONLY | O_DIRECTORY, 0, 0);
    printf("proc fd link: %s\n", r >= 0 ? "opened" : strerrorname_np(errno));
    r = openat2_(AT_FDCWD, proc_fd, O_RDONLY | O_DIRECTORY, 0, RESOLVE_NO_MAGICLINKS);
    printf("proc fd link, no magic links: %s\n", r >= 0 ? "opened" : strerrorname_np(errno));
    r = openat2_(AT_FDCWD, "/proc/self/status", O_RDONLY, 0, RESOLVE_NO_XDEV);
    printf("/proc from / with no xdev: %s\n", r >= 0 ? "opened" : strerrorname_np(errno));
    r = openat2_(root, "new", O_WRONLY | O_CREAT | O_EXCL, 0600, RESOLVE_BENEATH);
    printf("create beneath: %s\n", r >= 0 ? "opened" : strerrorname_np(errno));

    /* Bad open_how. */
    struct open_how how = {.flags = O_RDONLY};
    expect_err(syscall(SYS_openat2, root, "a/f", &how, 8), "size 8");
    struct {
        struct open_how h;
        uint64_t extra;
    } big = {{.flags = O_RDONLY}, 0};
    r = syscall(SYS_openat2, root, "a/f", &big, sizeof big);
    printf("larger struct, zero tail: %s\n", r >= 0 ? "opened" : strerrorname_np(errno));
    big.extra = 1;
    expect_err(syscall(SYS_openat2, root, "a/f", &big, sizeof big), "larger struct, non-zero tail");
    expect_err(openat2_(root, "a/f", O_RDONLY, 0644, 0), "mode without O_CREAT");
    expect_err(openat2_(root, "a/f", O_RDONLY | (1ULL << 40), 0, 0), "unknown flag");
    expect_err(openat2_(root, "a/f", O_RDONLY, 0, 1 << 10), "unknown resolve bit");
    expect_err(openat2_(root, "a/f", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT), "beneath and in root");
    expect_err(syscall(SYS_openat2, root, "a/f", (void *)8, sizeof how), "bad pointer");
}

static void do_sparse(void) {
    int fd = open(at("sparse"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "open");
    printf("ftruncate 100 GiB: %d\n", ftruncate(fd, 100LL << 30));
    struct stat st;
    fstat(fd, &st);
    printf("size %lld, blocks under 1 MiB: %d\n", (long long)st.st_size, st.st_blocks < 2048);
    printf("pwrite at 50 GiB: %zd\n", pwrite(fd, "end", 3, 50LL << 30));
    char buf[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ssize_t got = pread(fd, buf, 8, 1LL << 30);
    printf("pread in a hole: %zd, zeros %d\n", got, !memcmp(buf, "\0\0\0\0\0\0\0\0", 8));
    got = pread(fd, buf, 3, 50LL << 30);
    printf("pread the data: %zd '%.3s'\n", got, buf);
    printf("pread past the end: %zd\n", pread(fd, buf, 8, 200LL << 30));
    printf("shrink to 4097: %d\n", ftruncate(fd, 4097));
    printf("grow to 8192: %d\n", ftruncate(fd, 8192));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    expect_err(ftruncate(fd, -1), "ftruncate -1");
    expect_err(pwrite(fd, "x", 1, 0x7fffffffffffffffLL), "pwrite at the largest offset");
    char name[300];
    memset(name, 'n', sizeof name);
    snprintf(name, sizeof name, "%s/", dir);
    size_t base = strlen(name);
    memset(name + base, 'n', 255);
    name[base + 255] = 0;
    int f255 = open(name, O_WRONLY | O_CREAT, 0644);
    printf("255-byte name: %s\n", f255 >= 0 ? "created" : strerrorname_np(errno));
    if (f255 >= 0)
        close(f255), unlink(name);
    name[base + 255] = 'n';
    name[base + 256] = 0;
    expect_err(open(name, O_WRONLY | O_CREAT, 0644), "256-byte name");
}

static void do_shm(void) {
    char name[64];
    snprintf(name, sizeof name, "/dev/shm/xfer-shm-%d", getpid());
    int fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    check(fd >= 0 && ftruncate(fd, 3 * 4096) == 0, "create");
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check(p != MAP_FAILED, "mmap shared");
    pid_t c = fork();
    if (c == 0) {
        char *q = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        strcpy(q + 100, "child, own mapping");
        strcpy(p + 5000, "child, inherited mapping");
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("parent's mapping: '%s' '%s'\n", p + 100, p + 5000);
    char buf[64] = {0};
    check(pread(fd, buf, 18, 100) == 18, "pread");
    printf("read(2) sees the mapping: '%s'\n", buf);
    check(pwrite(fd, "by pwrite", 9, 9000) == 9, "pwrite");
    printf("the mapping sees pwrite: '%s'\n", p + 9000);
    check(munmap(p, 3 * 4096) == 0, "munmap");
    memset(buf, 0, sizeof buf);
    check(pread(fd, buf, 24, 5000) == 24, "pread after munmap");
    printf("after munmap, read(2): '%s'\n", buf);
    expect_err((long)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, open(name, O_RDONLY), 0) == -1 ? -1 : 0,
               "shared writable mapping of a read-only fd");
    check(unlink(name) == 0, "unlink");
    /* An unlinked file lives on while open. */
    check(pwrite(fd, "after unlink", 12, 0) == 12 && ftruncate(fd, 20) == 0, "use after unlink");
    struct stat sb;
    fstat(fd, &sb);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 12, 0);
    printf("unlinked: nlink %ld size %lld '%s'\n", (long)sb.st_nlink, (long long)sb.st_size, buf);
    FILE *f = tmpfile();
    check(f != NULL, "tmpfile");
    fputs("tmpfile data", f);
    rewind(f);
    memset(buf, 0, sizeof buf);
    printf("tmpfile: '%s'\n", fgets(buf, sizeof buf, f));
}

static void do_readinto(void) {
    int fd = open("data/src.bin", O_RDONLY);
    check(fd >= 0, "open");
    unsigned char want[8192];
    check(pread(fd, want, sizeof want, 0) == sizeof want, "pread");
    unsigned char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(two != MAP_FAILED && mprotect(two + 4096, 4096, PROT_NONE) == 0, "mmap");
    ssize_t n = pread(fd, two, 8192, 0);
    printf("read across into PROT_NONE: %zd, data right %d\n", n, !memcmp(two, want, 4096));
    expect_err(pread(fd, two + 4096, 10, 0), "read into PROT_NONE");
    check(mprotect(two, 4096, PROT_READ) == 0, "mprotect");
    expect_err(pread(fd, two, 10, 0), "read into a read-only page");
    expect_err(syscall(SYS_read, fd, (void *)0, 10), "read into NULL");
    /* After fork, the child's read lands in its own copy. */
    unsigned char *buf = malloc(100000);
    memset(buf, 'A', 100000);
    pid_t pid = fork();
    if (pid == 0) {
        n = pread(fd, buf, 100000, 0);
        printf("child read %zd\n", n);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    int untouched = 1;
    for (int i = 0; i < 100000; i++)
        untouched &= buf[i] == 'A';
    printf("parent's copy untouched: %d\n", untouched);
    /* A read larger than the file, into a fresh (unpopulated) mapping. */
    size_t big = 64 << 20;
    unsigned char *m = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(m != MAP_FAILED, "mmap big");
    n = pread(fd, m, big, 100);
    printf("big read: %zd, data right %d\n", n, !memcmp(m, want + 100, 8000));
    /* Unaligned start, unaligned length. */
    n = pread(fd, m + 4093, 5000, 3);
    printf("unaligned read: %zd, data right %d\n", n, !memcmp(m + 4093, want + 3, 5000));
}

static void do_fill(void) {
    static char chunk[1 << 20];
    memset(chunk, 'f', sizeof chunk);
    int fd = open(at("fill"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "open");
    long long total = 0;
    ssize_t n;
    while ((n = write(fd, chunk, sizeof chunk)) > 0)
        total += n;
    printf("filled: %s after more than 16 MiB: %d\n", n < 0 ? strerrorname_np(errno) : "EOF",
           total > (16 << 20));
    close(fd);
    check(unlink(at("fill")) == 0, "unlink");
    fd = open(at("again"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    printf("after unlink, a 1 MiB write: %zd\n", write(fd, chunk, sizeof chunk));
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f) {
    (void)st, (void)type, (void)f;
    remove(path);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    strcpy(dir, "/tmp/xfer.XXXXXX");
    check(mkdtemp(dir) != NULL, "mkdtemp");
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "splice"))
        do_splice();
    else if (!strcmp(mode, "locks"))
        do_locks();
    else if (!strcmp(mode, "fallocate"))
        do_fallocate();
    else if (!strcmp(mode, "openat2"))
        do_openat2();
    else if (!strcmp(mode, "sparse"))
        do_sparse();
    else if (!strcmp(mode, "shm"))
        do_shm();
    else if (!strcmp(mode, "readinto"))
        do_readinto();
    else if (!strcmp(mode, "fill"))
        do_fill();
    else {
        fprintf(stderr, "usage: xfer splice|locks|fallocate|openat2\n");
        return 2;
    }
    /* Leave nothing behind in the host's /tmp after a native run. */
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
