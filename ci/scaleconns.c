// Opens N connections to HOST:PORT and holds them, for ci/scale. Connection i is bound (with
// IP_BIND_ADDRESS_NO_PORT) to 127.1.(i/20000)>>8.(i/20000)&255+1, so clients never run out of ports.
// Each sends its own 8 bytes (its index) at once; when all are open, each must read exactly those 8
// bytes back (an echo backend behind the proxy). Prints "opened N in S s; echoed OK of N; failed F".
// Then holds everything for HOLD seconds, so the caller can measure (and stop it by PID).
// usage: scaleconns HOST PORT N HOLD_SECONDS
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: scaleconns HOST PORT N HOLD_SECONDS\n"); return 2; }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) { fprintf(stderr, "scaleconns: bad host\n"); return 2; }
    long n = atol(argv[3]); int hold = atoi(argv[4]);
    int *fds = calloc(n, sizeof(int));
    long failed = 0, ok = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("scaleconns: socket"); fds[i] = -1; failed++; continue; }
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        long block = i / 20000;
        struct sockaddr_in from = {.sin_family = AF_INET};
        from.sin_addr.s_addr = htonl((127u << 24) | (1u << 16) | (uint32_t)((block >> 8) << 8) | (uint32_t)((block & 255) + 1));
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
            if (failed < 3) perror("scaleconns: connect");
            close(fd); fds[i] = -1; failed++; continue;
        }
        uint64_t tag = (uint64_t)i;
        if (send(fd, &tag, 8, MSG_NOSIGNAL) != 8) { close(fd); fds[i] = -1; failed++; continue; }
        fds[i] = fd;
    }
    double opened = now() - t0;
    for (long i = 0; i < n; i++) {
        if (fds[i] < 0) continue;
        uint64_t got = 0; size_t have = 0;
        while (have < 8) { ssize_t r = recv(fds[i], (char *)&got + have, 8 - have, 0); if (r <= 0) break; have += (size_t)r; }
        if (have == 8 && got == (uint64_t)i) ok++; else failed++;
    }
    printf("opened %ld in %.2f s; echoed %ld of %ld; failed %ld\n", n, opened, ok, n, failed);
    fflush(stdout);
    sleep((unsigned)hold);  // the caller measures, then stops us by PID
    return failed ? 1 : 0;
}
