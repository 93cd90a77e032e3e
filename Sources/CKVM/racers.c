/* racers.c — a second thread writing kvm_run's sync state (sync_regs_test's races) or its exit
 * reason (the conditional-sync guard) while KVM_RUN runs. */
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

/* ---- sync-regs racers ---- */
struct ckvm_racer {
    pthread_t thread;
    struct kvm_run *run;
    int kind;
    volatile int stop;
    volatile unsigned long rounds;
};

#define RACE_STORE(lvalue, value) (*(volatile __typeof__(lvalue) *)&(lvalue) = (value))

static void *racer_main(void *arg) {
    struct ckvm_racer *r = arg;
    struct kvm_run *run = r->run;
    struct kvm_vcpu_events *ev = &run->s.regs.events;
    __u64 pae_on = run->s.regs.sregs.cr4 | (1ull << 5), pae_off = pae_on & ~(1ull << 5);
    if (r->kind == CKVM_RACE_PENDING_AND_INJECTED) RACE_STORE(ev->exception.nr, 6);
    __u32 reason = r->kind == CKVM_RACE_EXIT_REASON_MAX ? 0xffffffffu : 1024u;
    while (!r->stop) {
        switch (r->kind) {
        case CKVM_RACE_EXIT_REASON_MAX:
        case CKVM_RACE_EXIT_REASON_1024:
            /* Only exit_reason: KVM writes the real reason at each exit, and this store, landing
             * between that write and KVM's read at the end of KVM_RUN, is the race.  Spinning on
             * a load keeps the line shared until KVM writes it, so the store follows KVM's at once
             * (a store loop would fight KVM for the line); rounds count the overwrites. */
            if (*(volatile __u32 *)&run->exit_reason == reason) continue;
            RACE_STORE(run->exit_reason, reason);
            break;
        case CKVM_RACE_CR4_PAE:
            RACE_STORE(run->kvm_dirty_regs, KVM_SYNC_X86_SREGS);
            RACE_STORE(run->s.regs.sregs.cr4, pae_on);
            for (int i = 0; i < 512; i++) __asm__ volatile("nop");
            RACE_STORE(run->s.regs.sregs.cr4, pae_off);
            break;
        case CKVM_RACE_EXCEPTION_VECTOR:
            RACE_STORE(run->kvm_dirty_regs, KVM_SYNC_X86_EVENTS);
            RACE_STORE(ev->flags, 0);
            RACE_STORE(ev->exception.nr, 6);
            RACE_STORE(ev->exception.pending, 1);
            RACE_STORE(ev->exception.nr, 255);
            break;
        default:
            RACE_STORE(run->kvm_dirty_regs, KVM_SYNC_X86_EVENTS);
            RACE_STORE(ev->flags, 0);
            RACE_STORE(ev->exception.injected, 1);
            RACE_STORE(ev->exception.pending, 1);
            break;
        }
        r->rounds++;
    }
    return NULL;
}

struct ckvm_racer *ckvm_racer_start(struct kvm_run *run, int kind, int *err) {
    struct ckvm_racer *r = calloc(1, sizeof(*r));
    if (!r) { *err = ENOMEM; return NULL; }
    r->run = run;
    r->kind = kind;
    /* The racer must never take the vCPU thread's watchdog signal. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    int e = pthread_create(&r->thread, NULL, racer_main, r);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (e) { free(r); *err = e; return NULL; }
    return r;
}

int ckvm_racer_wait_running(struct ckvm_racer *r, unsigned timeout_ms) {
    /* A reason the racer never writes, for it to overwrite: its first round. */
    if (r->kind == CKVM_RACE_EXIT_REASON_MAX || r->kind == CKVM_RACE_EXIT_REASON_1024)
        RACE_STORE(r->run->exit_reason, KVM_EXIT_UNKNOWN);
    struct timespec pause = { 0, 100 * 1000 };
    for (unsigned waited_us = 0; waited_us < timeout_ms * 1000u; waited_us += 100) {
        if (r->rounds > 0) return 0;
        nanosleep(&pause, NULL);
    }
    return r->rounds > 0 ? 0 : -ETIMEDOUT;
}

unsigned long ckvm_racer_stop(struct ckvm_racer *r) {
    r->stop = 1;
    pthread_join(r->thread, NULL);
    unsigned long rounds = r->rounds;
    free(r);
    return rounds;
}
