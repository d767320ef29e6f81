#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CShim.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if !defined(__linux__)
#error "CShim targets Linux"
#endif

_Static_assert(LB_EPOLLIN == EPOLLIN && LB_EPOLLPRI == EPOLLPRI && LB_EPOLLOUT == EPOLLOUT && LB_EPOLLERR == EPOLLERR &&
                   LB_EPOLLHUP == EPOLLHUP && LB_EPOLLRDHUP == EPOLLRDHUP && LB_EPOLLET == EPOLLET,
               "epoll bits");
_Static_assert(LB_EPOLL_CTL_ADD == EPOLL_CTL_ADD && LB_EPOLL_CTL_DEL == EPOLL_CTL_DEL &&
                   LB_EPOLL_CTL_MOD == EPOLL_CTL_MOD,
               "epoll ops");

// The data path's system calls. On x86_64 they are issued inline: glibc's read/send are pthread
// cancellation points (about 60 instructions of bookkeeping each, measured with callgrind) and its
// generic syscall() shuffles six argument registers for every call. Elsewhere, syscall() does it.
#if defined(__x86_64__)
static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}
#define LB_SYSCALL(n, a, b, c, d, e, f) \
    raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#else
#define LB_SYSCALL(n, a, b, c, d, e, f) syscall((n), (a), (b), (c), (d), (e), (f))
#endif

int lb_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int lb_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

_Static_assert(sizeof(struct epoll_event) == LB_EPOLL_EVENT_SIZE, "epoll_event size");
_Static_assert(offsetof(struct epoll_event, data) == LB_EPOLL_DATA_OFFSET, "epoll_event data offset");

int lb_epoll_wait(int epfd, void *events, int max_events, int timeout_ms) {
    // epoll_pwait with no mask is epoll_wait, and exists on every architecture (aarch64 has no epoll_wait).
    return (int)LB_SYSCALL(SYS_epoll_pwait, epfd, events, max_events, timeout_ms, NULL, 8);
}

ssize_t lb_read(int fd, void *buf, size_t len) { return LB_SYSCALL(SYS_read, fd, buf, len, 0, 0, 0); }

ssize_t lb_recv(int fd, void *buf, size_t len) { return LB_SYSCALL(SYS_recvfrom, fd, buf, len, 0, NULL, NULL); }

ssize_t lb_send(int fd, const void *buf, size_t len) {
    return LB_SYSCALL(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}

int lb_socket(int domain) { return socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

int lb_accept4(int fd, void *addr, uint32_t *addrlen) {
    return accept4(fd, (struct sockaddr *)addr, (socklen_t *)addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int lb_pipe2(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }

int lb_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

ssize_t lb_splice(int fd_in, int fd_out, size_t len) {
    return LB_SYSCALL(SYS_splice, fd_in, NULL, fd_out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}


static int set_int_opt(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof(value));
}

int lb_set_nodelay(int fd) { return set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1); }
int lb_set_oobinline(int fd) { return set_int_opt(fd, SOL_SOCKET, SO_OOBINLINE, 1); }
int lb_set_reuseaddr(int fd) { return set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1); }
int lb_set_reuseport(int fd) { return set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1); }
int lb_set_v6only(int fd) { return set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1); }

int lb_set_linger_reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

int lb_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -1;
    return err;
}

int lb_shutdown_write(int fd) { return shutdown(fd, SHUT_WR); }

int lb_disconnect(int fd) {
    struct sockaddr sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNSPEC;
    return connect(fd, &sa, sizeof(sa));
}

void lb_strerror(int err, char *buf, size_t len) {
    if (len == 0) return;
    const char *msg = strerror_r(err, buf, len);  // GNU variant: may return a static string
    if (msg != buf) {
        strncpy(buf, msg, len - 1);
        buf[len - 1] = 0;
    }
}

static void fill_set(sigset_t *set, const int *signals, int count) {
    sigemptyset(set);
    for (int i = 0; i < count; i++) sigaddset(set, signals[i]);
}

int lb_block_signals(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int lb_wait_signals(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    int sig = 0;
    for (;;) {
        int rc = sigwait(&set, &sig);
        if (rc == 0) return sig;
        if (rc != EINTR) return -rc;
    }
}

int lb_ignore_sigpipe(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

uint64_t lb_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
