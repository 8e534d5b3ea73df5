/*
 * yard_udp_server.c - the UDP ceiling yardstick for the AVP binary protocol.
 *
 * One socket, one thread. Datagrams are read in batches of up to 64 with
 * recvmmsg (MSG_WAITFORONE: block for the first, take what is already queued
 * after it). Each datagram whose length field equals its size and whose type
 * is STAT_REPORT (3) is answered with a 9-byte STAT_REPORT_ACK echoing its
 * SEQUENCE (0 when absent; 8 bytes, a 13-byte ack, above 2^32-1) to the
 * sender; every other datagram is dropped. The acks of one batch leave in
 * one sendmmsg call. No further validation.
 *
 * Build: gcc -O2 -Wall -Wextra -o target/yardsticks/yard_udp_server bench/c/yard_udp_server.c
 * Run:   taskset -c 0 target/yardsticks/yard_udp_server PORT [BIND_ADDR]
 *        (BIND_ADDR is an IPv4 address, 127.0.0.1 by default)
 * SIGTERM/SIGINT stop it; it then prints its counters on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 65536      /* a frame can be 65535 bytes; larger datagrams are invalid */
#define MAX_ACK 13

static uint8_t in[BATCH][SLOT];
static uint8_t out[BATCH][MAX_ACK];
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

/* Write the ack of the report m[0..len) at o; returns its size. */
static size_t put_ack(uint8_t *o, const uint8_t *m, size_t len)
{
    uint64_t seq = 0;
    for (size_t p = 3; p + 2 <= len;) {
        size_t vlen = m[p + 1];
        if (p + 2 + vlen > len)
            break;
        if (m[p] == 6) {
            if (vlen > 8)
                vlen = 8;
            for (size_t i = 0; i < vlen; i++)
                seq = (seq << 8) | m[p + 2 + i];
            break;
        }
        p += 2 + vlen;
    }
    size_t w = seq > 0xFFFFFFFFu ? 8 : 4;
    o[0] = 0;
    o[1] = (uint8_t)(5 + w);
    o[2] = 4;
    o[3] = 6;
    o[4] = (uint8_t)w;
    for (size_t i = 0; i < w; i++)
        o[5 + i] = (uint8_t)(seq >> (8 * (w - 1 - i)));
    return 5 + w;
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

    struct sigaction sig = { .sa_handler = on_signal };   /* no SA_RESTART */
    sigaction(SIGTERM, &sig, NULL);
    sigaction(SIGINT, &sig, NULL);

    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        perror("socket");
        return 1;
    }
    int one = 1, big = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* A deep receive queue absorbs the bursts of many clients; the kernel
     * caps it at net.core.rmem_max. */
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("bind");
        return 1;
    }
    fprintf(stderr, "yard_udp_server: listening on %s:%d\n", addr, port);

    static struct sockaddr_in from[BATCH];
    static struct iovec iv[BATCH], ov[BATCH];
    static struct mmsghdr im[BATCH], om[BATCH];
    for (int i = 0; i < BATCH; i++)
        iv[i] = (struct iovec){ .iov_base = in[i], .iov_len = SLOT };

    uint64_t n_in = 0, n_acks = 0, n_dropped = 0, n_send_err = 0;
    while (!stop) {
        for (int i = 0; i < BATCH; i++) {
            /* recvmmsg overwrites the name length and flags: reset them. */
            im[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof from[i],
                                             .msg_iov = &iv[i], .msg_iovlen = 1 };
        }
        int n = recvmmsg(s, im, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno != EINTR)
                perror("recvmmsg");
            continue;
        }
        n_in += (uint64_t)n;
        int k = 0;
        for (int i = 0; i < n; i++) {
            const uint8_t *f = in[i];
            size_t len = im[i].msg_len;
            if (len < 3 || (im[i].msg_hdr.msg_flags & MSG_TRUNC) ||
                (((size_t)f[0] << 8) | f[1]) != len || f[2] != 3) {
                n_dropped++;
                continue;
            }
            ov[k] = (struct iovec){ .iov_base = out[k], .iov_len = put_ack(out[k], f, len) };
            om[k].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = im[i].msg_hdr.msg_namelen,
                                             .msg_iov = &ov[k], .msg_iovlen = 1 };
            k++;
        }
        for (int done = 0; done < k;) {
            int m = sendmmsg(s, om + done, (unsigned)(k - done), 0);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                /* The first remaining ack failed (e.g. ENOBUFS): lose that
                 * one, as the network could, and go on with the rest. */
                n_send_err++;
                done++;
                continue;
            }
            n_acks += (uint64_t)m;
            done += m;
        }
    }
    fprintf(stderr, "yard_udp_server: datagrams=%llu acks=%llu dropped=%llu send_errors=%llu\n",
            (unsigned long long)n_in, (unsigned long long)n_acks,
            (unsigned long long)n_dropped, (unsigned long long)n_send_err);
    return 0;
}
