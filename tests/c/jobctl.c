/* jobctl [CASE]: job-control stop and continue. Children stop with
 * SIGSTOP/SIGTSTP/..., the parent sees the stops and continues with
 * wait4(WUNTRACED|WCONTINUED), waitid and SIGCHLD, and checks that every
 * thread of a stopped process stays stopped. Every line is deterministic
 * so the output can be compared with a native run. SIGCHLD stays blocked
 * in the parent and is taken with sigtimedwait. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s: %s\n", what, strerror(errno));
        exit(99);
    }
}

static sigset_t chld_set;

/* The pending SIGCHLD's si_code, or 0 if none comes within `ms`. */
static int take_sigchld(int ms, siginfo_t *si) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    int s = sigtimedwait(&chld_set, si, &ts);
    return s == SIGCHLD ? si->si_code : 0;
}

static const char *code_name(int code) {
    switch (code) {
    case 0: return "none";
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    case CLD_DUMPED: return "CLD_DUMPED";
    case CLD_STOPPED: return "CLD_STOPPED";
    case CLD_CONTINUED: return "CLD_CONTINUED";
    default: return "other";
    }
}

static void describe(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by %d\n", what, WTERMSIG(st));
    else if (WIFSTOPPED(st))
        printf("%s: stopped by %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("%s: continued\n", what);
    else
        printf("%s: status %#x\n", what, st);
}

static void wait_show(pid_t c, int opts, const char *what) {
    int st = 0;
    pid_t r = waitpid(c, &st, opts);
    if (r == 0) {
        printf("%s: nothing to report\n", what);
        return;
    }
    check(r == c, what);
    describe(what, st);
}

/* The state letter in /proc/PID/stat. */
static char proc_state(pid_t c) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)c);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static void drain_sigchld(void) {
    siginfo_t si;
    while (take_sigchld(0, &si))
        ;
}

static pid_t fork_child(void) {
    fflush(stdout);
    pid_t c = fork();
    check(c >= 0, "fork");
    if (c == 0)
        sigprocmask(SIG_UNBLOCK, &chld_set, NULL);
    return c;
}

/* raise(SIGSTOP); the parent sees the stop and the continue once each. */
static void case_stop_continue(void) {
    int go[2];
    check(pipe(go) == 0, "pipe");
    pid_t c = fork_child();
    if (c == 0) {
        raise(SIGSTOP);
        char b;
        if (read(go[0], &b, 1) != 1)
            _exit(1);
        _exit(7);
    }
    siginfo_t si;
    wait_show(c, WUNTRACED, "stop: waitpid(WUNTRACED)");
    int code = take_sigchld(5000, &si);
    printf("stop: SIGCHLD %s status %d from child %s\n", code_name(code), si.si_status,
           si.si_pid == c ? "yes" : "no");
    printf("stop: /proc state %c\n", proc_state(c));
    wait_show(c, WUNTRACED | WNOHANG, "stop: again");
    wait_show(c, WNOHANG, "stop: without WUNTRACED");
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, WCONTINUED, "cont: waitpid(WCONTINUED)");
    code = take_sigchld(5000, &si);
    printf("cont: SIGCHLD %s status %d\n", code_name(code), si.si_status);
    wait_show(c, WCONTINUED | WUNTRACED | WNOHANG, "cont: again");
    check(write(go[1], "x", 1) == 1, "write");
    wait_show(c, 0, "cont: exit");
    code = take_sigchld(5000, &si);
    printf("cont: SIGCHLD %s status %d\n", code_name(code), si.si_status);
    close(go[0]);
    close(go[1]);
}

/* SA_NOCLDSTOP: no SIGCHLD for stop or continue, but wait still reports. */
static void case_nocldstop(void) {
    struct sigaction sa = {0}, old;
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_NOCLDSTOP;
    check(sigaction(SIGCHLD, &sa, &old) == 0, "sigaction");
    pid_t c = fork_child();
    if (c == 0) {
        raise(SIGSTOP);
        for (;;)
            pause();
    }
    siginfo_t si;
    wait_show(c, WUNTRACED, "nocldstop: waitpid");
    printf("nocldstop: SIGCHLD on stop: %s\n", code_name(take_sigchld(0, &si)));
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, WCONTINUED, "nocldstop: waitpid");
    printf("nocldstop: SIGCHLD on continue: %s\n", code_name(take_sigchld(100, &si)));
    check(kill(c, SIGKILL) == 0, "kill SIGKILL");
    wait_show(c, 0, "nocldstop: exit");
    printf("nocldstop: SIGCHLD on exit: %s\n", code_name(take_sigchld(5000, &si)));
    check(sigaction(SIGCHLD, &old, NULL) == 0, "sigaction");
}

