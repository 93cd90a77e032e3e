/*
 * ckvm.h — the C side of kvmcheck's KVM layer.
 *
 * The stable uAPI comes from the system's <linux/kvm.h>.  Everything newer than
 * the system headers, and the *proposed* ABIs a series under test adds, lives in
 * the one delta section below, so a reviewer can see exactly what kvmcheck
 * assumes beyond the installed headers.
 *
 * Every ioctl goes through ckvm_ioctl(), which calls the installed hook (the
 * real ioctl(2) by default).  Tests install a hook to make the "kernel"
 * misbehave (mutants) or to model an unmerged patch.
 */
#ifndef CKVM_H
#define CKVM_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

/* ===================== uAPI delta: newer than the system headers ===================== */

/* 6.18: x86 KVM_{G,S}ET_ONE_REG / KVM_GET_REG_LIST (CET series). */
#ifndef KVM_X86_REG_TYPE_MSR
#define KVM_X86_REG_TYPE_MSR 2
#define KVM_X86_REG_TYPE_KVM 3
#define KVM_REG_GUEST_SSP 0
#endif

/*
 * The upstream KVM_X86_REG_* id builders are GNU statement expressions, which
 * Swift cannot import; these inline builders produce the same ids.
 */
static inline uint64_t ckvm_x86_reg_id(uint32_t type, uint32_t index, uint64_t size_field) {
    return KVM_REG_X86 | size_field | ((uint64_t)type << 32) | index;
}
static inline uint64_t ckvm_x86_reg_msr(uint32_t msr) {
    return ckvm_x86_reg_id(KVM_X86_REG_TYPE_MSR, msr, KVM_REG_SIZE_U64);
}
static inline uint64_t ckvm_x86_reg_kvm(uint32_t index) {
    return ckvm_x86_reg_id(KVM_X86_REG_TYPE_KVM, index,
                           index == KVM_REG_GUEST_SSP ? KVM_REG_SIZE_U64 : 0);
}

/* ===================== proposed ABIs (unmerged; pinned here) ===================== */

/*
 * "KVM: x86: Add CR3 to guest debug info" (RFC, Nov 2025): kvm_debug_exit_arch
 * gains cr3 after dr7.  It stays inside kvm_run's 256-byte exit union.  The cap
 * number is not fixed upstream, so it is never defined here: callers pass it.
 */
struct ckvm_debug_exit_arch_cr3 {
    __u32 exception;
    __u32 pad;
    __u64 pc;
    __u64 dr6;
    __u64 dr7;
    __u64 cr3;
};
_Static_assert(offsetof(struct ckvm_debug_exit_arch_cr3, dr7) ==
               offsetof(struct kvm_debug_exit_arch, dr7), "cr3 layout must extend kvm_debug_exit_arch");
_Static_assert(offsetof(struct ckvm_debug_exit_arch_cr3, cr3) == sizeof(struct kvm_debug_exit_arch),
               "cr3 must directly follow dr7");
_Static_assert(sizeof(struct ckvm_debug_exit_arch_cr3) <= 256, "must fit in kvm_run's exit union");
/* kvm_run offset of the proposed cr3 (64): Swift cannot take offsets into the exit union. */
#define CKVM_DEBUG_EXIT_CR3_OFFSET (offsetof(struct kvm_run, debug) + offsetof(struct ckvm_debug_exit_arch_cr3, cr3))
static const unsigned long ckvm_debug_exit_cr3_offset = CKVM_DEBUG_EXIT_CR3_OFFSET;
_Static_assert(CKVM_DEBUG_EXIT_CR3_OFFSET == 64, "proposed cr3 sits at kvm_run+64");

/*
 * Counter-proposal (review sketch, Nov 2025): bit 63 of kvm_valid_regs makes
 * sync-regs conditional on the exit reason; a 1024-bit bitmap follows kvm_run.s.
 */
#define CKVM_SYNC_REGS_CONDITIONAL (1ull << 63)
#define CKVM_SAVE_REGS_ON_EXIT_WORDS 16
struct ckvm_run_conditional_sync {
    struct kvm_run run;
    __u64 kvm_save_regs_on_exit[CKVM_SAVE_REGS_ON_EXIT_WORDS];
};
_Static_assert(sizeof(struct kvm_run) == 2352, "kvm_run size changed; revisit the conditional-sync layout");
_Static_assert(offsetof(struct ckvm_run_conditional_sync, kvm_save_regs_on_exit) == 2352,
               "bitmap must directly follow kvm_run.s");
_Static_assert(offsetof(struct kvm_run, s) == 304, "kvm_run.s moved");

/* Pinned layouts of the stable structs the suites compare byte for byte. */
_Static_assert(sizeof(struct kvm_regs) == 144, "kvm_regs");
_Static_assert(sizeof(struct kvm_sregs) == 312, "kvm_sregs");
_Static_assert(sizeof(struct kvm_vcpu_events) == 64, "kvm_vcpu_events");
_Static_assert(sizeof(struct kvm_guest_debug) == 72, "kvm_guest_debug");
_Static_assert(sizeof(struct kvm_debug_exit_arch) == 32, "kvm_debug_exit_arch");

