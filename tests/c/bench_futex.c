/* bench_futex N: a futex ping-pong between two threads. A shared word
 * holds whose turn it is; each thread waits (FUTEX_WAIT_PRIVATE) until it
 * is its turn, hands the turn over and wakes the other
 * (FUTEX_WAKE_PRIVATE). One round trip = main -> worker -> main. N/10
 * warm-up round trips, then N timed with CLOCK_MONOTONIC. Prints:
 *
 *   futex N=<N> ns_per_op=<nanoseconds per round trip, one decimal>
 *
 * Exits 2 on bad arguments, 1 on a failed call. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic int turn; /* 0: main's turn, 1: the worker's */
static long rounds;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wait_for(int me) {
    int v;
    while ((v = atomic_load(&turn)) != me)
        syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void hand_to(int other) {
    atomic_store(&turn, other);
    syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        wait_for(1);
        hand_to(0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_futex N (N > 0)\n");
        return 2;
    }
    long warm = n / 10;
    rounds = warm + n;
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    long long t0 = 0;
    for (long i = 0; i < rounds; i++) {
        if (i == warm)
            t0 = now_ns();
        hand_to(1);
        wait_for(0);
    }
    long long t1 = now_ns();
    if (pthread_join(t, NULL) != 0)
        return 1;
    printf("futex N=%ld ns_per_op=%.1f\n", n, (double)(t1 - t0) / (double)n);
    return 0;
}
