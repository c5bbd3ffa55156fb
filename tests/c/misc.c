/* misc [GROUP...]: assorted system calls that every static program leans
 * on, in groups (clocks random limits exe signals tls; default all). One line
 * per check, `ok <what>` or `FAIL <what>: <why>`; exits 1 if any failed.
 * Two lines report values that the test compares with the spec:
 * `RLIMIT_NOFILE soft=S hard=H` and `exe=PATH`. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void result(int good, const char *what, const char *why) {
    if (good) {
        printf("ok %s\n", what);
    } else {
        printf("FAIL %s: %s (errno %d)\n", what, why, errno);
        failures++;
    }
}

static int64_t ns(const struct timespec *t) {
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static void clocks(void) {
    struct timespec a, b;
    int good = clock_gettime(CLOCK_MONOTONIC, &a) == 0;
    for (int i = 0; good && i < 1000; i++) {
        if (clock_gettime(CLOCK_MONOTONIC, &b) != 0 || ns(&b) < ns(&a))
            good = 0;
        a = b;
    }
    result(good, "clock_gettime(CLOCK_MONOTONIC) never goes back", "went back or failed");

    /* The raw system call, bypassing any vDSO. */
    good = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &b) == 0 && ns(&b) >= ns(&a);
    result(good, "clock_gettime system call", "failed or went back");

    struct timespec start, end, req = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    good = nanosleep(&req, NULL) == 0;
    clock_gettime(CLOCK_MONOTONIC, &end);
    int64_t slept = ns(&end) - ns(&start);
    result(good && slept >= 20 * 1000 * 1000 && slept < 5LL * 1000 * 1000 * 1000,
           "nanosleep 20 ms takes 20 ms to 5 s", "wrong duration or failed");

    struct timespec rt;
    good = clock_gettime(CLOCK_REALTIME, &rt) == 0 && rt.tv_sec > 1600000000;
    result(good, "clock_gettime(CLOCK_REALTIME) after 2020", "failed or too early");
}

static void randomness(void) {
    unsigned char a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    ssize_t ra = getrandom(a, sizeof a, 0);
    ssize_t rb = getrandom(b, sizeof b, GRND_NONBLOCK);
    int zero = 1;
    for (size_t i = 0; i < sizeof a; i++)
        if (a[i])
            zero = 0;
    result(ra == 64 && rb == 64, "getrandom returns 64 bytes", "short or failed");
    result(!zero && memcmp(a, b, sizeof a) != 0, "getrandom bytes are random", "zero or repeated");
}

static void limits(void) {
    struct rlimit64 r;
    long rc = syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &r);
    result(rc == 0, "prlimit64(RLIMIT_NOFILE)", "failed");
    if (rc == 0)
        printf("RLIMIT_NOFILE soft=%llu hard=%llu\n", (unsigned long long)r.rlim_cur,
               (unsigned long long)r.rlim_max);
    struct rlimit g;
    result(getrlimit(RLIMIT_NOFILE, &g) == 0 && g.rlim_cur == r.rlim_cur && g.rlim_max == r.rlim_max,
           "getrlimit agrees with prlimit64", "differs or failed");
}

static void exe(void) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    result(n > 0, "readlink(/proc/self/exe)", "failed");
    if (n > 0) {
        buf[n] = 0;
        printf("exe=%s\n", buf);
    }
}

static volatile sig_atomic_t got;
static void handler(int sig) {
    got = sig;
}

static void signals(void) {
    stack_t cur;
    int good = sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE);
    result(good, "sigaltstack initially disabled", "failed or enabled");

    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    good = sigaltstack(&ss, NULL) == 0 && sigaltstack(NULL, &cur) == 0 && cur.ss_sp == altstack &&
           cur.ss_size == sizeof altstack && !(cur.ss_flags & SS_DISABLE);
    result(good, "sigaltstack set and read back", "failed or differs");

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    good = sigaction(SIGUSR1, &sa, NULL) == 0 && sigaction(SIGUSR1, NULL, &old) == 0 &&
           old.sa_handler == handler && (old.sa_flags & SA_RESTART) && (old.sa_flags & SA_ONSTACK) &&
           sigismember(&old.sa_mask, SIGUSR2) == 1;
    result(good, "rt_sigaction set and read back", "failed or differs");

    errno = 0;
    result(sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL, "rt_sigaction(SIGKILL) is EINVAL",
           "accepted or wrong errno");

    sigset_t set, now;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    good = sigprocmask(SIG_BLOCK, &set, NULL) == 0 && sigprocmask(SIG_BLOCK, NULL, &now) == 0 &&
           sigismember(&now, SIGUSR1) == 1;
    result(good, "rt_sigprocmask blocks SIGUSR1", "failed or not blocked");

    /* A blocked signal stays pending until unblocked, then runs the handler
     * on the alternate stack. */
    got = 0;
    raise(SIGUSR1);
    sigset_t pending;
    good = got == 0 && sigpending(&pending) == 0 && sigismember(&pending, SIGUSR1) == 1;
    result(good, "blocked SIGUSR1 is pending", "delivered or not pending");
    good = sigprocmask(SIG_UNBLOCK, &set, NULL) == 0 && got == SIGUSR1;
    result(good, "unblocking delivers SIGUSR1", "not delivered");
}

static __thread int tls_counter = 42;
static __thread char tls_zero[100];

static void tls(void) {
    int good = tls_counter == 42 && tls_zero[99] == 0;
    tls_counter++;
    good = good && tls_counter == 43;
    result(good, "__thread variables", "wrong initial value");

    unsigned long fs = 0, self = 0;
    long rc = syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    result(rc == 0 && fs != 0 && fs == self, "arch_prctl(ARCH_GET_FS) is the thread pointer",
           "failed or differs");
}

static const struct {
    const char *name;
    void (*run)(void);
} groups[] = {
    {"clocks", clocks}, {"random", randomness}, {"limits", limits},
    {"exe", exe},       {"signals", signals},   {"tls", tls},
};

int main(int argc, char **argv) {
    size_t n = sizeof groups / sizeof groups[0];
    for (size_t i = 0; i < n; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], groups[i].name) == 0)
                wanted = 1;
        if (wanted)
            groups[i].run();
    }
    printf("failures=%d\n", failures);
    return failures ? 1 : 0;
}
