/*
 * wscrowd: holds a crowd of WebSocket client connections open and drives them
 * from commands on stdin (scripts/scale.py; reusable by scripts/soak.py).
 *
 * One single-threaded epoll loop, non-blocking sockets.  Every connection does
 * a real RFC 6455 opening handshake (GET with Upgrade, Sec-WebSocket-Key,
 * version 13; the 101 and its Sec-WebSocket-Accept are checked), every frame
 * it sends is masked with a fresh key, server pings are answered with pongs,
 * server frames must be unmasked, and every message received is counted and
 * time-stamped (CLOCK_MONOTONIC, the clock of Python's time.monotonic() on
 * Linux, so that several processes' timestamps compare).
 *
 * Build:   gcc -O2 -o wscrowd scripts/scale/wscrowd.c
 *
 * Usage:   wscrowd --port P [--host 127.0.0.1] [--path /] --conns N
 *                  [--sources 127.0.0.2,127.0.0.3,...] [--pending 512]
 *                  [--ports LOW-HIGH] [--timeout 60] [--seed N] --key K --accept A
 *
 *   --sources   local addresses bound before connect, round-robin (each one
 *               gives its own ephemeral port range: about 28,000 connections
 *               to one server port); default: the kernel picks (127.0.0.1).
 *   --ports LOW-HIGH  with --sources: bind each connection to a source port of
 *               this range, chosen here in turn (a port in use is skipped),
 *               instead of letting the kernel search for a free ephemeral
 *               port, which costs milliseconds per connect() once tens of
 *               thousands are taken.  Give each client process its own
 *               source addresses (or ranges) so that they do not collide.
 *   --pending   connections being opened at once.
 *   --timeout   seconds for all connections to open; those still not open
 *               then count as failed (the run goes on with the others).
 *   --key/--accept  the Sec-WebSocket-Key sent and the Sec-WebSocket-Accept
 *               expected (the caller computes the pair: base64(SHA-1(key +
 *               258EAFA5-E914-47DA-95CA-C5AB0DC85B11))).
 *
 * Protocol: one line per command on stdin, one answer line on stdout.
 *   (at start, without a command) OPEN <open> <failed> <seconds> <first error or ->
 *   ARM <tag>                 forget earlier receive times; from now on the first text
 *                             message starting with <tag> is time-stamped per connection.
 *                             -> ARMED
 *   SEND <i> <text...>        send <text> (the rest of the line) as a text message on
 *                             connection i.  -> SENT <monotonic seconds before the write>
 *   WAIT <expect> <timeout> <file>
 *                             wait until <expect> connections got the armed tag (or the
 *                             timeout); write their receive times, one per line, to
 *                             <file>.  -> GOT <count> <last receive time or 0>
 *   PING <k> <timeout>        one ping at a time on k connections spread over the crowd,
 *                             each waiting for its pong.
 *                             -> PONG <answered> <p50 ms> <p99 ms> <max ms>
 *   STATS                     -> STATS open=<n> failed=<n> closed_by_server=<n>
 *                                received=<messages> pings_answered=<n> cpu_s=<own CPU seconds>
 *   QUIT                      reset every connection and exit 0.
 * End of stdin is QUIT.  Exit status 2: bad usage.  SIGUSR1 prints the connections
 * by state on stderr (where a run is stuck).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { S_IDLE, S_CONNECTING, S_UPGRADING, S_OPEN, S_DEAD };

typedef struct {
    int fd;
    int state;
    int want_out;
    unsigned char *rbuf;
    size_t rlen, rcap;
    unsigned char *wbuf;
    size_t wlen, wcap;
    double rx_at;        /* receive time of the armed tag, 0 before */
    double ping_sent;    /* our ping in flight: when it went out */
    double pong_at;
} Conn;

static const char *host = "127.0.0.1", *path = "/";
static int port, nconns = 1, max_pending = 512;
static double open_timeout = 60;
static const char *key = "dGhlIHNhbXBsZSBub25jZQ==", *accept_val = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static struct in_addr sources[64];
static int nsources;
static int port_low, port_high;   /* --ports: source ports chosen here, not by the kernel */
static long next_port_slot;

