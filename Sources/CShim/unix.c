#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "CShim.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// Unix-domain sockets for the control side: sd_notify datagrams and the listener hand-over of an
// upgrade (SCM_RIGHTS). Never on the data path.

// Fills a sockaddr_un from a path; a leading '@' names the abstract namespace (as systemd's
// NOTIFY_SOCKET does). Returns the address length, or -1 with errno ENAMETOOLONG.
static int fill_unix(struct sockaddr_un *sa, const char *path) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof sa->sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(sa->sun_path, path, n);
    if (path[0] == '@') sa->sun_path[0] = 0;
    return (int)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
}

int lb_unix_datagram_send(const char *path, const void *buf, size_t len) {
    struct sockaddr_un sa;
    int salen = fill_unix(&sa, path);
    if (salen < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t rc;
    do { rc = sendto(fd, buf, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, (socklen_t)salen); } while (rc < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

int lb_unix_listen(const char *path, int backlog) {
    struct sockaddr_un sa;
    int salen = fill_unix(&sa, path);
    if (salen < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&sa, (socklen_t)salen) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int lb_unix_connect(const char *path) {
    struct sockaddr_un sa;
    int salen = fill_unix(&sa, path);
    if (salen < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    do { rc = connect(fd, (struct sockaddr *)&sa, (socklen_t)salen); } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

ssize_t lb_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > LB_MAX_PASSED_FDS || len == 0) { errno = EINVAL; return -1; }
    char control[CMSG_SPACE(sizeof(int) * LB_MAX_PASSED_FDS)];
    memset(control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t rc;
    do { rc = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (rc < 0 && errno == EINTR);
    return rc;
}

ssize_t lb_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
    char control[CMSG_SPACE(sizeof(int) * LB_MAX_PASSED_FDS)];
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    ssize_t rc;
    do { rc = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (rc < 0 && errno == EINTR);
    *nfds = 0;
    if (rc < 0) return rc;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *got = (int *)CMSG_DATA(c);
        for (int i = 0; i < n; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = got[i];
            else close(got[i]);  // more than the caller can take: never leak one
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) { errno = EMSGSIZE; for (int i = 0; i < *nfds; i++) close(fds[i]); *nfds = 0; return -1; }
    return rc;
}

int lb_unix_accept(int fd) {
    int c;
    do { c = accept4(fd, NULL, NULL, SOCK_CLOEXEC); } while (c < 0 && errno == EINTR);
    return c;
}

int lb_set_receive_timeout(int fd, int milliseconds) {
    struct timeval tv = { .tv_sec = milliseconds / 1000, .tv_usec = (milliseconds % 1000) * 1000 };
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

int lb_unix_datagram_bind(const char *path) {
    struct sockaddr_un sa;
    int salen = fill_unix(&sa, path);
    if (salen < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&sa, (socklen_t)salen) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

long lb_peer_uid(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    return (long)cred.uid;
}
