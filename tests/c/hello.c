/* hello: prints its arguments and environment, one per line, then a line on
 * stderr. The output is deterministic, so it can be compared byte for byte
 * with a native run. */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("hello, world\n");
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e != NULL; e++)
        printf("env %s\n", *e);
    fflush(stdout);
    fprintf(stderr, "hello on stderr\n");
    return 0;
}
