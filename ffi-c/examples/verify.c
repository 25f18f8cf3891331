/*
 * Verify a Twilio webhook from C: copy this into your service.
 *
 *   cc -std=c11 verify.c $(pkg-config --cflags --libs twilio_signature) -o verify
 *
 * In a real handler the four inputs come from the HTTP request: the public URL Twilio requested
 * (scheme, host, port, path and query exactly as configured in the console), the raw body, and the
 * X-Twilio-Signature and X-Twilio-Webhooks-Signature-Settings headers (NULL, 0 when absent).
 */
#include <stdio.h>
#include <string.h>

#include "twilio_signature.h"

int main(void) {
    const char *auth_token = "12345"; /* from your secret store, never from a command line */
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const char *body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234"
                       "&From=%2B14158675309&To=%2B18005551212";
    const char *signature = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    /* One-shot: fine for a few requests. */
    int rc = tws_verify((const uint8_t *)auth_token, strlen(auth_token), (const uint8_t *)url,
                        strlen(url), (const uint8_t *)body, strlen(body),
                        (const uint8_t *)signature, strlen(signature), NULL, 0);
    if (rc != TWS_OK) {
        fprintf(stderr, "refused: %s\n", tws_status_message(rc));
        return 1;
    }

    /* A validator: key once, verify many requests (from any thread), rotate tokens, SharedKeys. */
    tws_validator *validator = NULL;
    rc = tws_validator_new(&validator);
    if (rc == TWS_OK) {
        rc = tws_validator_add_secret(validator, NULL, 0, (const uint8_t *)auth_token,
                                      strlen(auth_token));
    }
    tws_verified verified;
    if (rc == TWS_OK) {
        rc = tws_validator_verify(validator, (const uint8_t *)url, strlen(url), (const uint8_t *)body,
                                  strlen(body), (const uint8_t *)signature, strlen(signature), NULL,
                                  0, &verified);
    }
    if (rc != TWS_OK) {
        /* Why? tws_validator_explain says which common mistake (http vs https, a port...) it is. */
        char report[1024];
        size_t len = 0;
        if (validator != NULL &&
            tws_validator_explain(validator, (const uint8_t *)url, strlen(url),
                                  (const uint8_t *)body, strlen(body), (const uint8_t *)signature,
                                  strlen(signature), NULL, 0, (uint8_t *)report, sizeof report,
                                  &len) == TWS_OK) {
            fprintf(stderr, "%s\n", report);
        }
        tws_validator_free(validator);
        return 1;
    }
    /* Store verified.replay_key for a few minutes and refuse a request whose key you have seen. */
    printf("valid: secret #%zu, libtwilio_signature %s\n", verified.secret_index, tws_version());
    tws_validator_free(validator);
    return 0;
}
