/* ipc2 MODE: signalfd, POSIX timers, close_range and robust mutexes inside
 * the sandbox. Every mode prints deterministic lines so the output can be
 * compared with a native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const char *self_path;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s: %s\n", what, strerror(errno));
        fflush(stdout);
        exit(99);
    }
}

static const char *err(long r) {
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EINVAL:
        return "EINVAL";
    case EBADF:
        return "EBADF";
    case EAGAIN:
        return "EAGAIN";
    case EFAULT:
        return "EFAULT";
    default:
        return strerror(errno);
    }
}

static void msleep(int ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) < 0 && errno == EINTR)
        ;
}

/* A child that sends `sig` to the parent after `ms` milliseconds. */
static pid_t kill_later(int sig, int ms) {
    pid_t parent = getpid();
    pid_t c = fork();
    check(c >= 0, "fork");
    if (c == 0) {
        msleep(ms);
        kill(parent, sig);
        _exit(0);
    }
    return c;
}

/* ---- signalfd ---- */

static int sfd_thread_fd;
static void *sfd_reader(void *arg) {
    (void)arg;
    struct signalfd_siginfo si;
    ssize_t n = read(sfd_thread_fd, &si, sizeof si);
    printf("signalfd: a thread's blocking read got %zd bytes, signal %u\n", n, si.ssi_signo);
    return NULL;
}

static int mode_signalfd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    check(sigprocmask(SIG_BLOCK, &set, NULL) == 0, "sigprocmask");
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    int fd = signalfd(-1, &one, SFD_NONBLOCK | SFD_CLOEXEC);
    check(fd >= 0, "signalfd");
    printf("signalfd: cloexec %d nonblock %d\n", fcntl(fd, F_GETFD) == FD_CLOEXEC,
           (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    struct signalfd_siginfo si[2];
    printf("signalfd: empty read gives %s\n", err(read(fd, si, sizeof si)));
    printf("signalfd: short buffer gives %s\n", err(read(fd, si, 64)));
    struct pollfd p = {fd, POLLIN, 0};
    printf("signalfd: poll with nothing pending %d\n", poll(&p, 1, 0));

    kill(getpid(), SIGUSR1);
    p.revents = 0;
    int r = poll(&p, 1, 0);
    printf("signalfd: poll after kill %d revents POLLIN %d\n", r, (p.revents & POLLIN) != 0);
    memset(si, 0, sizeof si);
    ssize_t n = read(fd, si, sizeof si);
    printf("signalfd: read %zd bytes: signo %u code %s pid matches %d uid matches %d\n", n,
           si[0].ssi_signo, si[0].ssi_code == SI_USER ? "SI_USER" : "?",
           si[0].ssi_pid == (uint32_t)getpid(), si[0].ssi_uid == getuid());
    sigset_t pend;
    sigpending(&pend);
    printf("signalfd: SIGUSR1 still pending after the read %d\n", sigismember(&pend, SIGUSR1));

    /* A signal outside the mask stays pending; a new mask takes it. */
    raise(SIGUSR2);
    printf("signalfd: SIGUSR2 outside the mask gives %s\n", err(read(fd, si, sizeof si)));
    check(signalfd(fd, &set, 0) == fd, "signalfd update");
    kill(getpid(), SIGUSR1);
    n = read(fd, si, sizeof si);
    printf("signalfd: two records, %zd bytes: %u (%s) then %u (%s)\n", n, si[0].ssi_signo,
           si[0].ssi_code == SI_TKILL ? "SI_TKILL" : "?", si[1].ssi_signo,
           si[1].ssi_code == SI_USER ? "SI_USER" : "?");

    printf("signalfd: update of a non-signalfd gives %s\n", err(signalfd(0, &set, 0)));
    printf("signalfd: update of a closed fd gives %s\n", err(signalfd(999, &set, 0)));
    printf("signalfd: bad flags give %s\n", err(signalfd(-1, &set, 0x1234)));
    printf("signalfd: bad size gives %s\n", err(syscall(SYS_signalfd4, -1, &set, 4, 0)));
    printf("signalfd: bad mask pointer gives %s\n", err(syscall(SYS_signalfd4, -1, (void *)8, 8, 0)));

    /* Blocking: a read, then an epoll wait, woken by another process's kill. */
    int bfd = signalfd(-1, &one, 0);
    check(bfd >= 0, "signalfd blocking");
    pid_t c = kill_later(SIGUSR1, 20);
    memset(si, 0, sizeof si);
    n = read(bfd, si, sizeof si);
    printf("signalfd: blocking read %zd bytes signo %u from the child %d\n", n, si[0].ssi_signo,
           si[0].ssi_pid == (uint32_t)c);
    waitpid(c, NULL, 0);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7};
    check(epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &ev) == 0, "epoll_ctl");
    struct epoll_event out;
    printf("signalfd: epoll with nothing pending %d\n", epoll_wait(ep, &out, 1, 0));
    c = kill_later(SIGUSR1, 20);
    r = epoll_wait(ep, &out, 1, 5000);
    printf("signalfd: epoll woke with %d event(s), data %u, EPOLLIN %d\n", r, out.data.u32,
           (out.events & EPOLLIN) != 0);
    n = read(bfd, si, sizeof si);
    printf("signalfd: then read %zd bytes\n", n);
    waitpid(c, NULL, 0);

    /* select, blocking until the signal arrives. */
    c = kill_later(SIGUSR1, 20);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(bfd, &rs);
    struct timeval tv = {5, 0};
    r = select(bfd + 1, &rs, NULL, NULL, &tv);
    printf("signalfd: select woke with %d, readable %d\n", r, FD_ISSET(bfd, &rs) != 0);
    read(bfd, si, sizeof si);
    waitpid(c, NULL, 0);

    /* Another thread blocked in read takes a process-directed signal. */
    sfd_thread_fd = bfd;
    pthread_t th;
    check(pthread_create(&th, NULL, sfd_reader, NULL) == 0, "pthread_create");
    msleep(20);
    kill(getpid(), SIGUSR1);
    pthread_join(th, NULL);
    close(ep);
    close(bfd);
    close(fd);
    return 0;
}

