#define _GNU_SOURCE
#include "cprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define OUTPUT_CAP (256 * 1024)
#define RESULT_CAP (4 * 1024 * 1024)

static volatile sig_atomic_t interrupted_by;

static void on_interrupt(int sig) { interrupted_by = sig; }

void cproc_install_interrupt_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* a closed terminal ends the run like SIGTERM: Bail out!, restore */
    /* A closed stdout (`| head`) must not kill the run before the report files are finished:
     * writes then fail with EPIPE, which the reporters handle. */
    signal(SIGPIPE, SIG_IGN);
    /* A parent may have started us with these blocked (e.g. from a thread pool); unblock
     * them on this thread, or Ctrl-C and `kill` would never reach the handler. */
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &wanted, NULL);
}

int cproc_interrupted(void) { return interrupted_by; }

int cproc_write_all(int fd, const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct buf {
    char *data;
    size_t len, cap, limit;
    int keep_tail; /* output keeps the last `limit` bytes; results keep the first */
};

static void buf_append(struct buf *b, const char *src, size_t n) {
    if (b->keep_tail && b->len + n > b->limit) {
        if (n >= b->limit) {
            src += n - b->limit;
            n = b->limit;
            b->len = 0;
        } else {
            size_t drop = b->len + n - b->limit;
            memmove(b->data, b->data + drop, b->len - drop);
            b->len -= drop;
        }
    } else if (!b->keep_tail && b->len + n > b->limit) {
        n = b->limit - b->len;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = 0;
}

/* Reads what is available; returns 0 at EOF, 1 otherwise. */
static int drain(int fd, struct buf *b) {
    char chunk[8192];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n > 0) {
        buf_append(b, chunk, (size_t)n);
        return 1;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    return 0;
}

int cproc_run(const char *argv_blob, size_t blob_len, int argc, long timeout_ms, cproc_outcome *out) {
    memset(out, 0, sizeof(*out));
    char **argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!argv)
        return -ENOMEM;
    const char *p = argv_blob;
    for (int i = 0; i < argc && p < argv_blob + blob_len; i++) {
        argv[i] = (char *)p;
        p += strlen(p) + 1;
    }

    int result_pipe[2], output_pipe[2];
    if (pipe2(result_pipe, O_CLOEXEC) < 0) {
        free(argv);
        return -errno;
    }
    if (pipe2(output_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(result_pipe[0]);
        close(result_pipe[1]);
        free(argv);
        return -e;
    }

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, output_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, output_pipe[1], 2);
    posix_spawn_file_actions_adddup2(&fa, result_pipe[1], 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    /* Own process group, so a timeout kills anything the check started; default signals. */
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGHUP);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    long start = now_ms();
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(argv);
    close(result_pipe[1]);
    close(output_pipe[1]);
    if (rc != 0) {
        close(result_pipe[0]);
        close(output_pipe[0]);
        out->spawn_errno = rc;
        return 0;
    }

    struct buf result = { .limit = RESULT_CAP, .keep_tail = 0 };
    struct buf output = { .limit = OUTPUT_CAP, .keep_tail = 1 };
    int result_open = 1, output_open = 1;
    long deadline = start + timeout_ms;
    while (result_open || output_open) {
        long left = deadline - now_ms();
        if (left <= 0 || interrupted_by) {
            out->timed_out = !interrupted_by;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd fds[2] = {
            { .fd = result_open ? result_pipe[0] : -1, .events = POLLIN },
            { .fd = output_open ? output_pipe[0] : -1, .events = POLLIN },
        };
        int n = poll(fds, 2, (int)(left > 100 ? 100 : left));
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
            result_open = drain(result_pipe[0], &result);
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
            output_open = drain(output_pipe[0], &output);
    }

    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* Whatever the child managed to write before dying still counts. */
    fcntl(result_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(output_pipe[0], F_SETFL, O_NONBLOCK);
    while (drain(result_pipe[0], &result) && errno != EAGAIN)
        ;
    while (drain(output_pipe[0], &output) && errno != EAGAIN)
        ;
    close(result_pipe[0]);
    close(output_pipe[0]);
    /* Kill stragglers the check may have left in its group. */
    kill(-pid, SIGKILL);

    out->elapsed_ms = now_ms() - start;
    if (WIFEXITED(status)) {
        out->exited = 1;
        out->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out->signal = WTERMSIG(status);
    }
    out->result = result.data ? result.data : strdup("");
    out->result_len = result.len;
    out->output = output.data ? output.data : strdup("");
    out->output_len = output.len;
    return 0;
}

void cproc_free(cproc_outcome *out) {
    free(out->result);
    free(out->output);
    out->result = out->output = NULL;
}

int cproc_die_with_parent(int expected_parent, unsigned int deadline_seconds) {
    /* SIGKILL when the runner goes away, whatever killed it; its restore record stays for the
     * next run, which can take the setting's lock because this process is gone. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return -errno;
    /* The runner may have died between spawning us and the prctl above. */
    if (expected_parent > 0 && getppid() != expected_parent)
        _exit(125);
    if (deadline_seconds > 0)
        alarm(deadline_seconds);
    return 0;
}

void cproc_ensure_standard_fds(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* open() returns the lowest free descriptor: this one. */
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n >= 0 && n != fd)
            close(n);
    }
}
