/* signal_exit MODE: prints a line (flushed), then dies in the chosen way.
 *
 *   segv     raise(SIGSEGV)             -> killed by 11 (runc-style 139)
 *   kill     kill(getpid(), SIGKILL)    -> killed by 9  (137)
 *   null     store through NULL         -> killed by 11 (139)
 *   abort    abort()                    -> killed by 6  (134)
 *   term     raise(SIGTERM)             -> killed by 15 (143)
 *   handled  SIGUSR1 with a handler: the handler runs, the program goes on
 *            and exits 0
 *   ignored  SIGTERM ignored with SIG_IGN: raise() returns, exit 0
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_usr1(int sig) {
    got = sig;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    printf("before %s\n", mode);
    fflush(stdout);
    if (strcmp(mode, "segv") == 0) {
        raise(SIGSEGV);
    } else if (strcmp(mode, "kill") == 0) {
        kill(getpid(), SIGKILL);
    } else if (strcmp(mode, "null") == 0) {
        *(volatile int *)0 = 1;
    } else if (strcmp(mode, "abort") == 0) {
        abort();
    } else if (strcmp(mode, "term") == 0) {
        raise(SIGTERM);
    } else if (strcmp(mode, "handled") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0) {
            perror("sigaction");
            return 1;
        }
        if (raise(SIGUSR1) != 0) {
            perror("raise");
            return 1;
        }
        printf("handler saw signal %d\n", (int)got);
        return got == SIGUSR1 ? 0 : 1;
    } else if (strcmp(mode, "ignored") == 0) {
        signal(SIGTERM, SIG_IGN);
        raise(SIGTERM);
        printf("SIGTERM ignored\n");
        return 0;
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("still alive after %s\n", mode);
    return 3;
}
