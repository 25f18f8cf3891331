/*
 * explain through the C ABI on the cases users hit: an app behind a proxy verifying its internal URL
 * (named, with the URL verified shown, the token last), a JSON webhook whose URL lost its bodySHA256
 * (one cause), a WebSocket handshake verified as https://, a doubled path and a dropped port (each
 * shown with the URL verified and the URL signed), and the scratch bound: a 64 MiB body of '&' with
 * max_params raised verifies without a large allocation (checked in a child process whose address
 * space is capped).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "twilio_signature.h"

#define BYTES(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static const char TOKEN[] = "12345678901234567890123456789012";
static const char PUBLIC[] = "https://example.com/sms";
static const char FORM[] = "Body=Hello&From=%2B15551234567&To=%2B15005550006";

/* The signature Twilio sends for url + body (NUL-terminated in sig). */
static void twilio_signs(const char *url, const char *body, char sig[TWS_MAX_SIGNATURE_LEN + 1]) {
    size_t written = 0;
    int rc = tws_sign(BYTES(TOKEN), (const uint8_t *)url, strlen(url), (const uint8_t *)body,
                      strlen(body), NULL, 0, (uint8_t *)sig, TWS_MAX_SIGNATURE_LEN + 1, &written);
    CHECK(rc == TWS_OK, "sign %s: %s", url, tws_status_message(rc));
}

static size_t count(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *at = strstr(text, needle); at != NULL; at = strstr(at + 1, needle)) {
        n++;
    }
    return n;
}

static void check_internal_report(const char *report, const char *url) {
    char shown[256];
    snprintf(shown, sizeof shown, "url verified: %s\n", url);
    static const char verdict[] = "invalid: the signature does not match the request.\n";
    CHECK(strncmp(report, verdict, sizeof verdict - 1) == 0, "%s", report);
    CHECK(strstr(report, "likely cause: the URL verified looks internal") != NULL, "%s", report);
    CHECK(strstr(report, "Twilio signs the public URL configured in the console") != NULL, "%s", report);
    CHECK(strstr(report, shown) != NULL, "want %s in %s", shown, report);
    CHECK(strstr(report, "configure the base URL") != NULL, "%s", report);
    CHECK(strstr(report, "no common mistake") == NULL, "%s", report);
    const char *fix = strstr(report, "fix:");
    const char *token = strstr(report, "Auth Token");
    CHECK(fix != NULL && token != NULL && token > fix, "the token comes last: %s", report);
}

static void internal_url_one_shot(void) {
    char sig[TWS_MAX_SIGNATURE_LEN + 1] = {0};
    twilio_signs(PUBLIC, FORM, sig);
    static const char internal[] = "http://10.0.0.5:8080/sms";
    size_t needed = 0;
    int rc = tws_explain(BYTES(TOKEN), BYTES(internal), BYTES(FORM), (const uint8_t *)sig, strlen(sig),
                         NULL, 0, NULL, 0, &needed);
    CHECK(rc == TWS_BUFFER_TOO_SMALL && needed > 0, "size query: %d %zu", rc, needed);
    char *report = malloc(needed + 1);
    size_t written = 0;
    rc = tws_explain(BYTES(TOKEN), BYTES(internal), BYTES(FORM), (const uint8_t *)sig, strlen(sig), NULL,
                     0, (uint8_t *)report, needed + 1, &written);
    CHECK(rc == TWS_OK && written == needed && report[written] == '\0', "explain: %d", rc);
    check_internal_report(report, internal);
    free(report);
}

