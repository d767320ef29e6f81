// Holds N idle proxied connections open for ci/bench's RSS-per-connection figure.
// Each connection sends one HTTP/1.1 keep-alive GET and reads its response, so the proxy has made
// its backend connection too; then all stay open, idle, until stdin closes or HOLD seconds pass.
// Prints "ready OK FAILED" once every connection has been answered (or failed). Loopback only.
// usage: holdconns HOST PORT N HOLD_SECONDS
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: holdconns HOST PORT N HOLD_SECONDS\n"); return 2; }
    const char *host = argv[1];
    int port = atoi(argv[2]), n = atoi(argv[3]), hold = atoi(argv[4]);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "holdconns: bad host\n"); return 2; }
    static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n";
    int ok = 0, failed = 0;
    char buf[4096];
    struct timeval tv = {.tv_sec = 2};
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { failed++; continue; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
            failed++; close(fd); continue;
        }
        // Read until the end of the head and a Content-Length body (the fake backends' answers are small).
        int got = 0, done = 0;
        while (!done && got < (int)sizeof buf - 1) {
            ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
            if (r <= 0) break;
            got += r; buf[got] = 0;
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) continue;
            char *cl = strcasestr(buf, "content-length:");
            long body = cl ? strtol(cl + 15, NULL, 10) : 0;
            if (got - (end + 4 - buf) >= body) done = 1;
        }
        if (done) ok++; else { failed++; close(fd); }
    }
    printf("ready %d %d\n", ok, failed);
    fflush(stdout);
    // Hold: until stdin is closed (or readable) or the bound passes.
    struct pollfd p = {.fd = 0, .events = POLLIN};
    poll(&p, 1, hold * 1000);
    return 0;
}
