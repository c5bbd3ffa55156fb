/* procinfo: what the sandbox's /proc says about the program. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void show_line(const char *file, const char *prefix) {
    FILE *f = fopen(file, "r");
    if (!f) {
        printf("%s: cannot open\n", file);
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, prefix, strlen(prefix)))
            printf("%s: %s", file, line);
    fclose(f);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char buf[256] = {0};
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    printf("exe: %s (%zd)\n", buf, n);
    int fd = open("/proc/self/cmdline", O_RDONLY);
    n = read(fd, buf, sizeof buf);
    close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = ' ';
    printf("cmdline: %.*s\n", (int)n, buf);
    show_line("/proc/self/status", "Pid:");
    show_line("/proc/self/status", "PPid:");
    show_line("/proc/self/maps", "7ff");
    show_line("/proc/meminfo", "MemTotal:");
    show_line("/proc/sys/kernel/hostname", "");
    printf("/proc/1 exists: %d, /proc/2 exists: %d\n", access("/proc/1", F_OK) == 0, access("/proc/2", F_OK) == 0);
    printf("/proc/self/root -> ");
    n = readlink("/proc/self/root", buf, sizeof buf - 1);
    printf("%.*s\n", (int)n, buf);
    return 0;
}
