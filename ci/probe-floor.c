// The floor for TCP health checks on this machine: a minimal C prober doing what a TCP probe needs
// (non-blocking socket, SO_LINGER 0, connect, connect again to read the outcome, close) to every backend
// of the default pool, 5,000 probes a second, for N seconds. With "reuse" it keeps one socket per
// family and drops each connection with connect(AF_UNSPEC) instead of closing, as lb does.
// ci/health-cost runs it beside lb so lb's figure can be read against the kernel's own cost.
// Loopback only; stops by itself.  usage: probe-floor SECONDS [reuse]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 10;
    int reuse = argc > 2 && strcmp(argv[2], "reuse") == 0;
    int kept[2] = {-1, -1};
    int rate = 5000;
    long probes = 0, ok = 0;
    double start = now();
    for (long i = 0;; i++) {
        double due = start + (double)i / rate;
        if (due - start >= seconds) break;
        // Paced in 10 ms batches, as lb's loop does: one sleep per batch, not per probe.
        double t = now();
        if (due - t > 0.010) usleep((useconds_t)((due - t) * 1e6));
        int k = (int)(i % 10000);
        int v6 = k >= 5000;
        struct sockaddr_in a4 = {0};
        struct sockaddr_in6 a6 = {0};
        int fd = reuse ? kept[v6] : -1;
        if (fd < 0) {
            fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            if (reuse) kept[v6] = fd;
        }
        struct sockaddr *sa;
        socklen_t len;
        if (v6) {
            a6.sin6_family = AF_INET6;
            a6.sin6_port = htons(20000 + k);
            a6.sin6_addr = in6addr_loopback;
            sa = (struct sockaddr *)&a6;
            len = sizeof(a6);
        } else {
            a4.sin_family = AF_INET;
            a4.sin_port = htons(20000 + k);
            a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sa = (struct sockaddr *)&a4;
            len = sizeof(a4);
        }
        int rc = connect(fd, sa, len);
        if (rc != 0 && errno == EINPROGRESS) rc = connect(fd, sa, len);
        if (rc == 0 || errno == EISCONN) ok++;
        if (reuse) {
            struct sockaddr un;
            memset(&un, 0, sizeof(un));
            un.sa_family = AF_UNSPEC;
            connect(fd, &un, sizeof(un));
        } else {
            close(fd);
        }
        probes++;
    }
    fprintf(stderr, "probe-floor: %ld probes, %ld connected\n", probes, ok);
    return 0;
}
