/* watchdog.c — the KVM_RUN deadline (a timer signal kicks the vCPU out), and errno names. */
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

/* ---- watchdog ---- */
static __thread volatile sig_atomic_t watchdog_fired;
static __thread timer_t watchdog_timer;
static __thread int watchdog_timer_valid;
static __thread unsigned int watchdog_ms;
static __thread sigset_t watchdog_saved_mask;
static __thread int watchdog_mask_saved;

static void watchdog_signal(int sig) {
    (void)sig;
    watchdog_fired = 1;
}

int ckvm_watchdog_arm(unsigned int ms) {
    static int handler_installed;
    if (!handler_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = watchdog_signal; /* no SA_RESTART: KVM_RUN must return -EINTR */
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR2, &sa, NULL) < 0)
            return -errno;
        handler_installed = 1;
    }
    ckvm_watchdog_disarm();
    watchdog_fired = 0;
    watchdog_ms = ms;
    /* Worker threads (dispatch, Swift concurrency) block most signals; a blocked
     * SIGUSR2 would stay pending and never interrupt KVM_RUN. */
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    if (pthread_sigmask(SIG_UNBLOCK, &usr2, &watchdog_saved_mask) == 0)
        watchdog_mask_saved = 1;
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR2;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &watchdog_timer) < 0)
        return -errno;
    watchdog_timer_valid = 1;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    /* re-fire every 100 ms in case the first signal raced with entry into KVM_RUN */
    its.it_interval.tv_nsec = 100 * 1000000L;
    if (timer_settime(watchdog_timer, 0, &its, NULL) < 0)
        return -errno;
    return 0;
}

void ckvm_watchdog_disarm(void) {
    if (watchdog_timer_valid) {
        timer_delete(watchdog_timer);
        watchdog_timer_valid = 0;
    }
    if (watchdog_mask_saved) {
        pthread_sigmask(SIG_SETMASK, &watchdog_saved_mask, NULL);
        watchdog_mask_saved = 0;
    }
}

int ckvm_watchdog_fired(void) { return watchdog_fired; }
unsigned int ckvm_watchdog_armed_ms(void) { return watchdog_ms; }

const char *ckvm_strerror(int err) { return strerror(err); }
const char *ckvm_errno_name(int err) { return strerrorname_np(err); }
