/* An LD_PRELOAD library that counts heap allocations (malloc, calloc, realloc, aligned forms) and
 * exports the count as `malloc_count()`, so bench/run.py can report allocations per call for layers
 * that tracemalloc or a Rust global allocator cannot see (the Python extension's Rust side, the C ABI).
 * Run Python with PYTHONMALLOC=malloc so Python objects are counted too. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static size_t allocations;

static void counted(void) { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); }

size_t malloc_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }

void *malloc(size_t size) {
    counted();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    counted();
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size) {
    counted();
    return __libc_realloc(ptr, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    counted();
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    counted();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    counted();
    void *ptr = __libc_memalign(alignment, size);
    if (!ptr) return ENOMEM;
    *out = ptr;
    return 0;
}
