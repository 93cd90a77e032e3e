/*
 * cprocess.h — run one check in a child process with a deadline.
 *
 * The child gets its result channel on fd 3 and its stdout+stderr on a second
 * pipe; the parent polls both until the child exits or the deadline passes, then
 * kills the child's whole process group.  Kept in C so that Swift never handles
 * argv arrays or raw pipe buffers.
 */
#ifndef CPROCESS_H
#define CPROCESS_H

#include <stddef.h>

typedef struct {
    int exited;        /* 1 if the child exited normally */
    int exit_code;     /* valid when exited */
    int signal;        /* terminating signal, 0 if none */
    int timed_out;     /* 1 if the deadline passed and the child was killed */
    int spawn_errno;   /* non-zero if the child could not be started */
    long elapsed_ms;
    char *result;      /* bytes the child wrote to fd 3 (NUL-terminated, malloc'd) */
    size_t result_len;
    char *output;      /* the child's stdout+stderr (NUL-terminated, malloc'd, tail-capped) */
    size_t output_len;
} cproc_outcome;

/*
 * argv_blob holds argc NUL-terminated strings back to back; argv_blob's first
 * string is the executable path.  Returns 0, or -errno if poll/pipe failed.
 */
int cproc_run(const char *argv_blob, size_t blob_len, int argc, long timeout_ms, cproc_outcome *out);
void cproc_free(cproc_outcome *out);

/* Process-wide signal handling for the runner: SIGINT/SIGTERM/SIGHUP set a flag; SIGPIPE is ignored that cproc_run honours. */
void cproc_install_interrupt_handler(void);
int cproc_interrupted(void); /* the signal number that interrupted the run, or 0 */

/*
 * In a check child: die with SIGKILL when the runner dies (PR_SET_PDEATHSIG), exit at once if
 * it already has (getppid() != expected_parent), and end by SIGALRM after deadline_seconds of
 * its own.  Returns 0 or -errno.
 */
int cproc_die_with_parent(int expected_parent, unsigned int deadline_seconds);

/* Opens /dev/null on whichever of fds 0-2 is closed, so no file we open later becomes stdout. */
void cproc_ensure_standard_fds(void);

/* Writes all bytes to fd (retrying on EINTR); returns 0 or -errno. */
int cproc_write_all(int fd, const char *bytes, size_t len);

#endif
