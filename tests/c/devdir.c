/* /dev takes new entries beside the sentry's devices, as runc's /dev (a
 * tmpfs) does: directories, files, symlinks, renames within it. The
 * devices' names stay taken. Run in the sandbox only (natively it would
 * write the host's /dev). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int listed(const char *name) {
    DIR *d = opendir("/dev");
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        found |= strcmp(e->d_name, name) == 0;
    if (d)
        closedir(d);
    return found;
}

int main(void) {
    printf("mkdir: %d\n", mkdir("/dev/foo", 0755));
    printf("mkdir again: %s\n", mkdir("/dev/foo", 0755) ? strerror(errno) : "ok");
    int fd = open("/dev/foo/bar", O_CREAT | O_WRONLY, 0644);
    printf("write: %zd\n", write(fd, "hi\n", 3));
    close(fd);
    printf("rename: %d\n", rename("/dev/foo/bar", "/dev/foo/baz"));
    char buf[8] = {0};
    fd = open("/dev/foo/baz", O_RDONLY);
    printf("read: %zd %s", read(fd, buf, sizeof buf - 1), buf);
    close(fd);
    printf("rename to /tmp: %s\n", rename("/dev/foo/baz", "/tmp/baz") ? strerror(errno) : "ok");
    printf("symlink: %d\n", symlink("foo/baz", "/dev/link"));
    char target[64] = {0};
    printf("readlink: %zd %s\n", readlink("/dev/link", target, sizeof target - 1), target);
    printf("listed: foo %d link %d null %d shm %d\n", listed("foo"), listed("link"), listed("null"),
           listed("shm"));
    printf("mkdir /dev/null: %s\n", mkdir("/dev/null", 0755) ? strerror(errno) : "ok");
    printf("mkdir /dev/shm: %s\n", mkdir("/dev/shm", 0755) ? strerror(errno) : "ok");
    printf("creat /dev/zero/x: %s\n",
           open("/dev/zero/x", O_CREAT | O_WRONLY, 0644) < 0 ? strerror(errno) : "ok");
    printf("null still: %d\n", (fd = open("/dev/null", O_WRONLY)) >= 0 && write(fd, "x", 1) == 1);
    printf("rmdir non-empty: %s\n", rmdir("/dev/foo") ? strerror(errno) : "ok");
    printf("unlink: %d %d\n", unlink("/dev/link"), unlink("/dev/foo/baz"));
    printf("rmdir: %d\n", rmdir("/dev/foo"));
    printf("gone: %d\n", listed("foo") || access("/dev/foo", F_OK) == 0);
    return 0;
}
