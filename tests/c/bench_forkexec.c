/* bench_forkexec N PATH: fork + exec + wait of the static program PATH (the
 * bench uses bench_true), N times after one untimed warm-up, timed with
 * CLOCK_MONOTONIC around the loop. Prints one line:
 *
 *   forkexec N=<N> ns_per_op=<nanoseconds per fork+exec+wait, one decimal>
 *
 * Exits 2 on bad arguments, 1 if a child cannot be started or fails. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int once(const char *path) {
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = {(char *)path, NULL};
        char *envp[] = {NULL};
        execve(path, argv, envp);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 2 ? atol(argv[1]) : 0;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_forkexec N PATH (N > 0)\n");
        return 2;
    }
    if (once(argv[2]) != 0) {
        fprintf(stderr, "bench_forkexec: running %s failed\n", argv[2]);
        return 1;
    }
    long long t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (once(argv[2]) != 0)
            return 1;
    long long t1 = now_ns();
    printf("forkexec N=%ld ns_per_op=%.1f\n", n, (double)(t1 - t0) / (double)n);
    return 0;
}
