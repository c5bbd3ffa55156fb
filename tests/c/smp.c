/* Several CPUs at once.
 *
 *   smp cpus        the CPU count as sched_getaffinity, sysconf and
 *                   /proc/cpuinfo report it
 *   smp handshake   two threads hand a token back and forth through
 *                   memory alone, 20,000 times: done in milliseconds when
 *                   they run at once, never on one CPU (each hand-over
 *                   would wait for a 10 ms preemption); then how many
 *                   different CPUs getcpu saw them on at the same moment
 *   smp shootdown   one thread spins reading (then writing) a page while
 *                   another unmaps (then write-protects) it: the spinner
 *                   must fault at once, or it would spin for ever on a
 *                   stale translation
 *   smp touch       two threads fault on the same fresh pages at once, then
 *                   break the same copy-on-write pages at once
 *   smp fpu         four threads each keep their own values in xmm0-xmm15,
 *                   the upper half of ymm0 (with AVX) and MXCSR's rounding
 *                   mode across yields and preemptions: whatever CPU or
 *                   host thread runs them, each sees only its own
 *   smp work N T    T threads each do N units of arithmetic (for the bench)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int getcpu_now(void) {
    unsigned cpu = 0;
    if (syscall(SYS_getcpu, &cpu, NULL, NULL) != 0)
        return -1;
    return (int)cpu;
}

static int cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        perror("sched_getaffinity");
        return 1;
    }
    FILE *f = fopen("/proc/cpuinfo", "r");
    int procs = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "processor", 9) == 0)
            procs++;
    if (f)
        fclose(f);
    printf("affinity %d online %ld cpuinfo %d\n", CPU_COUNT(&set),
           sysconf(_SC_NPROCESSORS_ONLN), procs);
    int c = getcpu_now();
    printf("getcpu in range: %s\n", c >= 0 && c < CPU_COUNT(&set) ? "yes" : "no");
    return 0;
}

#define ROUNDS 20000
#define SAMPLE 500
static atomic_int turn;
static int seen[ROUNDS / SAMPLE][2];

static void *player(void *arg) {
    int me = (int)(long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != me)
            __builtin_ia32_pause();
        /* Both players are inside round i now: the other one spins. */
        if (i % SAMPLE == 0)
            seen[i / SAMPLE][me] = getcpu_now();
        atomic_store_explicit(&turn, 1 - me, memory_order_release);
    }
    return NULL;
}

static int handshake(void) {
    pthread_t t;
    pthread_create(&t, NULL, player, (void *)1L);
    player((void *)0L);
    pthread_join(t, NULL);
    int apart = 0;
    for (int r = 0; r < ROUNDS / SAMPLE; r++)
        apart += seen[r][0] != seen[r][1];
    printf("handshake done: %d rounds\n", ROUNDS);
    printf("on different CPUs at once: %s\n", apart > 0 ? "yes" : "no");
    return 0;
}

static volatile char *page;
static atomic_int spinning, stop_spin;
static sigjmp_buf jump;
static volatile sig_atomic_t faults;

static void on_segv(int sig) {
    (void)sig;
    faults++;
    siglongjmp(jump, 1);
}

static void *spinner(void *arg) {
    int write = (int)(long)arg;
    if (sigsetjmp(jump, 1) == 0) {
        atomic_store(&spinning, 1);
        unsigned long n = 0;
        while (!atomic_load_explicit(&stop_spin, memory_order_relaxed)) {
            if (write)
                page[n % 4096] = (char)n;
            else
                (void)page[n % 4096];
            n++;
        }
        return (void *)0L;
    }
    return (void *)1L;
}

static int shootdown_one(int write) {
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    page[0] = 1;
    atomic_store(&spinning, 0);
    atomic_store(&stop_spin, 0);
    faults = 0;
    pthread_t t;
    pthread_create(&t, NULL, spinner, (void *)(long)write);
    while (!atomic_load(&spinning))
        sched_yield();
    usleep(20000); /* let it spin on its own CPU with the page cached */
    int r = write ? mprotect((void *)page, 4096, PROT_READ) : munmap((void *)page, 4096);
    if (r != 0) {
        perror("munmap/mprotect");
        return 1;
    }
    void *res;
    pthread_join(t, &res);
    printf("%s while another thread %s it: %s\n", write ? "mprotect(PROT_READ)" : "munmap",
           write ? "writes" : "reads", res == (void *)1L && faults == 1 ? "it faulted" : "no fault");
    if (write)
        munmap((void *)page, 4096);
    return 0;
}