/* ---- POSIX timers ---- */

static volatile sig_atomic_t alrm_count, alrm_code_ok, alrm_value;
static void on_alrm(int s, siginfo_t *si, void *uc) {
    (void)s;
    (void)uc;
    alrm_count++;
    alrm_code_ok = si->si_code == SI_TIMER;
    alrm_value = si->si_value.sival_int;
}

static int tid_thread_ready;
static pid_t tid_thread_tid;
static void *tid_waiter(void *arg) {
    (void)arg;
    tid_thread_tid = gettid();
    __atomic_store_n(&tid_thread_ready, 1, __ATOMIC_SEQ_CST);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    siginfo_t si;
    int sig = sigwaitinfo(&s, &si);
    printf("timer: SIGEV_THREAD_ID thread got %d code %s value %d\n", sig,
           si.si_code == SI_TIMER ? "SI_TIMER" : "?", si.si_value.sival_int);
    return NULL;
}

static sem_t notified;
static int notify_value;
static void on_notify(union sigval v) {
    notify_value = v.sival_int;
    sem_post(&notified);
}

static long ms_of(struct timespec t) {
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int mode_timers(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    check(sigprocmask(SIG_BLOCK, &set, NULL) == 0, "sigprocmask");
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    /* Made first so that its id is 0 both natively and in the sandbox (a
     * later one's id differs: Linux does not reuse ids at once); some Linux
     * versions put 0 rather than the id in si_value. */
    timer_t at;
    check(timer_create(CLOCK_BOOTTIME, NULL, &at) == 0, "timer_create NULL");

    /* SIGEV_SIGNAL, one-shot, taken with sigwaitinfo. */
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR1;
    sev.sigev_value.sival_int = 77;
    timer_t t;
    check(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0, "timer_create");
    struct itimerspec its = {{0, 0}, {0, 20 * 1000 * 1000}};
    check(timer_settime(t, 0, &its, NULL) == 0, "timer_settime");
    struct itimerspec cur;
    timer_gettime(t, &cur);
    printf("timer: armed, remaining in (0, 20ms] %d\n",
           (cur.it_value.tv_sec || cur.it_value.tv_nsec) && ms_of(cur.it_value) <= 20);
    siginfo_t si;
    int sig = sigwaitinfo(&usr1, &si);
    printf("timer: one-shot sent %d code %s value %d timerid matches %d overrun %d\n", sig,
           si.si_code == SI_TIMER ? "SI_TIMER" : "?", si.si_value.sival_int,
           si.si_timerid == (int)(intptr_t)t, si.si_overrun);
    timer_gettime(t, &cur);
    printf("timer: after expiry remaining %ld.%09ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

    /* The old value comes back from settime. */
    struct itimerspec sec = {{0, 0}, {1, 0}}, old;
    timer_settime(t, 0, &sec, NULL);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &off, &old);
    printf("timer: old value in (500ms, 1s] %d\n", ms_of(old.it_value) > 500 && ms_of(old.it_value) <= 1000);
    timer_gettime(t, &cur);
    printf("timer: disarmed remaining %ld\n", ms_of(cur.it_value));

    /* TIMER_ABSTIME on CLOCK_REALTIME: in 30 ms, then in the past (at once). */
    timer_t rt;
    check(timer_create(CLOCK_REALTIME, &sev, &rt) == 0, "timer_create realtime");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    now.tv_nsec += 30 * 1000 * 1000;
    if (now.tv_nsec >= 1000000000) {
        now.tv_sec++;
        now.tv_nsec -= 1000000000;
    }
    struct itimerspec abs = {{0, 0}, now};
    check(timer_settime(rt, TIMER_ABSTIME, &abs, NULL) == 0, "abstime");
    sig = sigwaitinfo(&usr1, &si);
    struct timespec after;
    clock_gettime(CLOCK_REALTIME, &after);
    int late = after.tv_sec > now.tv_sec || (after.tv_sec == now.tv_sec && after.tv_nsec >= now.tv_nsec);
    printf("timer: absolute realtime sent %d, not early %d\n", sig, late);
    struct itimerspec past = {{0, 0}, {1, 0}};
    timer_settime(rt, TIMER_ABSTIME, &past, NULL);
    struct timespec five = {5, 0};
    sig = sigtimedwait(&usr1, &si, &five);
    printf("timer: absolute time in the past sent %d at once\n", sig);
    timer_delete(rt);

    /* Overruns: a 1 ms period while the signal stays pending. */
    struct itimerspec fast = {{0, 1000 * 1000}, {0, 1000 * 1000}};
    timer_settime(t, 0, &fast, NULL);
    msleep(50);
    sig = sigwaitinfo(&usr1, &si);
    int ov = timer_getoverrun(t);
    printf("timer: periodic with the signal pending: overrun > 0 %d, getoverrun matches %d\n",
           si.si_overrun > 0, ov == si.si_overrun);
    timer_settime(t, 0, &off, NULL);
    timer_delete(t);

    /* NULL sevp: SIGALRM to the process, carrying the timer id; periodic. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alrm;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerspec per = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
    timer_settime(at, 0, &per, NULL);
    timer_gettime(at, &cur);
    printf("timer: periodic interval %ld ms\n", ms_of(cur.it_interval));
    while (alrm_count < 3)
        pause();
    timer_settime(at, 0, &off, NULL);
    printf("timer: SIGALRM at least 3 times, code SI_TIMER %d, value is the id %d\n", alrm_code_ok,
           alrm_value == (int)(intptr_t)at);
    timer_delete(at);

    /* SIGEV_NONE: nothing is sent, the time can be read. */
    timer_t nt;
    sev.sigev_notify = SIGEV_NONE;
    check(timer_create(CLOCK_MONOTONIC, &sev, &nt) == 0, "timer_create SIGEV_NONE");
    struct itimerspec shortone = {{0, 0}, {0, 10 * 1000 * 1000}};
    timer_settime(nt, 0, &shortone, NULL);
    msleep(20);
    timer_gettime(nt, &cur);
    sigpending(&set);
    printf("timer: SIGEV_NONE expired, remaining %ld, nothing pending %d\n", ms_of(cur.it_value),
           !sigismember(&set, SIGUSR1));
    timer_delete(nt);

    /* SIGEV_THREAD_ID: the signal goes to the named thread. */
    pthread_t th;
    check(pthread_create(&th, NULL, tid_waiter, NULL) == 0, "pthread_create");
    while (!__atomic_load_n(&tid_thread_ready, __ATOMIC_SEQ_CST))
        msleep(1);
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR2;
    sev.sigev_value.sival_int = 5;
    sev.sigev_notify_thread_id = tid_thread_tid;
    timer_t tt;
    check(timer_create(CLOCK_MONOTONIC, &sev, &tt) == 0, "timer_create THREAD_ID");
    its.it_value.tv_nsec = 20 * 1000 * 1000;
    timer_settime(tt, 0, &its, NULL);
    pthread_join(th, NULL);
    timer_delete(tt);

    /* SIGEV_THREAD: the C library runs the function on a new thread. */
    sem_init(&notified, 0, 0);
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD;
    sev.sigev_notify_function = on_notify;
    sev.sigev_value.sival_int = 42;
    timer_t gt;
    check(timer_create(CLOCK_MONOTONIC, &sev, &gt) == 0, "timer_create SIGEV_THREAD");
    timer_settime(gt, 0, &its, NULL);
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 5;
    int got = sem_timedwait(&notified, &limit) == 0;
    printf("timer: SIGEV_THREAD function ran %d with value %d\n", got, notify_value);
    timer_delete(gt);

    /* Errors. */
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR1;
    int kid = -1;
    printf("timer: bad clock gives %s\n", err(syscall(SYS_timer_create, 12345, &sev, &kid)));
    sev.sigev_notify = 99;
    printf("timer: bad notify gives %s\n", err(syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &kid)));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = 0;
    printf("timer: bad signal gives %s\n", err(syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &kid)));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR1;
    sev.sigev_notify_thread_id = 999999;
    printf("timer: bad thread id gives %s\n", err(syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &kid)));
    printf("timer: bad sigevent pointer gives %s\n",
           err(syscall(SYS_timer_create, CLOCK_MONOTONIC, (void *)8, &kid)));
    check(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &kid) == 0, "raw timer_create");
    printf("timer: NULL new value gives %s\n", err(syscall(SYS_timer_settime, kid, 0, NULL, NULL)));
    struct itimerspec bad = {{0, 0}, {0, 2000000000L}};
    printf("timer: bad nanoseconds give %s\n", err(syscall(SYS_timer_settime, kid, 0, &bad, NULL)));
    printf("timer: delete gives %s\n", err(syscall(SYS_timer_delete, kid)));
    printf("timer: delete again gives %s\n", err(syscall(SYS_timer_delete, kid)));
    printf("timer: gettime of a deleted timer gives %s\n", err(syscall(SYS_timer_gettime, kid, &cur)));
    printf("timer: getoverrun of a deleted timer gives %s\n", err(syscall(SYS_timer_getoverrun, kid)));

    /* Timers are not inherited by fork and are deleted by exec. */
    check(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &kid) == 0, "raw timer_create 2");
    pid_t c = fork();
    if (c == 0) {
        int gone = syscall(SYS_timer_gettime, kid, &cur) < 0 && errno == EINVAL;
        printf("timer: a forked child does not have the timer %d\n", gone);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        /* The timer must be this process's own before exec. */
        check(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &kid) == 0, "child timer_create");
        char arg[16];
        snprintf(arg, sizeof arg, "%d", kid);
        execl(self_path, self_path, "timer-exec-child", arg, (char *)NULL);
        _exit(98);
    }
    waitpid(c, NULL, 0);
    return 0;
}

