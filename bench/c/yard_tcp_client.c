/*
 * yard_tcp_client.c - closed-loop TCP load for the AVP binary protocol.
 *
 * Opens CONNS connections, sends DEPTH STAT_REPORTs on each, then answers
 * every answer it reads with one new report, so that DEPTH reports stay in
 * flight per connection. The answers of one read are counted and replaced by
 * one write. Counting starts once every connection is open and primed and
 * lasts SECS seconds; the result goes to stdout as one line
 * `acks_per_sec=N`. Details go to stderr, including the lines
 * "yard: window start" and "yard: window end" that a runner can use to
 * sample the server's CPU time over exactly the measured window.
 *
 * An answer counts as an ack when it is a STAT_REPORT_ACK (type 4) echoing
 * the SEQUENCE of the oldest report still unanswered on its connection
 * (answers are in request order); any other answer is counted as "bad" on
 * stderr, and still replaced by a new report so the loop stays closed.
 *
 * Reports: "minimal" (default) is the 15-byte CPU, MEM, SEQUENCE report;
 * "full" is what an agent sends: CPU, MEM, TIMESTAMP (ms since the epoch,
 * shortest width), NODE_ID "loadgen-%05d" (per connection), INSTANCE (8 bytes,
 * per connection and run), SEQUENCE: 48 bytes.
 *
 * Build: gcc -O2 -Wall -Wextra -o target/yardsticks/yard_tcp_client bench/c/yard_tcp_client.c
 * Run:   taskset -c 1 target/yardsticks/yard_tcp_client PORT CONNS DEPTH SECS [minimal|full] [HOST]
 * Exit status 0, or 1 when a connection was lost or nothing was counted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#define READ_CHUNK 65536
#define RBUF_CAP (65536 + READ_CHUNK)
#define MAX_REPORT 64           /* a full report is 48 bytes */
#define SEND_CHUNK 8192         /* reports built per write (more than one read can ask for) */

struct conn {
    int fd;
    bool open;
    bool want_out;              /* EPOLLOUT registered: pend is not empty */
    uint32_t next_seq;          /* SEQUENCE of the next report */
    uint32_t expect_seq;        /* SEQUENCE the next ack should echo */
    uint8_t node_len;
    uint8_t cpu;                /* CPU figure of the last report; MEM is 100 - CPU */
    char node[16];
    uint64_t instance;
    uint8_t *part;              /* unfinished answer kept between reads */
    size_t part_len, part_cap;
    uint8_t *pend;              /* reports the socket has not taken yet */
    size_t pend_off, pend_len, pend_cap;
};

static uint8_t rbuf[RBUF_CAP];
static uint8_t obuf[(SEND_CHUNK + 1) * MAX_REPORT];   /* room for the last fixed-size copy */
static int ep;
static bool full;
static bool measuring;
static uint64_t n_acks, n_bad, n_sent;
static int n_open;

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

static void reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p)
        die("realloc");
    *buf = p;
    *cap = c;
}

static void lose(struct conn *c, const char *why)
{
    fprintf(stderr, "yard: connection %s lost: %s\n", c->node, why);
    close(c->fd);
    c->open = false;
    n_open--;
}

static void put_be(uint8_t *p, uint64_t v, size_t w)
{
    for (size_t i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> (8 * (w - 1 - i)));
}

/* Encode one report at p; returns its size. A full report is built once per
 * batch as a template (see send_reports) and copied with its SEQUENCE and
 * load figures patched in. */