/* ===================== the ioctl seam ===================== */

/* Returns >= 0 on success or -errno.  ctx is the pointer given to ckvm_set_ioctl_hook. */
typedef long (*ckvm_ioctl_hook_fn)(int fd, unsigned long request, void *arg, void *ctx);

/* Install a hook (NULL restores the real ioctl).  Not thread-safe: set it before any vCPU runs. */
void ckvm_set_ioctl_hook(ckvm_ioctl_hook_fn hook, void *ctx);
/* The real ioctl(2), for hooks that pass calls through. Returns >= 0 or -errno. */
long ckvm_real_ioctl(int fd, unsigned long request, void *arg);
/* Every wrapper below goes through this. Returns >= 0 or -errno. */
long ckvm_ioctl(int fd, unsigned long request, void *arg);

/* Request numbers a hook dispatches on (Swift cannot expand the _IO* macros). */
static const unsigned long CKVM_REQ_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_REQ_RUN = KVM_RUN;
static const unsigned long CKVM_REQ_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_REQ_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_REQ_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_REQ_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_REQ_SET_GUEST_DEBUG = KVM_SET_GUEST_DEBUG;
static const unsigned long CKVM_REQ_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_REQ_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long CKVM_REQ_GET_ONE_REG = KVM_GET_ONE_REG;
static const unsigned long CKVM_REQ_SET_ONE_REG = KVM_SET_ONE_REG;
static const unsigned long CKVM_REQ_GET_REG_LIST = KVM_GET_REG_LIST;
static const unsigned long CKVM_REQ_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_REQ_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_REQ_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
static const unsigned long CKVM_REQ_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_REQ_GET_NESTED_STATE = KVM_GET_NESTED_STATE;
static const unsigned long CKVM_REQ_SET_NESTED_STATE = KVM_SET_NESTED_STATE;

/* struct kvm_nested_state's VMX layout, which KVMKit/NestedState.swift reads as bytes: a 128-byte
 * header, then data.vmx[0] = vmcs12 (4 KiB), shadow_vmcs12 (4 KiB). */
#define CKVM_NESTED_STATE_HEADER_SIZE 128
_Static_assert(sizeof(struct kvm_nested_state) == CKVM_NESTED_STATE_HEADER_SIZE, "kvm_nested_state header");
_Static_assert(offsetof(struct kvm_nested_state, hdr.vmx.vmxon_pa) == 8, "hdr.vmx.vmxon_pa");
_Static_assert(offsetof(struct kvm_nested_state, hdr.vmx.vmcs12_pa) == 16, "hdr.vmx.vmcs12_pa");
_Static_assert(offsetof(struct kvm_nested_state, hdr.vmx.flags) == 28, "hdr.vmx.flags");
_Static_assert(offsetof(struct kvm_nested_state, data) == CKVM_NESTED_STATE_HEADER_SIZE, "data.vmx[0].vmcs12");

/* ===================== benchmark reference ===================== */

/* The C reference exit loop for `kvmcheck bench`: KVM_RUN n times through the same seam the
 * Swift layer uses.  Returns n, or -errno, or -(100000 + exit_reason) on an unexpected exit. */
long ckvm_bench_run_loop(int vcpu_fd, const struct kvm_run *run, unsigned long n, unsigned int reason);
/* The same loop through a bare `syscall` instruction (x86-64 only): the per-exit floor. */
long ckvm_bench_raw_loop(int vcpu_fd, const struct kvm_run *run, unsigned long n, unsigned int reason);

/* ===================== ioctl wrappers (non-variadic, >= 0 or -errno) ===================== */

/* system fd */
long ckvm_get_api_version(int kvm_fd);
long ckvm_check_extension(int fd, long cap); /* system or VM fd */
long ckvm_get_vcpu_mmap_size(int kvm_fd);
long ckvm_create_vm(int kvm_fd, unsigned long type);
/* entries: capacity in, count out */
long ckvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid_entry2 *entries, uint32_t *count);
long ckvm_get_msr_index_list(int kvm_fd, uint32_t *indices, uint32_t *count);

/* VM fd */
long ckvm_create_vcpu(int vm_fd, unsigned long id);
long ckvm_set_user_memory_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa,
                                 uint64_t size, uint64_t hva);
long ckvm_create_irqchip(int vm_fd);