static int shootdown(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    return shootdown_one(0) || shootdown_one(1);
}

/* touch: two threads write the same page of a fresh region at the same
 * moment, round after round (both fault on it; one maps it while the
 * other waits), then the same with a page a fork has just made
 * copy-on-write (both break the same copy). */
#define TOUCH_ROUNDS 200
static volatile char *region;
static atomic_int arrived;

/* Both threads meet here; `round` counts the meetings. */
static void meet(int round) {
    atomic_fetch_add(&arrived, 1);
    while (atomic_load(&arrived) < 2 * round)
        __builtin_ia32_pause();
}

static void *toucher(void *arg) {
    for (int r = 1; r <= 2 * TOUCH_ROUNDS; r++) {
        meet(2 * r - 1);
        region[1] = 1; /* the other thread writes region[0] */
        meet(2 * r);
    }
    (void)arg;
    return NULL;
}

static int touch(void) {
    pthread_t t;
    pthread_create(&t, NULL, toucher, NULL);
    int wrong = 0, kept = 0, round = 0;
    for (int cow = 0; cow < 2; cow++) {
        for (int i = 0; i < TOUCH_ROUNDS; i++) {
            round++;
            char *m = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) {
                perror("mmap");
                return 1;
            }
            pid_t child = -1;
            int fds[2];
            if (cow) {
                m[0] = 7;
                m[1] = 7;
                if (pipe(fds) != 0)
                    return 1;
                child = fork();
                if (child == 0) {
                    char c;
                    close(fds[1]);
                    read(fds[0], &c, 1);
                    _exit(m[0] == 7 && m[1] == 7 ? 0 : 1);
                }
                close(fds[0]);
            }
            region = m;
            meet(2 * round - 1);
            m[0] = 1;
            meet(2 * round);
            wrong += m[0] != 1 || m[1] != 1;
            if (cow) {
                int st = 0;
                close(fds[1]);
                waitpid(child, &st, 0);
                kept += WIFEXITED(st) && WEXITSTATUS(st) == 0;
            }
            munmap(m, 16 * 4096);
        }
    }
    pthread_join(t, NULL);
    printf("same page, both threads at once, %d rounds: %d wrong\n", 2 * TOUCH_ROUNDS, wrong);
    printf("children kept their copies: %d of %d\n", kept, TOUCH_ROUNDS);
    return 0;
}