static int timer_exec_child(const char *id) {
    struct itimerspec cur;
    long r = syscall(SYS_timer_gettime, atoi(id), &cur);
    printf("timer: after exec the timer is gone: %s\n", err(r));
    return 0;
}

/* ---- close_range ---- */

static const char *fd_state(int fd) {
    int f = fcntl(fd, F_GETFD);
    if (f < 0)
        return "closed";
    return f & FD_CLOEXEC ? "cloexec" : "open";
}

static int mode_close_range(void) {
    int null = open("/dev/null", O_RDONLY);
    check(null >= 0, "open /dev/null");
    for (int fd = 20; fd <= 26; fd++)
        check(dup2(null, fd) == fd, "dup2");
    close(null);
    printf("close_range: 22..24 gives %s\n", err(syscall(SYS_close_range, 22, 24, 0)));
    for (int fd = 20; fd <= 26; fd++)
        printf("close_range: fd %d %s\n", fd, fd_state(fd));
    printf("close_range: cloexec 25..~0 gives %s\n",
           err(syscall(SYS_close_range, 25, ~0U, CLOSE_RANGE_CLOEXEC)));
    for (int fd = 24; fd <= 26; fd++)
        printf("close_range: fd %d %s\n", fd, fd_state(fd));
    printf("close_range: first > last gives %s\n", err(syscall(SYS_close_range, 5, 3, 0)));
    printf("close_range: unknown flags give %s\n", err(syscall(SYS_close_range, 30, 40, 0x100)));
    printf("close_range: nothing open in range gives %s\n", err(syscall(SYS_close_range, 100, ~0U, 0)));
    printf("close_range: unshare gives %s\n",
           err(syscall(SYS_close_range, 100, 200, CLOSE_RANGE_UNSHARE)));

    /* Closing a pipe's write end through a range lets the reader see EOF. */
    int p[2];
    check(pipe(p) == 0, "pipe");
    check(dup2(p[1], 40) == 40, "dup2 pipe");
    close(p[1]);
    syscall(SYS_close_range, 40, 40, 0);
    char b;
    printf("close_range: the reader then reads %zd (EOF)\n", read(p[0], &b, 1));
    close(p[0]);

    /* Close-on-exec marks take effect across exec. */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        execl(self_path, self_path, "close-range-child", (char *)NULL);
        _exit(98);
    }
    int st;
    waitpid(c, &st, 0);
    printf("close_range: child exited %d\n", WEXITSTATUS(st));
    /* Everything from 3 up: stdio stays. */
    printf("close_range: 3..~0 gives %s\n", err(syscall(SYS_close_range, 3, ~0U, 0)));
    printf("close_range: fd 20 %s, stdout still works\n", fd_state(20));
    return 0;
}

