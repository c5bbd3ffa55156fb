/* Background process groups on the container's terminal (SIGTTIN and
 * SIGTTOU): a child in a background group that reads the terminal stops
 * with SIGTTIN, and reads once it is the foreground group and continued;
 * with SIGTTIN ignored, its read fails with EIO; a background write goes
 * through, unless TOSTOP is set: then it stops with SIGTTOU. The test types
 * one line ("hello") after "ready". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Runs `child` in a new background process group; its wait status
 * (WUNTRACED: a stop is reported too). */
static int in_background(void (*child)(void), pid_t *pid) {
    pid_t c = fork();
    if (c < 0)
        return -1;
    if (c == 0) {
        setpgid(0, 0);
        child();
        _exit(0);
    }
    setpgid(c, c);
    *pid = c;
    int st;
    if (waitpid(c, &st, WUNTRACED) != c)
        return -1;
    return st;
}

static void reader(void) {
    char buf[64];
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n < 0) {
        printf("read failed: %s\n", strerror(errno));
        _exit(1);
    }
    buf[n] = 0;
    printf("child read: %s", buf);
    _exit(7);
}

static void ignoring_reader(void) {
    signal(SIGTTIN, SIG_IGN);
    char b;
    ssize_t n = read(0, &b, 1);
    printf("SIGTTIN ignored: read %d (%s)\n", (int)n, n < 0 ? strerror(errno) : "data");
}

static void writer(void) {
    signal(SIGTTOU, SIG_DFL);
    printf("background write\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* As shells do: init changes the foreground from the background. */
    signal(SIGTTOU, SIG_IGN);
    pid_t c;
    int st = in_background(reader, &c);
    if (st < 0 || !WIFSTOPPED(st)) {
        printf("reader not stopped: %#x\n", st);
        return 2;
    }
    printf("reader stopped by signal %d\n", WSTOPSIG(st));
    /* Before the reader goes on: a line typed now waits in the terminal,
     * and nothing else writes while the reader reads. */
    printf("ready\n");
    if (tcsetpgrp(0, c) != 0) {
        perror("tcsetpgrp");
        return 3;
    }
    kill(c, SIGCONT);
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
        return 4;
    tcsetpgrp(0, getpgrp());
    printf("reader exited with %d\n", WEXITSTATUS(st));

    st = in_background(ignoring_reader, &c);
    if (!WIFEXITED(st))
        return 5;
    st = in_background(writer, &c);
    if (!WIFEXITED(st))
        return 6;
    struct termios t;
    tcgetattr(0, &t);
    t.c_lflag |= TOSTOP;
    tcsetattr(0, TCSANOW, &t);
    st = in_background(writer, &c);
    if (WIFSTOPPED(st))
        printf("writer stopped by signal %d\n", WSTOPSIG(st));
    else
        printf("writer not stopped: %#x\n", st);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    t.c_lflag &= ~TOSTOP;
    tcsetattr(0, TCSANOW, &t);
    printf("done\n");
    return 0;
}
