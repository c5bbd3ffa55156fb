/* Threads that mix user-mode work, patched system calls and signals from
 * each other: kicks (preemption, signal delivery) land anywhere, inside
 * the code that hands a patched call over too. Every call must return its
 * own result, every register the thread had must survive, and every
 * signal must reach a handler that runs on the thread's own stack. Prints
 * the same natively and sandboxed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 20000

static atomic_long handled;
static atomic_int failed;
static pid_t tids[THREADS];
static pthread_barrier_t start;

static void on_usr1(int s) {
    (void)s;
    atomic_fetch_add(&handled, 1);
}

/* gettid through a patchable site, with a value in r12-r15 and xmm6 that
 * must come back. */
static long gettid_checked(uint64_t seed) {
    long ret;
    uint64_t r12 = seed, r13 = ~seed, r14 = seed * 3, r15 = seed ^ 0x5555;
    uint64_t o12, o13, o14, o15;
    double x = (double)seed, xo;
    __asm__ volatile("movq %[x], %%xmm6\n"
                     "mov %[a], %%r12\n"
                     "mov %[b], %%r13\n"
                     "mov %[c], %%r14\n"
                     "mov %[d], %%r15\n"
                     "mov $186, %%eax\n"
                     "syscall\n"
                     "mov %%r12, %[oa]\n"
                     "mov %%r13, %[ob]\n"
                     "mov %%r14, %[oc]\n"
                     "mov %%r15, %[od]\n"
                     "movq %%xmm6, %[xo]\n"
                     : "=a"(ret), [oa] "=m"(o12), [ob] "=m"(o13), [oc] "=m"(o14),
                       [od] "=m"(o15), [xo] "=m"(xo)
                     : [a] "m"(r12), [b] "m"(r13), [c] "m"(r14), [d] "m"(r15), [x] "m"(x)
                     : "rcx", "r11", "r12", "r13", "r14", "r15", "xmm6", "memory");
    if (o12 != r12 || o13 != r13 || o14 != r14 || o15 != r15 || xo != x)
        atomic_store(&failed, 1);
    return ret;
}

static void *worker(void *arg) {
    long me = (long)arg;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    tids[me] = tid;
    pthread_barrier_wait(&start);
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
    volatile uint64_t sink = 0;
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        for (unsigned j = 0; j < (seed >> 58); j++)
            sink += j * seed;
        if (gettid_checked(seed) != tid) {
            atomic_store(&failed, 2);
            break;
        }
        if (i % 64 == 0) {
            pid_t other = tids[(me + 1) % THREADS];
            if (other)
                syscall(SYS_tgkill, getpid(), other, SIGUSR1);
        }
    }
    (void)sink;
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&failed)) {
        printf("FAIL %d\n", atomic_load(&failed));
        return 1;
    }
    /* How many were handled depends on the scheduling (a signal sent to
     * a thread that has one pending already is merged): not printed. */
    fprintf(stderr, "signals handled: %ld\n", atomic_load(&handled));
    printf("stress: ok\n");
    return 0;
}
