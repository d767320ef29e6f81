// What a syscall costs on this machine, and read(2) against recvfrom(2) on a socket: the figures
// docs/benchmark.md quotes for the floor of a proxy's CPU per request.
//   cc -O2 -o ci/out/syscall-cost ci/syscall-cost.c && ci/out/syscall-cost [CALLS]
// Loopback only: one listener on 127.0.0.1 port 0 and one connection to it, closed at exit.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &len)) {
        perror("listen");
        return 1;
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (void *)&a, sizeof a)) {
        perror("connect");
        return 1;
    }
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    char buf[16384];
    // Raw syscall(2) for all three, as lb's shim issues them: no libc wrapper cost in the comparison.
    for (int round = 0; round < 3; round++) {
        double t0 = cpu_seconds();
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        double t1 = cpu_seconds();
        for (long i = 0; i < n; i++) syscall(SYS_read, s, buf, sizeof buf);  // empty: EAGAIN
        double t2 = cpu_seconds();
        for (long i = 0; i < n; i++) syscall(SYS_recvfrom, s, buf, sizeof buf, 0, NULL, NULL);
        double t3 = cpu_seconds();
        printf("round %d: getppid %.0f ns, read (EAGAIN) %.0f ns, recvfrom (EAGAIN) %.0f ns per call\n", round + 1,
               (t1 - t0) * 1e9 / n, (t2 - t1) * 1e9 / n, (t3 - t2) * 1e9 / n);
    }
    close(s);
    close(c);
    close(l);
    return 0;
}
