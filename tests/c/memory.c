/* memory MODE: exercises the address space and prints one `OK ...` line per
 * check. On the first failed check it prints `FAIL ...` and exits 1. No
 * addresses are printed, so the output is the same on every run.
 *
 *   basic  malloc (small and large blocks), anonymous mmap/munmap/mprotect,
 *          brk through sbrk
 *   fault  a write to a read-only page raises SIGSEGV with si_code SEGV_ACCERR
 *          and the faulting address; a handler recovers with siglongjmp
 *   extra  MAP_FIXED into a hole, mremap growth, MADV_DONTNEED zeroing
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL

static void fail(const char *what) {
    printf("FAIL %s\n", what);
    fflush(stdout);
    exit(1);
}

static void ok(const char *what) {
    printf("OK %s\n", what);
}

static unsigned char pattern(size_t i, unsigned seed) {
    return (unsigned char)((i * 131u) ^ (i >> 8) ^ seed);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(i, seed);
}

static int check(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(i, seed))
            return 0;
    return 1;
}

static void basic(void) {
    /* Many small blocks, all alive at once, then freed. */
    enum { N = 500 };
    static unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)i * 37 % 4096;
        blocks[i] = malloc(n);
        if (!blocks[i])
            fail("malloc small");
        fill(blocks[i], n, (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)i * 37 % 4096;
        if (!check(blocks[i], n, (unsigned)i))
            fail("malloc small pattern");
        free(blocks[i]);
    }
    ok("malloc small blocks");

    /* A large block: glibc serves it with mmap. */
    size_t big = 64UL << 20;
    unsigned char *b = malloc(big);
    if (!b)
        fail("malloc 64 MiB");
    fill(b, big, 7);
    if (!check(b, big, 7))
        fail("malloc 64 MiB pattern");
    free(b);
    ok("malloc 64 MiB");

    /* calloc memory is zero. */
    unsigned char *z = calloc(1 << 20, 1);
    if (!z)
        fail("calloc");
    for (size_t i = 0; i < (1 << 20); i++)
        if (z[i] != 0)
            fail("calloc zero");
    free(z);
    ok("calloc zeroed");

    /* Anonymous mmap: zero-filled, writable; mprotect to read-only keeps the
     * contents; munmap succeeds. */
    size_t len = 256 * PAGE;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        fail("mmap anonymous");
    if ((uintptr_t)m % PAGE != 0)
        fail("mmap alignment");
    for (size_t i = 0; i < len; i++)
        if (m[i] != 0)
            fail("mmap zero-filled");
    fill(m, len, 3);
    if (mprotect(m, len, PROT_READ) != 0)
        fail("mprotect read-only");
    if (!check(m, len, 3))
        fail("pattern after mprotect");
    if (mprotect(m + PAGE, PAGE, PROT_READ | PROT_WRITE) != 0)
        fail("mprotect one page back to read-write");
    m[PAGE] = 0x5a;
    if (munmap(m, len) != 0)
        fail("munmap");
    ok("mmap mprotect munmap");

    /* Bad arguments. */
    if (mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED)
        fail("mmap length 0 must fail");
    if (munmap((void *)(PAGE + 1), PAGE) == 0)
        fail("munmap unaligned must fail");
    ok("mmap bad arguments rejected");

    /* brk through sbrk: grow, use, shrink. */
    unsigned char *cur = sbrk(0);
    if (cur == (void *)-1)
        fail("sbrk(0)");
    unsigned char *old = sbrk(1 << 20);
    if (old == (void *)-1)
        fail("sbrk grow");
    if (old != cur)
        fail("sbrk returns the old break");
    fill(old, 1 << 20, 9);
    if (!check(old, 1 << 20, 9))
        fail("brk memory pattern");
    if ((unsigned char *)sbrk(0) != old + (1 << 20))
        fail("new break");
    if (sbrk(-(1 << 20)) == (void *)-1)
        fail("sbrk shrink");
    if ((unsigned char *)sbrk(0) != cur)
        fail("break after shrink");
    ok("brk grow and shrink");
}

static sigjmp_buf jump;
static volatile void *fault_addr;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    siglongjmp(jump, 1);
}

