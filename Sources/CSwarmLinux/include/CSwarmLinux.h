#ifndef CSWARMLINUX_H
#define CSWARMLINUX_H

// A thin C layer over the Linux calls that Swift cannot reach or declare:
// variadic syscall()/prctl(), packed epoll_event, signalfd/pidfd/timerfd
// headers, posix_spawn attribute set-up and SO_PEERCRED. Every function
// returns -1 and leaves errno set on failure, like the calls it wraps.

#include <stdint.h>
#include <sys/types.h>
#include <signal.h>

// Signals ------------------------------------------------------------------

/// Blocks the given signals in the calling thread (and every thread it creates later).
int swarm_block_signals(const int *signals, int count);
/// A non-blocking, close-on-exec signalfd for the given signals.
int swarm_signalfd(const int *signals, int count);
/// Reads one signal from a signalfd: returns the signal number and the sender's pid,
/// 0 when nothing is pending, -1 on error.
int swarm_signalfd_read(int fd, int32_t *sender_pid);
/// Installs async-signal-safe handlers that only record that a signal arrived.
int swarm_install_flag_handlers(const int *signals, int count);
/// Returns and clears the bit set of recorded signals (bit n = signal n).
uint64_t swarm_take_signal_flags(void);
/// Returns the recorded signals without clearing them.
uint64_t swarm_peek_signal_flags(void);
/// Ignores SIGPIPE so that writes to closed pipes fail with EPIPE instead.
void swarm_ignore_sigpipe(void);

// Processes ----------------------------------------------------------------

int swarm_pidfd_open(pid_t pid);
int swarm_pidfd_send_signal(int pidfd, int sig);
/// waitid(P_PIDFD, WEXITED|WNOHANG). Returns 1 and fills code/status when the child
/// was reaped, 0 when it is still running, -1 on error.
/// code: 1 exited (status = exit code), 2 killed by signal, 3 dumped core (status = signal).
int swarm_pidfd_reap(int pidfd, int *code, int *status);

/// One fd for the child: `source` in the parent becomes `target` in the child.
typedef struct {
    int source;
    int target;
} swarm_fd_map;

/// posix_spawn with a clean signal mask, default dispositions for every signal,
/// its own process group, and `maps` dup2'ed into place. Every fd above the
/// highest mapped one is closed in the child. Returns the pid, or -errno.
pid_t swarm_spawn(const char *path, char *const argv[], char *const envp[],
                  const swarm_fd_map *maps, int map_count);

/// Asks the kernel to send `sig` when the parent thread exits (belt and braces
/// beside the lifeline pipe).
int swarm_set_parent_death_signal(int sig);
/// How many CPUs the calling thread may run on (its affinity mask; CPU_COUNT is a macro).
int swarm_affinity_cpus(void);
/// Sets the thread name shown by ps/top (15 bytes at most).
int swarm_set_thread_name(const char *name);
/// Orphans of swarmd's nodes (a dead node's handler) become swarmd's children, not init's.
int swarm_set_child_subreaper(void);

// File descriptors ----------------------------------------------------------

int swarm_pipe(int fds[2], int nonblocking_read, int nonblocking_write);
int swarm_set_nonblocking(int fd, int on);
/// Close-on-exec on (the default for every fd swarm opens) or off (fds an
/// upgrading swarmd hands to the binary it re-executes).
int swarm_set_cloexec(int fd);
int swarm_set_inheritable(int fd);
/// A close-on-exec memfd holding `data`, sealed against any change: what a
/// child reads from it (with pread, from offset 0) is exactly what was written.
int swarm_sealed_memfd(const char *name, const void *data, size_t len);

// epoll ----------------------------------------------------------------------

int swarm_epoll_create(void);
int swarm_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int swarm_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int swarm_epoll_del(int epfd, int fd);
/// Waits for events; fills datas/events, returns the count (0 on EINTR).
int swarm_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms);

extern const uint32_t SWARM_EPOLLIN;
extern const uint32_t SWARM_EPOLLOUT;
extern const uint32_t SWARM_EPOLLERR;
extern const uint32_t SWARM_EPOLLHUP;
extern const uint32_t SWARM_EPOLLRDHUP;

// timerfd ---------------------------------------------------------------------

int swarm_timerfd_create(void);
/// Arms the timer to fire once, `ns` nanoseconds from now (0 disarms it).
int swarm_timerfd_arm(int fd, int64_t ns);
/// Monotonic clock, nanoseconds.
int64_t swarm_monotonic_ns(void);

// Unix sockets ------------------------------------------------------------------

/// A listening, non-blocking, close-on-exec Unix stream socket at path.
int swarm_unix_listen(const char *path, int backlog);
/// A connected blocking, close-on-exec Unix stream socket; -1 with errno on failure.
int swarm_unix_connect(const char *path);
/// One datagram to the AF_UNIX socket at `path` (journald's native protocol).
long swarm_unix_sendto(int fd, const char *path, const void *bytes, size_t count);
/// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC.
int swarm_accept(int fd);
int swarm_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);
/// The peer's supplementary groups at connect time (SO_PEERGROUPS, Linux 4.13):
/// how many were written, or -1 with errno (ERANGE: more than `max`).
int swarm_peergroups(int fd, uint32_t *groups, int max);

// Build ----------------------------------------------------------------------

/// The Debian package version a package build stamped in, or NULL.
const char *swarm_package_version(void);

#endif