static int close_range_child(void) {
    printf("close_range: after exec fd 20 %s, fd 25 %s, fd 26 %s\n", fd_state(20), fd_state(25),
           fd_state(26));
    return 0;
}

/* ---- robust mutexes ---- */

static pthread_mutex_t rm1, rm2;
static sem_t locked;

static void *lock_and_exit(void *arg) {
    pthread_mutex_lock(&rm1);
    if (arg)
        pthread_mutex_lock(&rm2);
    sem_post(&locked);
    if (arg)
        msleep(30); /* let the main thread block on the lock first */
    return NULL;    /* ends still holding the lock(s) */
}

static const char *lock_result(int r) {
    switch (r) {
    case 0:
        return "0";
    case EOWNERDEAD:
        return "EOWNERDEAD";
    case ENOTRECOVERABLE:
        return "ENOTRECOVERABLE";
    default:
        return strerror(r);
    }
}

static void init_robust(pthread_mutex_t *m, int pshared) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pshared)
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    check(pthread_mutex_init(m, &a) == 0, "pthread_mutex_init");
    pthread_mutexattr_destroy(&a);
}

static int mode_robust(void) {
    init_robust(&rm1, 0);
    init_robust(&rm2, 0);
    sem_init(&locked, 0, 0);

    /* The owner exits before anyone waits. */
    pthread_t th;
    check(pthread_create(&th, NULL, lock_and_exit, NULL) == 0, "pthread_create");
    pthread_join(th, NULL);
    sem_wait(&locked);
    printf("robust: lock after the owner exited: %s\n", lock_result(pthread_mutex_lock(&rm1)));
    printf("robust: consistent: %d\n", pthread_mutex_consistent(&rm1));
    pthread_mutex_unlock(&rm1);
    printf("robust: lock again: %s\n", lock_result(pthread_mutex_lock(&rm1)));
    pthread_mutex_unlock(&rm1);

    /* Two locks held; the main thread is waiting on one when the owner exits. */
    check(pthread_create(&th, NULL, lock_and_exit, (void *)1) == 0, "pthread_create 2");
    sem_wait(&locked);
    printf("robust: waiter woken by the owner's exit: %s\n", lock_result(pthread_mutex_lock(&rm2)));
    pthread_join(th, NULL);
    printf("robust: the other lock too: %s\n", lock_result(pthread_mutex_lock(&rm1)));
    pthread_mutex_consistent(&rm1);
    pthread_mutex_unlock(&rm1);
    /* Unlocked without pthread_mutex_consistent: unusable from then on. */
    pthread_mutex_unlock(&rm2);
    printf("robust: after an unlock without consistent: %s\n", lock_result(pthread_mutex_lock(&rm2)));

    /* A process-shared robust mutex whose owner process dies. */
    pthread_mutex_t *sm =
        mmap(NULL, sizeof *sm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check(sm != MAP_FAILED, "mmap");
    init_robust(sm, 1);
    pid_t c = fork();
    if (c == 0) {
        pthread_mutex_lock(sm);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("robust: shared lock after the owner process died: %s\n", lock_result(pthread_mutex_lock(sm)));
    pthread_mutex_consistent(sm);
    pthread_mutex_unlock(sm);

    printf("robust: lock after all that: %s\n", lock_result(pthread_mutex_lock(sm)));
    pthread_mutex_unlock(sm);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The program's own path, inside the sandbox and natively alike. */
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    check(n > 0, "readlink /proc/self/exe");
    self[n] = 0;
    self_path = self;
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "signalfd"))
        return mode_signalfd();
    if (!strcmp(argv[1], "timers"))
        return mode_timers();
    if (!strcmp(argv[1], "timer-exec-child"))
        return argc > 2 ? timer_exec_child(argv[2]) : 2;
    if (!strcmp(argv[1], "close-range"))
        return mode_close_range();
    if (!strcmp(argv[1], "close-range-child"))
        return close_range_child();
    if (!strcmp(argv[1], "robust"))
        return mode_robust();
    return 2;
}
