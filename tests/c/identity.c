/* identity: prints the process's view of who and where it is, one
 * `key=value` per line. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void) {
    struct utsname u;
    if (uname(&u) != 0) {
        perror("uname");
        return 1;
    }
    printf("pid=%d\n", (int)getpid());
    printf("ppid=%d\n", (int)getppid());
    printf("tid=%ld\n", (long)syscall(SYS_gettid));
    printf("uid=%d\n", (int)getuid());
    printf("euid=%d\n", (int)geteuid());
    printf("gid=%d\n", (int)getgid());
    printf("egid=%d\n", (int)getegid());
    printf("sysname=%s\n", u.sysname);
    printf("nodename=%s\n", u.nodename);
    printf("machine=%s\n", u.machine);
    return 0;
}