/* vCPU fd */
long ckvm_run(int vcpu_fd);
long ckvm_get_regs(int vcpu_fd, struct kvm_regs *regs);
long ckvm_set_regs(int vcpu_fd, const struct kvm_regs *regs);
long ckvm_get_sregs(int vcpu_fd, struct kvm_sregs *sregs);
long ckvm_set_sregs(int vcpu_fd, const struct kvm_sregs *sregs);
long ckvm_get_vcpu_events(int vcpu_fd, struct kvm_vcpu_events *events);
long ckvm_set_vcpu_events(int vcpu_fd, const struct kvm_vcpu_events *events);
long ckvm_get_debugregs(int vcpu_fd, struct kvm_debugregs *dregs);
long ckvm_set_debugregs(int vcpu_fd, const struct kvm_debugregs *dregs);
long ckvm_set_guest_debug(int vcpu_fd, const struct kvm_guest_debug *dbg);
long ckvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid_entry2 *entries, uint32_t count);
/* Returns the number of MSRs processed (as KVM_GET/SET_MSRS do) or -errno. */
long ckvm_get_msrs(int vcpu_fd, const uint32_t *indices, uint64_t *values, uint32_t count);
long ckvm_set_msrs(int vcpu_fd, const uint32_t *indices, const uint64_t *values, uint32_t count);
long ckvm_get_one_reg(int vcpu_fd, uint64_t id, uint64_t addr);
long ckvm_set_one_reg(int vcpu_fd, uint64_t id, uint64_t addr);
/* n: capacity in, the kernel's count out (also on -E2BIG). regs may be NULL when *n == 0. */
long ckvm_get_reg_list(int vcpu_fd, uint64_t *n, uint64_t *regs);
long ckvm_interrupt(int vcpu_fd, uint32_t irq);
long ckvm_get_lapic(int vcpu_fd, struct kvm_lapic_state *lapic);
long ckvm_set_lapic(int vcpu_fd, const struct kvm_lapic_state *lapic);
long ckvm_translate(int vcpu_fd, struct kvm_translation *tr);
/* state: a kvm_nested_state header followed by room for its data; state->size says how much. */
long ckvm_get_nested_state(int vcpu_fd, struct kvm_nested_state *state);
long ckvm_set_nested_state(int vcpu_fd, const struct kvm_nested_state *state);

/* ===================== sync-regs racers (sync_regs_test's races) ===================== */

/*
 * A second thread that rewrites kvm_run's synced state in a tight loop while the
 * caller's thread keeps calling KVM_RUN.  Plain C so the writes are exactly the
 * volatile stores the race needs, with no Swift exclusivity checks in the way.
 */
enum ckvm_race_kind {
    CKVM_RACE_CR4_PAE = 0,          /* dirty SREGS, CR4.PAE toggled on and off */
    CKVM_RACE_EXCEPTION_VECTOR = 1, /* dirty EVENTS, pending exception #UD then vector 255 */
    CKVM_RACE_PENDING_AND_INJECTED = 2, /* dirty EVENTS, one exception both pending and injected */
    /* kvm_run.exit_reason rewritten to a reason past the 1024-bit conditional-sync bitmap, so
     * KVM's read of it after the exit (kvm_run_wants_regs) may see the racer's value: */
    CKVM_RACE_EXIT_REASON_MAX = 3,  /* 0xffffffff: an unguarded bitmap read lands 512 MiB away */
    CKVM_RACE_EXIT_REASON_1024 = 4, /* 1024: the first reason past the bitmap (the boundary) */
};
struct ckvm_racer;
/* Starts the racer on `run`; NULL with *err = errno when the thread cannot start. */
struct ckvm_racer *ckvm_racer_start(struct kvm_run *run, int kind, int *err);
/* Waits until the racer has made its first round (for the exit-reason kinds: overwritten the
 * KVM_EXIT_UNKNOWN stored here), so a timed race does not start before the thread runs.
 * 0, or -ETIMEDOUT. */
int ckvm_racer_wait_running(struct ckvm_racer *racer, unsigned timeout_ms);
/* Stops and frees it; returns how many rounds of writes it made. */
unsigned long ckvm_racer_stop(struct ckvm_racer *racer);

/* ===================== memory ===================== */

/* mmap wrappers; return the mapping or NULL with *err = errno. */
void *ckvm_mmap_anonymous(size_t size, int *err);
void *ckvm_mmap_vcpu(int vcpu_fd, size_t size, int *err);
int ckvm_munmap(void *addr, size_t size);

/* ===================== watchdog for KVM_RUN ===================== */

/*
 * Arms a one-shot per-thread timer that delivers SIGUSR2 to the calling thread
 * after `ms`, so a KVM_RUN that never returns is interrupted with -EINTR.
 * Returns 0 or -errno.  ckvm_watchdog_fired() tells a watchdog EINTR from others.
 */
int ckvm_watchdog_arm(unsigned int ms);
void ckvm_watchdog_disarm(void);
int ckvm_watchdog_fired(void);
unsigned int ckvm_watchdog_armed_ms(void);

/* ===================== process ===================== */

/* errno text without Foundation. */
const char *ckvm_strerror(int err);
/* The errno macro's name ("EMFILE"), or NULL for an unknown number (glibc's strerrorname_np). */
const char *ckvm_errno_name(int err);

#endif
