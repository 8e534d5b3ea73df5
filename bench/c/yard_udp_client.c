/*
 * yard_udp_client.c - closed-loop UDP load for the AVP binary protocol.
 *
 * Opens SOCKETS connected UDP sockets (each its own local port), sends DEPTH
 * STAT_REPORTs on each, then sends one new report for every answer received,
 * so about DEPTH reports stay outstanding per socket. Answers are read with
 * recvmmsg and their replacements sent with one sendmmsg per batch; epoll
 * watches the sockets. UDP can lose datagrams: a socket that has received
 * nothing for 200 ms is primed again with DEPTH new reports, so loss cannot
 * stall it for good.
 *
 * Counting starts once every socket is open and primed and lasts SECS
 * seconds; the result goes to stdout as one line `acks_per_sec=N`. An
 * answer counts as an ack when it is a well-framed STAT_REPORT_ACK (type 4).
 * Details go to stderr, including the lines "yard: window start" and
 * "yard: window end" that a runner can use to sample the server's CPU time.
 *
 * Reports: "minimal" (default) is the 15-byte CPU, MEM, SEQUENCE report;
 * "full" is what an agent sends: CPU, MEM, TIMESTAMP (ms since the epoch,
 * shortest width), NODE_ID "loadgen-%05d" (per socket), INSTANCE (8 bytes,
 * per socket and run), SEQUENCE: 48 bytes.
 *
 * Build: gcc -O2 -Wall -Wextra -o target/yardsticks/yard_udp_client bench/c/yard_udp_client.c
 * Run:   taskset -c 1 target/yardsticks/yard_udp_client PORT SOCKETS DEPTH SECS [minimal|full] [HOST]
 * Exit status 0, or 1 when nothing was counted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_REPORT 64           /* a full report is 48 bytes */
#define ANSWER_SLOT 2048        /* larger answers are truncated: not acks anyway */
#define STALL_SECS 0.2
#define CHECK_SECS 0.05         /* how often sockets are checked for a stall */

struct usock {
    int fd;
    uint32_t next_seq;
    double last_answer;         /* monotonic time of the last answer or (re)prime */
    uint8_t node_len;
    char node[16];
    uint64_t instance;
};

static uint8_t rep[BATCH][MAX_REPORT];
static struct iovec rep_iov[BATCH];
static struct mmsghdr rep_msg[BATCH];
static uint8_t ans[BATCH][ANSWER_SLOT];
static struct iovec ans_iov[BATCH];
static struct mmsghdr ans_msg[BATCH];

static bool full;
static bool measuring;
static uint64_t n_acks, n_bad, n_sent, n_send_lost, n_reprimes, n_refused;

static void die(const char *what) { perror(what); exit(1); }

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t epoch_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void put_be(uint8_t *p, uint64_t v, size_t w)
{
    for (size_t i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> (8 * (w - 1 - i)));
}

/* Encode one report at p; returns its size. */
static size_t put_report(uint8_t *p, struct usock *s, uint64_t ts, size_t ts_w)
{
    uint32_t seq = s->next_seq++;   /* wraps after 2^32 reports: fine for a benchmark */
    if (!full) {
        /* 00 0F 03 | 01 01 1E | 02 01 35 | 06 04 s s s s : CPU 30 %, MEM 53 % */
        static const uint8_t head[] = { 0x00, 0x0F, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35, 0x06, 0x04 };
        memcpy(p, head, sizeof head);
        put_be(p + 11, seq, 4);
        return 15;
    }
    size_t n = 3;
    uint8_t cpu = (uint8_t)(seq % 101);   /* values that move, always in 0..=100 */
    p[n++] = 1; p[n++] = 1; p[n++] = cpu;
    p[n++] = 2; p[n++] = 1; p[n++] = (uint8_t)(100 - cpu);
    p[n++] = 7; p[n++] = (uint8_t)ts_w; put_be(p + n, ts, ts_w); n += ts_w;
    p[n++] = 8; p[n++] = s->node_len; memcpy(p + n, s->node, s->node_len); n += s->node_len;
    p[n++] = 9; p[n++] = 8; put_be(p + n, s->instance, 8); n += 8;
    p[n++] = 6; p[n++] = 4; put_be(p + n, seq, 4); n += 4;
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    p[2] = 3;
    return n;
}

/* Send count new reports on s, BATCH datagrams per sendmmsg call. A report
 * the kernel refuses (full send buffer, ICMP error pending) is counted as
 * lost; the stall check makes up for it. */
static void send_reports(struct usock *s, uint64_t count)
{
    uint64_t ts = full ? epoch_ms() : 0;
    size_t ts_w = 1;
    while (ts_w < 8 && (ts >> (8 * ts_w)))
        ts_w++;
    while (count) {
        unsigned k = count < BATCH ? (unsigned)count : BATCH;
        for (unsigned i = 0; i < k; i++)
            rep_iov[i].iov_len = put_report(rep[i], s, ts, ts_w);
        unsigned done = 0;
        while (done < k) {
            int m = sendmmsg(s->fd, rep_msg + done, k - done, 0);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == ECONNREFUSED)
                    n_refused++;
                break;
            }
            done += (unsigned)m;
        }
        n_sent += done;
        n_send_lost += k - done;
        count -= k;
    }
}

