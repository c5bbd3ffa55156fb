/* escape MODE SECRET BUNDLE_CANARY VAR_CANARY: tries to reach host files
 * outside the container root from inside the sandbox.
 *
 * The two canaries are host files OUTSIDE the bundle's rootfs: one in the
 * bundle directory (rootfs/..), one at an absolute host path (/var/tmp/...).
 * Both hold SECRET. Their host paths are given as arguments, exactly as the
 * host sees them. Every technique prints one line:
 *
 *   ok NAME        the secret was not obtained (and the host object was
 *                  not reached: no stat of it, no listing of its directory)
 *   ESCAPED NAME   it was
 *   FAIL NAME ...  something else went wrong (a write that should fail with
 *                  EROFS did not, say)
 *
 * and the program ends with "end N" (N lines before it).
 *
 * The rootfs is expected to hold (the test creates them on the host):
 *   /evil        -> VAR_CANARY                   (absolute symlink)
 *   /evildir     -> dirname(VAR_CANARY)          (absolute symlink, dir)
 *   /up          -> ..                           (the bundle directory)
 *   /upup        -> ../../../../../../../../..   (the host's /)
 *   /etc/deep    -> ../../../../../../../../../..dirname(VAR_CANARY)
 *   /etc/benign  a file holding "benign\n"
 *   /hardlinked  a hard link to a file outside the rootfs holding
 *                "image-hardlink\n"
 *   /etc/victim, /etc/victim2, ... /etc/victimdir/ for the write modes
 *
 * MODE (the read groups run with a writable root, so that symlinks and
 * hard links can be made in the overlay too):
 *   dotdot, image-symlinks, symlinks, proc, opath, hardlinks, race, bind
 *              techniques that try to read (or stat, list, exec) a canary
 *   write      writes, renames and deletions of image files and through
 *              image symlinks (root writable); the test checks the host
 *   readonly   every kind of write to the root fails with EROFS
 *   native     the `..` techniques, run on the host as a control: there
 *              they DO escape
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

struct open_how_ {
    unsigned long long flags, mode, resolve;
};

static const char *secret;
static const char *canary_c; /* bundle canary, host path */
static const char *canary_v; /* /var/tmp canary, host path */
static char name_c[PATH_MAX], dir_c[PATH_MAX], name_v[PATH_MAX], dir_v[PATH_MAX];
static int lines;

/* "../" repeated n times, then `rest` (with its leading '/' dropped). */
static const char *ups(int n, const char *rest) {
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    b[0] = 0;
    for (int i = 0; i < n; i++)
        strcat(b, "../");
    strcat(b, rest[0] == '/' ? rest + 1 : rest);
    return b;
}

static const char *cat2(const char *a, const char *b) {
    static char bufs[8][PATH_MAX];
    static int next;
    char *out = bufs[next++ % 8];
    snprintf(out, PATH_MAX, "%s%s", a, b);
    return out;
}

static void report(const char *name, int escaped) {
    printf("%s %s\n", escaped ? "ESCAPED" : "ok", name);
    fflush(stdout);
    lines++;
}

static void fail(const char *name, const char *why) {
    printf("FAIL %s %s\n", name, why);
    fflush(stdout);
    lines++;
}

/* Whether `fd` reads back the secret. */
static int fd_leaks(int fd) {
    char buf[8192];
    size_t tot = 0;
    ssize_t n;
    while (tot < sizeof buf - 1 && (n = read(fd, buf + tot, sizeof buf - 1 - tot)) > 0)
        tot += (size_t)n;
    buf[tot] = 0;
    return strstr(buf, secret) != NULL;
}

/* The host identity of the canaries, as the host saw them. */
static struct stat st_c, st_v;

static int is_canary(const struct stat *st) {
    return st->st_size == st_c.st_size &&
           (st->st_ino == st_c.st_ino || st->st_ino == st_v.st_ino);
}

static int fd_is_canary(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && is_canary(&st);
}

/* Opens `path` relative to `dirfd` every way that could hand back the
 * canary: read it, and fstat it. */
static int openat_leaks(int dirfd, const char *path, int flags) {
    int fd = openat(dirfd, path, flags | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int r = fd_is_canary(fd) || ((flags & O_PATH) == 0 && fd_leaks(fd));
    close(fd);
    return r;
}

static int path_leaks(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && is_canary(&st))
        return 1;
    if (lstat(path, &st) == 0 && is_canary(&st))
        return 1;
    return openat_leaks(AT_FDCWD, path, O_RDONLY) || openat_leaks(AT_FDCWD, path, O_PATH);
}

