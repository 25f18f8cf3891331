/* Valgrind memcheck client requests, callable from Rust. Outside Valgrind each is a few no-op
 * instructions and RUNNING_ON_VALGRIND is 0. */
#include <stddef.h>
#include <valgrind/memcheck.h>

void ct_make_undefined(const void *p, size_t n) { (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
void ct_make_defined(const void *p, size_t n) { (void)VALGRIND_MAKE_MEM_DEFINED(p, n); }
unsigned ct_count_errors(void) { return VALGRIND_COUNT_ERRORS; }
unsigned ct_running_on_valgrind(void) { return RUNNING_ON_VALGRIND; }

/* Writes a section marker into Valgrind's log, so errors can be attributed to the code that caused them. */
void ct_log_section(const char *name) { (void)VALGRIND_PRINTF("ct-section %s\n", name); }
