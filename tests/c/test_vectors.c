/*
 * Every vector of tests/vectors/twilio-signatures.json (converted to lines by vectors_to_lines.py)
 * through the one-shot tws_verify, a validator handle with a decoy secret, tws_sign and tws_explain,
 * plus tampering: for each accepted vector a changed signature, URL or body byte must be refused.
 */
#include <stdbool.h>
#include <stdint.h>

#include "testing.h"
#include "twilio_signature.h"

/* A field of the line format: absent ("-") or present bytes ("x" + hex, possibly empty). */
typedef struct {
    bool present;
    uint8_t *bytes; /* malloc'd (never NULL when present); NULL when absent */
    size_t len;
} field;

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool parse_field(const char *text, field *out) {
    out->present = false;
    out->bytes = NULL;
    out->len = 0;
    if (strcmp(text, "-") == 0) return true;
    if (text[0] != 'x') return false;
    size_t hex_len = strlen(text + 1);
    if (hex_len % 2 != 0) return false;
    out->present = true;
    out->len = hex_len / 2;
    out->bytes = malloc(out->len + 1); /* +1: malloc(0) may return NULL */
    if (out->bytes == NULL) return false;
    for (size_t i = 0; i < out->len; i++) {
        int hi = hex_digit(text[1 + 2 * i]), lo = hex_digit(text[2 + 2 * i]);
        if (hi < 0 || lo < 0) return false;
        out->bytes[i] = (uint8_t)(hi * 16 + lo);
    }
    return true;
}

/* Pointer for a field: NULL when absent (the ABI's "header absent"), else its bytes. */
static const uint8_t *ptr(const field *f) { return f->present ? f->bytes : NULL; }

typedef struct {
    char id[128];
    int expect;
    int algorithm;
    field secret, url, body, signature, settings, key_id;
} vector;

static void free_vector(vector *v) {
    field *fields[] = {&v->secret, &v->url, &v->body, &v->signature, &v->settings, &v->key_id};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) free(fields[i]->bytes);
}

static int verify_one_shot(const vector *v, const uint8_t *url, const uint8_t *body,
                           const uint8_t *signature) {
    return tws_verify(v->secret.bytes, v->secret.len, url, v->url.len, body, v->body.len, signature,
                      v->signature.len, ptr(&v->settings), v->settings.len);
}