static int ep;
static Conn *conns;
static char request[1024];
static size_t request_len;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static int n_open, n_failed, n_opening, n_closed_by_server;
static uint64_t n_received, n_pings_answered, n_armed_got;
static char first_error[200] = "-";
static char tag[256] = "";
static size_t tag_len;
static int tag_armed;
static char linebuf[65536];
static size_t line_len;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void note_error(const char *what, int err) {
    if (strcmp(first_error, "-") == 0) {
        snprintf(first_error, sizeof first_error, "%s:%s", what, err ? strerror(err) : "protocol");
        for (char *p = first_error; *p; p++) if (*p == ' ') *p = '_';
    }
}

static uint32_t rand32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void *grow(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) { perror("realloc"); exit(3); }
    return q;
}

static void set_out(Conn *c, int out) {
    if (c->want_out == out) return;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* Ends a connection; by_server says the server closed or broke it. */
static void kill_conn(Conn *c, int by_server) {
    if (c->fd >= 0) {
        struct linger lg = { 1, 0 };  /* reset: no TIME_WAIT left behind on 100,000 ports */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c->fd);  /* also leaves the epoll set */
    }
    c->fd = -1;
    if (c->state == S_OPEN) {
        n_open--;
        if (by_server) n_closed_by_server++;
    } else if (c->state == S_CONNECTING || c->state == S_UPGRADING) {
        n_opening--;
        n_failed++;
    }
    c->state = S_DEAD;
    free(c->rbuf);
    free(c->wbuf);
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->rcap = c->wlen = c->wcap = 0;
}

static void write_bytes(Conn *c, const unsigned char *data, size_t len) {
    if (c->fd < 0) return;
    if (!c->wlen) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) { note_error("send", errno); kill_conn(c, 1); return; }
            n = 0;
        }
        data += n;
        len -= (size_t)n;
        if (!len) return;
    }
    if (c->wlen + len > c->wcap) {
        c->wcap = (c->wlen + len) * 2;
        c->wbuf = grow(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    set_out(c, 1);
}

static void flush_out(Conn *c) {
    if (c->wlen) {
        ssize_t n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            note_error("send", errno);
            kill_conn(c, 1);
            return;
        }
        memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
        c->wlen -= (size_t)n;
    }
    if (!c->wlen) set_out(c, 0);
}

/* A masked frame (RFC 6455 5.3: every client frame is masked with a fresh key). */
static void send_frame(Conn *c, int opcode, const unsigned char *data, size_t len) {
    unsigned char head[14];
    size_t h = 0;
    head[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        head[h++] = 0x80 | 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) head[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    uint32_t m = rand32();
    unsigned char *mask = head + h;
    memcpy(mask, &m, 4);
    h += 4;
    unsigned char *frame = malloc(h + len);
    if (!frame) exit(3);
    memcpy(frame, head, h);
    for (size_t i = 0; i < len; i++) frame[h + i] = data[i] ^ mask[i & 3];
    write_bytes(c, frame, h + len);
    free(frame);
}

static void start_connect(Conn *c, int index) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        note_error("socket", errno);
        c->state = S_DEAD;
        n_failed++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nsources && port_low) {
        /* Our own port choice: the kernel's search for a free ephemeral port grows to
           milliseconds per connect() once tens of thousands of ports are taken. */
        int bound = 0;
        for (int tries = 0; tries < 64 && !bound; tries++) {
            int src = next_port_slot % nsources;
            int p = port_low + (next_port_slot / nsources) % (port_high - port_low + 1);
            next_port_slot++;
            struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p),
                                         .sin_addr = sources[src] };
            if (bind(fd, (struct sockaddr *)&local, sizeof local) == 0) bound = 1;
            else if (errno != EADDRINUSE) break;
        }
        if (!bound) {
            note_error("bind", errno);
            close(fd);
            c->state = S_DEAD;
            n_failed++;
            return;
        }
    } else if (nsources) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr = sources[index % nsources] };
        if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
            note_error("bind", errno);
            close(fd);
            c->state = S_DEAD;
            n_failed++;
            return;
        }
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->fd = fd;
    c->state = S_CONNECTING;
    c->want_out = 1;
    n_opening++;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        note_error("epoll_ctl", errno);
        kill_conn(c, 0);
        return;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        note_error("connect", errno);
        kill_conn(c, 0);
    }
}

