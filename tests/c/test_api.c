/*
 * The C ABI's promises beyond the vectors: every status code has a message, NULL and zero-length
 * inputs, oversized lengths and parameter counts, too-small buffers, outputs untouched on failure,
 * key ids, and the validator handle's lifecycle.
 */
#include <stdbool.h>
#include <stdint.h>

#include "testing.h"
#include "twilio_signature.h"

#define BYTES(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

/* Twilio's documented example (token 12345). */
static const char SECRET[] = "12345";
static const char URL[] = "https://mycompany.com/myapp.php?foo=1&bar=2";
static const char BODY[] = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234"
                           "&From=%2B14158675309&To=%2B18005551212";
static const char SIGNATURE[] = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
static const char SHA256_SETTINGS[] = "key=wk_01,algorithm=HMAC_SHA256";

static void status_messages(void) {
    static const int codes[] = {
        TWS_OK,                  TWS_MISSING_SIGNATURE,  TWS_MALFORMED_SIGNATURE,
        TWS_MALFORMED_SETTINGS,  TWS_UNSUPPORTED_ALGORITHM, TWS_MALFORMED_BODY,
        TWS_BODY_TOO_LARGE,      TWS_TOO_MANY_PARAMS,    TWS_BODY_REQUIRED,
        TWS_NO_ELIGIBLE_SECRET,  TWS_SIGNATURE_MISMATCH, TWS_BODY_HASH_MISMATCH,
        TWS_NULL_PARAMETER,      TWS_PANIC,              TWS_BUFFER_TOO_SMALL,
        TWS_INVALID_KEY_ID,      TWS_INVALID_PARAMETER,  TWS_UNKNOWN_ERROR,
        TWS_UNUSABLE_SECRET,
    };
    const size_t n = sizeof codes / sizeof codes[0];
    const char *unknown = tws_status_message(-1);
    CHECK(unknown != NULL && strcmp(unknown, "unknown status code") == 0, "message(-1)");
    CHECK(tws_status_message(12) == unknown && tws_status_message(99) == unknown &&
              tws_status_message(1000) == unknown,
          "unassigned codes are unknown");
    CHECK(TWS_OK == 0, "TWS_OK is 0");
    for (size_t i = 0; i < n; i++) {
        const char *message = tws_status_message(codes[i]);
        CHECK(message != NULL && message[0] != '\0' && message != unknown, "code %d", codes[i]);
        for (size_t j = 0; j < i; j++) {
            CHECK(codes[i] != codes[j] && strcmp(message, tws_status_message(codes[j])) != 0,
                  "codes %d and %d share a number or a message", codes[i], codes[j]);
        }
        bool mismatch = codes[i] == TWS_SIGNATURE_MISMATCH || codes[i] == TWS_BODY_HASH_MISMATCH;
        CHECK(tws_status_is_mismatch(codes[i]) == mismatch, "is_mismatch(%d)", codes[i]);
    }
    CHECK(strcmp(tws_status_message(TWS_SIGNATURE_MISMATCH),
                 "the signature does not match the request") == 0,
          "the verifier's own message");
}

static void version(void) {
    const char *v = tws_version();
    CHECK(v != NULL && strcmp(v, "0.1.0") == 0, "version %s", v ? v : "(null)");
}

