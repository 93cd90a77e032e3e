#include "suite_registry.h"

typedef void *(*suite_entry)(void);
/* Weak: a binary without any suite links, with both NULL. */
extern suite_entry __start_kvmcheck_suites[] __attribute__((weak));
extern suite_entry __stop_kvmcheck_suites[] __attribute__((weak));

long suite_registry_count(void) {
    if (!__start_kvmcheck_suites || !__stop_kvmcheck_suites)
        return 0;
    return __stop_kvmcheck_suites - __start_kvmcheck_suites;
}

suite_entry suite_registry_entry(long index) { return __start_kvmcheck_suites[index]; }