static void on_message(Conn *c, int opcode, const unsigned char *data, size_t len) {
    if (opcode == 9) {  /* ping: answer with the same payload */
        send_frame(c, 10, data, len);
        n_pings_answered++;
        return;
    }
    if (opcode == 10) {
        if (c->ping_sent > 0) c->pong_at = now();
        return;
    }
    if (opcode == 8) {
        kill_conn(c, 1);
        return;
    }
    n_received++;
    if (tag_armed && c->rx_at == 0 && opcode == 1 && len >= tag_len && memcmp(data, tag, tag_len) == 0) {
        c->rx_at = now();
        n_armed_got++;
    }
}

static void parse_frames(Conn *c) {
    size_t off = 0;
    while (c->fd >= 0 && c->rlen - off >= 2) {
        unsigned char *p = c->rbuf + off;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0f;
        if (p[1] & 0x80) { note_error("masked_server_frame", 0); kill_conn(c, 1); return; }
        if (p[0] & 0x70) { note_error("rsv_bits", 0); kill_conn(c, 1); return; }
        if (!fin) { note_error("fragmented_message", 0); kill_conn(c, 1); return; }
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (c->rlen - off < 4) break;
            len = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (c->rlen - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
            h = 10;
        }
        if (c->rlen - off < h + len) break;
        on_message(c, opcode, p + h, (size_t)len);
        off += h + (size_t)len;
    }
    if (c->fd >= 0 && off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static void on_upgrade_data(Conn *c) {
    unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen > 16384) { note_error("huge_101", 0); kill_conn(c, 0); }
        return;
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    c->rbuf[hlen - 1] = 0;
    if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0 || !strcasestr((char *)c->rbuf, accept_val)) {
        char status[40];
        snprintf(status, sizeof status, "answer_%.12s", (char *)c->rbuf + 9);
        note_error(status, 0);
        kill_conn(c, 0);
        return;
    }
    memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
    c->rlen -= hlen;
    c->state = S_OPEN;
    n_opening--;
    n_open++;
    if (c->rlen) parse_frames(c);
}

static void on_readable(Conn *c) {
    for (;;) {
        if (c->rcap - c->rlen < 4096) {
            c->rcap = c->rcap ? c->rcap * 2 : 8192;
            c->rbuf = grow(c->rbuf, c->rcap);
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            note_error("recv", errno);
            kill_conn(c, 1);
            return;
        }
        if (n == 0) {
            if (c->state != S_OPEN) note_error("eof_before_101", 0);
            kill_conn(c, 1);
            return;
        }
        c->rlen += (size_t)n;
        if (c->state == S_UPGRADING) on_upgrade_data(c);
        else parse_frames(c);
        if (c->fd < 0) return;
        if ((size_t)n < 4096) break;
    }
    /* An idle connection keeps no read buffer: 100,000 of them would hold 800 MB. */
    if (c->rlen == 0 && c->rcap > 8192) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

static void on_event(Conn *c, uint32_t events) {
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { note_error("connect", err); kill_conn(c, 0); return; }
        if (!(events & EPOLLOUT)) return;
        c->state = S_UPGRADING;
        set_out(c, 0);
        write_bytes(c, (const unsigned char *)request, request_len);
        return;
    }
    if (events & EPOLLOUT) flush_out(c);
    if (c->fd >= 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
}

static int stdin_ready;
static volatile sig_atomic_t dump_wanted;

static void on_usr1(int sig) { (void)sig; dump_wanted = 1; }

/* SIGUSR1: the connections by state, on stderr (to see where a run is stuck). */
static void dump_states(void) {
    int count[S_DEAD + 1] = {0}, with_out = 0;
    for (int i = 0; i < nconns; i++) {
        count[conns[i].state]++;
        if (conns[i].wlen) with_out++;
    }
    fprintf(stderr, "wscrowd %d: idle %d connecting %d upgrading %d open %d dead %d; pending writes %d; "
            "open %d failed %d opening %d; first error %s\n", (int)getpid(), count[S_IDLE], count[S_CONNECTING],
            count[S_UPGRADING], count[S_OPEN], count[S_DEAD], with_out, n_open, n_failed, n_opening, first_error);
    dump_wanted = 0;
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    if (dump_wanted) dump_states();
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) stdin_ready = 1;
        else on_event((Conn *)evs[i].data.ptr, evs[i].events);
    }
}

