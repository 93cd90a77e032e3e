/* ckvm.c — non-variadic ioctl wrappers, all funnelled through one seam. */
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

static ckvm_ioctl_hook_fn ioctl_hook;
static void *ioctl_hook_ctx;

void ckvm_set_ioctl_hook(ckvm_ioctl_hook_fn hook, void *ctx) {
    ioctl_hook = hook;
    ioctl_hook_ctx = ctx;
}

long ckvm_real_ioctl(int fd, unsigned long request, void *arg) {
    long r = ioctl(fd, request, arg);
    return r < 0 ? -errno : r;
}

long ckvm_ioctl(int fd, unsigned long request, void *arg) {
    if (ioctl_hook)
        return ioctl_hook(fd, request, arg, ioctl_hook_ctx);
    return ckvm_real_ioctl(fd, request, arg);
}

/* ---- system ---- */
long ckvm_get_api_version(int kvm_fd) { return ckvm_ioctl(kvm_fd, KVM_GET_API_VERSION, NULL); }
long ckvm_check_extension(int fd, long cap) { return ckvm_ioctl(fd, KVM_CHECK_EXTENSION, (void *)cap); }
long ckvm_get_vcpu_mmap_size(int kvm_fd) { return ckvm_ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL); }
long ckvm_create_vm(int kvm_fd, unsigned long type) { return ckvm_ioctl(kvm_fd, KVM_CREATE_VM, (void *)type); }

long ckvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid_entry2 *entries, uint32_t *count) {
    size_t bytes = sizeof(struct kvm_cpuid2) + (size_t)*count * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, bytes);
    if (!c)
        return -ENOMEM;
    c->nent = *count;
    long r = ckvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
    if (r >= 0) {
        *count = c->nent;
        memcpy(entries, c->entries, (size_t)c->nent * sizeof(struct kvm_cpuid_entry2));
    }
    free(c);
    return r;
}

long ckvm_get_msr_index_list(int kvm_fd, uint32_t *indices, uint32_t *count) {
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + (size_t)*count * sizeof(uint32_t));
    if (!l)
        return -ENOMEM;
    l->nmsrs = *count;
    long r = ckvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l);
    if (r >= 0)
        memcpy(indices, l->indices, (size_t)l->nmsrs * sizeof(uint32_t));
    *count = l->nmsrs; /* on -E2BIG the kernel reports the size it needs */
    free(l);
    return r;
}

/* ---- VM ---- */
long ckvm_create_vcpu(int vm_fd, unsigned long id) { return ckvm_ioctl(vm_fd, KVM_CREATE_VCPU, (void *)id); }

long ckvm_set_user_memory_region(int vm_fd, uint32_t slot, uint32_t flags, uint64_t gpa,
                                 uint64_t size, uint64_t hva) {
    struct kvm_userspace_memory_region region = {
        .slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = hva,
    };
    return ckvm_ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}

long ckvm_create_irqchip(int vm_fd) { return ckvm_ioctl(vm_fd, KVM_CREATE_IRQCHIP, NULL); }

/* ---- vCPU ---- */
long ckvm_run(int vcpu_fd) { return ckvm_ioctl(vcpu_fd, KVM_RUN, NULL); }
long ckvm_get_regs(int fd, struct kvm_regs *r) { return ckvm_ioctl(fd, KVM_GET_REGS, r); }
long ckvm_set_regs(int fd, const struct kvm_regs *r) { return ckvm_ioctl(fd, KVM_SET_REGS, (void *)r); }
long ckvm_get_sregs(int fd, struct kvm_sregs *s) { return ckvm_ioctl(fd, KVM_GET_SREGS, s); }
long ckvm_set_sregs(int fd, const struct kvm_sregs *s) { return ckvm_ioctl(fd, KVM_SET_SREGS, (void *)s); }
long ckvm_get_vcpu_events(int fd, struct kvm_vcpu_events *e) { return ckvm_ioctl(fd, KVM_GET_VCPU_EVENTS, e); }
long ckvm_set_vcpu_events(int fd, const struct kvm_vcpu_events *e) {
    return ckvm_ioctl(fd, KVM_SET_VCPU_EVENTS, (void *)e);
}
long ckvm_get_debugregs(int fd, struct kvm_debugregs *d) { return ckvm_ioctl(fd, KVM_GET_DEBUGREGS, d); }
long ckvm_set_debugregs(int fd, const struct kvm_debugregs *d) {
    return ckvm_ioctl(fd, KVM_SET_DEBUGREGS, (void *)d);
}
long ckvm_set_guest_debug(int fd, const struct kvm_guest_debug *g) {
    return ckvm_ioctl(fd, KVM_SET_GUEST_DEBUG, (void *)g);
}

