#define _GNU_SOURCE
#include "CSwarmLinux.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int fill_set(sigset_t *set, const int *signals, int count) {
    sigemptyset(set);
    for (int i = 0; i < count; i++) {
        if (sigaddset(set, signals[i]) != 0) return -1;
    }
    return 0;
}

int swarm_block_signals(const int *signals, int count) {
    sigset_t set;
    if (fill_set(&set, signals, count) != 0) return -1;
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) { errno = rc; return -1; }
    return 0;
}

int swarm_signalfd(const int *signals, int count) {
    sigset_t set;
    if (fill_set(&set, signals, count) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int swarm_signalfd_read(int fd, int32_t *sender_pid) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n < 0) return (errno == EAGAIN) ? 0 : -1;
    if (n != sizeof info) { errno = EIO; return -1; }
    if (sender_pid) *sender_pid = (int32_t)info.ssi_pid;
    return (int)info.ssi_signo;
}

static volatile sig_atomic_t flag_bits[64];

static void flag_handler(int sig) {
    if (sig > 0 && sig < 64) flag_bits[sig] = 1;
}

int swarm_install_flag_handlers(const int *signals, int count) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = flag_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &sa, NULL) != 0) return -1;
    }
    return 0;
}

uint64_t swarm_take_signal_flags(void) {
    uint64_t bits = 0;
    for (int i = 1; i < 64; i++) {
        if (flag_bits[i]) { flag_bits[i] = 0; bits |= (1ULL << i); }
    }
    return bits;
}

uint64_t swarm_peek_signal_flags(void) {
    uint64_t bits = 0;
    for (int i = 1; i < 64; i++) {
        if (flag_bits[i]) bits |= (1ULL << i);
    }
    return bits;
}

void swarm_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int swarm_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int swarm_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int swarm_pidfd_reap(int pidfd, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) != 0) return -1;
    if (info.si_pid == 0) return 0;
    switch (info.si_code) {
    case CLD_EXITED: *code = 1; break;
    case CLD_KILLED: *code = 2; break;
    case CLD_DUMPED: *code = 3; break;
    default: *code = 0; break;
    }
    *status = info.si_status;
    return 1;
}

pid_t swarm_spawn(const char *path, char *const argv[], char *const envp[],
                  const swarm_fd_map *maps, int map_count) {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    int rc;
    int temps[16];
    int temp_count = 0;

    if ((rc = posix_spawnattr_init(&attr)) != 0) return -rc;
    if ((rc = posix_spawn_file_actions_init(&actions)) != 0) {
        posix_spawnattr_destroy(&attr);
        return -rc;
    }

    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);

    int highest = 2;
    for (int i = 0; i < map_count; i++) {
        if (maps[i].target > highest) highest = maps[i].target;
    }
    if (map_count > 16) { rc = EINVAL; goto out; }
    for (int i = 0; i < map_count; i++) {
        int source = maps[i].source;
        // The dup2s run in order in the child: a source numbered like any
        // target could be overwritten before its own turn (swarmd's first fd
        // is 3, a node's report fd), and dup2 onto itself would keep
        // FD_CLOEXEC. Hand a fresh copy above every target instead.
        if (source <= highest) {
            source = fcntl(source, F_DUPFD_CLOEXEC, 64);
            if (source < 0) { rc = errno; goto out; }
            temps[temp_count++] = source;
        }
        if ((rc = posix_spawn_file_actions_adddup2(&actions, source, maps[i].target)) != 0) goto out;
    }

    // Whatever swarmd inherited without close-on-exec (a parent's stray fds)
    // must not reach the child either: close everything above the mapped fds.
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, highest + 1)) != 0) goto out;

    pid_t pid;
    rc = posix_spawn(&pid, path, &actions, &attr, argv, envp);
out:
    for (int i = 0; i < temp_count; i++) close(temps[i]);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc == 0 ? pid : -rc;
}

int swarm_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int swarm_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

int swarm_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int swarm_pipe(int fds[2], int nonblocking_read, int nonblocking_write) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    if (nonblocking_read) swarm_set_nonblocking(fds[0], 1);
    if (nonblocking_write) swarm_set_nonblocking(fds[1], 1);
    return 0;
}

int swarm_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags);
}

int swarm_set_cloexec(int fd) { return fcntl(fd, F_SETFD, FD_CLOEXEC); }

int swarm_set_inheritable(int fd) { return fcntl(fd, F_SETFD, 0); }

int swarm_sealed_memfd(const char *name, const void *data, size_t len) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        done += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int swarm_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int epoll_op(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int swarm_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    return epoll_op(epfd, EPOLL_CTL_ADD, fd, events, data);
}
int swarm_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data) {
    return epoll_op(epfd, EPOLL_CTL_MOD, fd, events, data);
}
int swarm_epoll_del(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int swarm_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        datas[i] = evs[i].data.u64;
        events[i] = evs[i].events;
    }
    return n;
}

const uint32_t SWARM_EPOLLIN = EPOLLIN;
const uint32_t SWARM_EPOLLOUT = EPOLLOUT;
const uint32_t SWARM_EPOLLERR = EPOLLERR;
const uint32_t SWARM_EPOLLHUP = EPOLLHUP;
const uint32_t SWARM_EPOLLRDHUP = EPOLLRDHUP;

int swarm_timerfd_create(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC); }

int swarm_timerfd_arm(int fd, int64_t ns) {
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    if (ns > 0) {
        spec.it_value.tv_sec = ns / 1000000000LL;
        spec.it_value.tv_nsec = ns % 1000000000LL;
    }
    return timerfd_settime(fd, 0, &spec, NULL);
}

int64_t swarm_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fill_addr(struct sockaddr_un *addr, const char *path, socklen_t *len) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr->sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(addr->sun_path, path, n);
    if (path[0] == '@') addr->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
}

int swarm_unix_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    socklen_t len;
    if (fill_addr(&addr, path, &len) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int swarm_unix_connect(const char *path) {
    struct sockaddr_un addr;
    socklen_t len;
    if (fill_addr(&addr, path, &len) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, len) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

long swarm_unix_sendto(int fd, const char *path, const void *bytes, size_t count) {
    struct sockaddr_un addr;
    socklen_t len;
    if (fill_addr(&addr, path, &len) != 0) return -1;
    return (long)sendto(fd, bytes, count, MSG_NOSIGNAL, (struct sockaddr *)&addr, len);
}

int swarm_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int swarm_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}


int swarm_peergroups(int fd, uint32_t *groups, int max) {
    socklen_t len = (socklen_t)(max * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) return -1;
    return (int)(len / sizeof(gid_t));
}

int swarm_affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}

/* The Debian package's version, stamped by a package build (Package.swift,
 * SWARM_PACKAGE_VERSION); NULL in any other build. */
const char *swarm_package_version(void) {
#ifdef SWARM_PACKAGE_VERSION
    return SWARM_PACKAGE_VERSION;
#else
    return NULL;
#endif
}
