/* The quick-start program: shows what the sandbox looks like from inside. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("hello from inside ringfence\n");
    printf("  pid %d, parent %d, uid %d\n", getpid(), getppid(), getuid());
    printf("  kernel %s %s on host \"%s\"\n", u.sysname, u.release, u.nodename);
    for (int i = 1; i < argc; i++)
        printf("  arg %d: %s\n", i, argv[i]);
    return 0;
}
