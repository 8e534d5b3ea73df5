/*
 * yard_tcp_server.c - the TCP ceiling yardstick for the AVP binary protocol.
 *
 * The leanest correct server loop we can write: one thread, epoll, no
 * validation. It splits the byte stream by the 2-byte length field and
 * answers every STAT_REPORT (type 3) with a 9-byte STAT_REPORT_ACK echoing
 * the report's SEQUENCE (0 when the report has none; a SEQUENCE above
 * 2^32-1 is echoed in 8 bytes, a 13-byte ack). Other frame types are
 * skipped silently. A length below 3 closes the connection. Whatever a
 * real node does beyond this loop is what a comparison against it measures.
 *
 * Build: gcc -O2 -Wall -Wextra -o target/yardsticks/yard_tcp_server bench/c/yard_tcp_server.c
 * Run:   taskset -c 0 target/yardsticks/yard_tcp_server PORT [BIND_ADDR]
 *        (BIND_ADDR is an IPv4 address, 127.0.0.1 by default)
 * SIGTERM/SIGINT stop it; it then prints its counters on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
/* An unfinished frame carried over from the last read is at most 65534 bytes. */
#define RBUF_CAP (65536 + READ_CHUNK)
#define MAX_ACK 13
/* Worst case of one read: every frame a 3-byte empty report, each answered
 * by the largest ack. */
#define WBUF_CAP ((RBUF_CAP / 3 + 1) * MAX_ACK)

struct conn {
    int fd;
    bool want_out;          /* registered for EPOLLOUT (and not EPOLLIN) */
    uint8_t *part;          /* bytes of an unfinished frame kept between reads */
    size_t part_len, part_cap;
    uint8_t *pend;          /* answers the socket has not taken yet */
    size_t pend_off, pend_len, pend_cap;
};

/* Shared scratch buffers: the loop is single-threaded, and per-connection
 * state is only what must survive between two wake-ups. */
static uint8_t rbuf[RBUF_CAP];
static uint8_t wbuf[WBUF_CAP];

static int ep;
static char listener_tag;   /* its address marks the listening socket in epoll */
static volatile sig_atomic_t stop;
static uint64_t n_acks, n_accepted, n_closed;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) { perror(what); exit(1); }

/* Grow *buf so that it holds at least need bytes. */
static void reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p)
        die("realloc");
    *buf = p;
    *cap = c;
}

static void conn_close(struct conn *c)
{
    close(c->fd);           /* also removes it from the epoll set */
    free(c->part);
    free(c->pend);
    free(c);
    n_closed++;
}

static int set_interest(struct conn *c, bool out)
{
    struct epoll_event ev = { .events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -1;
    c->want_out = out;
    return 0;
}

/* Write the answers of one read with one call; what the socket does not take
 * is kept and the connection waits for EPOLLOUT instead of reading more, so a
 * peer that does not read cannot make us buffer without bound.
 * Returns -1 when the connection was closed. */
static int send_answers(struct conn *c, const uint8_t *buf, size_t len)
{
    ssize_t n;
    do
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c);
            return -1;
        }
        n = 0;
    }
    if ((size_t)n == len)
        return 0;
    size_t rest = len - (size_t)n;
    reserve(&c->pend, &c->pend_cap, rest);
    memcpy(c->pend, buf + n, rest);
    c->pend_off = 0;
    c->pend_len = rest;
    if (set_interest(c, true) < 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static void on_writable(struct conn *c)
{
    while (c->pend_off < c->pend_len) {
        ssize_t n = send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;     /* still full: wait for the next EPOLLOUT */
            conn_close(c);
            return;
        }
        c->pend_off += (size_t)n;
    }
    c->pend_off = c->pend_len = 0;
    if (set_interest(c, false) < 0)
        conn_close(c);
}

/* Append the ack of the report m[0..len) at out; returns its size. */
static size_t put_ack(uint8_t *out, const uint8_t *m, size_t len)
{
    uint64_t seq = 0;
    /* Walk the AVPs up to the first SEQUENCE or the first truncated AVP. */
    for (size_t p = 3; p + 2 <= len;) {
        size_t vlen = m[p + 1];
        if (p + 2 + vlen > len)
            break;
        if (m[p] == 6) {
            if (vlen > 8)
                vlen = 8;   /* not a valid integer; no validation here */
            for (size_t i = 0; i < vlen; i++)
                seq = (seq << 8) | m[p + 2 + i];
            break;
        }
        p += 2 + vlen;
    }
    size_t w = seq > 0xFFFFFFFFu ? 8 : 4;
    size_t total = 5 + w;
    out[0] = 0;
    out[1] = (uint8_t)total;
    out[2] = 4;
    out[3] = 6;
    out[4] = (uint8_t)w;
    for (size_t i = 0; i < w; i++)
        out[5 + i] = (uint8_t)(seq >> (8 * (w - 1 - i)));
    return total;
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
        conn_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c);
        return;
    }
    have += (size_t)n;

    size_t off = 0, out = 0;
    while (have - off >= 2) {
        size_t len = ((size_t)rbuf[off] << 8) | rbuf[off + 1];
        if (len < 3) {      /* the stream cannot be resynchronised */
            conn_close(c);
            return;
        }
        if (have - off < len)
            break;
        if (rbuf[off + 2] == 3) {
            out += put_ack(wbuf + out, rbuf + off, len);
            n_acks++;
        }
        off += len;
    }

    c->part_len = have - off;
    if (c->part_len) {
        reserve(&c->part, &c->part_cap, c->part_len);
        memcpy(c->part, rbuf + off, c->part_len);
    }
    if (out)
        send_answers(c, wbuf, out);
}

static void accept_all(int ls)
{
    static const int one = 1;
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("accept4");  /* e.g. EMFILE: retried on the next wake-up */
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            die("calloc");
        c->fd = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll_ctl");
            close(fd);
            free(c);
            continue;
        }
        n_accepted++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [BIND_ADDR]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *addr = argc > 2 ? argv[2] : "127.0.0.1";
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad port or IPv4 address\n");
        return 2;
    }

    /* Many connections need many descriptors: take the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* No SA_RESTART: epoll_wait must return EINTR so that we can stop. */
    struct sigaction sig = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sig, NULL);
    sigaction(SIGINT, &sig, NULL);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0)
        die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("bind");
    if (listen(ls, 4096) < 0)
        die("listen");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listener_tag };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) < 0)
        die("epoll_ctl");
    fprintf(stderr, "yard_tcp_server: listening on %s:%d\n", addr, port);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listener_tag) {
                accept_all(ls);
                continue;
            }
            struct conn *c = evs[i].data.ptr;
            /* EPOLLHUP/EPOLLERR come with either interest; the next
             * recv or send reports them and closes the connection. */
            if (c->want_out)
                on_writable(c);
            else
                on_readable(c);
        }
    }
    fprintf(stderr, "yard_tcp_server: acks=%llu accepted=%llu closed=%llu\n",
            (unsigned long long)n_acks, (unsigned long long)n_accepted,
            (unsigned long long)n_closed);
    return 0;
}
