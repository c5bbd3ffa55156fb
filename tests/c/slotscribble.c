/* A program that scribbles over the memory its GS base points at while
 * other threads make system calls. On the ptrace platform GS points at the
 * thread's sysmsg slot, which the sentry shares with the stub: whatever
 * the program writes there, the sentry must neither crash nor hang, and
 * the program may at worst be killed. Natively (and on KVM) GS is 0 and
 * the program writes into a buffer of its own instead.
 *
 * The scribbler is a child: the parent, untouched, must live on and see
 * it end (by itself, or killed), then print "parent alive". On stderr it
 * says whether the child wrote over a slot at all ("scribbled over: GS"),
 * or over its own buffer ("scribbled over: own buffer"). */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;
static uint64_t own[8192];
/* Shared with the parent: set once the child wrote through a GS base. */
static volatile int *through_gs;

static void *caller(void *arg) {
    (void)arg;
    while (!stop) {
        getppid();
        syscall(SYS_getppid);
    }
    return NULL;
}

__attribute__((target("fsgsbase"))) static uint64_t gsbase(void) {
    return _readgsbase_u64();
}

static int scribble(long rounds) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, caller, NULL);
    /* Warm up: let the calls move to the sentry's fast path. */
    for (int i = 0; i < 2000; i++)
        getppid();
    uint64_t seed = 0x2545f4914f6cdd1dull;
    for (long r = 0; r < rounds; r++) {
        uint64_t base = gsbase();
        uint64_t *p = base ? (uint64_t *)base : own;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        /* The slot's first page (the messages) and the start of its own
         * frame, then the neighbouring slot's. */
        size_t words = base ? 1024 : 8192;
        size_t i = (seed >> 8) % words;
        uint64_t v = (seed & 3) == 0 ? seed : (seed & 3) == 1 ? base + (seed % 0x8000) : seed & 7;
        if (base)
            *through_gs = 1;
        p[i] = v;
        if (r % 64 == 0)
            getppid();
    }
    stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    through_gs = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (through_gs == MAP_FAILED)
        return 1;
    pid_t c = fork();
    if (c == 0)
        _exit(scribble(rounds));
    int status = 0;
    if (waitpid(c, &status, 0) != c)
        return 1;
    if (WIFEXITED(status))
        fprintf(stderr, "scribbler: exit %d\n", WEXITSTATUS(status));
    else
        fprintf(stderr, "scribbler: signal %d\n", WTERMSIG(status));
    fprintf(stderr, "scribbled over: %s\n", *through_gs ? "GS" : "own buffer");
    /* It ended by itself, or was killed for what it did: nothing else. */
    int ok = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
             (WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGSEGV ||
                                      WTERMSIG(status) == SIGBUS || WTERMSIG(status) == SIGILL));
    for (int i = 0; i < 1000; i++)
        getppid();
    printf("parent alive\n");
    return ok ? 0 : 2;
}
