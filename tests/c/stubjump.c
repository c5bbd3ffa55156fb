/* Jump into the platform's own code in our address space to make host
 * system calls behind the sentry's back.
 *
 * On the ptrace platform the stub's code page (and its sysmsg slots) sit
 * in every application address space, above the top the sentry hands
 * out, so they are absent from /proc/self/maps. This scans the top of the
 * address space for readable pages the maps do not list, and for every
 * `syscall` instruction (0f 05) in them runs, in a child, exit_group(77)
 * from that instruction. Trapped by the sandbox, the child exits with 77;
 * made on the host, it would end the stub process under the sentry.
 *
 * Prints "sites N", then "trapped K of N"; exits 0 if every site was
 * trapped. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOP 0x7ffffffff000UL
#define PAGES 4096UL

static sigjmp_buf jb;
static void on_segv(int sig) {
    (void)sig;
    siglongjmp(jb, 1);
}

static unsigned long lo[256], hi[256];
static int nmaps;

static int listed(unsigned long a) {
    for (int i = 0; i < nmaps; i++)
        if (a >= lo[i] && a < hi[i])
            return 1;
    return 0;
}

static int readable(const volatile unsigned char *p) {
    if (sigsetjmp(jb, 1) == 0) {
        (void)*p;
        return 1;
    }
    return 0;
}

int main(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) {
        perror("maps");
        return 1;
    }
    char line[512];
    while (nmaps < 256 && fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &lo[nmaps], &hi[nmaps]) == 2)
            nmaps++;
    fclose(f);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    static unsigned long sites[4096];
    int n = 0;
    for (unsigned long a = TOP - PAGES * 4096; a < TOP; a += 4096) {
        if (listed(a) || !readable((const unsigned char *)a))
            continue;
        const unsigned char *p = (const unsigned char *)a;
        for (int i = 0; i + 1 < 4096 && n < 4096; i++)
            if (p[i] == 0x0f && p[i + 1] == 0x05)
                sites[n++] = a + i;
    }
    printf("sites %d\n", n);
    fflush(stdout);

    int trapped = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            alarm(5);
            /* Run a while first: a space gets its seccomp-trapped threads
             * only after some switches under PTRACE_SYSEMU. */
            for (int k = 0; k < 1000; k++)
                getppid();
            __asm__ volatile("xor %%r12d, %%r12d\n"
                             "xor %%r13d, %%r13d\n"
                             "xor %%r14d, %%r14d\n"
                             "mov $231, %%eax\n"
                             "mov $77, %%edi\n"
                             "jmp *%0\n"
                             :
                             : "r"(sites[i])
                             : "rax", "rdi", "r12", "r13", "r14", "memory");
            _exit(1);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
            trapped++;
        else
            printf("site %#lx: status %#x\n", sites[i], st);
    }
    printf("trapped %d of %d\n", trapped, n);
    return trapped == n ? 0 : 2;
}