static void check_vector(const vector *v) {
    const char *id = v->id;
    int rc = verify_one_shot(v, v->url.bytes, v->body.bytes, ptr(&v->signature));
    CHECK((rc == TWS_OK) == (v->expect == 1), "%s: tws_verify gave %d (%s), expected %s", id, rc,
          tws_status_message(rc), v->expect ? "accept" : "reject");
    if (!v->signature.present) {
        CHECK(rc == TWS_MISSING_SIGNATURE, "%s: absent header gave %d", id, rc);
    }
    if (rc != TWS_OK) {
        CHECK(rc >= 1 && rc <= 11, "%s: a refusal is one of the verifier's codes, got %d", id, rc);
    }

    /* The handle: a decoy Auth Token first, then the vector's secret (with its SharedKey id). */
    tws_validator *validator = NULL;
    CHECK(tws_validator_new(&validator) == TWS_OK && validator != NULL, "%s: new", id);
    if (validator == NULL) return;
    const char *decoy = "not-the-secret";
    CHECK(tws_validator_add_secret(validator, NULL, 0, (const uint8_t *)decoy, strlen(decoy)) ==
              TWS_OK,
          "%s: add decoy", id);
    CHECK(tws_validator_add_secret(validator, ptr(&v->key_id), v->key_id.len, v->secret.bytes,
                                   v->secret.len) == TWS_OK,
          "%s: add secret", id);
    tws_verified verified, untouched;
    memset(&verified, 0xA5, sizeof verified);
    memcpy(&untouched, &verified, sizeof verified);
    int handle_rc = tws_validator_verify(validator, v->url.bytes, v->url.len, v->body.bytes,
                                         v->body.len, ptr(&v->signature), v->signature.len,
                                         ptr(&v->settings), v->settings.len, &verified);
    CHECK(handle_rc == rc, "%s: handle gave %d, one-shot %d", id, handle_rc, rc);
    if (handle_rc == TWS_OK) {
        CHECK(verified.secret_index == 1, "%s: matched secret #%zu", id, verified.secret_index);
        CHECK(verified.algorithm == (tws_algorithm)v->algorithm, "%s: algorithm %u", id,
              (unsigned)verified.algorithm);
        CHECK(verified.candidate <= TWS_CANDIDATE_WITHOUT_USERINFO_PORT_TOGGLED, "%s: candidate %u",
              id, (unsigned)verified.candidate);
        uint8_t zero[32] = {0};
        CHECK(memcmp(verified.replay_key, zero, 32) != 0, "%s: replay key is zero", id);
    } else {
        CHECK(memcmp(&verified, &untouched, sizeof verified) == 0, "%s: out written on failure", id);
    }

    /* Explain: always TWS_OK, and the text starts with the verdict. */
    size_t needed = 0;
    int size_rc = tws_validator_explain(validator, v->url.bytes, v->url.len, v->body.bytes,
                                        v->body.len, ptr(&v->signature), v->signature.len,
                                        ptr(&v->settings), v->settings.len, NULL, 0, &needed);
    CHECK(size_rc == TWS_BUFFER_TOO_SMALL && needed > 0, "%s: explain size query %d", id, size_rc);
    char *text = malloc(needed + 1);
    size_t written = 0;
    int explain_rc = text == NULL ? -1
                                  : tws_validator_explain(
                                        validator, v->url.bytes, v->url.len, v->body.bytes,
                                        v->body.len, ptr(&v->signature), v->signature.len,
                                        ptr(&v->settings), v->settings.len, (uint8_t *)text,
                                        needed + 1, &written);
    CHECK(explain_rc == TWS_OK && written == needed && text[written] == '\0', "%s: explain %d", id,
          explain_rc);
    if (explain_rc == TWS_OK) {
        bool says_valid = strncmp(text, "valid:", 6) == 0;
        CHECK(says_valid == (rc == TWS_OK), "%s: explain says \"%s\"", id, text);
    }
    free(text);
    tws_validator_free(validator);

    if (rc != TWS_OK) return;

    /* Signing the request the way it was verified gives the same signature. */
    if (verified.candidate == TWS_CANDIDATE_AS_GIVEN) {
        uint8_t signature[TWS_MAX_SIGNATURE_LEN + 1];
        size_t len = 0;
        int sign_rc = tws_sign(v->secret.bytes, v->secret.len, v->url.bytes, v->url.len,
                               v->body.bytes, v->body.len, ptr(&v->settings), v->settings.len,
                               signature, sizeof signature, &len);
        CHECK(sign_rc == TWS_OK && len == v->signature.len &&
                  memcmp(signature, v->signature.bytes, len) == 0 && signature[len] == '\0',
              "%s: tws_sign gave %d", id, sign_rc);
    }

    /* Tampering: one changed byte of the signature, the URL's scheme or the body is refused. */
    uint8_t *copy = malloc(v->signature.len + v->url.len + v->body.len + 1);
    if (copy == NULL) return;
    memcpy(copy, v->signature.bytes, v->signature.len);
    copy[0] = copy[0] == 'A' ? 'B' : 'A';
    rc = verify_one_shot(v, v->url.bytes, v->body.bytes, copy);
    CHECK(rc == TWS_SIGNATURE_MISMATCH, "%s: tampered signature gave %d", id, rc);
    memcpy(copy, v->url.bytes, v->url.len);
    copy[0] ^= 0x01;
    rc = verify_one_shot(v, copy, v->body.bytes, v->signature.bytes);
    CHECK(rc != TWS_OK, "%s: tampered URL accepted", id);
    if (v->body.len > 0) {
        memcpy(copy, v->body.bytes, v->body.len);
        copy[v->body.len / 2] ^= 0x01;
        rc = verify_one_shot(v, v->url.bytes, copy, v->signature.bytes);
        CHECK(rc != TWS_OK, "%s: tampered body accepted", id);
    }
    free(copy);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS.txt (from vectors_to_lines.py)\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    static char line[1 << 20];
    static char id[128], secret[1 << 16], url[1 << 16], body[1 << 19], signature[1024],
        settings[1024], key_id[1024];
    int vectors = 0, accepted = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        vector v;
        memset(&v, 0, sizeof v);
        int n = sscanf(line, "%127s %d %d %65535s %65535s %524287s %1023s %1023s %1023s", id,
                       &v.expect, &v.algorithm, secret, url, body, signature, settings, key_id);
        bool ok = n == 9 && parse_field(secret, &v.secret) && parse_field(url, &v.url) &&
                  parse_field(body, &v.body) && parse_field(signature, &v.signature) &&
                  parse_field(settings, &v.settings) && parse_field(key_id, &v.key_id) &&
                  v.secret.present && v.url.present && v.body.present;
        CHECK(ok, "unreadable vector line %d", vectors + 1);
        if (ok) {
            memcpy(v.id, id, sizeof v.id);
            check_vector(&v);
            accepted += v.expect;
        }
        free_vector(&v);
        vectors++;
    }
    fclose(f);
    CHECK(vectors == 211, "read %d vectors", vectors);
    printf("test_vectors: %d vectors (%d accept, %d reject)\n", vectors, accepted, vectors - accepted);
    return finish("test_vectors");
}