static void internal_url_validator(void) {
    char sig[TWS_MAX_SIGNATURE_LEN + 1] = {0};
    twilio_signs(PUBLIC, FORM, sig);
    tws_validator *v = NULL;
    CHECK(tws_validator_new(&v) == TWS_OK, "new");
    CHECK(tws_validator_add_secret(v, NULL, 0, BYTES(TOKEN)) == TWS_OK, "add");
    static const char internal[] = "http://127.0.0.1:5601/sms";
    char report[2048];
    size_t written = 0;
    int rc = tws_validator_explain(v, BYTES(internal), BYTES(FORM), (const uint8_t *)sig, strlen(sig),
                                   NULL, 0, (uint8_t *)report, sizeof report, &written);
    CHECK(rc == TWS_OK, "validator explain: %s", tws_status_message(rc));
    check_internal_report(report, internal);
    /* The verdict is verify's. */
    rc = tws_validator_verify(v, BYTES(internal), BYTES(FORM), (const uint8_t *)sig, strlen(sig), NULL, 0,
                              NULL);
    CHECK(rc == TWS_SIGNATURE_MISMATCH, "verify: %s", tws_status_message(rc));
    /* A public URL keeps the token advice. */
    static const char other[] = "https://example.com/other";
    rc = tws_validator_explain(v, BYTES(other), BYTES(FORM), (const uint8_t *)sig, strlen(sig), NULL, 0,
                               (uint8_t *)report, sizeof report, &written);
    CHECK(rc == TWS_OK && strstr(report, "no common mistake explains it") != NULL &&
              strstr(report, "internal") == NULL,
          "%s", report);
    tws_validator_free(v);
}

static void json_webhook_one_cause(void) {
    /* printf '%s' "$JSON" | sha256sum */
    static const char json[] =
        "{\"type\":\"com.twilio.messaging.inbound-message.received\",\"data\":{\"body\":\"a&b\"}}";
    static const char signed_url[] = "https://example.com/events?bodySHA256="
                                     "7ee301d0edc4d7084543cfeada703b3e87ae7cd6a86f49d8fedc42687d3d9c8a";
    static const char lost[] = "https://example.com/events";
    char sig[TWS_MAX_SIGNATURE_LEN + 1] = {0};
    twilio_signs(signed_url, json, sig);
    char report[2048];
    size_t written = 0;
    int rc = tws_explain(BYTES(TOKEN), BYTES(lost), BYTES(json), (const uint8_t *)sig, strlen(sig), NULL, 0,
                         (uint8_t *)report, sizeof report, &written);
    CHECK(rc == TWS_OK, "explain: %s", tws_status_message(rc));
    CHECK(count(report, "likely cause") == 1, "one cause: %s", report);
    CHECK(strstr(report, "lost its bodySHA256") != NULL, "%s", report);
    CHECK(strstr(report, "no common mistake") == NULL, "%s", report);
}

/* Twilio signed `signed_url` (with `body`), the app verified `verified`: the report names `cause` once
 * and shows both URLs on lines of their own. */
static void check_named_with_urls(const char *signed_url, const char *verified, const char *body,
                                  const char *cause) {
    char sig[TWS_MAX_SIGNATURE_LEN + 1] = {0};
    twilio_signs(signed_url, body, sig);
    char report[2048];
    size_t written = 0;
    int rc = tws_explain(BYTES(TOKEN), (const uint8_t *)verified, strlen(verified), (const uint8_t *)body,
                         strlen(body), (const uint8_t *)sig, strlen(sig), NULL, 0, (uint8_t *)report,
                         sizeof report, &written);
    CHECK(rc == TWS_OK, "explain: %s", tws_status_message(rc));
    char want[512];
    snprintf(want, sizeof want, "likely cause: %s.\nurl verified: %s\nurl signed: %s\nfix: ", cause, verified,
             signed_url);
    CHECK(strstr(report, want) != NULL, "want\n%s\nin\n%s", want, report);
    CHECK(count(report, "likely cause") == 1, "one cause: %s", report);
    /* The verdict is verify's. */
    rc = tws_verify(BYTES(TOKEN), (const uint8_t *)verified, strlen(verified), (const uint8_t *)body,
                    strlen(body), (const uint8_t *)sig, strlen(sig), NULL, 0);
    CHECK(rc == TWS_SIGNATURE_MISMATCH, "verify %s: %s", verified, tws_status_message(rc));
}

