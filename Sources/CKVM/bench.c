/* bench.c — the C reference loops `kvmcheck bench` compares the Swift path against. */
#define _GNU_SOURCE
#include "ckvm.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- benchmark reference loops ---- */

/* What one KVM_RUN's result means for a loop: 0 next iteration, 1 retry it (EINTR/EAGAIN
 * without the watchdog), anything else the loop's return value. */
static inline long bench_step(long r, const struct kvm_run *run, unsigned int reason) {
    if (r == -EINTR || r == -EAGAIN)
        return ckvm_watchdog_fired() ? r : 1;
    if (r < 0)
        return r;
    if (run->exit_reason != reason)
        return -(100000 + (long)run->exit_reason);
    return 0;
}

long ckvm_bench_run_loop(int vcpu_fd, const struct kvm_run *run, unsigned long n, unsigned int reason) {
    for (unsigned long i = 0; i < n; i++) {
        long step = bench_step(ckvm_ioctl(vcpu_fd, KVM_RUN, NULL), run, reason);
        if (step == 1)
            i--;
        else if (step != 0)
            return step;
    }
    return (long)n;
}

/* The floor under both loops: KVM_RUN through the `syscall` instruction itself (no libc
 * wrapper, no errno, no hook), checking only the exit reason.  What remains per exit is the
 * loop, the syscall sequence and one load: the userspace minimum any harness pays. */
long ckvm_bench_raw_loop(int vcpu_fd, const struct kvm_run *run, unsigned long n, unsigned int reason) {
    for (unsigned long i = 0; i < n; i++) {
        long r;
        __asm__ volatile("syscall"
                         : "=a"(r)
                         : "0"((long)SYS_ioctl), "D"((long)vcpu_fd), "S"((long)KVM_RUN), "d"(0L)
                         : "rcx", "r11", "memory");
        long step = bench_step(r, run, reason);
        if (step == 1)
            i--;
        else if (step != 0)
            return step;
    }
    return (long)n;
}