static void one_shot(void) {
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0) == TWS_OK,
          "the documented example verifies");
    CHECK(tws_verify(BYTES("54321"), BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0) ==
              TWS_SIGNATURE_MISMATCH,
          "another token is a mismatch");
    /* Absent vs empty headers. */
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, NULL, 0) ==
              TWS_MISSING_SIGNATURE,
          "absent signature");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), BYTES(""), NULL, 0) ==
              TWS_MALFORMED_SIGNATURE,
          "empty signature is present and malformed");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), BYTES("")) == TWS_OK,
          "an empty settings header means HMAC-SHA1");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), BYTES(SIGNATURE),
                     BYTES("algorithm=HMAC_MD5")) == TWS_UNSUPPORTED_ALGORITHM,
          "unknown algorithm");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), BYTES("garbage")) ==
              TWS_MALFORMED_SETTINGS,
          "malformed settings");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES("a=%FF"), BYTES(SIGNATURE), NULL, 0) ==
              TWS_MALFORMED_BODY,
          "non-UTF-8 form");
    /* NULL with a length is refused; NULL with 0 is empty. */
    CHECK(tws_verify(NULL, 5, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0) ==
              TWS_NULL_PARAMETER,
          "NULL secret with a length");
    CHECK(tws_verify(BYTES(SECRET), NULL, 10, BYTES(BODY), BYTES(SIGNATURE), NULL, 0) ==
              TWS_NULL_PARAMETER,
          "NULL url with a length");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), NULL, 3, BYTES(SIGNATURE), NULL, 0) ==
              TWS_NULL_PARAMETER,
          "NULL body with a length");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 28, NULL, 0) ==
              TWS_NULL_PARAMETER,
          "NULL signature with a length");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 4) ==
              TWS_NULL_PARAMETER,
          "NULL settings with a length");
    CHECK(tws_verify(NULL, 0, NULL, 0, NULL, 0, BYTES(SIGNATURE), NULL, 0) ==
              TWS_SIGNATURE_MISMATCH,
          "empty secret, URL and body are well formed");
    /* Oversized lengths are refused before any read. */
    CHECK(tws_verify(BYTES(SECRET), (const uint8_t *)URL, SIZE_MAX, BYTES(BODY), BYTES(SIGNATURE),
                     NULL, 0) == TWS_INVALID_PARAMETER,
          "SIZE_MAX url length");
    CHECK(tws_verify(BYTES(SECRET), BYTES(URL), (const uint8_t *)BODY, (size_t)PTRDIFF_MAX + 1,
                     BYTES(SIGNATURE), NULL, 0) == TWS_INVALID_PARAMETER,
          "PTRDIFF_MAX + 1 body length");
}

static void signing(void) {
    uint8_t out[TWS_MAX_SIGNATURE_LEN + 1];
    size_t len = 0;
    CHECK(tws_sign(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, out, sizeof out, &len) ==
                  TWS_OK &&
              len == 28 && memcmp(out, SIGNATURE, 28) == 0 && out[28] == '\0',
          "sign the documented example");
    /* Too small: nothing written to out, the length reported; exactly length + 1 fits. */
    memset(out, '#', sizeof out);
    len = 0;
    CHECK(tws_sign(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, out, 28, &len) ==
                  TWS_BUFFER_TOO_SMALL &&
              len == 28 && out[0] == '#',
          "28 bytes cannot hold 28 characters and a NUL");
    CHECK(tws_sign(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, NULL, 0, &len) ==
              TWS_BUFFER_TOO_SMALL,
          "size query");
    CHECK(tws_sign(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, out, 29, &len) == TWS_OK,
          "29 bytes fit");
    CHECK(tws_sign(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, NULL, 29, &len) ==
              TWS_NULL_PARAMETER,
          "NULL out with a capacity");
    CHECK(tws_sign(BYTES(SECRET), BYTES(URL), BYTES(BODY), NULL, 0, out, sizeof out, NULL) ==
              TWS_NULL_PARAMETER,
          "NULL written_out");
    /* HMAC-SHA256 signs 44 characters, and that signature verifies with the same header. */
    CHECK(tws_sign(BYTES("shared"), BYTES(URL), BYTES(BODY), BYTES(SHA256_SETTINGS), out, sizeof out,
                   &len) == TWS_OK &&
              len == 44,
          "sha256 sign");
    CHECK(tws_verify(BYTES("shared"), BYTES(URL), BYTES(BODY), out, len, BYTES(SHA256_SETTINGS)) ==
              TWS_OK,
          "sha256 round trip");
    CHECK(tws_verify(BYTES("shared"), BYTES(URL), BYTES(BODY), out, len, NULL, 0) ==
              TWS_MALFORMED_SIGNATURE,
          "a 44-character signature without the settings header is malformed");
    /* A JSON URL whose bodySHA256 does not match its body cannot be signed. */
    CHECK(tws_sign(BYTES(SECRET), BYTES("https://example.com/hook?bodySHA256=00"), BYTES("{}"), NULL,
                   0, out, sizeof out, &len) == TWS_BODY_HASH_MISMATCH,
          "sign with a wrong body hash");
}

