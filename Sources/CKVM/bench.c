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

/* ---- benchmark reference loops ----
 * The two loops repeat their result handling on purpose: each is the minimal loop of its
 * kind, and a shared helper cost the C loop 11 instructions per exit (callgrind: 44 -> 55). */
long ckvm_bench_run_loop(int vcpu_fd, const struct kvm_run *run, unsigned long n, unsigned int reason) {
    for (unsigned long i = 0; i < n; i++) {
        long r = ckvm_ioctl(vcpu_fd, KVM_RUN, NULL);
        if (r == -EINTR && ckvm_watchdog_fired())
            return r;
        if (r == -EINTR || r == -EAGAIN) {
            i--;
            continue;
        }
        if (r < 0)
            return r;
        if (run->exit_reason != reason)
            return -(100000 + (long)run->exit_reason);
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
        if (r == -EINTR || r == -EAGAIN) {
            if (ckvm_watchdog_fired())
                return r;
            i--;
            continue;
        }
        if (r < 0)
            return r;
        if (run->exit_reason != reason)
            return -(100000 + (long)run->exit_reason);
    }
    return (long)n;
}
