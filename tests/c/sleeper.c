/* sleeper [SECONDS]: prints "sleeper started" (flushed), then sleeps in a
 * loop of 10 ms nanosleeps for SECONDS (default 60) and prints
 * "sleeper done". Used to kill a long-running container's init.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long seconds = argc > 1 ? atol(argv[1]) : 60;
    printf("sleeper started\n");
    fflush(stdout);
    for (long i = 0; i < seconds * 100; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (nanosleep(&ts, NULL) != 0) {
            perror("nanosleep");
            return 1;
        }
    }
    printf("sleeper done\n");
    return 0;
}
