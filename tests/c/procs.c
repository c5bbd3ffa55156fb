/* procs MODE: processes, threads, pipes and signals inside the sandbox.
 * Every mode prints deterministic lines so the output can be compared with
 * a native run. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/time.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s: %s\n", what, strerror(errno));
        exit(99);
    }
}

static int mode_fork(void) {
    pid_t me = getpid();
    int n = 5, sum = 0;
    for (int i = 1; i <= n; i++) {
        pid_t c = fork();
        check(c >= 0, "fork");
        if (c == 0) {
            if (getppid() != me)
                _exit(100);
            _exit(i * 10);
        }
    }
    for (int i = 0; i < n; i++) {
        int st;
        pid_t w = wait(&st);
        check(w > 0, "wait");
        check(WIFEXITED(st), "exited");
        sum += WEXITSTATUS(st);
    }
    printf("fork: %d children, status sum %d\n", n, sum);
    check(wait(NULL) == -1 && errno == ECHILD, "ECHILD");
    printf("fork: no more children (ECHILD)\n");
    /* Copy-on-write: the child's writes stay in the child. */
    static int shared_var = 7;
    pid_t c = fork();
    if (c == 0) {
        shared_var = 42;
        _exit(shared_var == 42 ? 0 : 1);
    }
    int st;
    waitpid(c, &st, 0);
    printf("fork: child saw its own copy %d, parent still has %d\n", WEXITSTATUS(st) == 0, shared_var);
    /* MAP_SHARED anonymous memory, untouched before fork, is one memory. */
    int *sh = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check(sh != MAP_FAILED, "mmap shared");
    c = fork();
    if (c == 0) {
        sh[10] = 42;
        sh[200000] = 7;
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("fork: MAP_SHARED writes of the child seen by the parent: %d %d\n", sh[10], sh[200000]);
    return 0;
}

