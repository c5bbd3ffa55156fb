/* vdso_time MODE [N]: the vDSO's clocks.
 *
 *   vdso_time check N
 *     Checks that the kernel passed a vDSO (getauxval(AT_SYSINFO_EHDR) is
 *     an ELF image), then reads every clock the vDSO serves N times each in
 *     turn, checking that the monotonic ones never go back, that
 *     gettimeofday and time agree with CLOCK_REALTIME, and that
 *     clock_getres works. Prints:
 *       vdso: yes
 *       clocks: ok
 *       realtime_ns=<CLOCK_REALTIME at the end, ns since the epoch>
 *     and on stderr the first failed check. Exit 0 when all pass, 1 if not.
 *
 *   vdso_time loop N
 *     Calls clock_gettime(CLOCK_MONOTONIC), gettimeofday and time N times
 *     each (for counting the system calls they make) and prints "loop: ok".
 *
 *   vdso_time bench N
 *     Times N calls of clock_gettime(CLOCK_MONOTONIC) after N/10 warm-up
 *     calls and prints "clock_gettime N=<N> ns_per_op=<ns, one decimal>".
 *
 * Exits 2 on bad arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>

static long long ts_ns(const struct timespec *t) {
    return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static int fail(const char *what, long long a, long long b) {
    fprintf(stderr, "FAIL: %s (%lld, %lld)\n", what, a, b);
    return 1;
}

static int check(long n) {
    unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
    if (ehdr == 0 || memcmp((const void *)ehdr, "\177ELF", 4) != 0)
        return fail("no vDSO in AT_SYSINFO_EHDR", (long long)ehdr, 0);
    printf("vdso: yes\n");

    static const clockid_t mono[] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW,
                                     CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME};
    static const clockid_t real[] = {CLOCK_REALTIME, CLOCK_REALTIME_COARSE};
    for (unsigned c = 0; c < sizeof mono / sizeof mono[0]; c++) {
        struct timespec t;
        if (clock_gettime(mono[c], &t) != 0)
            return fail("clock_gettime(monotonic clock)", mono[c], 0);
        long long prev = ts_ns(&t);
        for (long i = 0; i < n; i++) {
            clock_gettime(mono[c], &t);
            if (t.tv_nsec < 0 || t.tv_nsec >= 1000000000L)
                return fail("tv_nsec out of range", mono[c], t.tv_nsec);
            if (ts_ns(&t) < prev)
                return fail("monotonic clock went back", prev, ts_ns(&t));
            prev = ts_ns(&t);
        }
    }
    for (unsigned c = 0; c < sizeof real / sizeof real[0]; c++) {
        struct timespec t;
        for (long i = 0; i < n; i++) {
            if (clock_gettime(real[c], &t) != 0)
                return fail("clock_gettime(realtime clock)", real[c], 0);
            if (t.tv_nsec < 0 || t.tv_nsec >= 1000000000L)
                return fail("tv_nsec out of range", real[c], t.tv_nsec);
        }
    }
    /* The clocks agree with each other: realtime and gettimeofday/time. */
    for (long i = 0; i < n; i++) {
        struct timespec a, b;
        struct timeval tv;
        clock_gettime(CLOCK_REALTIME, &a);
        gettimeofday(&tv, NULL);
        time_t s = time(NULL);
        clock_gettime(CLOCK_REALTIME, &b);
        long long us = (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
        if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
            return fail("tv_usec out of range", tv.tv_usec, 0);
        if (us < ts_ns(&a) / 1000 || us > ts_ns(&b) / 1000)
            return fail("gettimeofday outside two CLOCK_REALTIME reads", us, ts_ns(&a) / 1000);
        if (s < a.tv_sec - 1 || s > b.tv_sec) /* Linux: time() is the tick's second */
            return fail("time() outside two CLOCK_REALTIME reads", s, a.tv_sec);
    }
    struct timezone tz = {123, 456};
    struct timeval tv;
    if (gettimeofday(&tv, &tz) != 0)
        return fail("gettimeofday with a timezone", 0, 0);
    time_t t2;
    if (time(&t2) != t2)
        return fail("time(&t) and its result differ", t2, 0);
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0)
        return fail("clock_getres(CLOCK_MONOTONIC)", res.tv_sec, res.tv_nsec);
    /* Clocks the vDSO leaves to the kernel still work, and bad ids fail. */
    struct timespec cpu;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) != 0)
        return fail("clock_gettime(CLOCK_PROCESS_CPUTIME_ID)", 0, 0);
    if (clock_gettime((clockid_t)1000, &cpu) != -1)
        return fail("clock_gettime(1000) succeeded", 0, 0);
    printf("clocks: ok\n");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("realtime_ns=%lld\n", ts_ns(&now));
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 2 ? atol(argv[2]) : -1;
    if (argc != 3 || n < 0) {
        fprintf(stderr, "usage: vdso_time check|loop|bench N\n");
        return 2;
    }
    if (strcmp(argv[1], "check") == 0)
        return check(n);
    if (strcmp(argv[1], "loop") == 0) {
        struct timespec t;
        struct timeval tv;
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            gettimeofday(&tv, NULL);
            time(NULL);
        }
        printf("loop: ok\n");
        return 0;
    }
    if (strcmp(argv[1], "bench") == 0) {
        if (n == 0)
            return 2;
        struct timespec t, t0, t1;
        for (long i = 0; i < n / 10; i++)
            clock_gettime(CLOCK_MONOTONIC, &t);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < n; i++)
            clock_gettime(CLOCK_MONOTONIC, &t);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("clock_gettime N=%ld ns_per_op=%.1f\n", n,
               (double)(ts_ns(&t1) - ts_ns(&t0)) / (double)n);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