static void fault(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        fail("sigaction SIGSEGV");

    unsigned char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        fail("mmap");
    m[PAGE + 5] = 1;
    if (mprotect(m + PAGE, PAGE, PROT_READ) != 0)
        fail("mprotect");
    if (sigsetjmp(jump, 1) == 0) {
        ((volatile unsigned char *)m)[PAGE + 5] = 2;
        fail("write to read-only page did not fault");
    }
    if (fault_addr != m + PAGE + 5)
        fail("si_addr is the faulting address");
    if (fault_code != SEGV_ACCERR)
        fail("si_code is SEGV_ACCERR");
    if (m[PAGE + 5] != 1)
        fail("read-only page unchanged");
    ok("write to read-only page: SIGSEGV SEGV_ACCERR at the address");

    if (munmap(m + PAGE, PAGE) != 0)
        fail("munmap");
    if (sigsetjmp(jump, 1) == 0) {
        (void)((volatile unsigned char *)m)[PAGE];
        fail("read of unmapped page did not fault");
    }
    if (fault_addr != m + PAGE)
        fail("si_addr of unmapped read");
    if (fault_code != SEGV_MAPERR)
        fail("si_code is SEGV_MAPERR");
    ok("read of unmapped page: SIGSEGV SEGV_MAPERR at the address");

    /* The handler ran once per fault and the process is still healthy. */
    m[0] = 3;
    if (m[0] != 3)
        fail("first page still usable");
    ok("recovered after faults");
}

static void extra(void) {
    /* MAP_FIXED into a hole punched with munmap. */
    unsigned char *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        fail("mmap 3 pages");
    memset(m, 0x11, 3 * PAGE);
    if (munmap(m + PAGE, PAGE) != 0)
        fail("munmap middle page");
    unsigned char *h = mmap(m + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (h != m + PAGE)
        fail("MAP_FIXED at the hole");
    if (h[0] != 0 || m[0] != 0x11 || m[2 * PAGE] != 0x11)
        fail("contents around MAP_FIXED");
    ok("MAP_FIXED into a hole");

    /* MAP_FIXED over an existing mapping replaces it with zero pages. */
    unsigned char *r = mmap(m, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (r != m || m[0] != 0)
        fail("MAP_FIXED replaces");
    ok("MAP_FIXED replaces an existing mapping");
    munmap(m, 3 * PAGE);

    /* mremap growth keeps the contents. */
    unsigned char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        fail("mmap for mremap");
    fill(a, 4 * PAGE, 5);
    unsigned char *g = mremap(a, 4 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
    if (g == MAP_FAILED)
        fail("mremap grow");
    if (!check(g, 4 * PAGE, 5))
        fail("contents after mremap");
    for (size_t i = 4 * PAGE; i < 64 * PAGE; i++)
        if (g[i] != 0)
            fail("grown part zero-filled");
    munmap(g, 64 * PAGE);
    ok("mremap grow keeps contents");

    /* realloc of a large block (glibc uses mremap). */
    unsigned char *big = malloc(1 << 20);
    if (!big)
        fail("malloc 1 MiB");
    fill(big, 1 << 20, 6);
    big = realloc(big, 16 << 20);
    if (!big || !check(big, 1 << 20, 6))
        fail("realloc to 16 MiB");
    free(big);
    ok("realloc large block");

    /* MADV_DONTNEED on private anonymous memory zeroes it. */
    unsigned char *d = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (d == MAP_FAILED)
        fail("mmap for madvise");
    memset(d, 0x77, 8 * PAGE);
    if (madvise(d, 8 * PAGE, MADV_DONTNEED) != 0)
        fail("madvise DONTNEED");
    for (size_t i = 0; i < 8 * PAGE; i++)
        if (d[i] != 0)
            fail("zero after MADV_DONTNEED");
    munmap(d, 8 * PAGE);
    ok("MADV_DONTNEED zeroes");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "basic";
    if (strcmp(mode, "basic") == 0)
        basic();
    else if (strcmp(mode, "fault") == 0)
        fault();
    else if (strcmp(mode, "extra") == 0)
        extra();
    else {
        printf("FAIL unknown mode %s\n", mode);
        return 2;
    }
    printf("done\n");
    return 0;
}