static int mode_pipe(void) {
    int fds[2];
    check(pipe(fds) == 0, "pipe");
    pid_t c = fork();
    check(c >= 0, "fork");
    if (c == 0) {
        close(fds[1]);
        unsigned long total = 0, sum = 0;
        unsigned char buf[8192];
        ssize_t r;
        while ((r = read(fds[0], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < r; i++)
                sum += buf[i];
            total += (unsigned long)r;
        }
        printf("pipe: child read %lu bytes, sum %lu, then EOF\n", total, sum);
        fflush(stdout);
        _exit(0);
    }
    close(fds[0]);
    unsigned char block[4096];
    for (int i = 0; i < 4096; i++)
        block[i] = (unsigned char)i;
    for (int i = 0; i < 256; i++) {
        ssize_t w = write(fds[1], block, sizeof block);
        check(w == (ssize_t)sizeof block, "write");
    }
    close(fds[1]);
    int st;
    check(waitpid(c, &st, 0) == c, "waitpid");
    /* EPIPE and SIGPIPE when no reader is left. */
    check(pipe(fds) == 0, "pipe2");
    signal(SIGPIPE, SIG_IGN);
    close(fds[0]);
    ssize_t w = write(fds[1], "x", 1);
    printf("pipe: write without reader = %zd (%s)\n", w, w < 0 && errno == EPIPE ? "EPIPE" : "?");
    /* dup2 onto stdout. */
    check(pipe(fds) == 0, "pipe3");
    int saved = dup(1);
    dup2(fds[1], 1);
    printf("through the pipe\n");
    fflush(stdout);
    dup2(saved, 1);
    close(fds[1]);
    char buf[64] = {0};
    ssize_t r = read(fds[0], buf, sizeof buf - 1);
    printf("pipe: dup2 captured %zd bytes: %s", r, buf);
    return 0;
}

static int mode_exec(void) {
    /* The program's own path, inside the sandbox and natively alike. */
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    check(n > 0, "readlink /proc/self/exe");
    self[n] = 0;
    pid_t c = fork();
    check(c >= 0, "fork");
    if (c == 0) {
        char *argv[] = {self, "exec-child", "with", "args", NULL};
        char *envp[] = {"FROM_EXEC=yes", NULL};
        execve(self, argv, envp);
        _exit(127);
    }
    int st;
    check(waitpid(c, &st, 0) == c, "waitpid");
    printf("exec: child exited %d\n", WEXITSTATUS(st));
    errno = 0;
    char *argv[] = {"/nonexistent", NULL};
    int r = execve("/nonexistent", argv, NULL);
    printf("exec: missing program = %d (%s)\n", r, errno == ENOENT ? "ENOENT" : "?");
    return 0;
}

static int exec_child(int argc, char **argv) {
    printf("exec-child: argc %d, %s %s, FROM_EXEC=%s, parent alive %d\n", argc, argv[2], argv[3],
           getenv("FROM_EXEC"), getppid() > 0);
    return 7;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter;
static int ready;

static void *worker(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    pthread_mutex_lock(&mu);
    ready++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return (void *)(n * 2);
}

static int mode_threads(void) {
    enum { N = 4 };
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        check(pthread_create(&t[i], NULL, worker, (void *)20000L) == 0, "pthread_create");
    pthread_mutex_lock(&mu);
    while (ready < N)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    long rets = 0;
    for (int i = 0; i < N; i++) {
        void *r;
        check(pthread_join(t[i], &r) == 0, "pthread_join");
        rets += (long)r;
    }
    printf("threads: counter %ld, returns %ld, all %d ready\n", counter, rets, ready);
    return 0;
}

static volatile sig_atomic_t chld;
static void on_chld(int s) {
    (void)s;
    chld++;
}

static int mode_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    pid_t c = fork();
    if (c == 0) {
        for (;;)
            pause();
    }
    kill(c, SIGTERM);
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR) {
    }
    printf("signals: child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    sigset_t none;
    sigemptyset(&none);
    while (!chld)
        sigsuspend(&none);
    printf("signals: SIGCHLD handled %d time(s)\n", (int)chld);
    /* A signal that came while blocked, before sigsuspend unblocks it (a
       shell's `kill %1; wait`): sigsuspend must return at once. */
    sigset_t only_chld, old;
    sigemptyset(&only_chld);
    sigaddset(&only_chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &only_chld, &old);
    chld = 0;
    pid_t q = fork();
    if (q == 0)
        _exit(0);
    siginfo_t si;
    /* WNOWAIT: the child is a zombie, its SIGCHLD pending, and it stays. */
    while (waitid(P_PID, q, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    alarm(10); /* a hang ends the test with SIGALRM, not a time-out */
    int r = sigsuspend(&none);
    alarm(0);
    printf("signals: pending SIGCHLD ends sigsuspend: %d, errno EINTR %d, handled %d\n", r,
           errno == EINTR, (int)chld);
    sigprocmask(SIG_SETMASK, &old, NULL);
    waitpid(q, &st, 0);
    struct timespec t0, t1, d = {0, 50 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nanosleep(&d, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("signals: slept at least 50 ms: %d\n", ms >= 50);
    pid_t v = vfork();
    if (v == 0)
        _exit(3);
    waitpid(v, &st, 0);
    printf("signals: vfork child exited %d\n", WEXITSTATUS(st));
    return 0;
}

/* select and poll wait for a pipe to become readable, and time out. */
static int mode_select(void) {
    int fds[2];
    check(pipe(fds) == 0, "pipe");
    pid_t c = fork();
    if (c == 0) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        check(write(fds[1], "x", 1) == 1, "write");
        _exit(0);
    }
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    struct timeval tv = {5, 0};
    int n = select(fds[0] + 1, &rd, NULL, NULL, &tv);
    printf("select: %d ready, readable %d\n", n, FD_ISSET(fds[0], &rd) != 0);
    char ch;
    check(read(fds[0], &ch, 1) == 1, "read");
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    tv.tv_sec = 0;
    tv.tv_usec = 10000;
    printf("select: timeout gives %d\n", select(fds[0] + 1, &rd, NULL, NULL, &tv));
    struct pollfd p = {fds[1], POLLOUT, 0};
    printf("poll: writable %d\n", poll(&p, 1, 0) == 1 && (p.revents & POLLOUT));
    waitpid(c, NULL, 0);
    close(fds[1]);
    p.fd = fds[0];
    p.events = POLLIN;
    printf("poll: hangup after the writer closed %d\n", poll(&p, 1, 1000) == 1 && (p.revents & POLLHUP));
    return 0;
}

/* eventfd between a parent and its child: blocking reads, semaphores. */
static int mode_eventfd(void) {
    int e = eventfd(0, 0);
    check(e >= 0, "eventfd");
    pid_t c = fork();
    if (c == 0) {
        struct timespec d = {0, 10 * 1000 * 1000};
        nanosleep(&d, NULL);
        uint64_t one = 5;
        check(write(e, &one, 8) == 8, "write");
        _exit(0);
    }
    uint64_t v = 0;
    check(read(e, &v, 8) == 8, "read");
    printf("eventfd: parent read %llu after blocking\n", (unsigned long long)v);
    waitpid(c, NULL, 0);
    int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    uint64_t a = 0, b = 0, x = 0;
    ssize_t r1 = read(s, &a, 8), r2 = read(s, &b, 8), r3 = read(s, &x, 8);
    printf("eventfd: semaphore reads %llu %llu, then %zd (%s)\n", (unsigned long long)a, (unsigned long long)b, r3,
           r3 < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    (void)r1;
    (void)r2;
    struct pollfd p = {e, POLLIN | POLLOUT, 0};
    poll(&p, 1, 0);
    printf("eventfd: poll in %d out %d\n", (p.revents & POLLIN) != 0, (p.revents & POLLOUT) != 0);
    return 0;
}

/* epoll: level- and edge-triggered, oneshot, timeouts, blocking waits. */
static int mode_epoll(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    check(ep >= 0, "epoll_create1");
    int fds[2];
    check(pipe(fds) == 0, "pipe");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 111};
    check(epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) == 0, "ctl add");
    struct epoll_event out[4];
    printf("epoll: empty pipe, timeout gives %d\n", epoll_wait(ep, out, 4, 10));
    check(write(fds[1], "ab", 2) == 2, "write");
    int n1 = epoll_wait(ep, out, 4, 0), n2 = epoll_wait(ep, out, 4, 0);
    printf("epoll: level-triggered reports %d then %d, data %llu\n", n1, n2, (unsigned long long)out[0].data.u64);
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = 222;
    check(epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &ev) == 0, "ctl mod");
    n1 = epoll_wait(ep, out, 4, 0);
    n2 = epoll_wait(ep, out, 4, 0);
    printf("epoll: oneshot reports %d then %d\n", n1, n2);
    char buf[8];
    check(read(fds[0], buf, sizeof buf) == 2, "drain");
    int e = eventfd(0, 0);
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 333;
    check(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == 0, "ctl add eventfd");
    check(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == -1 && errno == EEXIST, "EEXIST");
    pid_t c = fork();
    if (c == 0) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        uint64_t one = 1;
        check(write(e, &one, 8) == 8, "eventfd write");
        _exit(0);
    }
    n1 = epoll_wait(ep, out, 4, 5000);
    printf("epoll: blocking wait woke with %d event(s), data %llu\n", n1, (unsigned long long)out[0].data.u64);
    waitpid(c, NULL, 0);
    check(epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL) == 0, "ctl del");
    printf("epoll: del again gives %s\n", epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL) == -1 && errno == ENOENT ? "ENOENT" : "?");
    return 0;
}

