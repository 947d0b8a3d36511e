/*
 * udpblast: send small UDP datagrams as fast as one core can, with sendmmsg, for a fixed time.
 * Part of scripts/bench/net.sh (compiled there at run time with gcc -O2).
 *
 *   udpblast -d ADDR[,ADDR...] -p PORT [-f FLOWS] [-s PAYLOAD] [-t SECONDS] [-b BATCH]
 *
 * ADDR is IPv4 or IPv6 (all of one family). FLOWS connected sockets (one source port each) take the destinations in turn, so that a
 * load balancer sees several flows and spreads them. Prints "sent=N secs=T errors=E".
 * Bounded: stops after SECONDS (at most 600) or on SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 256
#define MAX_DST 16
#define MAX_BATCH 1024

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: udpblast -d ADDR[,ADDR...] -p PORT [-f FLOWS] [-s PAYLOAD] "
                    "[-t SECONDS] [-b BATCH]\n");
    exit(2);
}

int main(int argc, char **argv) {
    char *dsts = NULL;
    int port = 0, flows = 8, payload = 18, batch = 64;
    double secs = 10;
    int opt;
    while ((opt = getopt(argc, argv, "d:p:f:s:t:b:")) != -1) {
        switch (opt) {
        case 'd': dsts = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'f': flows = atoi(optarg); break;
        case 's': payload = atoi(optarg); break;
        case 't': secs = atof(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default: usage();
        }
    }
    if (!dsts || port <= 0 || port > 65535 || flows < 1 || flows > MAX_FLOWS || payload < 0 ||
        payload > 1400 || secs <= 0 || secs > 600 || batch < 1 || batch > MAX_BATCH)
        usage();

    struct sockaddr_storage dst[MAX_DST];
    socklen_t dstlen = 0;
    int ndst = 0, family = 0;
    for (char *tok = strtok(dsts, ","); tok; tok = strtok(NULL, ",")) {
        if (ndst == MAX_DST) usage();
        memset(&dst[ndst], 0, sizeof dst[ndst]);
        struct sockaddr_in *a4 = (struct sockaddr_in *)&dst[ndst];
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&dst[ndst];
        int fam = strchr(tok, ':') ? AF_INET6 : AF_INET;
        int ok = fam == AF_INET6 ? inet_pton(AF_INET6, tok, &a6->sin6_addr)
                                 : inet_pton(AF_INET, tok, &a4->sin_addr);
        if (ok != 1 || (family && fam != family)) {
            fprintf(stderr, "udpblast: bad address %s (one family for all)\n", tok);
            return 2;
        }
        family = fam;
        if (fam == AF_INET6) {
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons((unsigned short)port);
            dstlen = sizeof *a6;
        } else {
            a4->sin_family = AF_INET;
            a4->sin_port = htons((unsigned short)port);
            dstlen = sizeof *a4;
        }
        ndst++;
    }
    if (ndst == 0) usage();

    int fd[MAX_FLOWS];
    for (int i = 0; i < flows; i++) {
        fd[i] = socket(family, SOCK_DGRAM, 0);
        if (fd[i] < 0) { perror("socket"); return 1; }
        int sz = 4 << 20;
        setsockopt(fd[i], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
        if (connect(fd[i], (struct sockaddr *)&dst[i % ndst], dstlen) < 0) {
            perror("connect");
            return 1;
        }
    }

    static char buf[1400];
    memset(buf, 'x', sizeof buf);
    static struct mmsghdr msgs[MAX_BATCH];
    static struct iovec iov[MAX_BATCH];
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = buf;
        iov[i].iov_len = (size_t)payload;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    unsigned long long sent = 0, errors = 0;
    double start = now(), end = start + secs, t = start;
    while (!stop && t < end) {
        for (int i = 0; i < flows; i++) {
            int n = sendmmsg(fd[i], msgs, (unsigned)batch, 0);
            if (n > 0)
                sent += (unsigned long long)n;
            else if (n < 0 && errno != EINTR)
                errors++; /* ECONNREFUSED after an ICMP error, ENOBUFS ...: go on */
        }
        t = now();
    }
    printf("sent=%llu secs=%.6f errors=%llu\n", sent, t - start, errors);
    return 0;
}
