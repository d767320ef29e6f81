// A small, fast HTTP/1.x responder for ci/loadgen-vs-ab: one thread, one epoll, every request gets
// "200 OK" with a 13-byte body and X-Backend. Keeps the connection when the client asks (HTTP/1.1
// default, or HTTP/1.0 with "Connection: keep-alive"), closes it otherwise. Loopback benchmarking only.
// usage: loadgen-backend PORT   (prints nothing; stop it with SIGTERM)
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUF 4096
static char *bufs[MAXFD];
static int lens[MAXFD];

static int keep_alive(const char *req, int len) {
    // Lower-case scan of the head for the connection header.
    char head[BUF + 1];
    int n = len < BUF ? len : BUF;
    for (int i = 0; i < n; i++) head[i] = (req[i] >= 'A' && req[i] <= 'Z') ? req[i] + 32 : req[i];
    head[n] = 0;
    if (strstr(head, "connection: close")) return 0;
    if (strstr(head, "connection: keep-alive")) return 1;
    char *eol = strstr(head, "\r\n");
    return eol && eol - head >= 8 && strncmp(eol - 8, "http/1.1", 8) == 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: loadgen-backend PORT\n"); return 2; }
    int port = atoi(argv[1]);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) { perror("bind/listen"); return 1; }
    char body_keep[256], body_close[256];
    const char *fmt = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nX-Backend: 127.0.0.1:%d\r\n"
                      "Connection: %s\r\n\r\nhello, world\n";
    int keep_len = snprintf(body_keep, sizeof body_keep, fmt, port, "keep-alive");
    int close_len = snprintf(body_close, sizeof body_close, fmt, port, "close");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXFD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (!bufs[c]) bufs[c] = malloc(BUF);
                    lens[c] = 0;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            int r = read(fd, bufs[fd] + lens[fd], BUF - lens[fd]);
            if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; close(fd); continue; }
            lens[fd] += r;
            bufs[fd][lens[fd] < BUF ? lens[fd] : BUF - 1] = 0;
            for (;;) {  // answer every complete request head in the buffer
                char *end = memmem(bufs[fd], lens[fd], "\r\n\r\n", 4);
                if (!end) { if (lens[fd] == BUF) close(fd); break; }
                int used = end + 4 - bufs[fd];
                int keep = keep_alive(bufs[fd], used);
                const char *resp = keep ? body_keep : body_close;
                int len = keep ? keep_len : close_len;
                if (send(fd, resp, len, MSG_NOSIGNAL) != len || !keep) { close(fd); break; }
                memmove(bufs[fd], bufs[fd] + used, lens[fd] - used);
                lens[fd] -= used;
            }
        }
    }
}