/* socketpair: stream and datagram, and a descriptor passed with SCM_RIGHTS. */
static int mode_socket(void) {
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    pid_t c = fork();
    if (c == 0) {
        close(sv[0]);
        int p[2];
        check(pipe(p) == 0, "pipe");
        check(write(p[1], "via passed fd", 13) == 13, "pipe write");
        char byte = 'F';
        struct iovec iov = {&byte, 1};
        char cbuf[CMSG_SPACE(sizeof(int))];
        memset(cbuf, 0, sizeof cbuf);
        struct msghdr m = {0};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf;
        m.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
        check(sendmsg(sv[1], &m, 0) == 1, "sendmsg");
        check(send(sv[1], "stream bytes", 12, 0) == 12, "send");
        shutdown(sv[1], SHUT_WR);
        _exit(0);
    }
    close(sv[1]);
    char byte = 0;
    struct iovec iov = {&byte, 1};
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    check(recvmsg(sv[0], &m, 0) == 1, "recvmsg");
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    int passed = -1;
    if (cm && cm->cmsg_type == SCM_RIGHTS)
        memcpy(&passed, CMSG_DATA(cm), sizeof(int));
    char buf[64] = {0};
    check(passed >= 0 && read(passed, buf, sizeof buf) == 13, "read passed fd");
    printf("socket: byte %c, passed fd reads \"%s\"\n", byte, buf);
    memset(buf, 0, sizeof buf);
    ssize_t n, total = 0;
    while ((n = read(sv[0], buf + total, sizeof buf - 1 - total)) > 0)
        total += n;
    printf("socket: stream then EOF: \"%s\" (%zd)\n", buf, total);
    waitpid(c, NULL, 0);
    int dv[2];
    check(socketpair(AF_UNIX, SOCK_DGRAM, 0, dv) == 0, "dgram pair");
    send(dv[0], "one", 3, 0);
    send(dv[0], "three", 5, 0);
    char d1[8] = {0}, d2[8] = {0};
    ssize_t a = recv(dv[1], d1, sizeof d1, 0), b = recv(dv[1], d2, 2, 0);
    printf("socket: datagrams %zd \"%s\", truncated %zd \"%.2s\"\n", a, d1, b, d2);
    int type = 0;
    socklen_t tl = sizeof type;
    getsockopt(dv[0], SOL_SOCKET, SO_TYPE, &type, &tl);
    printf("socket: SO_TYPE %d; AF_INET socket: %s\n", type, socket(AF_INET, SOCK_STREAM, 0) < 0 ? "refused" : "created");
    return 0;
}