static size_t put_report(uint8_t *p, struct conn *c, const uint8_t *tmpl, size_t tmpl_len)
{
    uint32_t seq = c->next_seq++;   /* wraps after 2^32 reports: fine for a benchmark */
    if (!full) {
        /* 00 0F 03 | 01 01 1E | 02 01 35 | 06 04 s s s s : CPU 30 %, MEM 53 % */
        static const uint8_t head[] = { 0x00, 0x0F, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35, 0x06, 0x04 };
        memcpy(p, head, sizeof head);
        put_be(p + 11, seq, 4);
        return 15;
    }
    /* A fixed-size copy (the template's buffer is MAX_REPORT bytes and obuf has
     * room for MAX_REPORT past the last report) compiles to a few moves; the
     * bytes past tmpl_len are overwritten by the next report. */
    memcpy(p, tmpl, MAX_REPORT);
    /* values that move, always in 0..=100 */
    uint8_t cpu = c->cpu = (uint8_t)(c->cpu == 100 ? 0 : c->cpu + 1);
    p[5] = cpu;
    p[8] = (uint8_t)(100 - cpu);
    uint8_t *s = p + tmpl_len - 4;
    s[0] = (uint8_t)(seq >> 24);
    s[1] = (uint8_t)(seq >> 16);
    s[2] = (uint8_t)(seq >> 8);
    s[3] = (uint8_t)seq;
    return tmpl_len;
}

/* The full report of connection c stamped ts, with placeholder SEQUENCE and load:
 * CPU, MEM, TIMESTAMP (shortest width), NODE_ID, INSTANCE (8 bytes), SEQUENCE
 * (4 bytes). */
static size_t full_template(uint8_t *p, const struct conn *c, uint64_t ts)
{
    size_t ts_w = 1;
    while (ts_w < 8 && (ts >> (8 * ts_w)))
        ts_w++;
    size_t n = 3;
    p[n++] = 1; p[n++] = 1; p[n++] = 0;
    p[n++] = 2; p[n++] = 1; p[n++] = 0;
    p[n++] = 7; p[n++] = (uint8_t)ts_w; put_be(p + n, ts, ts_w); n += ts_w;
    p[n++] = 8; p[n++] = c->node_len; memcpy(p + n, c->node, c->node_len); n += c->node_len;
    p[n++] = 9; p[n++] = 8; put_be(p + n, c->instance, 8); n += 8;
    p[n++] = 6; p[n++] = 4; put_be(p + n, 0, 4); n += 4;
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    p[2] = 3;
    return n;
}

static void set_out(struct conn *c, bool out)
{
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->want_out = out;
}

/* Queue buf behind what is pending, or write it now in one call and keep
 * the rest. The reports in flight are bounded by DEPTH, so pend is too. */
static void send_bytes(struct conn *c, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    if (!c->want_out) {
        ssize_t n;
        do
            n = send(c->fd, buf, len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                lose(c, strerror(errno));
                return;
            }
            n = 0;
        }
        done = (size_t)n;
        if (done == len)
            return;
    }
    size_t rest = len - done;
    if (c->pend_off == c->pend_len)
        c->pend_off = c->pend_len = 0;
    reserve(&c->pend, &c->pend_cap, c->pend_len + rest);
    memcpy(c->pend + c->pend_len, buf + done, rest);
    c->pend_len += rest;
    if (!c->want_out)
        set_out(c, true);
}

static void send_reports(struct conn *c, uint64_t count)
{
    uint8_t tmpl[MAX_REPORT] = { 0 };
    size_t tmpl_len = full ? full_template(tmpl, c, epoch_ms()) : 0;   /* one clock read per write */
    while (count && c->open) {
        size_t k = count < SEND_CHUNK ? (size_t)count : SEND_CHUNK, len = 0;
        for (size_t i = 0; i < k; i++)
            len += put_report(obuf + len, c, tmpl, tmpl_len);
        send_bytes(c, obuf, len);
        n_sent += k;
        count -= k;
    }
}

static void on_writable(struct conn *c)
{
    while (c->pend_off < c->pend_len) {
        ssize_t n = send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            lose(c, strerror(errno));
            return;
        }
        c->pend_off += (size_t)n;
    }
    c->pend_off = c->pend_len = 0;
    set_out(c, false);
}

/* Does the answer m[0..len) ack the report with SEQUENCE want? */
static bool is_ack(const uint8_t *m, size_t len, uint32_t want)
{
    if (m[2] != 4)
        return false;
    for (size_t p = 3; p + 2 <= len;) {
        size_t vlen = m[p + 1];
        if (p + 2 + vlen > len)
            return false;
        if (m[p] == 6) {
            if (vlen < 1 || vlen > 8)
                return false;
            uint64_t v = 0;
            for (size_t i = 0; i < vlen; i++)
                v = (v << 8) | m[p + 2 + i];
            return v == want;
        }
        p += 2 + vlen;
    }
    return false;
}

