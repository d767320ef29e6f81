// A delay line between two TUN devices, for ci/netem (this kernel has no netem qdisc). Every IP packet
// the kernel routes out of IN is held for DELAY_MS plus a uniform draw in [-JITTER_MS, +JITTER_MS]
// (never below 0) and then written into OUT, where the kernel receives it and forwards it on. Jitter
// larger than the gap between packets reorders them, as netem's does. Bounded: at most QUEUE_MAX
// packets held (more are dropped and counted); it stops on SIGTERM/SIGINT and prints its counts.
// usage: delayline IN OUT DELAY_MS JITTER_MS [SEED]       (run inside the router namespace; needs root)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 65536
#define MTU 65536

typedef struct { uint64_t due, seq; uint32_t len; unsigned char *data; } held_t;

static held_t heap[QUEUE_MAX];
static int held = 0;
static volatile sig_atomic_t stop = 0;
static void on_signal(int s) { (void)s; stop = 1; }

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rng_state;
static uint64_t rng(void) {  // splitmix64
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int earlier(const held_t *a, const held_t *b) { return a->due < b->due || (a->due == b->due && a->seq < b->seq); }
static void push(held_t h) {
    int i = held++;
    heap[i] = h;
    while (i > 0 && earlier(&heap[i], &heap[(i - 1) / 2])) {
        held_t t = heap[i]; heap[i] = heap[(i - 1) / 2]; heap[(i - 1) / 2] = t; i = (i - 1) / 2;
    }
}
static held_t pop(void) {
    held_t top = heap[0];
    heap[0] = heap[--held];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < held && earlier(&heap[l], &heap[m])) m = l;
        if (r < held && earlier(&heap[r], &heap[m])) m = r;
        if (m == i) break;
        held_t t = heap[i]; heap[i] = heap[m]; heap[m] = t; i = m;
    }
    return top;
}

static int tun_open(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) { perror("delayline: open /dev/net/tun"); exit(1); }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("delayline: TUNSETIFF"); exit(1); }
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: delayline IN OUT DELAY_MS JITTER_MS [SEED]\n"); return 2; }
    int in = tun_open(argv[1]), out = tun_open(argv[2]);
    int64_t delay = atoll(argv[3]) * 1000, jitter = atoll(argv[4]) * 1000;
    rng_state = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
    if (delay < 0 || jitter < 0) { fprintf(stderr, "delayline: delay and jitter must be >= 0\n"); return 2; }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("delayline: %s -> %s, %lld ms +- %lld ms\n", argv[1], argv[2], (long long)delay / 1000, (long long)jitter / 1000);
    fflush(stdout);
    uint64_t seq = 0, forwarded = 0, dropped = 0, reordered = 0, last_seq_out = 0, bytes = 0;
    unsigned char buf[MTU];
    while (!stop) {
        uint64_t now = now_us();
        while (held > 0 && heap[0].due <= now) {
            held_t h = pop();
            if (h.seq < last_seq_out) reordered++;
            else last_seq_out = h.seq;
            if (write(out, h.data, h.len) == (ssize_t)h.len) { forwarded++; bytes += h.len; }
            else dropped++;
            free(h.data);
        }
        int timeout = held > 0 ? (int)((heap[0].due - now + 999) / 1000) : 100;
        if (timeout > 100) timeout = 100;
        struct pollfd p = {.fd = in, .events = POLLIN};
        if (poll(&p, 1, timeout) < 0 && errno != EINTR) { perror("delayline: poll"); break; }
        for (int i = 0; i < 1024; i++) {  // a bounded batch per wake-up
            ssize_t n = read(in, buf, sizeof buf);
            if (n <= 0) break;
            if (held >= QUEUE_MAX) { dropped++; continue; }
            int64_t d = delay;
            if (jitter > 0) d += (int64_t)(rng() % (uint64_t)(2 * jitter + 1)) - jitter;
            if (d < 0) d = 0;
            unsigned char *copy = malloc((size_t)n);
            if (!copy) { dropped++; continue; }
            memcpy(copy, buf, (size_t)n);
            push((held_t){.due = now_us() + (uint64_t)d, .seq = ++seq, .len = (uint32_t)n, .data = copy});
        }
    }
    while (held > 0) free(pop().data);
    printf("delayline: forwarded %llu packets (%llu bytes), reordered %llu, dropped %llu\n",
           (unsigned long long)forwarded, (unsigned long long)bytes, (unsigned long long)reordered, (unsigned long long)dropped);
    return 0;
}
