/* A tiny test harness shared by the C test programs: CHECK counts failures instead of aborting. */
#ifndef TWS_TESTING_H
#define TWS_TESTING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tests_run;
static int tests_failed;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        tests_run++;                                                                      \
        if (!(cond)) {                                                                    \
            tests_failed++;                                                               \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* Prints the summary and gives main()'s exit status. */
static int finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, tests_run, tests_failed);
    return tests_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
