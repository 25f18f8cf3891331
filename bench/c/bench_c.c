/* Times the C ABI on one webhook, in batches that bench/run.py asks for.
 *
 *   bench_c <oneshot|validator> <fixture dir holding token, url, body, signature>
 *   bench_c openssl <fixture dir also holding canonical, the signed string>
 *     (prints "unavailable" instead of "ready" when libcrypto cannot be opened)
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

/* The hashing limit in OpenSSL: HMAC-SHA1 keyed once with the token, copied per operation and run over
 * the already-built signed string, as the least work a verifier using libcrypto must do. libcrypto is
 * opened at run time (no headers or link flags needed); the legacy HMAC_CTX calls are still exported by
 * OpenSSL 3. Prints "ready" once the MAC equals the fixture's signature. */
static struct file canonical;
static void *hmac_keyed, *hmac_work;
static int (*hmac_copy)(void *, void *);
static int (*hmac_init)(void *, const void *, int, const void *, void *);
static int (*hmac_update)(void *, const unsigned char *, size_t);
static int (*hmac_final)(void *, unsigned char *, unsigned int *);

static int openssl_load(void) {
    void *lib = dlopen("libcrypto.so.3", RTLD_NOW);
    if (!lib) lib = dlopen("libcrypto.so", RTLD_NOW);
    if (!lib) return -1;
    void *(*ctx_new)(void);
    const void *(*sha1)(void);
    *(void **)(&ctx_new) = dlsym(lib, "HMAC_CTX_new");
    *(void **)(&sha1) = dlsym(lib, "EVP_sha1");
    *(void **)(&hmac_copy) = dlsym(lib, "HMAC_CTX_copy");
    *(void **)(&hmac_init) = dlsym(lib, "HMAC_Init_ex");
    *(void **)(&hmac_update) = dlsym(lib, "HMAC_Update");
    *(void **)(&hmac_final) = dlsym(lib, "HMAC_Final");
    if (!ctx_new || !sha1 || !hmac_copy || !hmac_init || !hmac_update || !hmac_final) return -1;
    hmac_keyed = ctx_new();
    hmac_work = ctx_new();
    if (!hmac_keyed || !hmac_work) return -1;
    return hmac_init(hmac_keyed, token.data, (int)token.len, sha1(), NULL) == 1 ? 0 : -1;
}

static int openssl_once(unsigned char mac[20]) {
    unsigned int len = 0;
    return hmac_copy(hmac_work, hmac_keyed) == 1 &&
           hmac_update(hmac_work, canonical.data, canonical.len) == 1 &&
           hmac_final(hmac_work, mac, &len) == 1 && len == 20;
}

/* Whether `mac` encodes (standard base64, padded) to the fixture's signature. */
static int mac_is_signature(const unsigned char mac[20]) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char text[28];
    for (int i = 0, o = 0; i < 21; i += 3, o += 4) {
        uint32_t bits = (uint32_t)mac[i] << 16 | (uint32_t)(i + 1 < 20 ? mac[i + 1] : 0) << 8;
        text[o] = digits[bits >> 18 & 63];
        text[o + 1] = digits[bits >> 12 & 63];
        text[o + 2] = i + 1 < 20 ? digits[bits >> 6 & 63] : '=';
        text[o + 3] = '=';
        if (i + 2 < 20) {
            bits |= mac[i + 2];
            text[o + 2] = digits[bits >> 6 & 63];
            text[o + 3] = digits[bits & 63];
        }
    }
    return sig.len == 28 && memcmp(text, sig.data, 28) == 0;
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

/* Answers each line "N" on standard input with the nanoseconds that N calls of `once` took; stops at a
 * failed call (exit status 1) or at the end of input (0). */
static int serve_batches(int (*once)(void)) {
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        long n = strtol(line, NULL, 10);
        if (n <= 0) break;
        int failures = 0;
        uint64_t start = now_ns();
        for (long i = 0; i < n; i++) failures += !once();
        uint64_t elapsed = now_ns() - start;
        if (failures) {
            fprintf(stderr, "bench_c: %d calls failed\n", failures);
            return 1;
        }
        printf("%llu\n", (unsigned long long)elapsed);
        fflush(stdout);
    }
    return 0;
}

static int verify_ok(void) { return verify_once(&body) == TWS_OK; }

static int openssl_ok(void) {
    unsigned char mac[20];
    return openssl_once(mac);
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "oneshot") && strcmp(argv[1], "validator") && strcmp(argv[1], "allocs") &&
                      strcmp(argv[1], "openssl"))) {
        fprintf(stderr, "usage: bench_c <oneshot|validator|allocs|openssl> <fixture dir>\n");
        return 2;
    }
    if (strcmp(argv[1], "openssl") == 0) {
        unsigned char mac[20];
        if (read_file(argv[2], "token", &token) || read_file(argv[2], "canonical", &canonical) ||
            read_file(argv[2], "signature", &sig)) {
            fprintf(stderr, "bench_c: cannot read the fixture in %s\n", argv[2]);
            return 2;
        }
        if (openssl_load()) {
            /* No usable libcrypto here: the contender is skipped, not the whole run. */
            printf("unavailable\n");
            return 0;
        }
        if (!openssl_once(mac) || !mac_is_signature(mac)) {
            fprintf(stderr, "bench_c: OpenSSL's HMAC of the signed string is not the fixture's signature\n");
            return 1;
        }
        return serve_batches(openssl_ok);
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
    int served = serve_batches(verify_ok);
    tws_validator_free(validator);
    free(token.data);
    free(url.data);
    free(body.data);
    free(sig.data);
    return served;
}