static void on_readable(struct usock *s, double now)
{
    for (int i = 0; i < BATCH; i++)
        ans_msg[i].msg_hdr.msg_flags = 0;
    int n;
    do
        n = recvmmsg(s->fd, ans_msg, BATCH, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        /* ECONNREFUSED: an ICMP error for an earlier report, the server is
         * not (yet) there; the stall check will try again. */
        if (errno == ECONNREFUSED)
            n_refused++;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            perror("recvmmsg");
        return;
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *a = ans[i];
        size_t len = ans_msg[i].msg_len;
        bool ok = len >= 3 && !(ans_msg[i].msg_hdr.msg_flags & MSG_TRUNC) &&
                  (((size_t)a[0] << 8) | a[1]) == len && a[2] == 4;
        if (measuring) {
            if (ok)
                n_acks++;
            else
                n_bad++;
        }
    }
    if (n > 0) {
        s->last_answer = now;
        send_reports(s, (uint64_t)n);   /* one new report per answer, good or bad */
    }
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: %s PORT SOCKETS DEPTH SECS [minimal|full] [HOST]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int nsock = atoi(argv[2]);
    long depth = atol(argv[3]);
    double secs = atof(argv[4]);
    const char *kind = argc > 5 ? argv[5] : "minimal";
    const char *host = argc > 6 ? argv[6] : "127.0.0.1";
    /* INSTANCEs differ from run to run, as new agents' do: a store keeps every run's
     * reports. */
    uint64_t run_seed = epoch_ms() * 0xBF58476D1CE4E5B9u ^ (uint64_t)getpid();
    if (strcmp(kind, "full") == 0)
        full = true;
    else if (strcmp(kind, "minimal") != 0) {
        fprintf(stderr, "reports must be minimal or full\n");
        return 2;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (port <= 0 || port > 65535 || nsock <= 0 || depth <= 0 || secs <= 0 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad argument\n");
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* Connected sockets: no address per message. */
    for (int i = 0; i < BATCH; i++) {
        rep_iov[i].iov_base = rep[i];
        rep_msg[i].msg_hdr = (struct msghdr){ .msg_iov = &rep_iov[i], .msg_iovlen = 1 };
        ans_iov[i] = (struct iovec){ .iov_base = ans[i], .iov_len = ANSWER_SLOT };
        ans_msg[i].msg_hdr = (struct msghdr){ .msg_iov = &ans_iov[i], .msg_iovlen = 1 };
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct usock *ss = calloc((size_t)nsock, sizeof *ss);
    if (!ss)
        die("calloc");
    int rcvbuf = 1 << 20;
    for (int i = 0; i < nsock; i++) {
        struct usock *s = &ss[i];
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0)
            die("socket");
        /* Room for DEPTH acks in flight (each costs a few hundred bytes of
         * kernel memory whatever its size); capped by net.core.rmem_max. */
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("connect");
        s->node_len = (uint8_t)snprintf(s->node, sizeof s->node, "loadgen-%05d", i % 100000);
        /* the top bit set: eight bytes wide, as a random instance almost always is */
        s->instance = (run_seed ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15u)) | (1ull << 63);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
            die("epoll_ctl");
    }
    double t_open = mono_now();
    for (int i = 0; i < nsock; i++) {
        send_reports(&ss[i], (uint64_t)depth);
        ss[i].last_answer = t_open;
    }
    double t0 = mono_now();
    fprintf(stderr, "yard: %d sockets open and primed in %.3f s\n", nsock, t0 - t_open);
    fprintf(stderr, "yard: window start\n");
    measuring = true;
    double end = t0 + secs, t = t0, next_check = t0 + CHECK_SECS;
    uint64_t sent0 = n_sent;

    struct epoll_event evs[512];
    while ((t = mono_now()) < end) {
        double until = next_check < end ? next_check : end;
        int timeout = until > t ? (int)((until - t) * 1000) + 1 : 0;
        int n = epoll_wait(ep, evs, 512, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        t = mono_now();
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr, t);
        if (t >= next_check) {
            for (int i = 0; i < nsock; i++) {
                if (t - ss[i].last_answer >= STALL_SECS) {
                    send_reports(&ss[i], (uint64_t)depth);
                    ss[i].last_answer = t;
                    n_reprimes++;
                }
            }
            next_check = t + CHECK_SECS;
        }
    }
    t = mono_now();
    measuring = false;
    fprintf(stderr, "yard: window end\n");
    double el = t - t0;
    printf("acks_per_sec=%.0f\n", (double)n_acks / el);
    fflush(stdout);
    fprintf(stderr, "yard: udp sockets=%d depth=%ld reports=%s acks=%llu bad=%llu sent=%llu "
            "send_lost=%llu reprimes=%llu refused=%llu secs=%.3f\n", nsock, depth,
            full ? "full" : "minimal", (unsigned long long)n_acks, (unsigned long long)n_bad,
            (unsigned long long)(n_sent - sent0), (unsigned long long)n_send_lost,
            (unsigned long long)n_reprimes, (unsigned long long)n_refused, el);
    return n_acks > 0 ? 0 : 1;
}
