/*
 * udpsink: count UDP datagrams arriving on a port, with recvmmsg.
 * Part of scripts/bench/net.sh (compiled there at run time with gcc -O2).
 *
 *   udpsink -p PORT [-t MAXSECONDS]
 *
 * Bound to the IPv6 wildcard with IPV6_V6ONLY off, so it counts IPv4 and IPv6 datagrams alike.
 *
 * Prints "ready" once bound; SIGUSR1 zeroes the count (after a warm-up); SIGTERM/SIGINT or
 * MAXSECONDS (default 120, at most 3600) ends it, printing "recv=N".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256

static volatile sig_atomic_t stop, zero;
static void on_stop(int sig) { (void)sig; stop = 1; }
static void on_zero(int sig) { (void)sig; zero = 1; }

int main(int argc, char **argv) {
    int port = 0, opt;
    double maxsecs = 120;
    while ((opt = getopt(argc, argv, "p:t:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 't': maxsecs = atof(optarg); break;
        default: port = -1;
        }
    }
    if (port <= 0 || port > 65535 || maxsecs <= 0 || maxsecs > 3600) {
        fprintf(stderr, "usage: udpsink -p PORT [-t MAXSECONDS]\n");
        return 2;
    }
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    int off = 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
        perror("IPV6_V6ONLY");
        return 1;
    }
    int sz = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons((unsigned short)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa); /* no SA_RESTART: a signal interrupts recvmmsg */
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_zero;
    sigaction(SIGUSR1, &sa, NULL);

    printf("ready\n");
    fflush(stdout);

    static char bufs[BATCH][2048];
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + maxsecs;
    unsigned long long count = 0;
    while (!stop) {
        if (zero) { count = 0; zero = 0; }
        int n = recvmmsg(fd, msgs, BATCH, 0, NULL);
        if (n > 0) count += (unsigned long long)n;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 > end) break;
    }
    printf("recv=%llu\n", count);
    return 0;
}
