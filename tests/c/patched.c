/* System calls through patched call sites (the ptrace platform rewrites
 * `mov $nr, %eax; syscall` into a jump on its first call): registers kept,
 * threads racing on a site being patched, restarts after signals and
 * stops, fork around patches, and a thread with a GS base of its own.
 * The output is the same natively and in the sandbox. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c, ...)                                                        \
    do {                                                                     \
        if (!(c)) {                                                          \
            printf("FAIL %s:%d: ", __func__, __LINE__);                      \
            printf(__VA_ARGS__);                                             \
            printf("\n");                                                    \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* getppid as the one 7-byte sequence a site must be to be patched, with
 * every other general register given a value and checked afterwards, and
 * a vector register too. No push: the compiler may keep data below rsp. */
uint64_t *g_in, *g_out, g_rcx, g_ra, g_r11;
uint8_t g_cf, g_zf;
static void registers_survive(void) {
    for (int round = 0; round < 200; round++) {
        uint64_t in[12], out[12];
        for (int i = 0; i < 12; i++)
            in[i] = 0x1111111111111111ull * (uint64_t)(i + 1) + (uint64_t)round;
        g_in = in;
        g_out = out;
        uint64_t ret;
        double v_in[4] = {1.5 + round, -2.25, 3.125, 1e300}, v_out[4];
        __asm__ volatile(
            "vmovupd %[vin], %%ymm7\n"
            "mov g_in(%%rip), %%rax\n"
            "mov 0(%%rax), %%rbx\n"
            "mov 8(%%rax), %%rbp\n"
            "mov 16(%%rax), %%r12\n"
            "mov 24(%%rax), %%r13\n"
            "mov 32(%%rax), %%r14\n"
            "mov 40(%%rax), %%r15\n"
            "mov 48(%%rax), %%rdi\n"
            "mov 56(%%rax), %%rsi\n"
            "mov 64(%%rax), %%rdx\n"
            "mov 72(%%rax), %%r8\n"
            "mov 80(%%rax), %%r9\n"
            "mov 88(%%rax), %%r10\n"
            /* ZF and CF set: the flags come back as they went in (sysret
             * restores them from r11, which keeps them). */
            "cmp %%rax, %%rax\n"
            "stc\n"
            "mov $110, %%eax\n"
            "syscall\n"
            "1:\n"
            "setc g_cf(%%rip)\n"
            "setz g_zf(%%rip)\n"
            "mov %%r11, g_r11(%%rip)\n"
            "lea 1b(%%rip), %%r11\n"
            "mov %%r11, g_ra(%%rip)\n"
            "mov %%rcx, g_rcx(%%rip)\n"
            "mov g_out(%%rip), %%r11\n"
            "mov %%rbx, 0(%%r11)\n"
            "mov %%rbp, 8(%%r11)\n"
            "mov %%r12, 16(%%r11)\n"
            "mov %%r13, 24(%%r11)\n"
            "mov %%r14, 32(%%r11)\n"
            "mov %%r15, 40(%%r11)\n"
            "mov %%rdi, 48(%%r11)\n"
            "mov %%rsi, 56(%%r11)\n"
            "mov %%rdx, 64(%%r11)\n"
            "mov %%r8, 72(%%r11)\n"
            "mov %%r9, 80(%%r11)\n"
            "mov %%r10, 88(%%r11)\n"
            "vmovupd %%ymm7, %[vout]\n"
            : "=a"(ret)
            : [vin] "m"(*(const double(*)[4])v_in), [vout] "m"(*(double(*)[4])v_out)
            : "rbx", "rbp", "r12", "r13", "r14", "r15", "rdi", "rsi", "rdx", "r8",
              "r9", "r10", "r11", "rcx", "xmm7", "memory");
        CHECK((pid_t)ret == getppid(), "getppid gave %ld", (long)ret);
        for (int i = 0; i < 12; i++)
            CHECK(in[i] == out[i], "register %d: %#lx became %#lx", i, (unsigned long)in[i],
                  (unsigned long)out[i]);
        CHECK(memcmp(v_in, v_out, sizeof v_in) == 0, "ymm7 changed");
        CHECK(g_cf && g_zf, "flags after the call: CF %d ZF %d", g_cf, g_zf);
        CHECK((g_r11 & 0x41) == 0x41, "r11 %#lx: not the flags", (unsigned long)g_r11);
        /* As the kernel leaves it: rcx holds the return address. */
        CHECK(g_rcx == g_ra, "rcx %#lx, return address %#lx", (unsigned long)g_rcx,
              (unsigned long)g_ra);
    }
    printf("registers: ok\n");
}

/* A site that other code jumps into at its `syscall`, with a number of
 * its own: once the site is patched, that jump must still make its own
 * call, not the site's. */
__asm__(".text\n"
        ".p2align 6\n"
        "site_getppid:\n"
        "mov $110, %eax\n"
        "site_syscall:\n"
        "syscall\n"
        "ret\n"
        "getpid_via_site:\n"
        "mov $39, %eax\n"
        "jmp site_syscall\n");
long site_getppid(void);
long getpid_via_site(void);

static void jump_to_syscall(void) {
    for (int i = 0; i < 5; i++) {
        CHECK(site_getppid() == getppid(), "site getppid");
        CHECK(getpid_via_site() == getpid(), "getpid through the site's syscall");
    }
    /* A TLS base no CPU takes: clone refuses it (and no child runs). */
    errno = 0;
    long r = syscall(SYS_clone, SIGCHLD | CLONE_SETTLS, 0, 0, 0, 1ul << 63);
    if (r == 0)
        _exit(0);
    CHECK(r == -1 && errno == EPERM, "clone with a bad TLS: %ld errno %d", r, errno);
    printf("jump: ok\n");
}