/* A stopped process dies of SIGKILL at once; SIGTERM waits for SIGCONT. */
static void case_kill_stopped(void) {
    pid_t c = fork_child();
    if (c == 0) {
        raise(SIGSTOP);
        _exit(1);
    }
    wait_show(c, WUNTRACED, "kill-stopped: waitpid");
    check(kill(c, SIGKILL) == 0, "kill");
    wait_show(c, 0, "kill-stopped: SIGKILL");
    drain_sigchld();

    c = fork_child();
    if (c == 0) {
        raise(SIGSTOP);
        _exit(1);
    }
    wait_show(c, WUNTRACED, "kill-stopped: waitpid");
    check(kill(c, SIGTERM) == 0, "kill");
    usleep(50000);
    wait_show(c, WNOHANG, "kill-stopped: SIGTERM while stopped");
    printf("kill-stopped: /proc state %c\n", proc_state(c));
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, 0, "kill-stopped: SIGTERM after SIGCONT");
    drain_sigchld();
}

static volatile sig_atomic_t got_tstp, got_cont;
static void on_tstp(int s) {
    (void)s;
    got_tstp = 1;
}
static void on_cont(int s) {
    (void)s;
    got_cont = 1;
}

/* A caught SIGTSTP runs its handler; a default one stops the process, an
 * orphaned process group discards it but not SIGSTOP. */
static void case_tstp(void) {
    pid_t c = fork_child();
    if (c == 0) {
        signal(SIGTSTP, on_tstp);
        raise(SIGTSTP);
        _exit(got_tstp ? 42 : 1);
    }
    wait_show(c, WUNTRACED, "tstp handled");
    drain_sigchld();

    c = fork_child();
    if (c == 0) {
        setpgid(0, 0);
        raise(SIGTSTP);
        for (;;)
            pause();
    }
    wait_show(c, WUNTRACED, "tstp default");
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, WCONTINUED, "tstp default");
    check(kill(c, SIGTTOU) == 0, "kill SIGTTOU");
    wait_show(c, WUNTRACED, "ttou default");
    check(kill(c, SIGKILL) == 0, "kill SIGKILL");
    wait_show(c, 0, "ttou default");
    drain_sigchld();

    c = fork_child();
    if (c == 0) {
        setsid();
        raise(SIGTSTP);
        raise(SIGTTIN);
        raise(SIGTTOU);
        raise(SIGSTOP);
        _exit(5);
    }
    wait_show(c, WUNTRACED, "orphaned pgrp");
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, 0, "orphaned pgrp");
    drain_sigchld();
}

/* SIGCONT continues even while blocked; it stays pending and its handler
 * runs once unblocked. Stop signals and SIGCONT discard each other. */
static void case_cont_blocked(void) {
    pid_t c = fork_child();
    if (c == 0) {
        signal(SIGCONT, on_cont);
        sigset_t s, p;
        sigemptyset(&s);
        sigaddset(&s, SIGCONT);
        sigaddset(&s, SIGTSTP);
        sigprocmask(SIG_BLOCK, &s, NULL);
        raise(SIGSTOP);
        sigpending(&p);
        int cont_pending = sigismember(&p, SIGCONT);
        raise(SIGTSTP); /* blocked: pending, and it discards SIGCONT */
        sigpending(&p);
        int discarded = !sigismember(&p, SIGCONT) && sigismember(&p, SIGTSTP);
        raise(SIGCONT); /* discards SIGTSTP */
        sigpending(&p);
        int discarded2 = sigismember(&p, SIGCONT) && !sigismember(&p, SIGTSTP);
        int before = got_cont;
        sigprocmask(SIG_UNBLOCK, &s, NULL);
        _exit(cont_pending | discarded << 1 | discarded2 << 2 | before << 3 | got_cont << 4);
    }
    wait_show(c, WUNTRACED, "cont-blocked: waitpid");
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, 0, "cont-blocked: exit (23 expected)");
    drain_sigchld();
}