/* waitid with WNOWAIT, and rt_sigtimedwait for a blocked signal. */
static int mode_waitid(void) {
    /* An inherited SIG_IGN for SIGCHLD would reap children by itself. */
    signal(SIGCHLD, SIG_DFL);
    pid_t c = fork();
    if (c == 0)
        _exit(9);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    check(waitid(P_PID, c, &si, WEXITED | WNOWAIT) == 0, "waitid nowait");
    printf("waitid: code %s status %d pid matches %d\n", si.si_code == CLD_EXITED ? "CLD_EXITED" : "?", si.si_status,
           si.si_pid == c);
    memset(&si, 0, sizeof si);
    check(waitid(P_ALL, 0, &si, WEXITED) == 0, "waitid reap");
    int reaped = si.si_pid == c;
    int again = waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 && errno == ECHILD;
    printf("waitid: reaped the child %d; again: %s\n", reaped, again ? "ECHILD" : "?");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct timespec zero = {0, 0};
    printf("sigtimedwait: nothing pending gives %s\n", sigtimedwait(&set, NULL, &zero) < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    pid_t k = fork();
    if (k == 0) {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    struct timespec longer = {5, 0};
    siginfo_t got;
    int sig = sigtimedwait(&set, &got, &longer);
    printf("sigtimedwait: got %d from the child %d\n", sig, got.si_pid == k);
    waitpid(k, NULL, 0);
    return 0;
}

/* timerfd: one-shot and periodic expirations, read and polled. */
static int mode_timerfd(void) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    check(t >= 0, "timerfd_create");
    struct itimerspec its = {{0, 0}, {0, 20 * 1000 * 1000}};
    check(timerfd_settime(t, 0, &its, NULL) == 0, "settime");
    uint64_t n = 0;
    check(read(t, &n, 8) == 8, "read blocks until expiry");
    printf("timerfd: one-shot expired %llu time(s)\n", (unsigned long long)n);
    struct itimerspec per = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
    check(timerfd_settime(t, 0, &per, NULL) == 0, "settime periodic");
    struct pollfd p = {t, POLLIN, 0};
    int r = poll(&p, 1, 5000);
    printf("timerfd: poll woke with %d, readable %d\n", r, (p.revents & POLLIN) != 0);
    struct timespec d = {0, 35 * 1000 * 1000};
    nanosleep(&d, NULL);
    check(read(t, &n, 8) == 8, "read periodic");
    printf("timerfd: periodic expirations at least 3: %d\n", n >= 3);
    struct itimerspec cur;
    timerfd_gettime(t, &cur);
    printf("timerfd: interval %ld ms\n", cur.it_interval.tv_nsec / 1000000);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(t, 0, &off, NULL);
    fcntl(t, F_SETFL, O_NONBLOCK);
    printf("timerfd: disarmed read gives %s\n", read(t, &n, 8) < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    return 0;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int s) {
    (void)s;
    alarms++;
}

/* setitimer/alarm deliver SIGALRM; an unhandled one kills. */
static int mode_alarm(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 10000}, {0, 10000}};
    check(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    while (alarms < 3)
        pause();
    struct itimerval off = {{0, 0}, {0, 0}}, old;
    setitimer(ITIMER_REAL, &off, &old);
    printf("alarm: %d periodic alarms, interval was %ld us\n", (int)alarms, (long)old.it_interval.tv_usec);
    unsigned first = alarm(5);
    unsigned left = alarm(0);
    printf("alarm: alarm(5) found %u, alarm(0) found %u\n", first, left);
    pid_t c = fork();
    if (c == 0) {
        signal(SIGALRM, SIG_DFL);
        alarm(1);
        for (;;)
            pause();
    }
    int st;
    waitpid(c, &st, 0);
    printf("alarm: unhandled SIGALRM killed the child with %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return 0;
}

static volatile int stop_spin;
static void *spinner(void *arg) {
    (void)arg;
    while (!stop_spin) {
    }
    return NULL;
}

static volatile int stop_sys_spin;
static void *syscall_spinner(void *arg) {
    (void)arg;
    while (!stop_sys_spin)
        syscall(SYS_getppid);
    return NULL;
}

/* Tasks that never enter the kernel, or enter it all the time without ever
 * blocking, must not starve the others. */
static int mode_spin(void) {
    pid_t c = fork();
    check(c >= 0, "fork");
    if (c == 0) {
        for (;;) {
        }
    }
    struct timespec d = {0, 20 * 1000 * 1000};
    nanosleep(&d, NULL);
    kill(c, SIGKILL);
    int st;
    check(waitpid(c, &st, 0) == c, "waitpid");
    printf("spin: spinning child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    pthread_t t;
    check(pthread_create(&t, NULL, spinner, NULL) == 0, "pthread_create");
    nanosleep(&d, NULL);
    stop_spin = 1;
    pthread_join(t, NULL);
    printf("spin: spinning thread stopped by the main thread\n");
    /* A thread that makes syscalls without end (a poll that always finds
     * something ready, say) while the main thread sleeps. */
    check(pthread_create(&t, NULL, syscall_spinner, NULL) == 0, "pthread_create");
    nanosleep(&d, NULL);
    stop_sys_spin = 1;
    pthread_join(t, NULL);
    printf("spin: syscall-spinning thread stopped by the main thread\n");
    /* A parent that polls waitpid(WNOHANG) until its child has run. */
    c = fork();
    check(c >= 0, "fork");
    if (c == 0)
        _exit(7);
    while (waitpid(c, &st, WNOHANG) == 0) {
    }
    printf("spin: child polled for exited with %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

/* A fork bomb: fork until fork fails, every child waiting on a pipe;
 * then release and reap them all. Prints how it ended. */
static int mode_nproc(void) {
    int p[2];
    check(pipe(p) == 0, "pipe");
    int n = 0;
    pid_t c;
    while ((c = fork()) > 0 && n < 100000)
        n++;
    if (c == 0) {
        char b;
        close(p[1]);
        read(p[0], &b, 1); /* until the parent closes the write end */
        _exit(0);
    }
    int err = errno;
    close(p[1]);
    int reaped = 0;
    while (wait(NULL) > 0)
        reaped++;
    printf("nproc: fork failed with %s after %d children, reaped %d\n",
           c < 0 ? (err == EAGAIN ? "EAGAIN" : strerror(err)) : "nothing", n, reaped);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "fork"))
        return mode_fork();
    if (!strcmp(argv[1], "nproc"))
        return mode_nproc();
    if (!strcmp(argv[1], "pipe"))
        return mode_pipe();
    if (!strcmp(argv[1], "exec"))
        return mode_exec();
    if (!strcmp(argv[1], "exec-child"))
        return exec_child(argc, argv);
    if (!strcmp(argv[1], "threads"))
        return mode_threads();
    if (!strcmp(argv[1], "timerfd"))
        return mode_timerfd();
    if (!strcmp(argv[1], "waitid"))
        return mode_waitid();
    if (!strcmp(argv[1], "socket"))
        return mode_socket();
    if (!strcmp(argv[1], "epoll"))
        return mode_epoll();
    if (!strcmp(argv[1], "eventfd"))
        return mode_eventfd();
    if (!strcmp(argv[1], "alarm"))
        return mode_alarm();
    if (!strcmp(argv[1], "select"))
        return mode_select();
    if (!strcmp(argv[1], "spin"))
        return mode_spin();
    if (!strcmp(argv[1], "signals"))
        return mode_signals();
    return 2;
}
