/* pty: a pseudo-terminal pair through posix_openpt/grantpt/unlockpt/
 * ptsname: data both ways through the line discipline (echo, ICRNL and
 * ONLCR, erase, VEOF, raw mode), the ptmx ioctls, and job control with a
 * child whose controlling terminal it is (SIGINT, SIGQUIT, SIGTSTP from the
 * control characters, SIGWINCH from TIOCSWINSZ). Prints one line per check;
 * the output is the same natively and in the sandbox.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, const char *buf, ssize_t n) {
    printf("%s: ", what);
    if (n < 0) {
        printf("%s\n", strerrorname_np(errno));
        return;
    }
    printf("%zd [", n);
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    printf("]\n");
}

static void rd(const char *what, int fd) {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    show(what, buf, n);
}

static void wr(int fd, const char *s) {
    if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
        printf("write failed: %s\n", strerrorname_np(errno));
}

static volatile sig_atomic_t got[32];
static void on_signal(int sig) { got[sig] = 1; }

static int wait_for(int sig) {
    for (int i = 0; i < 2000 && !got[sig]; i++)
        usleep(1000);
    return got[sig];
}

/* The child: a new session whose controlling terminal is the slave. */
static int child(const char *name, int ready, int go) {
    setsid();
    int s = open(name, O_RDWR);
    if (s < 0) {
        printf("child open: %s\n", strerrorname_np(errno));
        return 1;
    }
    printf("child: tcgetpgrp is itself: %d\n", tcgetpgrp(s) == getpid());
    printf("child: tcgetsid is itself: %d\n", tcgetsid(s) == getpid());
    /* SA_RESTART: the signal may come while the child waits for "go" */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    const int sigs[] = {SIGINT, SIGQUIT, SIGTSTP, SIGWINCH};
    for (int i = 0; i < 4; i++) {
        fflush(stdout);
        char c = 'r';
        if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
            return 1;
        printf("child: got %s: %d\n", sigabbrev_np(sigs[i]), wait_for(sigs[i]));
    }
    /* what the terminal flushed on SIGINT is gone; this line arrives */
    rd("child: slave reads", s);
    fflush(stdout);
    return 0;
}

static long ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static int open_pair(int *s) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m);
    unlockpt(m);
    *s = open(ptsname(m), O_RDWR | O_NOCTTY);
    return m;
}

/* VMIN and VTIME in non-canonical mode (termios(3)). */
static void raw_timing(void) {
    int s, m = open_pair(&s);
    struct termios t;
    tcgetattr(s, &t);
    cfmakeraw(&t);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 2;
    tcsetattr(s, TCSANOW, &t);
    char buf[16];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ssize_t r = read(s, buf, sizeof buf);
    printf("VMIN 0 VTIME 2, no input: %zd after 0.2 s: %d\n", r, ms_since(&t0) >= 150);
    wr(m, "q");
    show("VMIN 0 VTIME 2, input", buf, read(s, buf, sizeof buf));

    t.c_cc[VMIN] = 3;
    t.c_cc[VTIME] = 0;
    tcsetattr(s, TCSANOW, &t);
    pid_t pid = fork();
    if (pid == 0) {
        wr(m, "ab");
        usleep(100000);
        wr(m, "cd");
        _exit(0);
    }
    show("VMIN 3 VTIME 0, 2 bytes then 2", buf, read(s, buf, sizeof buf));
    waitpid(pid, NULL, 0);

    t.c_cc[VMIN] = 4;
    t.c_cc[VTIME] = 1;
    tcsetattr(s, TCSANOW, &t);
    wr(m, "xy");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = read(s, buf, sizeof buf);
    show("VMIN 4 VTIME 1, 2 bytes", buf, r);
    printf("  after the inter-byte timer: %d\n", ms_since(&t0) >= 50);
    close(s);
    close(m);
}

/* Hang-ups: the master closing sends the session leader SIGHUP and
 * SIGCONT and the slave reads an end of file; the session leader exiting
 * sends its terminal's foreground process group SIGHUP. */
