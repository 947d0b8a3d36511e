/*
 * udpblast: send small UDP datagrams as fast as one core can, with sendmmsg, for a fixed time.
 * Part of scripts/bench/net.sh (compiled there at run time with gcc -O2).
 *
 *   udpblast -d ADDR[,ADDR...] -p PORT [-f FLOWS] [-s PAYLOAD] [-t SECONDS] [-b BATCH]
 *
 * FLOWS connected sockets (one source port each) take the destinations in turn, so that a
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

    struct sockaddr_in dst[MAX_DST];
    int ndst = 0;
    for (char *tok = strtok(dsts, ","); tok; tok = strtok(NULL, ",")) {
        if (ndst == MAX_DST) usage();
        memset(&dst[ndst], 0, sizeof dst[ndst]);
        dst[ndst].sin_family = AF_INET;
        dst[ndst].sin_port = htons((unsigned short)port);
        if (inet_pton(AF_INET, tok, &dst[ndst].sin_addr) != 1) {
            fprintf(stderr, "udpblast: bad address %s\n", tok);
            return 2;
        }
        ndst++;
    }
    if (ndst == 0) usage();

    int fd[MAX_FLOWS];
    for (int i = 0; i < flows; i++) {
        fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd[i] < 0) { perror("socket"); return 1; }
        int sz = 4 << 20;
        setsockopt(fd[i], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
        if (connect(fd[i], (struct sockaddr *)&dst[i % ndst], sizeof dst[0]) < 0) {
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
