// LD_PRELOAD malloc counter for ci/alloc-check. Counts every malloc, calloc, realloc, posix_memalign,
// aligned_alloc, memalign, valloc and pvalloc call of the process (all threads) in a 64-bit counter
// that lives in a file mapped MAP_SHARED (path in $ALLOC_COUNT_FILE), so the checker reads the live
// count at any moment without signalling the process. Allocation itself is forwarded to glibc's
// __libc_* entry points (no dlsym, so no recursion at start-up).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static uint64_t early;              // counted before the constructor mapped the file
static uint64_t *counter = &early;

__attribute__((constructor)) static void alloccount_init(void) {
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    if (ftruncate(fd, 4096) != 0) { close(fd); return; }
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return;
    uint64_t *c = m;
    *c = __atomic_load_n(&early, __ATOMIC_RELAXED);
    __atomic_store_n(&counter, c, __ATOMIC_RELEASE);
}

static inline void bump(void) { __atomic_fetch_add(__atomic_load_n(&counter, __ATOMIC_ACQUIRE), 1, __ATOMIC_RELAXED); }

void *malloc(size_t n) { bump(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { bump(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { bump(); return __libc_realloc(p, n); }
void *memalign(size_t al, size_t n) { bump(); return __libc_memalign(al, n); }
void *aligned_alloc(size_t al, size_t n) { bump(); return __libc_memalign(al, n); }
void *valloc(size_t n) { bump(); return __libc_valloc(n); }
void *pvalloc(size_t n) { bump(); return __libc_pvalloc(n); }
int posix_memalign(void **out, size_t al, size_t n) {
    bump();
    if (al < sizeof(void *) || (al & (al - 1))) return 22;  // EINVAL
    void *p = __libc_memalign(al, n);
    if (!p) return 12;  // ENOMEM
    *out = p;
    return 0;
}
