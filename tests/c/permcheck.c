/* permcheck: mode bits enforced for an unprivileged user. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err(int r) { return r < 0 ? strerror(errno) : "ok"; }

int main(void) {
    printf("uid %d\n", getuid());
    char path[64];
    snprintf(path, sizeof path, "/tmp/rf-perm-%d", getpid() % 7);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    printf("create in /tmp: %s\n", err(fd));
    close(fd);
    printf("chmod 000: %s\n", err(chmod(path, 0)));
    printf("open for reading: %s\n", err(open(path, O_RDONLY)));
    printf("access W: %s\n", err(access(path, W_OK)));
    printf("access X: %s\n", err(access("/tmp", X_OK)));
    printf("mkdir in /: %s\n", err(mkdir("/rf-perm-dir", 0755)));
    printf("chmod /tmp: %s\n", err(chmod("/tmp", 0777)));
    printf("unlink own file: %s\n", err(unlink(path)));
    return 0;
}