static void explaining(void) {
    static const char HTTP_URL[] = "http://mycompany.com/myapp.php?foo=1&bar=2";
    char text[1024];
    size_t len = 0;
    CHECK(tws_explain(BYTES(SECRET), BYTES(HTTP_URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0,
                      (uint8_t *)text, sizeof text, &len) == TWS_OK &&
              strlen(text) == len,
          "explain");
    CHECK(strstr(text, "invalid:") == text && strstr(text, "http vs https") != NULL,
          "explain finds the scheme swap: %s", text);
    size_t needed = 0;
    memset(text, '#', sizeof text);
    CHECK(tws_explain(BYTES(SECRET), BYTES(HTTP_URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0,
                      (uint8_t *)text, 10, &needed) == TWS_BUFFER_TOO_SMALL &&
              needed == len && text[0] == '#',
          "explain into a small buffer");
}

/* A form of `n` parameters "p<i>=v". */
static char *form_of(size_t n, size_t *len) {
    char *body = malloc(n * 16 + 1);
    if (body == NULL) return NULL;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) at += (size_t)sprintf(body + at, "%sp%zu=v", i ? "&" : "", i);
    *len = at;
    return body;
}

static void handle(void) {
    CHECK(tws_validator_new(NULL) == TWS_NULL_PARAMETER, "new(NULL)");
    tws_validator_free(NULL); /* ignored */

    tws_validator *v = NULL;
    CHECK(tws_validator_new(&v) == TWS_OK && v != NULL, "new");
    if (v == NULL) return;
    tws_verified out, before;
    memset(&out, 0x5A, sizeof out);
    memcpy(&before, &out, sizeof out);
    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0, &out) ==
                  TWS_SIGNATURE_MISMATCH &&
              memcmp(&out, &before, sizeof out) == 0,
          "no secrets: mismatch, out untouched");

    CHECK(tws_validator_add_secret(NULL, NULL, 0, BYTES(SECRET)) == TWS_NULL_PARAMETER,
          "add to NULL");
    CHECK(tws_validator_add_secret(v, NULL, 0, NULL, 5) == TWS_NULL_PARAMETER, "NULL secret");
    char long_id[TWS_MAX_KEY_ID_LEN + 1];
    memset(long_id, 'k', sizeof long_id);
    CHECK(tws_validator_add_secret(v, (const uint8_t *)long_id, sizeof long_id, BYTES(SECRET)) ==
              TWS_INVALID_KEY_ID,
          "key id too long");
    CHECK(tws_validator_add_secret(v, (const uint8_t *)long_id, TWS_MAX_KEY_ID_LEN, BYTES("other")) ==
              TWS_OK,
          "key id of the maximum length");
    CHECK(tws_validator_add_secret(v, NULL, 0, BYTES(SECRET)) == TWS_OK, "add the token");

    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0, &out) ==
                  TWS_OK &&
              out.secret_index == 1 && out.candidate == TWS_CANDIDATE_AS_GIVEN &&
              out.algorithm == TWS_ALGORITHM_HMAC_SHA1,
          "the second secret matches");
    tws_verified again;
    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0, &again) ==
                  TWS_OK &&
              memcmp(again.replay_key, out.replay_key, 32) == 0,
          "a retry has the same replay key");
    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0, NULL) ==
              TWS_OK,
          "verified_out may be NULL");
    CHECK(tws_validator_verify(NULL, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0, &out) ==
              TWS_NULL_PARAMETER,
          "verify with NULL handle");
    /* The port-toggled candidate is reported. */
    CHECK(tws_validator_verify(v, BYTES("https://mycompany.com:443/myapp.php?foo=1&bar=2"),
                               BYTES(BODY), BYTES(SIGNATURE), NULL, 0, &out) == TWS_OK &&
              out.candidate == TWS_CANDIDATE_PORT_TOGGLED,
          "port toggled");

    /* Key ids: a SharedKey signature names its key; a secret with another id is not tried. */
    uint8_t sig[TWS_MAX_SIGNATURE_LEN + 1];
    size_t sig_len = 0;
    CHECK(tws_sign(BYTES("shared"), BYTES(URL), BYTES(BODY), BYTES(SHA256_SETTINGS), sig, sizeof sig,
                   &sig_len) == TWS_OK,
          "sign sha256");
    CHECK(tws_validator_add_secret(v, BYTES("wk_02"), BYTES("shared")) == TWS_OK, "add wk_02");
    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), sig, sig_len, BYTES(SHA256_SETTINGS),
                               &out) == TWS_SIGNATURE_MISMATCH,
          "a secret with another key id is not tried");
    CHECK(tws_validator_add_secret(v, BYTES("wk_01"), BYTES("shared")) == TWS_OK, "add wk_01");
    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), sig, sig_len, BYTES(SHA256_SETTINGS),
                               &out) == TWS_OK &&
              out.secret_index == 3 && out.algorithm == TWS_ALGORITHM_HMAC_SHA256,
          "the secret with the named key id matches (#%zu)", out.secret_index);
    /* Signing with a handle uses the first secret the settings header allows. */
    tws_validator *only_keyed = NULL;
    CHECK(tws_validator_new(&only_keyed) == TWS_OK, "new");
    CHECK(tws_validator_add_secret(only_keyed, BYTES("wk_02"), BYTES("other")) == TWS_OK, "add");
    CHECK(tws_validator_add_secret(only_keyed, BYTES("wk_01"), BYTES("shared")) == TWS_OK, "add");
    uint8_t vsig[TWS_MAX_SIGNATURE_LEN + 1];
    size_t vsig_len = 0;
    CHECK(tws_validator_sign(only_keyed, BYTES(URL), BYTES(BODY), BYTES(SHA256_SETTINGS), vsig,
                             sizeof vsig, &vsig_len) == TWS_OK &&
              vsig_len == sig_len && memcmp(vsig, sig, sig_len) == 0,
          "the handle signs with the secret of the named key");
    vsig_len = 0;
    CHECK(tws_validator_sign(only_keyed, BYTES(URL), BYTES(BODY),
                             BYTES("key=nope,algorithm=HMAC_SHA256"), vsig, sizeof vsig,
                             &vsig_len) == TWS_NO_ELIGIBLE_SECRET &&
              vsig_len == 0,
          "no secret with the named key id to sign with");
    tws_validator_free(only_keyed);

    /* Parameter bound: 2000 params pass the default (10 000) but not a maximum of 1000. */
    size_t body_len = 0;
    char *body = form_of(2000, &body_len);
    CHECK(body != NULL, "malloc");
    if (body != NULL) {
        uint8_t big_sig[TWS_MAX_SIGNATURE_LEN + 1];
        size_t big_sig_len = 0;
        CHECK(tws_sign(BYTES(SECRET), BYTES(URL), (const uint8_t *)body, body_len, NULL, 0, big_sig,
                       sizeof big_sig, &big_sig_len) == TWS_OK && big_sig_len == 28,
              "signing 2000 params within the default maximum");
        CHECK(tws_sign(NULL, 0, BYTES(URL), BYTES(BODY), NULL, 0, sig, sizeof sig, &sig_len) ==
                  TWS_NO_ELIGIBLE_SECRET,
              "an empty secret signs nothing");
        tws_validator *w = NULL;
        CHECK(tws_validator_new(&w) == TWS_OK, "new");
        CHECK(tws_validator_add_secret(w, NULL, 0, BYTES(SECRET)) == TWS_OK, "add");
        CHECK(tws_validator_verify(w, BYTES(URL), (const uint8_t *)body, body_len, big_sig,
                                   big_sig_len, NULL, 0, &out) == TWS_OK,
              "the 2000-param signature verifies");
        int rc = tws_validator_verify(w, BYTES(URL), (const uint8_t *)body, body_len,
                                      BYTES(SIGNATURE), NULL, 0, &out);
        CHECK(rc == TWS_SIGNATURE_MISMATCH, "2000 params within the default: %d", rc);
        CHECK(tws_validator_set_max_params(w, 0) == TWS_INVALID_PARAMETER, "max 0");
        CHECK(tws_validator_set_max_params(NULL, 10) == TWS_NULL_PARAMETER, "max on NULL");
        CHECK(tws_validator_set_max_params(w, 1000) == TWS_OK, "max 1000");
        rc = tws_validator_verify(w, BYTES(URL), (const uint8_t *)body, body_len, BYTES(SIGNATURE),
                                  NULL, 0, &out);
        CHECK(rc == TWS_TOO_MANY_PARAMS, "2000 params over a maximum of 1000: %d", rc);
        CHECK(tws_validator_set_max_params(w, 2000) == TWS_OK, "max 2000");
        rc = tws_validator_verify(w, BYTES(URL), (const uint8_t *)body, body_len, BYTES(SIGNATURE),
                                  NULL, 0, &out);
        CHECK(rc == TWS_SIGNATURE_MISMATCH, "exactly the maximum: %d", rc);
        CHECK(tws_verify(BYTES(SECRET), BYTES(URL), (const uint8_t *)body, body_len,
                         BYTES(SIGNATURE), NULL, 0) == TWS_SIGNATURE_MISMATCH,
              "the one-shot allows TWS_DEFAULT_MAX_PARAMS");
        tws_validator_free(w);
        free(body);
    }
    size_t big_len = 0;
    char *big = form_of(TWS_DEFAULT_MAX_PARAMS + 1, &big_len);
    if (big != NULL) {
        CHECK(tws_verify(BYTES(SECRET), BYTES(URL), (const uint8_t *)big, big_len, BYTES(SIGNATURE),
                         NULL, 0) == TWS_TOO_MANY_PARAMS,
              "one more than TWS_DEFAULT_MAX_PARAMS");
        free(big);
    }
    tws_validator_free(v);
}