/* Threads calling through the same sites at once, from their first call
 * (the one that patches it) on. */
static pthread_barrier_t start;
static pid_t ppid;
static void *hammer(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start);
    struct stat st;
    for (int i = 0; i < 20000; i++) {
        if (getppid() != ppid)
            return (void *)1;
        if (stat("/", &st) != 0 || !S_ISDIR(st.st_mode))
            return (void *)2;
        if (umask(022) != 022)
            return (void *)3;
    }
    return NULL;
}

static void threads_race(void) {
    umask(022);
    ppid = (pid_t)syscall(SYS_getppid);
    pthread_t t[4];
    pthread_barrier_init(&start, NULL, 4);
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL, "thread %d failed with %ld", i, (long)r);
    }
    printf("threads: ok\n");
}

static volatile int alarms;
static void on_alarm(int s) {
    (void)s;
    alarms++;
}

/* wait4 restarts after each handled SIGALRM (SA_RESTART): the restarted
 * call goes back over the site. */
static void restart_after_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    pid_t child = fork();
    if (child == 0) {
        struct timespec ts = {0, 150 * 1000 * 1000};
        nanosleep(&ts, NULL);
        _exit(7);
    }
    struct itimerval it = {{0, 5000}, {0, 5000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int status = 0;
    pid_t got = waitpid(child, &status, 0);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK(got == child, "waitpid gave %d (errno %d)", got, errno);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "status %#x", status);
    CHECK(alarms > 3, "only %d alarms", alarms);
    printf("restart: ok\n");
}

static long sleep_patched(long ns) {
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    long ret;
    /* nanosleep as a patchable site: a stop and continue restarts it
     * through restart_syscall. */
    __asm__ volatile("mov $35, %%eax\nsyscall"
                     : "=a"(ret)
                     : "D"(&ts), "S"(NULL)
                     : "rcx", "r11", "memory");
    return ret;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void restart_after_stop(void) {
    /* Patch the site first. */
    CHECK(sleep_patched(1000) == 0, "short sleep");
    pid_t child = fork();
    if (child == 0) {
        double t0 = now();
        long r = sleep_patched(300 * 1000 * 1000);
        double t = now() - t0;
        _exit(r == 0 && t >= 0.29 ? 0 : 1);
    }
    struct timespec ts = {0, 60 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(child, SIGSTOP);
    nanosleep(&ts, NULL);
    kill(child, SIGCONT);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child's sleep: status %#x", status);
    printf("stop: ok\n");
}

/* A site only children run: getppid through one 7-byte sequence. */
static __attribute__((noinline)) long child_only_getppid(void) {
    long ret;
    __asm__ volatile("mov $110, %%eax\nsyscall" : "=a"(ret) : : "rcx", "r11", "memory");
    return ret;
}

/* A child patches a site of a page it shares with its parent (after
 * enough calls to be worth patching), and the parent then patches other
 * sites, whose trampolines take the next entries of its table: the same
 * entry the child's patch points to in the child's table. A child forked
 * next must find the site as its parent has it, and get its parent's pid
 * from it, not some other call's result. */
static void fork_around_patches(void) {
    pid_t me = getpid();
    for (int i = 0; i < 4; i++) {
        pid_t c = fork();
        if (c == 0) {
            for (int j = 0; j < 200; j++)
                if (getpid() <= 0)
                    _exit(3);
            for (int j = 0; j < 3; j++)
                if (child_only_getppid() != me)
                    _exit(1);
            _exit(0);
        }
        int status = 0;
        CHECK(waitpid(c, &status, 0) == c, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x", i,
              status);
        /* New sites in the parent, one per round. */
        switch (i) {
        case 0:
            CHECK(getuid() == geteuid(), "uid");
            break;
        case 1:
            CHECK(getgid() == getegid(), "gid");
            break;
        case 2:
            CHECK(getpgrp() == getpgid(0), "pgrp");
            break;
        default:
            break;
        }
    }
    printf("fork: ok\n");
}

/* A thread with a GS base of its own: its calls still work, and %gs
 * still reads its memory afterwards. */
static uint64_t gs_area[4] = {0x5a5a5a5a12345678ull, 2, 3, 4};
static void *gs_thread(void *arg) {
    (void)arg;
    if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_area) != 0)
        return (void *)1;
    umask(022);
    for (int i = 0; i < 2000; i++) {
        if (umask(022) != 022)
            return (void *)2;
        uint64_t v;
        __asm__ volatile("mov %%gs:0, %0" : "=r"(v));
        if (v != gs_area[0])
            return (void *)3;
    }
    unsigned long base = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_GS, &base) != 0 || base != (unsigned long)gs_area)
        return (void *)4;
    return NULL;
}

static void own_gs(void) {
    /* The site is patched before the thread runs it. */
    for (int i = 0; i < 100; i++)
        umask(022);
    pthread_t t;
    pthread_create(&t, NULL, gs_thread, NULL);
    void *r;
    pthread_join(t, &r);
    CHECK(r == NULL, "gs thread failed with %ld", (long)r);
    printf("gs: ok\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    registers_survive();
    jump_to_syscall();
    threads_race();
    restart_after_signals();
    restart_after_stop();
    fork_around_patches();
    own_gs();
    return 0;
}
