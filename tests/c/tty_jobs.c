/* Job control on the container's terminal: init puts a child in its own
 * process group and makes it the terminal's foreground group. ^C typed on
 * the terminal must then kill the child only; once init is the foreground
 * group again, ^C reaches init. The test types the ^Cs. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_int;

static void on_int(int sig) {
    (void)sig;
    got_int++;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGINT, on_int);
    /* As shells do: a background tcsetpgrp would otherwise stop us. */
    signal(SIGTTOU, SIG_IGN);
    if (tcgetpgrp(0) != getpgrp()) {
        printf("foreground %d is not our group %d\n", (int)tcgetpgrp(0), (int)getpgrp());
        return 1;
    }
    /* The child says when its SIGINT is the default one again: a ^C
     * before that would run the handler it inherited. */
    int ready[2];
    if (pipe(ready) != 0)
        return 2;
    pid_t c = fork();
    if (c < 0)
        return 2;
    if (c == 0) {
        setpgid(0, 0);
        signal(SIGINT, SIG_DFL);
        close(ready[0]);
        close(ready[1]);
        for (;;)
            pause();
    }
    close(ready[1]);
    char b;
    if (read(ready[0], &b, 1) != 0)
        return 2;
    setpgid(c, c);
    if (tcsetpgrp(0, c) != 0) {
        perror("tcsetpgrp child");
        return 3;
    }
    printf("child %s the foreground group\n", tcgetpgrp(0) == c ? "is" : "is NOT");
    printf("ready\n");
    int st;
    if (waitpid(c, &st, 0) != c)
        return 4;
    if (WIFSIGNALED(st))
        printf("child killed by signal %d; init saw %d\n", WTERMSIG(st), (int)got_int);
    else
        printf("child ended otherwise: %#x\n", st);
    if (tcsetpgrp(0, getpgrp()) != 0) {
        perror("tcsetpgrp init");
        return 5;
    }
    printf("init in the foreground\n");
    while (!got_int)
        pause();
    printf("init got SIGINT\n");
    return 0;
}
