// Plain wrappers for the Linux calls Glibc's Swift module does not export (epoll, accept4, pipe2, splice,
// eventfd) plus a few socket options whose constants import awkwardly. No _GNU_SOURCE here: it is set in
// shim.c only, so nothing that includes this header changes meaning.
#ifndef LB_CSHIM_H
#define LB_CSHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

// epoll event bits, as plain integers (glibc declares them as an enum Swift imports awkwardly).
#define LB_EPOLLIN 0x001u
#define LB_EPOLLPRI 0x002u
#define LB_EPOLLOUT 0x004u
#define LB_EPOLLERR 0x008u
#define LB_EPOLLHUP 0x010u
#define LB_EPOLLRDHUP 0x2000u
#define LB_EPOLLET 0x80000000u

#define LB_EPOLL_CTL_ADD 1
#define LB_EPOLL_CTL_DEL 2
#define LB_EPOLL_CTL_MOD 3

// The kernel's struct epoll_event, described rather than declared: it is packed on x86_64 (12 bytes,
// data at offset 4) and naturally aligned elsewhere. Swift reads the fields with unaligned loads from
// the buffer the kernel filled, so ready events are never copied (shim.c checks these numbers).
#if defined(__x86_64__)
#define LB_EPOLL_EVENT_SIZE 12
#define LB_EPOLL_DATA_OFFSET 4
#else
#define LB_EPOLL_EVENT_SIZE 16
#define LB_EPOLL_DATA_OFFSET 8
#endif

int lb_epoll_create(void);
int lb_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
// `events` holds max_events kernel epoll_events (LB_EPOLL_EVENT_SIZE bytes each).
int lb_epoll_wait(int epfd, void *events, int max_events, int timeout_ms);

// The data path's calls, made as raw system calls (see shim.c): glibc's wrappers for these are pthread
// cancellation points, and each call pays for switching async cancellation on and off although our
// threads are never cancelled. They return -1 and set errno like the libc calls.
ssize_t lb_read(int fd, void *buf, size_t len);
/// recvfrom(2) on a socket: skips the VFS layer read(2) goes through (file position, permission hooks).
ssize_t lb_recv(int fd, void *buf, size_t len);
ssize_t lb_send(int fd, const void *buf, size_t len);

// Non-blocking, close-on-exec variants.
int lb_socket(int domain);
int lb_accept4(int fd, void *addr, uint32_t *addrlen);
int lb_pipe2(int fds[2]);
int lb_eventfd(void);
ssize_t lb_splice(int fd_in, int fd_out, size_t len);

int lb_set_nodelay(int fd);
// SO_OOBINLINE: an urgent byte stays in the stream, where a proxy must pass it on like any other.
int lb_set_oobinline(int fd);
int lb_set_reuseaddr(int fd);
int lb_set_reuseport(int fd);
int lb_set_v6only(int fd);
// SO_LINGER {1, 0}: close sends RST and leaves no TIME_WAIT (probes, aborted pairs).
int lb_set_linger_reset(int fd);
// Returns the pending socket error (0 for none) or -1 with errno set.
int lb_socket_error(int fd);
int lb_shutdown_write(int fd);
// connect() with AF_UNSPEC. On a listening socket: stops listening but keeps an explicitly bound port
// (new connects are refused; listen() again resumes). On a connected one: drops the connection (a
// reset with SO_LINGER 0) and leaves the socket ready for another connect.
int lb_disconnect(int fd);

// Thread-safe strerror (GNU strerror_r); writes a NUL-terminated message into buf.
void lb_strerror(int err, char *buf, size_t len);

// Signal helpers: block the given signals in the calling thread (inherited by threads it creates),
// then wait for one of them. Used by executables; the library never touches signal state.
int lb_block_signals(const int *signals, int count);
int lb_wait_signals(const int *signals, int count);
int lb_ignore_sigpipe(void);

// Monotonic clock in nanoseconds.
uint64_t lb_monotonic_ns(void);

#endif