static void on_readable(struct conn *c)
{
    size_t have = c->part_len;
    if (have)
        memcpy(rbuf, c->part, have);
    ssize_t n;
    do
        n = recv(c->fd, rbuf + have, READ_CHUNK, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
        lose(c, "closed by the server");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            lose(c, strerror(errno));
        return;
    }
    have += (size_t)n;

    size_t off = 0;
    uint64_t answers = 0;
    while (have - off >= 2) {
        size_t len = ((size_t)rbuf[off] << 8) | rbuf[off + 1];
        if (len < 3) {
            lose(c, "answer with a length below 3");
            return;
        }
        if (have - off < len)
            break;
        bool ok = is_ack(rbuf + off, len, c->expect_seq);
        c->expect_seq++;
        if (measuring) {
            if (ok)
                n_acks++;
            else
                n_bad++;
        }
        answers++;
        off += len;
    }
    c->part_len = have - off;
    if (c->part_len) {
        reserve(&c->part, &c->part_cap, c->part_len);
        memcpy(c->part, rbuf + off, c->part_len);
    }
    if (answers)
        send_reports(c, answers);
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: %s PORT CONNS DEPTH SECS [minimal|full] [HOST]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int nconn = atoi(argv[2]);
    long depth = atol(argv[3]);
    double secs = atof(argv[4]);
    const char *kind = argc > 5 ? argv[5] : "minimal";
    const char *host = argc > 6 ? argv[6] : "127.0.0.1";
    /* INSTANCEs differ from run to run, as restarted agents' do not but new ones' do:
     * a store keeps every run's reports. */
    uint64_t run_seed = epoch_ms() * 0xBF58476D1CE4E5B9u ^ (uint64_t)getpid();
    if (strcmp(kind, "full") == 0)
        full = true;
    else if (strcmp(kind, "minimal") != 0) {
        fprintf(stderr, "reports must be minimal or full\n");
        return 2;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (port <= 0 || port > 65535 || nconn <= 0 || depth <= 0 || secs <= 0 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad argument\n");
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    if (!cs)
        die("calloc");
    const int one = 1;
    double t_open = mono_now();
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        /* Blocking connect keeps the setup simple; the server's backlog
         * absorbs the burst. */
        int r;
        do
            r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            die("connect");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->open = true;
        c->node_len = (uint8_t)snprintf(c->node, sizeof c->node, "loadgen-%05d", i % 100000);
        /* the top bit set: eight bytes wide, as a random instance almost always is */
        c->instance = (run_seed ^ ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15u)) | (1ull << 63);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
        n_open++;
    }
    for (int i = 0; i < nconn; i++)
        send_reports(&cs[i], (uint64_t)depth);
    double t0 = mono_now();
    fprintf(stderr, "yard: %d connections open and primed in %.3f s\n", nconn, t0 - t_open);
    fprintf(stderr, "yard: window start\n");
    measuring = true;
    double end = t0 + secs, t = t0;
    uint64_t sent0 = n_sent;

    struct epoll_event evs[512];
    while (n_open > 0 && (t = mono_now()) < end) {
        int timeout = (int)((end - t) * 1000) + 1;
        int n = epoll_wait(ep, evs, 512, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->open && (evs[i].events & EPOLLOUT))
                on_writable(c);
            if (c->open && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                on_readable(c);
        }
    }
    t = mono_now();
    measuring = false;
    fprintf(stderr, "yard: window end\n");
    double el = t - t0;
    printf("acks_per_sec=%.0f\n", (double)n_acks / el);
    fflush(stdout);
    fprintf(stderr, "yard: tcp conns=%d depth=%ld reports=%s acks=%llu bad=%llu sent=%llu "
            "secs=%.3f lost_conns=%d\n", nconn, depth, full ? "full" : "minimal",
            (unsigned long long)n_acks, (unsigned long long)n_bad,
            (unsigned long long)(n_sent - sent0), el, nconn - n_open);
    return (n_open == nconn && n_acks > 0) ? 0 : 1;
}
