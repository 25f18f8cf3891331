/* Times the C ABI on one webhook, in batches that bench/run.py asks for.
 *
 *   bench_c <oneshot|validator> <fixture dir holding token, url, body, signature>
 *   LD_PRELOAD=libmalloc_count.so bench_c allocs <fixture dir>
 *
 * Prints "ready" once the fixture verifies (and a tampered copy does not), then for every line "N" on
 * standard input runs N verifications and prints the elapsed nanoseconds. Time is measured here, inside
 * the process, so start-up and pipes are not counted. The `allocs` form prints heap allocations per call
 * of each entry point, counted by malloc_count.c. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "twilio_signature.h"

struct file {
    uint8_t *data;
    size_t len;
};

static int read_file(const char *dir, const char *name, struct file *out) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t n;
    while (data && (n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(data, cap *= 2);
            if (!bigger) free(data);
            data = bigger;
        }
    }
    fclose(f);
    if (!data) return -1;
    out->data = data;
    out->len = len;
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct file token, url, body, sig;
static struct tws_validator *validator;
static int use_validator;

static int verify_once(const struct file *b) {
    if (use_validator)
        return tws_validator_verify(validator, url.data, url.len, b->data, b->len, sig.data, sig.len,
                                    NULL, 0, NULL);
    return tws_verify(token.data, token.len, url.data, url.len, b->data, b->len, sig.data, sig.len,
                      NULL, 0);
}

/* Heap allocations per call of each entry point, averaged over many calls. */
static int report_allocations(void) {
    size_t (*malloc_count)(void);
    *(void **)(&malloc_count) = dlsym(RTLD_DEFAULT, "malloc_count");
    if (!malloc_count) {
        fprintf(stderr, "bench_c: run allocs with LD_PRELOAD=libmalloc_count.so\n");
        return 2;
    }
    const char *names[] = {"tws_verify", "tws_validator_verify"};
    for (int v = 0; v < 2; v++) {
        use_validator = v;
        if (verify_once(&body) != TWS_OK) return 1;
        size_t before = malloc_count();
        for (int i = 0; i < 1000; i++) verify_once(&body);
        printf("ALLOCS %s %.2f\n", names[v], (double)(malloc_count() - before) / 1000.0);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "oneshot") && strcmp(argv[1], "validator") && strcmp(argv[1], "allocs"))) {
        fprintf(stderr, "usage: bench_c <oneshot|validator|allocs> <fixture dir>\n");
        return 2;
    }
    int allocs_only = strcmp(argv[1], "allocs") == 0;
    use_validator = allocs_only || strcmp(argv[1], "validator") == 0;
    if (read_file(argv[2], "token", &token) || read_file(argv[2], "url", &url) ||
        read_file(argv[2], "body", &body) || read_file(argv[2], "signature", &sig)) {
        fprintf(stderr, "bench_c: cannot read the fixture in %s\n", argv[2]);
        return 2;
    }
    if (use_validator &&
        (tws_validator_new(&validator) != TWS_OK ||
         tws_validator_add_secret(validator, NULL, 0, token.data, token.len) != TWS_OK)) {
        fprintf(stderr, "bench_c: cannot build a validator\n");
        return 2;
    }
    int status = verify_once(&body);
    if (status != TWS_OK) {
        fprintf(stderr, "bench_c: the fixture does not verify: %s\n", tws_status_message(status));
        return 1;
    }
    struct file tampered = {malloc(body.len), body.len};
    if (!tampered.data || body.len == 0) return 2;
    memcpy(tampered.data, body.data, body.len);
    tampered.data[body.len - 1] ^= 1;
    if (verify_once(&tampered) == TWS_OK) {
        fprintf(stderr, "bench_c: a tampered body verifies\n");
        return 1;
    }
    free(tampered.data);
    if (allocs_only) return report_allocations();
    printf("ready\n");
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        long n = strtol(line, NULL, 10);
        if (n <= 0) break;
        int failures = 0;
        uint64_t start = now_ns();
        for (long i = 0; i < n; i++) failures += verify_once(&body) != TWS_OK;
        uint64_t elapsed = now_ns() - start;
        if (failures) {
            fprintf(stderr, "bench_c: %d verifications failed\n", failures);
            return 1;
        }
        printf("%llu\n", (unsigned long long)elapsed);
        fflush(stdout);
    }
    tws_validator_free(validator);
    free(token.data);
    free(url.data);
    free(body.data);
    free(sig.data);
    return 0;
}