static long units;
static void *worker(void *arg) {
    (void)arg;
    volatile unsigned long x = 1;
    for (long i = 0; i < units; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return NULL;
}

static int work(long n, int threads) {
    units = n;
    pthread_t t[64];
    if (threads < 1 || threads > 64)
        return 2;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("work done\n");
    return 0;
}

#define FPU_THREADS 4
#define FPU_ROUNDS 300

/* Load `v + i` into xmm_i (and `v` into ymm0's upper half with AVX), yield,
 * spin, and count the registers that no longer hold their value. */
static int fpu_round(unsigned long v, int avx) {
    unsigned long out[17];
    __asm__ volatile(
        "lea 0(%[v]), %%rax\n movq %%rax, %%xmm0\n"
        "lea 1(%[v]), %%rax\n movq %%rax, %%xmm1\n"
        "lea 2(%[v]), %%rax\n movq %%rax, %%xmm2\n"
        "lea 3(%[v]), %%rax\n movq %%rax, %%xmm3\n"
        "lea 4(%[v]), %%rax\n movq %%rax, %%xmm4\n"
        "lea 5(%[v]), %%rax\n movq %%rax, %%xmm5\n"
        "lea 6(%[v]), %%rax\n movq %%rax, %%xmm6\n"
        "lea 7(%[v]), %%rax\n movq %%rax, %%xmm7\n"
        "lea 8(%[v]), %%rax\n movq %%rax, %%xmm8\n"
        "lea 9(%[v]), %%rax\n movq %%rax, %%xmm9\n"
        "lea 10(%[v]), %%rax\n movq %%rax, %%xmm10\n"
        "lea 11(%[v]), %%rax\n movq %%rax, %%xmm11\n"
        "lea 12(%[v]), %%rax\n movq %%rax, %%xmm12\n"
        "lea 13(%[v]), %%rax\n movq %%rax, %%xmm13\n"
        "lea 14(%[v]), %%rax\n movq %%rax, %%xmm14\n"
        "lea 15(%[v]), %%rax\n movq %%rax, %%xmm15\n"
        "test %[avx], %[avx]\n jz 1f\n"
        "vinsertf128 $1, %%xmm0, %%ymm0, %%ymm0\n"
        "1: mov $24, %%eax\n syscall\n"
        "mov $20000, %%ecx\n 2: dec %%ecx\n jnz 2b\n"
        "movq %%xmm0, 0(%[out])\n movq %%xmm1, 8(%[out])\n"
        "movq %%xmm2, 16(%[out])\n movq %%xmm3, 24(%[out])\n"
        "movq %%xmm4, 32(%[out])\n movq %%xmm5, 40(%[out])\n"
        "movq %%xmm6, 48(%[out])\n movq %%xmm7, 56(%[out])\n"
        "movq %%xmm8, 64(%[out])\n movq %%xmm9, 72(%[out])\n"
        "movq %%xmm10, 80(%[out])\n movq %%xmm11, 88(%[out])\n"
        "movq %%xmm12, 96(%[out])\n movq %%xmm13, 104(%[out])\n"
        "movq %%xmm14, 112(%[out])\n movq %%xmm15, 120(%[out])\n"
        "movq %%rax, 128(%[out])\n"
        "test %[avx], %[avx]\n jz 3f\n"
        "vextractf128 $1, %%ymm0, %%xmm0\n movq %%xmm0, 128(%[out])\n vzeroupper\n"
        "3:\n"
        :
        : [v] "r"(v), [avx] "r"(avx), [out] "r"(out)
        : "rax", "rcx", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
          "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
          "xmm14", "xmm15");
    int bad = 0;
    for (int i = 0; i < 16; i++)
        bad += out[i] != v + i;
    if (avx)
        bad += out[16] != v;
    return bad;
}

static void *fpu_thread(void *arg) {
    long id = (long)arg;
    int avx = __builtin_cpu_supports("avx");
    unsigned mxcsr = 0x1f80 | (unsigned)(id & 3) << 13;
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    long bad = 0;
    for (int r = 0; r < FPU_ROUNDS; r++) {
        bad += fpu_round(((unsigned long)id << 40) | ((unsigned long)r << 8), avx);
        unsigned now;
        __asm__ volatile("stmxcsr %0" : "=m"(now));
        bad += now != mxcsr;
    }
    return (void *)bad;
}

static int fpu(void) {
    pthread_t t[FPU_THREADS];
    for (long i = 0; i < FPU_THREADS; i++)
        pthread_create(&t[i], NULL, fpu_thread, (void *)(i + 1));
    long lost = 0;
    for (int i = 0; i < FPU_THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        lost += (long)r;
    }
    printf("fpu: %d threads, %d rounds each: %ld lost\n", FPU_THREADS, FPU_ROUNDS, lost);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "cpus";
    if (strcmp(mode, "cpus") == 0)
        return cpus();
    if (strcmp(mode, "handshake") == 0)
        return handshake();
    if (strcmp(mode, "shootdown") == 0)
        return shootdown();
    if (strcmp(mode, "touch") == 0)
        return touch();
    if (strcmp(mode, "fpu") == 0)
        return fpu();
    if (strcmp(mode, "work") == 0 && argc > 3)
        return work(atol(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: smp cpus|handshake|shootdown|touch|fpu|work N T\n");
    return 2;
}