/* A secret that is empty or only whitespace (\t \n \v \f \r and space; an unset variable read as ""
 * or "\n") is refused when added, whatever the key id, and the one-shot call with it never accepts
 * anything. The vertical tab counts, as it does for C's isspace. */
static void unusable_secrets(void) {
    static const char *const unusable[] = {"", " ", "\n", " \t\r\n\f ", "\v", " \v ", "\t\n\v\f\r "};
    /* HMAC-SHA1 of the documented request under each of those keys (Python's hmac module): what an
     * attacker who guesses the variable is unset would send. */
    static const char *const forged[] = {"aXngMTP07D4c4hkO+r0Kb5Oe528=", "zeVbNqbzhKI5GUNw7pFDr1aNulA=",
                                         "LDpYfdFlDuW5vlsYeuAfF8TxhJY=", "pfsKr7x+zF6kl9tn59hkVp58nFM=",
                                         "PRv6Z/u8LfxJpptTUKj0FtPB8Nw=", "F3miTE56ZKkJU3RSioacuuNfTMI=",
                                         "MMg4WTb9wg4OXmtSuS0GqG26QMM="};
    tws_validator *v = NULL;
    CHECK(tws_validator_new(&v) == TWS_OK && v != NULL, "new");
    if (v == NULL) return;
    for (size_t i = 0; i < sizeof unusable / sizeof unusable[0]; i++) {
        const uint8_t *s = (const uint8_t *)unusable[i];
        size_t len = strlen(unusable[i]);
        CHECK(tws_validator_add_secret(v, NULL, 0, s, len) == TWS_UNUSABLE_SECRET, "secret #%zu", i);
        CHECK(tws_validator_add_secret(v, BYTES("wk_01"), s, len) == TWS_UNUSABLE_SECRET,
              "keyed secret #%zu", i);
        /* Nothing signs with it, and a request signed with it still fails closed. */
        char sig[TWS_MAX_SIGNATURE_LEN + 1];
        size_t sig_len = 0;
        int signed_rc = tws_sign(s, len, BYTES(URL), BYTES(BODY), NULL, 0, (uint8_t *)sig, sizeof sig,
                                 &sig_len);
        CHECK(signed_rc != TWS_OK, "sign with unusable secret #%zu: %d", i, signed_rc);
        int rc = tws_verify(s, len, BYTES(URL), BYTES(BODY), (const uint8_t *)forged[i],
                            strlen(forged[i]), NULL, 0);
        CHECK(rc == TWS_SIGNATURE_MISMATCH, "one-shot verify with unusable secret #%zu: %d", i, rc);
    }
    CHECK(tws_validator_add_secret(v, NULL, 0, NULL, 0) == TWS_UNUSABLE_SECRET, "NULL, 0");
    CHECK(tws_validator_add_secret(v, NULL, 0, BYTES(" 12345\n")) == TWS_OK,
          "whitespace around a real token is part of it, not a reason to refuse");
    CHECK(strstr(tws_status_message(TWS_UNUSABLE_SECRET), "empty") != NULL, "message says why");
    /* Nothing was added but the padded token, which is not "12345": still a mismatch. */
    CHECK(tws_validator_verify(v, BYTES(URL), BYTES(BODY), BYTES(SIGNATURE), NULL, 0, NULL) ==
              TWS_SIGNATURE_MISMATCH,
          "refused secrets were not added");
    tws_validator_free(v);
}

int main(void) {
    status_messages();
    unusable_secrets();
    version();
    one_shot();
    signing();
    explaining();
    handle();
    return finish("test_api");
}