static void open_all(void) {
    double t0 = now(), deadline = t0 + open_timeout;
    int next = 0;
    while (next < nconns || n_opening > 0) {
        /* A few connects between two polls: answers must not wait behind a long burst. */
        for (int burst = 0; burst < 64 && next < nconns && n_opening < max_pending; burst++) {
            start_connect(&conns[next], next);
            next++;
        }
        if (now() > deadline) break;
        poll_once(5);
    }
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == S_CONNECTING || conns[i].state == S_UPGRADING) {
            note_error("open_timeout", 0);
            kill_conn(&conns[i], 0);
        }
    printf("OPEN %d %d %.6f %s\n", n_open, n_failed, now() - t0, first_error);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void cmd_wait(int expect, double timeout, const char *file) {
    double deadline = now() + timeout;
    while ((int64_t)n_armed_got < expect && now() < deadline) poll_once(2);
    FILE *f = fopen(file, "w");
    double last = 0;
    for (int i = 0; i < nconns; i++) {
        if (conns[i].rx_at > 0) {
            if (f) fprintf(f, "%.6f\n", conns[i].rx_at);
            if (conns[i].rx_at > last) last = conns[i].rx_at;
        }
    }
    if (f) fclose(f);
    printf("GOT %llu %.6f\n", (unsigned long long)n_armed_got, last);
}

static void cmd_ping(int k, double timeout) {
    double *rtt = calloc((size_t)(k > 0 ? k : 1), sizeof *rtt);
    int answered = 0, step = k > 0 && nconns > k ? nconns / k : 1;
    for (int j = 0, i = 0; j < k && i < nconns; j++, i += step) {
        Conn *c = &conns[i];
        if (c->state != S_OPEN) continue;
        c->pong_at = 0;
        c->ping_sent = now();
        send_frame(c, 9, (const unsigned char *)"scale", 5);
        double deadline = c->ping_sent + timeout;
        while (c->state == S_OPEN && c->pong_at == 0 && now() < deadline) poll_once(1);
        if (c->pong_at > 0) rtt[answered++] = (c->pong_at - c->ping_sent) * 1000.0;
        c->ping_sent = 0;
    }
    qsort(rtt, (size_t)answered, sizeof *rtt, cmp_double);
    printf("PONG %d %.4f %.4f %.4f\n", answered, answered ? rtt[answered / 2] : 0.0,
           answered ? rtt[(size_t)(0.99 * (answered - 1))] : 0.0, answered ? rtt[answered - 1] : 0.0);
    free(rtt);
}

