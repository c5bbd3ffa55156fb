/* A directory of many entries: create N empty files in DIR, stat each,
 * list the directory, rename every tenth, then remove them all. Each step
 * must cost about the same per entry whatever the directory holds (the
 * sentry's tmpfs once copied a directory's whole entry map for each new
 * name: quadratic, minutes for 100,000 names). Prints the counts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp/bigdir";
    long n = argc > 2 ? atol(argv[2]) : 100000;
    char path[512], to[512];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        perror("mkdir");
        return 1;
    }
    long made = 0, seen = 0, listed = 0, moved = 0, gone = 0;
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/file-%ld", dir, i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) {
            printf("create %ld: %s\n", i, strerror(errno));
            break;
        }
        close(fd);
        made++;
    }
    struct stat st;
    for (long i = 0; i < made; i++) {
        snprintf(path, sizeof path, "%s/file-%ld", dir, i);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            seen++;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "file-", 5) == 0)
            listed++;
    if (d)
        closedir(d);
    for (long i = 0; i < made; i += 10) {
        snprintf(path, sizeof path, "%s/file-%ld", dir, i);
        snprintf(to, sizeof to, "%s/moved-%ld", dir, i);
        if (rename(path, to) == 0)
            moved++;
    }
    for (long i = 0; i < made; i++) {
        snprintf(path, sizeof path, "%s/%s-%ld", dir, i % 10 ? "file" : "moved", i);
        if (unlink(path) == 0)
            gone++;
    }
    int empty = rmdir(dir) == 0;
    printf("made %ld, stat %ld, listed %ld, renamed %ld, removed %ld, rmdir %s\n", made, seen,
           listed, moved, gone, empty ? "ok" : strerror(errno));
    return 0;
}
