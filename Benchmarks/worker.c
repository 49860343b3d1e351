/* The trivial worker every supervisor runs in the benchmarks. On start it
 * writes "<pid> <CLOCK_MONOTONIC ns>" to $BENCH_FIFO (so exec time is known
 * to the nanosecond), then idles. Under swarmd it also speaks the node
 * protocol: a report on fd 3 every $SWARM_REPORT_INTERVAL seconds, and EOF on
 * fd 4 (swarmd gone) ends it. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *fifo = getenv("BENCH_FIFO");
    if (fifo) {
        int fd = open(fifo, O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {
            dprintf(fd, "%d %lld\n", getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
            close(fd);
        }
    }
    signal(SIGPIPE, SIG_IGN);
    const char *interval = getenv("SWARM_REPORT_INTERVAL");
    int timeout_ms = interval ? (int)(atof(interval) * 1000) : 1000;
    int supervised = fcntl(3, F_GETFD) >= 0 && fcntl(4, F_GETFD) >= 0 && getenv("SWARM_SLOT");
    for (;;) {
        if (!supervised) { pause(); continue; }
        dprintf(3, "v=1 health=ok state=running\n");
        struct pollfd p = {4, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) > 0) {
            char buf[64];
            if (read(4, buf, sizeof buf) <= 0) return 0;
        }
    }
}