static void hang_ups(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m);
    unlockpt(m);
    char *name = strdup(ptsname(m));
    int hp[2];
    if (pipe(hp))
        return;
    char c;
    pid_t pid = fork();
    if (pid == 0) {
        close(m); /* the parent's is the last master */
        setsid();
        signal(SIGHUP, on_signal);
        signal(SIGCONT, on_signal);
        int s = open(name, O_RDWR);
        write(hp[1], "r", 1);
        for (int i = 0; i < 5000 && !got[SIGHUP]; i++)
            usleep(1000);
        ssize_t n = read(s, &c, 1);
        printf("leader: SIGHUP %d SIGCONT %d, slave read after the hang-up: %zd\n", got[SIGHUP],
               got[SIGCONT], n);
        _exit(0);
    }
    read(hp[0], &c, 1);
    close(m);
    waitpid(pid, NULL, 0);

    int s;
    m = open_pair(&s);
    close(s);
    name = strdup(ptsname(m));
    pid = fork();
    if (pid == 0) {
        setsid();
        open(name, O_RDWR); /* the controlling terminal; fg group: ours */
        close(m);
        pid_t member = fork();
        if (member == 0) {
            signal(SIGHUP, on_signal);
            write(hp[1], "m", 1);
            for (int i = 0; i < 5000 && !got[SIGHUP]; i++)
                usleep(1000);
            write(hp[1], got[SIGHUP] ? "H" : "-", 1);
            _exit(0);
        }
        read(hp[0], &c, 1);
        _exit(0); /* the session leader goes */
    }
    waitpid(pid, NULL, 0);
    c = '?';
    read(hp[0], &c, 1);
    printf("foreground member after its session leader exited: %c\n", c);
    close(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) {
        printf("posix_openpt: %s\n", strerrorname_np(errno));
        return 1;
    }
    printf("grantpt: %d\n", grantpt(m));
    int locked = -1;
    int r = ioctl(m, TIOCGPTLCK, &locked);
    printf("TIOCGPTLCK: %d %d\n", r, locked);
    char *name = strdup(ptsname(m));
    int n = -1;
    ioctl(m, TIOCGPTN, &n);
    char want[32];
    snprintf(want, sizeof want, "/dev/pts/%d", n);
    printf("ptsname matches TIOCGPTN: %d\n", strcmp(name, want) == 0);
    printf("open while locked: %s\n", open(name, O_RDWR | O_NOCTTY) < 0 ? strerrorname_np(errno) : "opened");
    printf("unlockpt: %d\n", unlockpt(m));
    int s = open(name, O_RDWR | O_NOCTTY);
    printf("open slave: %d\n", s >= 0);
    int tm = isatty(m), ts = isatty(s);
    printf("isatty: %d %d\n", tm, ts);
    struct stat st;
    stat(name, &st);
    printf("slave is char major 136: %d\n", S_ISCHR(st.st_mode) && major(st.st_rdev) == 136);
    fstat(m, &st);
    printf("master is char 5:2: %d\n", S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 && minor(st.st_rdev) == 2);
    DIR *d = opendir("/dev/pts");
    int listed = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (atoi(e->d_name) == n && e->d_name[0] >= '0' && e->d_name[0] <= '9')
            listed = 1;
    if (d)
        closedir(d);
    printf("listed in /dev/pts: %d\n", listed);

    struct termios t;
    tcgetattr(s, &t);
    printf("slave lflag ICANON %d ECHO %d ISIG %d, iflag ICRNL %d, oflag ONLCR %d\n",
           !!(t.c_lflag & ICANON), !!(t.c_lflag & ECHO), !!(t.c_lflag & ISIG),
           !!(t.c_iflag & ICRNL), !!(t.c_oflag & ONLCR));
    tcgetattr(m, &t);
    printf("master lflag %o iflag %o oflag %o\n", t.c_lflag, t.c_iflag, t.c_oflag);

    /* canonical input, echo */
    wr(m, "hello\r");
    rd("slave reads", s);
    rd("master reads echo", m);
    wr(m, "ab\x7f" "c\n");
    rd("slave reads after erase", s);
    rd("master reads echo", m);
    wr(m, "one\ntwo\n");
    char small[3];
    show("short read", small, read(s, small, sizeof small));
    rd("rest of the line", s);
    rd("next line", s);
    rd("master reads echo", m);
    wr(m, "abc\x04");
    rd("line ended by VEOF", s);
    wr(m, "\x04");
    rd("VEOF on an empty line", s);
    rd("master reads echo", m);
    int avail = -1;
    wr(m, "xyz\n");
    struct pollfd p = {.fd = s, .events = POLLIN};
    r = poll(&p, 1, 1000);
    printf("poll slave: %d revents %x\n", r, p.revents);
    ioctl(s, FIONREAD, &avail);
    printf("FIONREAD: %d\n", avail);
    rd("slave reads", s);
    rd("master reads echo", m);

    /* output */
    wr(s, "out\nput\n");
    p.fd = m;
    r = poll(&p, 1, 1000);
    printf("poll master: %d revents %x\n", r, p.revents);
    rd("master reads", m);
    p.fd = s;
    printf("poll slave, nothing to read: %d\n", poll(&p, 1, 0));

    /* raw */
    tcgetattr(s, &t);
    cfmakeraw(&t);
    tcsetattr(s, TCSANOW, &t);
    wr(m, "x\r\x03\x7f");
    rd("raw slave reads", s);
    wr(s, "a\nb");
    rd("raw master reads", m);
    fcntl(s, F_SETFL, O_NONBLOCK);
    rd("raw slave, nothing", s);
    tcgetattr(s, &t);
    t.c_lflag |= ICANON | ISIG | ECHO;
    t.c_iflag |= ICRNL;
    t.c_oflag |= OPOST | ONLCR;
    tcsetattr(s, TCSANOW, &t);
    fcntl(s, F_SETFL, 0);

    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    printf("TIOCSWINSZ: %d\n", ioctl(m, TIOCSWINSZ, &ws));
    struct winsize back;
    ioctl(s, TIOCGWINSZ, &back);
    printf("TIOCGWINSZ on the slave: %dx%d\n", back.ws_col, back.ws_row);
    printf("TIOCGPTN on the slave: %s\n", ioctl(s, TIOCGPTN, &n) < 0 ? strerrorname_np(errno) : "ok");
    printf("tcgetpgrp without a ctty: %s\n", tcgetpgrp(s) < 0 ? strerrorname_np(errno) : "ok");

    /* job control */
    int ready[2], go[2];
    if (pipe(ready) || pipe(go))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(m);
        close(s);
        _exit(child(name, ready[1], go[0]));
    }
    close(ready[1]);
    close(go[0]);
    char c;
    const char *keys[] = {"partial\x03", "\x1c", "\x1a", NULL};
    for (int i = 0; i < 4; i++) {
        if (read(ready[0], &c, 1) != 1)
            break;
        if (keys[i]) {
            wr(m, keys[i]);
        } else {
            ws.ws_col = 100;
            ioctl(m, TIOCSWINSZ, &ws);
        }
        if (write(go[1], &c, 1) != 1)
            break;
    }
    wr(m, "after\n");
    int status;
    waitpid(pid, &status, 0);
    printf("child exited: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    rd("master reads echo", m);

    close(s);
    rd("master after the slave closed", m);
    close(m);

    /* a reader of the master wakes when the process with the slave exits */
    int m2 = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m2);
    unlockpt(m2);
    char *name2 = strdup(ptsname(m2));
    pid = fork();
    if (pid == 0) {
        int s2 = open(name2, O_RDWR | O_NOCTTY);
        usleep(100000);
        wr(s2, "bye\n");
        _exit(0);
    }
    char all[64];
    size_t got_n = 0;
    ssize_t k;
    while ((k = read(m2, all + got_n, sizeof all - 1 - got_n)) > 0)
        got_n += (size_t)k;
    show("master read until the slave's process exited", all, (ssize_t)got_n);
    printf("then: %s\n", k < 0 ? strerrorname_np(errno) : "end of file");
    waitpid(pid, &status, 0);
    close(m2);
    printf("slave gone with the master: %s\n", open(name, O_RDWR | O_NOCTTY) < 0 ? strerrorname_np(errno) : "opened");
    raw_timing();
    hang_ups();
    return 0;
}