/* Runs one command line; returns 0 on QUIT. */
static int run_command(char *line) {
    char word[16] = "";
    int used = 0;
    sscanf(line, "%15s %n", word, &used);
    char *rest = line + used;
    if (!strcmp(word, "QUIT") || !word[0]) return 0;
    if (!strcmp(word, "ARM")) {
        snprintf(tag, sizeof tag, "%s", rest);
        tag_len = strlen(tag);
        tag_armed = 1;
        n_armed_got = 0;
        for (int i = 0; i < nconns; i++) conns[i].rx_at = 0;
        printf("ARMED\n");
    } else if (!strcmp(word, "SEND")) {
        int i = -1, n = 0;
        sscanf(rest, "%d %n", &i, &n);
        double t = now();
        if (i >= 0 && i < nconns && conns[i].state == S_OPEN) {
            send_frame(&conns[i], 1, (const unsigned char *)rest + n, strlen(rest + n));
            printf("SENT %.6f\n", t);
        } else {
            printf("SENT 0 (connection %d is not open)\n", i);
        }
    } else if (!strcmp(word, "WAIT")) {
        int expect = 0;
        double timeout = 0;
        char file[4096] = "";
        sscanf(rest, "%d %lf %4095s", &expect, &timeout, file);
        cmd_wait(expect, timeout, file);
    } else if (!strcmp(word, "PING")) {
        int k = 0;
        double timeout = 5;
        sscanf(rest, "%d %lf", &k, &timeout);
        cmd_ping(k, timeout);
    } else if (!strcmp(word, "STATS")) {
        printf("STATS open=%d failed=%d closed_by_server=%d received=%llu pings_answered=%llu cpu_s=%.4f\n",
               n_open, n_failed, n_closed_by_server, (unsigned long long)n_received,
               (unsigned long long)n_pings_answered, cpu_seconds());
    } else {
        printf("ERROR unknown command %s\n", word);
    }
    return 1;
}

/* Reads what stdin has; runs each complete line.  Returns 0 at QUIT or end of input. */
static int read_commands(void) {
    ssize_t n = read(0, linebuf + line_len, sizeof linebuf - 1 - line_len);
    if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR);
    line_len += (size_t)n;
    char *start = linebuf, *nl;
    while ((nl = memchr(start, '\n', (size_t)(linebuf + line_len - start)))) {
        *nl = 0;
        if (!run_command(start)) return 0;
        start = nl + 1;
    }
    line_len = (size_t)(linebuf + line_len - start);
    memmove(linebuf, start, line_len);
    return 1;
}

static void usage(const char *why) {
    fprintf(stderr, "wscrowd: %s\nusage: wscrowd --port P [--host H] [--path /] --conns N "
            "[--sources A,B,...] [--pending P] [--timeout S] [--key K --accept A]\n", why);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage("every option takes a value");
        i++;
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--pending")) max_pending = atoi(v);
        else if (!strcmp(a, "--timeout")) open_timeout = atof(v);
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--accept")) accept_val = v;
        else if (!strcmp(a, "--seed")) rng = strtoull(v, NULL, 10) | 1;
        else if (!strcmp(a, "--ports")) {
            if (sscanf(v, "%d-%d", &port_low, &port_high) != 2 || port_low < 1 || port_high > 65535
                || port_low > port_high) usage("--ports takes LOW-HIGH");
        }
        else if (!strcmp(a, "--sources")) {
            char *copy = strdup(v), *save = NULL;
            for (char *s = strtok_r(copy, ",", &save); s && nsources < 64; s = strtok_r(NULL, ",", &save))
                if (inet_pton(AF_INET, s, &sources[nsources++]) != 1) usage("bad --sources address");
        } else usage("unknown option");
    }
    struct in_addr probe;
    if (port <= 0 || port > 65535 || nconns < 1 || max_pending < 1 || inet_pton(AF_INET, host, &probe) != 1)
        usage("--port, --conns and an IPv4 --host are needed");
    if (port_low && !nsources) usage("--ports needs --sources");
    next_port_slot = (long)(rng % 1000) * nsources;  /* --seed: another start, away from the last run's ports */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGUSR1, on_usr1);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    request_len = (size_t)snprintf(request, sizeof request,
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://%s:%d\r\n\r\n",
        path, host, port, key, host, port);
    ep = epoll_create1(0);
    conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) conns[i].fd = -1;
    open_all();
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    for (;;) {
        stdin_ready = 0;
        poll_once(1000);
        if (stdin_ready && !read_commands()) break;
    }
    for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) kill_conn(&conns[i], 0);
    return 0;
}
