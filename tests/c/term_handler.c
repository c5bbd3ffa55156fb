/* term_handler: installs a SIGTERM handler (and ignores SIGHUP), prints
 * "ready" (flushed), then waits in pause(). The handler prints which
 * signal arrived and exits 0, so a runtime that delivers `kill TERM` to
 * the application (instead of ending the sandbox) shows it in the output
 * and the exit status. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_term(int sig) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "handled signal %d\n", sig);
    write(1, msg, (size_t)n);
    _exit(0);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