/* Whether listing directory `path` shows a canary's name. */
static int dir_leaks(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, name_c) == 0 || strcmp(e->d_name, name_v) == 0 ||
            strcmp(e->d_name, "config.json") == 0)
            r = 1;
    closedir(d);
    return r;
}

/* Whether `path` opens and reads "benign\n" (/etc/benign of the image):
 * the positive controls, showing the paths tried do resolve, inside. */
static int reads_benign(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        return 0;
    }
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n != 7 || strcmp(buf, "benign\n") != 0) {
        fprintf(stderr, "read %s: %zd bytes\n", path, n);
        return 0;
    }
    return 1;
}

static void control(const char *name, int works) {
    if (works)
        report(name, 0);
    else
        fail(name, "(see stderr)");
}

/* Both canaries, reached as `prefix` + their host paths. */
static int both_leak(const char *prefix) {
    return path_leaks(cat2(prefix, canary_c)) || path_leaks(cat2(prefix, canary_v));
}

/* execve of `path` in a child: ok only when it is not found. A canary is a
 * non-ELF file with mode 0755, so reaching it fails with ENOEXEC. */
static int exec_leaks(const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {(char *)path, NULL};
        char *envp[] = {NULL};
        execve(path, argv, envp);
        _exit(errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* chdir to `dir` and look for a canary there; back to / afterwards. */
static int chdir_leaks(const char *dir) {
    int r = 0;
    if (chdir(dir) == 0)
        r = dir_leaks(".") || path_leaks(name_c) || path_leaks(name_v) ||
            path_leaks(ups(30, canary_v)) || path_leaks(ups(30, canary_c));
    if (chdir("/") != 0)
        r = 1;
    return r;
}

static int write_file(const char *path, int flags, const char *data);
static int openat2_leaks(int dirfd, const char *path, unsigned long long resolve);

static void split_path(const char *path, char *dir, char *name) {
    const char *slash = strrchr(path, '/');
    snprintf(name, PATH_MAX, "%s", slash + 1);
    snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
    if (!dir[0])
        strcpy(dir, "/");
}

/* ------------------------------------------------------------------ */

static void dotdot(void) {
    report("dotdot-abs-bundle-canary", path_leaks(cat2("/../../../../../../../../../..", canary_c)));
    report("dotdot-abs-var-canary", path_leaks(cat2("/../../../../../../../../../..", canary_v)));
    report("dotdot-listing-above-root",
           dir_leaks("/..") || dir_leaks("/../..") || dir_leaks(cat2("/../../../../../..", dir_c)));
    int r = chdir("/") != 0;
    r |= path_leaks(ups(30, canary_c)) || path_leaks(ups(30, canary_v)) || dir_leaks("..");
    report("dotdot-rel-from-root", r);
    r = chdir("/etc") != 0;
    r |= path_leaks(ups(30, canary_c)) || path_leaks(ups(30, canary_v)) || dir_leaks("../..");
    report("dotdot-rel-from-subdir", r);
    r = chdir("/tmp") != 0; /* a mount of its own */
    r |= path_leaks(ups(30, canary_c)) || path_leaks(ups(30, canary_v));
    report("dotdot-rel-from-tmp-mount", r);
    r = chdir("/") != 0;
    for (int i = 0; i < 10; i++)
        r |= chdir("..") != 0;
    char cwd[PATH_MAX];
    r |= getcwd(cwd, sizeof cwd) == NULL || strcmp(cwd, "/") != 0;
    r |= chdir("/") != 0;
    report("dotdot-chdir-above-root", r);
    int dfd = open("/etc", O_RDONLY | O_DIRECTORY);
    r = dfd < 0 || openat_leaks(dfd, ups(30, canary_c), O_RDONLY) ||
        openat_leaks(dfd, ups(30, canary_v), O_RDONLY);
    if (dfd >= 0)
        close(dfd);
    report("dotdot-openat-dirfd", r);
}

static void image_symlinks(void) {
    report("image-symlink-abs-open", path_leaks("/evil") || path_leaks("/evildir/") ||
                                         path_leaks(cat2("/evildir/", name_v)));
    report("image-symlink-abs-exec", exec_leaks("/evil"));
    report("image-symlink-abs-chdir", chdir_leaks("/evildir"));
    report("image-symlink-rel-up", path_leaks(cat2("/up/", name_c)) || dir_leaks("/up") ||
                                       path_leaks(cat2("/up/up/", name_c)) ||
                                       chdir_leaks("/up"));
    report("image-symlink-rel-to-host-root",
           both_leak("/upup") || dir_leaks(cat2("/upup", dir_c)) || chdir_leaks("/upup"));
    report("image-symlink-rel-in-subdir",
           path_leaks(cat2("/etc/deep/", name_v)) || chdir_leaks("/etc/deep"));
    control("image-symlinks-resolve-in-root",
            reads_benign("/up/etc/benign") && reads_benign("/upup/etc/benign") &&
                reads_benign("/up/up/upup/../etc/benign"));
}

/* A bind mount at /data of the host directory BUNDLE/bindsrc, which holds
 * "benign" and symlinks up -> .., abs -> BUNDLE_CANARY, varabs ->
 * VAR_CANARY. The bind source's parent on the host is the bundle
 * directory, where the bundle canary lives. */
static void bind_mount(void) {
    report("bind-dotdot", both_leak("/data/../../../../../..") ||
                              path_leaks(cat2("/data/../", name_c)) || dir_leaks("/data/.."));
    int r = chdir("/data") != 0;
    r |= path_leaks(cat2("../", name_c)) || path_leaks(ups(30, canary_c)) ||
         path_leaks(ups(30, canary_v)) || dir_leaks("..");
    r |= chdir("/") != 0;
    report("bind-rel-dotdot-from-inside", r);
    report("bind-source-symlink-up", path_leaks(cat2("/data/up/", name_c)) ||
                                         dir_leaks("/data/up") || chdir_leaks("/data/up") ||
                                         path_leaks(cat2("/data/up/up/", name_c)));
    report("bind-source-symlink-abs", path_leaks("/data/abs") || path_leaks("/data/varabs") ||
                                          exec_leaks("/data/varabs"));
    int dfd = open("/data", O_RDONLY | O_DIRECTORY);
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d/../", dfd);
    r = dfd < 0 || openat_leaks(dfd, cat2("../", name_c), O_RDONLY) ||
        openat_leaks(dfd, ups(30, canary_v), O_RDONLY) || path_leaks(cat2(p, name_c));
    for (unsigned long long res = 0; res <= 0x1f; res++)
        r |= openat2_leaks(dfd, cat2("../", name_c), res) ||
             openat2_leaks(dfd, cat2("up/", name_c), res) || openat2_leaks(dfd, "abs", res);
    if (dfd >= 0)
        close(dfd);
    report("bind-dirfd-dotdot-and-openat2", r);
    /* up -> .. stops at the bind's own root: /data/up/benign is /data/benign */
    control("bind-resolves-inside-its-source",
            reads_benign("/data/benign") && reads_benign("/data/up/benign") &&
                reads_benign("/data/up/up/benign"));
    /* a read-only bind refuses every write with EROFS (read-write binds,
     * which write through to the host, are tested in binds.rs) */
    r = 0;
    if (write_file("/data/benign", O_WRONLY | O_TRUNC, "pwned\n") == 0 || errno != EROFS)
        fprintf(stderr, "overwrite /data/benign: %s\n", strerror(errno)), r = 1;
    if (write_file("/data/new", O_WRONLY | O_CREAT, "new\n") == 0 || errno != EROFS)
        fprintf(stderr, "create /data/new: %s\n", strerror(errno)), r = 1;
    if (unlink("/data/abs") == 0 || errno != EROFS)
        fprintf(stderr, "unlink /data/abs: %s\n", strerror(errno)), r = 1;
    struct stat st;
    if (access("/data/new", F_OK) == 0 || lstat("/data/abs", &st) != 0)
        fprintf(stderr, "a refused change to /data shows\n"), r = 1;
    if (write_file(cat2("/data/up/", name_c), O_WRONLY | O_TRUNC, "pwned\n") == 0 ||
        unlink(cat2("/data/up/", name_c)) == 0)
        fprintf(stderr, "a write through /data/up worked\n"), r = 1;
    if (r)
        fail("bind-ro-refuses-writes", strerror(errno));
    else
        report("bind-ro-refuses-writes", 0);
}

/* Symlinks the program makes, in `dir` ("/tmp" or "" for the root). */
static void own_symlinks(const char *dir, const char *tag) {
    char a[PATH_MAX], b[PATH_MAX], d1[PATH_MAX], d2[PATH_MAX], rel[PATH_MAX], relv[PATH_MAX];
    snprintf(a, sizeof a, "%s/sl-c", dir);
    snprintf(b, sizeof b, "%s/sl-v", dir);
    snprintf(d1, sizeof d1, "%s/sl-dc", dir);
    snprintf(d2, sizeof d2, "%s/sl-dv", dir);
    snprintf(rel, sizeof rel, "%s/sl-rel", dir);
    snprintf(relv, sizeof relv, "%s/sl-relv", dir);
    char name[128];
    int made = symlink(canary_c, a) == 0 && symlink(canary_v, b) == 0 &&
               symlink(dir_c, d1) == 0 && symlink(dir_v, d2) == 0 &&
               symlink(ups(30, canary_c), rel) == 0 && symlink(ups(30, canary_v), relv) == 0;
    if (!made) {
        snprintf(name, sizeof name, "symlink-%s-create", tag);
        fail(name, strerror(errno));
        return;
    }
    snprintf(name, sizeof name, "symlink-%s-abs-open", tag);
    report(name, path_leaks(a) || path_leaks(b));
    snprintf(name, sizeof name, "symlink-%s-abs-exec", tag);
    report(name, exec_leaks(a) || exec_leaks(b));
    snprintf(name, sizeof name, "symlink-%s-abs-chdir", tag);
    report(name, chdir_leaks(d1) || chdir_leaks(d2) || dir_leaks(d1) || dir_leaks(d2));
    char buf[PATH_MAX];
    ssize_t n = readlink(b, buf, sizeof buf - 1);
    int r = n < 0;
    if (n >= 0) {
        buf[n] = 0;
        r = strcmp(buf, canary_v) != 0; /* just the text we wrote */
    }
    snprintf(name, sizeof name, "symlink-%s-readlink", tag);
    report(name, r);
    snprintf(name, sizeof name, "symlink-%s-rel-dotdot", tag);
    report(name, path_leaks(rel) || path_leaks(relv) || exec_leaks(relv));
    /* through a symlink to a directory, then `..` */
    char viadir[PATH_MAX];
    snprintf(viadir, sizeof viadir, "%s/sl-dc/../../../../../..", dir);
    snprintf(name, sizeof name, "symlink-%s-dir-then-dotdot", tag);
    report(name, path_leaks(cat2(viadir, canary_c)) || path_leaks(cat2(viadir, canary_v)));
    unlink(a), unlink(b), unlink(d1), unlink(d2), unlink(rel), unlink(relv);
}

static void procfs(void) {
    report("proc-self-root-dotdot", both_leak("/proc/self/root/../../../../..") ||
                                        both_leak("/proc/self/root") ||
                                        dir_leaks("/proc/self/root/.."));
    report("proc-1-root", both_leak("/proc/1/root") || both_leak("/proc/1/root/../../../.."));
    report("proc-thread-self-root", both_leak("/proc/thread-self/root/../../.."));
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/root", buf, sizeof buf - 1);
    report("proc-self-root-is-slash", !(n == 1 && buf[0] == '/'));
    int r = chdir("/etc") != 0;
    r |= both_leak("/proc/self/cwd/../../../../../..") || dir_leaks("/proc/self/cwd/../..");
    r |= chdir("/") != 0;
    report("proc-self-cwd-dotdot", r);
    int dfd = open("/etc", O_RDONLY | O_DIRECTORY);
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d/../../../../../..", dfd);
    r = dfd < 0 || both_leak(p);
    snprintf(p, sizeof p, "/proc/self/fd/%d/..", dfd);
    r |= dir_leaks(p);
    /* the magic link as a directory fd for openat */
    snprintf(p, sizeof p, "/proc/self/fd/%d", dfd);
    int via = open(p, O_RDONLY | O_DIRECTORY);
    if (via >= 0) {
        r |= openat_leaks(via, ups(30, canary_c), O_RDONLY) ||
             openat_leaks(via, ups(30, canary_v), O_RDONLY);
        close(via);
    }
    close(dfd);
    report("proc-self-fd-dir-dotdot", r);
    int lfd = open("/evil", O_PATH | O_NOFOLLOW);
    r = 0;
    if (lfd >= 0) {
        snprintf(p, sizeof p, "/proc/self/fd/%d", lfd);
        r = path_leaks(p);
        close(lfd);
    }
    report("proc-self-fd-of-opath-symlink", r);
    int ok = reads_benign("/proc/self/root/etc/benign") && reads_benign("/proc/1/root/etc/benign") &&
             reads_benign("/proc/thread-self/root/etc/benign");
    ok &= chdir("/etc") == 0 && reads_benign("/proc/self/cwd/benign") && chdir("/") == 0;
    dfd = open("/etc", O_RDONLY | O_DIRECTORY);
    snprintf(p, sizeof p, "/proc/self/fd/%d/benign", dfd);
    ok &= dfd >= 0 && reads_benign(p);
    close(dfd);
    control("proc-magic-links-reach-the-sandbox-root", ok);
}

static long openat2_(int dirfd, const char *path, unsigned long long resolve) {
    struct open_how_ how = {O_RDONLY | O_CLOEXEC, 0, resolve};
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int openat2_leaks(int dirfd, const char *path, unsigned long long resolve) {
    long fd = openat2_(dirfd, path, resolve);
    if (fd < 0)
        return 0;
    int r = fd_is_canary((int)fd) || fd_leaks((int)fd);
    close((int)fd);
    return r;
}

static void opath(void) {
    int root = open("/", O_PATH | O_DIRECTORY);
    report("opath-root-openat-dotdot",
           root < 0 || openat_leaks(root, ups(30, canary_c), O_RDONLY) ||
               openat_leaks(root, ups(30, canary_v), O_RDONLY) ||
               openat_leaks(root, ups(30, canary_v), O_PATH));
    int etc = open("/etc", O_PATH | O_DIRECTORY);
    int r = etc < 0 || fchdir(etc) != 0;
    r |= path_leaks(ups(30, canary_c)) || path_leaks(ups(30, canary_v)) || dir_leaks("../../..");
    r |= chdir("/") != 0;
    report("opath-fchdir-dotdot", r);
    r = 0;
    for (unsigned long long res = 0; res <= 0x1f; res++) {
        r |= openat2_leaks(root, ups(30, canary_c), res) ||
             openat2_leaks(root, ups(30, canary_v), res) ||
             openat2_leaks(etc, ups(30, canary_v), res) || openat2_leaks(root, "evil", res) ||
             openat2_leaks(root, "/evil", res) ||
             openat2_leaks(root, cat2("upup", canary_v), res) ||
             openat2_leaks(AT_FDCWD, cat2("/proc/self/root/../../..", canary_v), res) ||
             openat2_leaks(AT_FDCWD, cat2("/upup", canary_c), res);
    }
    report("openat2-all-resolve-flags", r);
    r = openat2_(root, "../etc/benign", RESOLVE_BENEATH) >= 0 || errno != EXDEV;
    report("openat2-beneath-refuses-dotdot", r);
    /* AT_EMPTY_PATH on O_PATH fds of escaping symlinks: the image's, and
     * ones made in /tmp and in the overlay. */
    r = 0;
    int made = symlink(canary_v, "/tmp/opl") == 0 && symlink(canary_v, "/opl") == 0 &&
               symlink(ups(30, canary_c), "/tmp/oplr") == 0;
    if (!made)
        fprintf(stderr, "symlink for O_PATH: %s\n", strerror(errno)), r = 1;
    const char *links[] = {"/evil", "/tmp/opl", "/opl", "/tmp/oplr"};
    int lfds[4];
    struct stat st;
    for (int i = 0; i < 4; i++) {
        int lfd = lfds[i] = open(links[i], O_PATH | O_NOFOLLOW);
        if (lfd < 0) {
            /* The sentry cannot (yet) hand out an O_PATH fd of a symlink of
             * the image: nothing to misuse then. Its own symlinks must work. */
            fprintf(stderr, "open(%s, O_PATH|O_NOFOLLOW): %s\n", links[i], strerror(errno));
            if (i > 0)
                r = 1;
            continue;
        }
        int e = fstatat(lfd, "", &st, AT_EMPTY_PATH);
        if (e != 0 || !S_ISLNK(st.st_mode) || is_canary(&st))
            fprintf(stderr, "fstatat(%s O_PATH fd, AT_EMPTY_PATH): %d %s mode %o\n", links[i], e,
                    strerror(errno), st.st_mode), r = 1;
        if (openat_leaks(lfd, "", O_RDONLY) || openat_leaks(lfd, "", O_PATH))
            fprintf(stderr, "openat(%s O_PATH fd, \"\") leaks\n", links[i]), r = 1;
        if (openat2_leaks(lfd, "", 0))
            fprintf(stderr, "openat2(%s O_PATH fd, \"\") leaks\n", links[i]), r = 1;
        if (open(links[i], O_PATH) >= 0) /* following it finds nothing */
            fprintf(stderr, "open(%s, O_PATH) succeeded\n", links[i]), r = 1;
    }
    if (fstatat(root, "", &st, AT_EMPTY_PATH) != 0 || is_canary(&st))
        fprintf(stderr, "fstatat(root, AT_EMPTY_PATH)\n"), r = 1;
    report("opath-at-empty-path", r);
    r = 0;
    for (int i = 0; i < 4; i++) {
        if (lfds[i] >= 0 && linkat(lfds[i], "", AT_FDCWD, "/tmp/lk-empty", AT_EMPTY_PATH) == 0) {
            r |= path_leaks("/tmp/lk-empty");
            unlink("/tmp/lk-empty");
        }
        if (linkat(AT_FDCWD, links[i], AT_FDCWD, "/tmp/lk-follow", AT_SYMLINK_FOLLOW) == 0) {
            r |= path_leaks("/tmp/lk-follow");
            unlink("/tmp/lk-follow");
        }
        if (lfds[i] >= 0)
            close(lfds[i]);
    }
    if (linkat(root, ups(30, canary_v), AT_FDCWD, "/tmp/lk-dotdot", 0) == 0) {
        r |= path_leaks("/tmp/lk-dotdot");
        unlink("/tmp/lk-dotdot");
    }
    report("opath-linkat-empty-path", r);
    unlink("/tmp/opl"), unlink("/opl"), unlink("/tmp/oplr");
    close(etc);
    close(root);
}

static void hardlinks(void) {
    int r = 0;
    const char *srcs[] = {canary_c, canary_v, ups(30, canary_v), "/evil",
                          cat2("/upup", canary_v), cat2("/up/", name_c)};
    const char *dsts[] = {"/tmp/hl", "/hl"};
    for (unsigned i = 0; i < sizeof srcs / sizeof *srcs; i++)
        for (unsigned j = 0; j < 2; j++) {
            if (link(srcs[i], dsts[j]) == 0) {
                r |= path_leaks(dsts[j]);
                unlink(dsts[j]);
            }
            if (linkat(AT_FDCWD, srcs[i], AT_FDCWD, dsts[j], AT_SYMLINK_FOLLOW) == 0) {
                r |= path_leaks(dsts[j]);
                unlink(dsts[j]);
            }
        }
    report("hardlink-to-host-paths", r);
    /* By design: a hard link in the image is part of the image. */
    int fd = open("/hardlinked", O_RDONLY);
    char buf[64] = {0};
    r = fd < 0 || read(fd, buf, sizeof buf - 1) < 0 || strcmp(buf, "image-hardlink\n") != 0;
    if (fd >= 0)
        close(fd);
    report("hardlink-in-image-readable-by-design", r);
}

/* ---- symlink race ---- */

struct race {
    const char *link;
    const char *tmp;
    const char *benign;
    const char *evil[3];
    volatile int stop;
    /* What the flipper did, for the report: flips, and the errno that
     * ended it early (0: it was stopped). */
    unsigned flips;
    int broke;
};

static void *flipper(void *arg) {
    struct race *rc = arg;
    unsigned i = 0;
    while (!rc->stop) {
        const char *target = (i % 2 == 0) ? rc->benign : rc->evil[(i / 2) % 3];
        unlink(rc->tmp);
        if (symlink(target, rc->tmp) == 0)
            rename(rc->tmp, rc->link);
        /* and sometimes a plain unlink + symlink, leaving a window */
        if (i % 7 == 0) {
            unlink(rc->link);
            if (symlink(rc->evil[i % 3], rc->link) != 0) {
                rc->broke = errno;
                break;
            }
        }
        i++;
        rc->flips = i;
        sched_yield();
    }
    return NULL;
}

static void race(const char *tag, const char *dir, const char *benign, const char *suffix) {
    char link[PATH_MAX], tmp[PATH_MAX], name[128], evil2[PATH_MAX], opened[PATH_MAX];
    snprintf(link, sizeof link, "%s/race", dir);
    snprintf(tmp, sizeof tmp, "%s/race.new", dir);
    snprintf(evil2, sizeof evil2, "%s", ups(30, canary_c));
    struct race rc = {link, tmp, benign, {canary_v, evil2, "/upup"}, 0, 0, 0};
    if (suffix[0]) {
        /* a directory component flips: benign dir vs the canary's dir */
        rc.evil[0] = dir_v;
        rc.evil[1] = dir_c;
        rc.evil[2] = "/evildir";
    }
    snprintf(opened, sizeof opened, "%s%s", link, suffix);
    symlink(benign, link);
    pthread_t t;
    int r = 0, benign_opens = 0, failed_opens = 0;
    if (pthread_create(&t, NULL, flipper, &rc) != 0) {
        snprintf(name, sizeof name, "symlink-race-%s", tag);
        fail(name, "pthread_create");
        return;
    }
    struct timeval start, now;
    gettimeofday(&start, NULL);
    /* 20,000 opens, and on until both outcomes were seen (a loaded host
     * may leave the flipper no CPU for a while), within the time bound. */
    for (int i = 0; i < 20000 || benign_opens == 0 || failed_opens == 0; i++) {
        int fd = open(opened, O_RDONLY);
        if (fd >= 0) {
            if (fd_is_canary(fd)) {
                r = 1;
            } else {
                char buf[256];
                ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
                if (n > 0) {
                    buf[n] = 0;
                    if (strstr(buf, secret))
                        r = 1;
                    else if (strcmp(buf, "benign\n") == 0)
                        benign_opens++;
                }
            }
            close(fd);
        } else {
            failed_opens++;
        }
        struct stat st;
        if (stat(opened, &st) == 0 && is_canary(&st))
            r = 1;
        gettimeofday(&now, NULL);
        if (now.tv_sec - start.tv_sec > 8)
            break; /* bounded in time too */
        sched_yield(); /* let the flipper in between any two calls */
    }
    rc.stop = 1;
    pthread_join(t, NULL);
    unlink(link);
    unlink(tmp);
    fprintf(stderr, "race %s: %d benign opens, %d failed; %u flips%s%s\n", tag, benign_opens,
            failed_opens, rc.flips, rc.broke ? ", flipper stopped by " : "",
            rc.broke ? strerror(rc.broke) : "");
    snprintf(name, sizeof name, "symlink-race-%s", tag);
    if (!r && (benign_opens == 0 || failed_opens == 0))
        fail(name, "the link did not flip while it was opened");
    else
        report(name, r);
}

/* ---- writes ---- */

static int write_file(const char *path, int flags, const char *data) {
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, strlen(data));
    close(fd);
    return n == (ssize_t)strlen(data) ? 0 : -1;
}

static void expect_ok(const char *name, int rc) {
    if (rc == 0)
        report(name, 0);
    else
        fail(name, strerror(errno));
}

static void writes(void) {
    expect_ok("write-unlink-image-file", unlink("/etc/victim"));
    expect_ok("write-rename-image-file", rename("/etc/victim2", "/etc/moved"));
    expect_ok("write-truncate-image-file", truncate("/etc/victim3", 0));
    expect_ok("write-overwrite-image-file", write_file("/etc/victim4", O_WRONLY | O_TRUNC, "pwned\n"));
    expect_ok("write-append-image-file", write_file("/etc/victim5", O_WRONLY | O_APPEND, "pwned\n"));
    expect_ok("write-chmod-image-file", chmod("/etc/victim6", 0600));
    struct timeval tv[2] = {{1, 0}, {1, 0}};
    expect_ok("write-utimes-image-file", utimes("/etc/victim7", tv));
    expect_ok("write-rmdir-image-dir", rmdir("/etc/victimdir"));
    expect_ok("write-mkdir-in-image", mkdir("/etc/newdir", 0755));
    expect_ok("write-create-in-image", write_file("/etc/newfile", O_WRONLY | O_CREAT | O_EXCL, "new\n"));
    expect_ok("write-hardlinked-image-file", write_file("/hardlinked", O_WRONLY | O_TRUNC, "pwned\n"));
    expect_ok("write-symlink-in-image", symlink(canary_v, "/etc/newlink"));
    struct stat lst;
    expect_ok("write-unlink-image-symlink",
              unlink("/evil") == 0 && lstat("/evil", &lst) != 0 ? 0 : -1);
    /* the sandbox sees its own changes */
    int fd = open("/etc/victim4", O_RDONLY);
    char buf[64] = {0};
    int r = fd < 0 || read(fd, buf, sizeof buf - 1) < 0 || strcmp(buf, "pwned\n") != 0;
    if (fd >= 0)
        close(fd);
    report("write-visible-inside", r);
    r = access("/etc/victim", F_OK) == 0 || access("/etc/moved", F_OK) != 0;
    report("write-delete-visible-inside", r);
    /* through image symlinks that point outside, and at host paths */
    const char *targets[] = {"/evil",
                             cat2("/evildir/", name_v),
                             cat2("/up/", name_c),
                             cat2("/upup", canary_v),
                             cat2("/upup", canary_c),
                             cat2("/etc/deep/", name_v),
                             canary_v,
                             cat2("/../../../../../..", canary_v),
                             cat2("/proc/self/root/../../..", canary_v)};
    for (unsigned i = 0; i < sizeof targets / sizeof *targets; i++) {
        (void)!write_file(targets[i], O_WRONLY | O_TRUNC, "pwned\n");
        (void)!write_file(targets[i], O_WRONLY | O_APPEND, "pwned\n");
        (void)!truncate(targets[i], 0);
        (void)!chmod(targets[i], 0600);
        (void)!utimes(targets[i], tv);
        (void)!rename(targets[i], "/etc/renamed");
        (void)!unlink(targets[i]);
    }
    report("write-through-escaping-paths-attempted", 0);
    (void)!mkdir(cat2("/up/", "made-by-sandbox"), 0755);
    (void)!write_file(cat2("/up/", "created-by-sandbox"), O_WRONLY | O_CREAT, "x\n");
    (void)!write_file(cat2("/evildir/", "created-by-sandbox"), O_WRONLY | O_CREAT, "x\n");
    (void)!rmdir("/up/rootfs/etc/victimdir2");
    (void)!rename(cat2("/up/", name_c), "/stolen");
    report("write-create-above-root-attempted", 0);
}

static void expect_erofs(const char *name, int rc) {
    if (rc == 0)
        fail(name, "succeeded");
    else if (errno != EROFS)
        fail(name, strerror(errno));
    else
        report(name, 0);
}

static void readonly(void) {
    expect_erofs("erofs-creat", open("/newfile", O_WRONLY | O_CREAT, 0644) < 0 ? -1 : 0);
    expect_erofs("erofs-open-wronly", open("/etc/victim", O_WRONLY) < 0 ? -1 : 0);
    expect_erofs("erofs-open-rdwr", open("/etc/victim", O_RDWR) < 0 ? -1 : 0);
    expect_erofs("erofs-open-trunc", open("/etc/victim", O_WRONLY | O_TRUNC) < 0 ? -1 : 0);
    expect_erofs("erofs-mkdir", mkdir("/newdir", 0755));
    expect_erofs("erofs-rmdir", rmdir("/etc/victimdir"));
    expect_erofs("erofs-unlink", unlink("/etc/victim"));
    expect_erofs("erofs-rename", rename("/etc/victim", "/etc/moved"));
    expect_erofs("erofs-symlink", symlink("/etc/victim", "/newlink"));
    expect_erofs("erofs-link", link("/etc/victim", "/newlink"));
    expect_erofs("erofs-chmod", chmod("/etc/victim", 0600));
    expect_erofs("erofs-chown", chown("/etc/victim", 1, 1));
    expect_erofs("erofs-truncate", truncate("/etc/victim", 0));
    struct timeval tv[2] = {{1, 0}, {1, 0}};
    expect_erofs("erofs-utimes", utimes("/etc/victim", tv));
    expect_erofs("erofs-mknod-fifo", mkfifo("/etc/fifo", 0644));
    expect_erofs("erofs-access-w", access("/etc/victim", W_OK));
    expect_erofs("erofs-via-proc-self-root",
                 open("/proc/self/root/etc/victim", O_WRONLY) < 0 ? -1 : 0);
    expect_erofs("erofs-via-image-symlink", open("/up/etc/victim", O_WRONLY) < 0 ? -1 : 0);
    int fd = open("/etc/victim", O_RDONLY);
    expect_erofs("erofs-fchmod", fd < 0 ? 0 : fchmod(fd, 0600));
    if (fd >= 0)
        close(fd);
    /* /tmp is the sandbox's own and stays writable */
    expect_ok("tmp-still-writable", write_file("/tmp/x", O_WRONLY | O_CREAT, "x\n"));
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: escape MODE SECRET CANARY VAR_CANARY\n");
        return 2;
    }
    const char *mode = argv[1];
    secret = argv[2];
    canary_c = argv[3];
    canary_v = argv[4];
    split_path(canary_c, dir_c, name_c);
    split_path(canary_v, dir_v, name_v);
    /* The canaries' identity: the test passes them as "ino:size" in the
     * environment, as the host sees them. */
    const char *ids = getenv("CANARY_IDS");
    unsigned long long ic = 0, iv = 0;
    long long size = 0;
    if (!ids || sscanf(ids, "%llu:%llu:%lld", &ic, &iv, &size) != 3) {
        fprintf(stderr, "CANARY_IDS=INO_C:INO_V:SIZE missing\n");
        return 2;
    }
    st_c.st_ino = ic, st_v.st_ino = iv, st_c.st_size = st_v.st_size = size;
    if (strcmp(mode, "dotdot") == 0 || strcmp(mode, "native") == 0) {
        dotdot();
    } else if (strcmp(mode, "image-symlinks") == 0) {
        image_symlinks();
    } else if (strcmp(mode, "symlinks") == 0) {
        own_symlinks("/tmp", "tmp");
        own_symlinks("", "overlay");
    } else if (strcmp(mode, "proc") == 0) {
        procfs();
    } else if (strcmp(mode, "opath") == 0) {
        opath();
    } else if (strcmp(mode, "hardlinks") == 0) {
        hardlinks();
    } else if (strcmp(mode, "race") == 0) {
        race("tmp-file", "/tmp", "/etc/benign", "");
        race("overlay-file", "", "/etc/benign", "");
        /* a directory component flips: a benign directory holding a file
         * of the canary's name, and the canary's directory */
        int made = mkdir("/tmp/rdir", 0755) == 0 &&
                   write_file(cat2("/tmp/rdir/", name_v), O_WRONLY | O_CREAT, "benign\n") == 0;
        if (made)
            race("tmp-dir-component", "/tmp", "/tmp/rdir", cat2("/", name_v));
        else
            fail("symlink-race-tmp-dir-component", strerror(errno));
    } else if (strcmp(mode, "bind") == 0) {
        bind_mount();
    } else if (strcmp(mode, "write") == 0) {
        writes();
    } else if (strcmp(mode, "readonly") == 0) {
        readonly();
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("end %d\n", lines);
    return 0;
}