long ckvm_set_cpuid2(int fd, const struct kvm_cpuid_entry2 *entries, uint32_t count) {
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)count * sizeof(*entries));
    if (!c)
        return -ENOMEM;
    c->nent = count;
    memcpy(c->entries, entries, (size_t)count * sizeof(*entries));
    long r = ckvm_ioctl(fd, KVM_SET_CPUID2, c);
    free(c);
    return r;
}

static long msrs_ioctl(int fd, unsigned long request, const uint32_t *indices, uint64_t *values,
                       uint32_t count, int copy_in) {
    struct kvm_msrs *m = calloc(1, sizeof(*m) + (size_t)count * sizeof(struct kvm_msr_entry));
    if (!m)
        return -ENOMEM;
    m->nmsrs = count;
    for (uint32_t i = 0; i < count; i++) {
        m->entries[i].index = indices[i];
        if (copy_in)
            m->entries[i].data = values[i];
    }
    long r = ckvm_ioctl(fd, request, m);
    if (r >= 0 && !copy_in)
        for (uint32_t i = 0; i < count; i++)
            values[i] = m->entries[i].data;
    free(m);
    return r;
}
long ckvm_get_msrs(int fd, const uint32_t *indices, uint64_t *values, uint32_t count) {
    return msrs_ioctl(fd, KVM_GET_MSRS, indices, values, count, 0);
}
long ckvm_set_msrs(int fd, const uint32_t *indices, const uint64_t *values, uint32_t count) {
    return msrs_ioctl(fd, KVM_SET_MSRS, indices, (uint64_t *)values, count, 1);
}

long ckvm_get_one_reg(int fd, uint64_t id, uint64_t addr) {
    struct kvm_one_reg r = { .id = id, .addr = addr };
    return ckvm_ioctl(fd, KVM_GET_ONE_REG, &r);
}
long ckvm_set_one_reg(int fd, uint64_t id, uint64_t addr) {
    struct kvm_one_reg r = { .id = id, .addr = addr };
    return ckvm_ioctl(fd, KVM_SET_ONE_REG, &r);
}

long ckvm_get_reg_list(int fd, uint64_t *n, uint64_t *regs) {
    struct kvm_reg_list *l = calloc(1, sizeof(*l) + (size_t)*n * sizeof(uint64_t));
    if (!l)
        return -ENOMEM;
    l->n = *n;
    long r = ckvm_ioctl(fd, KVM_GET_REG_LIST, l);
    if (r >= 0 && regs)
        memcpy(regs, l->reg, (size_t)(l->n < *n ? l->n : *n) * sizeof(uint64_t));
    *n = l->n;
    free(l);
    return r;
}

long ckvm_interrupt(int fd, uint32_t irq) {
    struct kvm_interrupt i = { .irq = irq };
    return ckvm_ioctl(fd, KVM_INTERRUPT, &i);
}
long ckvm_get_lapic(int fd, struct kvm_lapic_state *l) { return ckvm_ioctl(fd, KVM_GET_LAPIC, l); }
long ckvm_set_lapic(int fd, const struct kvm_lapic_state *l) { return ckvm_ioctl(fd, KVM_SET_LAPIC, (void *)l); }
long ckvm_translate(int fd, struct kvm_translation *tr) { return ckvm_ioctl(fd, KVM_TRANSLATE, tr); }
long ckvm_get_nested_state(int fd, struct kvm_nested_state *s) { return ckvm_ioctl(fd, KVM_GET_NESTED_STATE, s); }
long ckvm_set_nested_state(int fd, const struct kvm_nested_state *s) {
    return ckvm_ioctl(fd, KVM_SET_NESTED_STATE, (void *)s);
}

/* ---- memory ---- */
void *ckvm_mmap_anonymous(size_t size, int *err) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        *err = errno;
        return NULL;
    }
    return p;
}
void *ckvm_mmap_vcpu(int vcpu_fd, size_t size, int *err) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (p == MAP_FAILED) {
        *err = errno;
        return NULL;
    }
    return p;
}
int ckvm_munmap(void *addr, size_t size) { return munmap(addr, size) < 0 ? -errno : 0; }

/* ---- benchmark reference loops ----
 * The two loops repeat their result handling on purpose: each is the minimal loop of its
 * kind.  They live in this file, beside ckvm_ioctl, which the compiler inlines into the C loop
 * (from another file it cost 10 more instructions per exit: callgrind 44 -> 54). */
long ckvm_bench_run_loop(int vcpu_fd, const struct kvm_run *run, unsigned long n, unsigned int reason) {
    for (unsigned long i = 0; i < n; i++) {
        long r = ckvm_ioctl(vcpu_fd, KVM_RUN, NULL);
        if (r == -EINTR || r == -EAGAIN) {
            if (ckvm_watchdog_fired()) /* a kernel that keeps answering EAGAIN cannot spin it */
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