/* A Media Streams handshake (a GET, no body) verified as the https:// request the app sees, and the
 * reverse; a route pasted into the base URL; a port the app does not see. */
static void url_mistakes_show_both_urls(void) {
    check_named_with_urls("wss://example.com/media?CallSid=CA1", "https://example.com/media?CallSid=CA1", "",
                          "verified as https:// but Twilio signed the wss:// handshake");
    check_named_with_urls("ws://example.com/media", "http://example.com/media", "",
                          "verified as http:// but Twilio signed the ws:// handshake");
    check_named_with_urls("https://example.com/voice", "wss://example.com/voice", "",
                          "verified as wss:// but signed over the https:// URL: signed as a plain request, not as "
                          "Twilio signs a handshake");
    check_named_with_urls("https://example.com/twilio/sms", "https://example.com/twilio/sms/twilio/sms", FORM,
                          "the URL verified repeats part of its path: Twilio signed it without the repeat");
    check_named_with_urls("https://example.com:8443/sms", "https://example.com/sms", FORM,
                          "Twilio signed the URL with a port that the URL verified does not have");
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static int verify_ampersands(const uint8_t *body, size_t len) {
    char sig[TWS_MAX_SIGNATURE_LEN + 1] = {0};
    twilio_signs(PUBLIC, "", sig);
    tws_validator *v = NULL;
    if (tws_validator_new(&v) != TWS_OK || tws_validator_add_secret(v, NULL, 0, BYTES(TOKEN)) != TWS_OK ||
        tws_validator_set_max_params(v, 100000000) != TWS_OK) {
        return -1;
    }
    int rc = tws_validator_verify(v, BYTES(PUBLIC), body, len, (const uint8_t *)sig, strlen(sig), NULL, 0,
                                  NULL);
    tws_validator_free(v);
    return rc;
}

#ifndef UNDER_ASAN
/* Valgrind preloads its own libraries into the program. */
static bool under_valgrind(void) {
    const char *preload = getenv("LD_PRELOAD");
    return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

static long vm_size_bytes(void) {
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (status != NULL && fgets(line, sizeof line, status) != NULL) {
        if (sscanf(line, "VmSize: %ld kB", &kib) == 1) {
            break;
        }
    }
    if (status != NULL) {
        fclose(status);
    }
    return kib * 1024;
}

#endif

static void a_body_of_ampersands_needs_no_scratch(void) {
    /* 64 MiB of '&': the old scratch sizing (32 bytes per '&') asked for 2 GiB here. */
    const size_t len = (size_t)64 << 20;
    uint8_t *body = malloc(len);
    CHECK(body != NULL, "malloc");
    if (body == NULL) {
        return;
    }
    memset(body, '&', len);
    CHECK(verify_ampersands(body, len) == TWS_OK, "the signature covers the URL alone");
#ifndef UNDER_ASAN
    if (!under_valgrind()) {
        /* In a child with its address space capped at what it uses plus 256 MiB, a 2 GiB scratch would
         * abort it; the cap is shown to be real by a 1 GiB malloc that must fail. */
        fflush(NULL);
        pid_t child = fork();
        if (child == 0) {
            struct rlimit cap = {(rlim_t)vm_size_bytes() + ((rlim_t)256 << 20), RLIM_INFINITY};
            if (setrlimit(RLIMIT_AS, &cap) != 0) {
                _exit(10);
            }
            void *big = malloc((size_t)1 << 30);
            if (big != NULL) {
                _exit(11);
            }
            _exit(verify_ampersands(body, len) == TWS_OK ? 0 : 12);
        }
        int status = 0;
        CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork/wait");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "capped child: exited %d (status %d), signal %d", WIFEXITED(status), WEXITSTATUS(status),
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
#endif
    free(body);
}

int main(void) {
    internal_url_one_shot();
    internal_url_validator();
    json_webhook_one_cause();
    url_mistakes_show_both_urls();
    a_body_of_ampersands_needs_no_scratch();
    return finish("test_explain");
}