static volatile unsigned long *shared;

static void *spin(void *arg) {
    (void)arg;
    for (;;)
        __atomic_fetch_add(&shared[0], 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *reader(void *arg) {
    char b;
    if (read(*(int *)arg, &b, 1) == 1)
        __atomic_store_n(&shared[1], 1, __ATOMIC_RELAXED);
    return NULL;
}

static unsigned long get(int i) {
    return __atomic_load_n(&shared[i], __ATOMIC_RELAXED);
}

/* Every thread stops: a spinning thread stops counting, and one blocked in
 * read stays stopped when data arrives, until SIGCONT. */
static void case_threads(void) {
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check(shared != MAP_FAILED, "mmap");
    int p[2];
    check(pipe(p) == 0, "pipe");
    pid_t c = fork_child();
    if (c == 0) {
        pthread_t t1, t2;
        pthread_create(&t1, NULL, spin, NULL);
        pthread_create(&t2, NULL, reader, &p[0]);
        while (get(0) == 0)
            sched_yield();
        raise(SIGSTOP);
        for (;;)
            pause();
    }
    wait_show(c, WUNTRACED, "threads: waitpid");
    printf("threads: /proc state %c\n", proc_state(c));
    check(write(p[1], "x", 1) == 1, "write");
    unsigned long before = get(0);
    usleep(100000);
    printf("threads: counter frozen while stopped: %s\n", get(0) == before ? "yes" : "no");
    printf("threads: reader stayed stopped: %s\n", get(1) == 0 ? "yes" : "no");
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    wait_show(c, WCONTINUED, "threads: waitpid");
    for (int i = 0; i < 5000 && (get(0) == before || get(1) == 0); i++)
        usleep(1000);
    printf("threads: counter advances after SIGCONT: %s\n", get(0) != before ? "yes" : "no");
    printf("threads: reader got its byte: %s\n", get(1) ? "yes" : "no");
    check(kill(c, SIGKILL) == 0, "kill SIGKILL");
    wait_show(c, 0, "threads: exit");
    drain_sigchld();
    close(p[0]);
    close(p[1]);
    munmap((void *)shared, 4096);
}

static void show_waitid(const char *what, pid_t c, int opts) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid(P_PID, c, &si, opts);
    check(r == 0, what);
    if (si.si_pid == 0) {
        printf("%s: nothing to report\n", what);
        return;
    }
    printf("%s: %s status %d child %s\n", what, code_name(si.si_code), si.si_status,
           si.si_pid == c ? "yes" : "no");
}

/* waitid: WNOWAIT leaves the stop and the continue reportable. */
static void case_waitid(void) {
    pid_t c = fork_child();
    if (c == 0) {
        raise(SIGSTOP);
        for (;;)
            pause();
    }
    show_waitid("waitid WSTOPPED|WEXITED|WNOWAIT", c, WSTOPPED | WEXITED | WNOWAIT);
    show_waitid("waitid WSTOPPED|WEXITED", c, WSTOPPED | WEXITED);
    show_waitid("waitid WSTOPPED|WNOHANG", c, WSTOPPED | WNOHANG);
    check(kill(c, SIGCONT) == 0, "kill SIGCONT");
    show_waitid("waitid WCONTINUED|WNOWAIT", c, WCONTINUED | WNOWAIT);
    show_waitid("waitid WCONTINUED|WSTOPPED", c, WCONTINUED | WSTOPPED);
    show_waitid("waitid WCONTINUED|WNOHANG", c, WCONTINUED | WNOHANG);
    check(kill(c, SIGKILL) == 0, "kill SIGKILL");
    show_waitid("waitid WEXITED", c, WEXITED);
    drain_sigchld();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigemptyset(&chld_set);
    sigaddset(&chld_set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld_set, NULL);
    const char *only = argc > 1 ? argv[1] : NULL;
    struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
        {"stop", case_stop_continue}, {"nocldstop", case_nocldstop},
        {"kill", case_kill_stopped},  {"tstp", case_tstp},
        {"cont", case_cont_blocked},  {"threads", case_threads},
        {"waitid", case_waitid},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!only || !strcmp(only, cases[i].name))
            cases[i].run();
    printf("done\n");
    return 0;
}
