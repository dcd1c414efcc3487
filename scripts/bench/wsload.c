/*
 * wsload: the WebSocket load generator of scripts/bench.py.
 *
 * One single-threaded epoll loop drives many client connections to one
 * server on 127.0.0.1.  Every frame it sends is masked with a fresh key, as
 * RFC 6455 requires of clients; every frame it receives is checked.  It
 * reports on stdout, one line each:
 *
 *   READY <connections>       all connections are open (broadcast mode)
 *   START                     the measuring window begins
 *   END                       the measuring window ends
 *   RESULT {json}             the numbers (always the last line)
 *
 * Modes:
 *   echo       --conns N --size S [--binary] [--depth D] --warmup W --duration T
 *              each connection keeps D messages in flight and sends the next
 *              one when an echo comes back; counts echoes inside the window.
 *   broadcast  --conns N --size S --count K [--hold]
 *              connection 0 sends "broadcast:<S bytes>" K times, each time
 *              waiting until every connection has received the payload; with
 *              (first every connection sends "sync" and waits for its echo); with
 *              --hold it waits for a line on stdin after READY (so that the
 *              server's memory can be read while every connection is idle).
 *   handshake  --concurrency C --warmup W --duration T
 *              connect, upgrade, closing handshake, reset; C at a time.
 *
 * Common: --port P --key K --accept A (the Sec-WebSocket-Key sent and the
 * Sec-WebSocket-Accept expected; bench.py computes the pair) --timeout T
 * (bound on the whole run) --pending P (connections being opened at once).
 *
 * permessage-deflate (RFC 7692; needs the zlib build below):
 *   --deflate         offer "permessage-deflate; client_max_window_bits" and
 *                     require the server to accept it.  Data messages go out
 *                     compressed (raw deflate, sync flush, the 00 00 ff ff tail
 *                     stripped, RSV1 on the first frame) with the window the
 *                     server's answer allows (client_max_window_bits=N, else
 *                     15).  Each message is compressed on its own (RFC 7692
 *                     7.1.1 lets a client skip context takeover), so the
 *                     compressed form of each payload is computed once and
 *                     reused: the client's compression costs nothing per
 *                     message.  Received messages with RSV1 are inflated
 *                     (tail appended; one inflater per connection, reset after
 *                     each message when the server said
 *                     server_no_context_takeover) and compared with what was
 *                     sent, every one of them.
 *   --payload-file F  the messages to send (text), one per line of F (no
 *                     line may be empty); echo mode cycles through them and
 *                     checks each echo against the message it answers;
 *                     broadcast mode sends the first line as its sync message.
 *   --no-sync         broadcast mode: skip the sync message (connections stay
 *                     without any traffic after the upgrade; for --hold).
 *
 * Build: gcc -O2 -o wsload wsload.c
 *        gcc -O2 -DWSLOAD_ZLIB -o wsload wsload.c -lz   (for --deflate)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef WSLOAD_ZLIB
#include <zlib.h>
#endif

enum { M_ECHO, M_BROADCAST, M_HANDSHAKE };
enum { S_FREE, S_CONNECTING, S_UPGRADING, S_OPEN, S_CLOSING, S_DONE };
#define MAX_DEPTH 16

typedef struct {
    int fd;
    int state;
    int want_out;              /* EPOLLOUT registered */
    unsigned char *rbuf;
    size_t rlen, rcap;
    unsigned char *wbuf;       /* bytes the kernel did not take yet */
    size_t wlen, wcap;
    double sent_at[MAX_DEPTH]; /* ring of send times (echo) */
    int sent_idx[MAX_DEPTH];   /* ring of which message was sent (echo) */
    int next_msg;
    int pmd;                   /* permessage-deflate negotiated */
    int srv_nct;               /* server_no_context_takeover */
    int cwbits;                /* our window: client_max_window_bits */
    void *inf;                 /* z_stream inflater, made at the first compressed message */
    int head, inflight;
    double started;            /* connect time (handshake mode) */
    uint64_t received;         /* data messages received */
} Conn;

/* options */
static int mode = M_ECHO;
static int port = 0;
static int nconns = 1;
static size_t msg_size = 32;
static int binary = 0;
static int depth = 1;
static double warmup = 0.5, duration = 3.0, timeout_s = 60.0;
static int bcount = 10;
static int hold = 0;
static int concurrency = 20;
static int max_pending = 256;
static const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
static const char *accept_val = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static int use_deflate = 0;
static int no_sync = 0;
static const char *payload_file = NULL;

/* state */
static int ep;
static Conn *conns;
static int nslots;
static unsigned char *payload;   /* what we send (echo) or expect (broadcast) */
static size_t payload_len;
static char request[512];
static size_t request_len;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static char errbuf[512];
static int failed = 0;
/* counters */
static int n_open = 0, n_opening = 0, n_started = 0;
static int measuring = 0, stopped = 0;
static uint64_t count = 0, bytes_in = 0;
static uint32_t *lat;   /* latency samples in microseconds */
static size_t nlat = 0, lat_cap = 0;
static uint64_t total_received = 0;
static int syncing = 0;          /* broadcast mode: waiting for every "sync" echo */
static int synced = 0;
static double bcast_timeout = 20.0;
/* messages from --payload-file (echo; broadcast: the sync message) */
static unsigned char **msgs;
static size_t *msg_lens;
static int nmsgs = 0;
static unsigned char *zout;        /* inflate output */
#ifdef WSLOAD_ZLIB
static unsigned char **zmsgs[16];  /* compressed form per window bits, made on first use */
static size_t *zlens[16];
static size_t zout_cap;
#endif
static uint64_t wire_in = 0;       /* payload bytes received on the wire (compressed or not) */
static uint64_t n_inflated = 0, n_plain = 0;
static int n_pmd = 0;              /* connections that negotiated permessage-deflate */
static char ext_answer[256] = "";  /* the server's Sec-WebSocket-Extensions (first connection) */

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

static void fail(const char *fmt, ...) {
    if (failed) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    failed = 1;
}

static uint64_t xorshift(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) { perror("realloc"); exit(2); }
    return q;
}

static void set_events(Conn *c, int out) {
    if (c->want_out == out) return;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("epoll_ctl: %s", strerror(errno));
    c->want_out = out;
}

static void close_conn(Conn *c) {
    if (c->fd >= 0) {
        struct linger lg = { 1, 0 };  /* reset: leaves no TIME_WAIT behind */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
#ifdef WSLOAD_ZLIB
    if (c->inf) {
        inflateEnd((z_stream *)c->inf);
        free(c->inf);
        c->inf = NULL;
    }
#endif
    if (c->pmd) n_pmd--;
    c->pmd = 0;
    if (c->state == S_OPEN) n_open--;
    if (c->state == S_CONNECTING || c->state == S_UPGRADING) n_opening--;
    c->state = S_DONE;
    c->rlen = c->wlen = 0;
    c->inflight = 0;
    c->want_out = 0;
}

/* Write bytes, buffering what the kernel does not take. */
static void conn_write(Conn *c, const unsigned char *data, size_t len) {
    if (c->fd < 0) return;
    if (c->wlen == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                fail("send: %s", strerror(errno));
                close_conn(c);
                return;
            }
            n = 0;
        }
        data += n;
        len -= (size_t)n;
        if (!len) return;
    }
    if (c->wlen + len > c->wcap) {
        c->wcap = (c->wlen + len) * 2;
        c->wbuf = xrealloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
    set_events(c, 1);
}

static void flush_out(Conn *c) {
    if (c->wlen) {
        ssize_t n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            fail("send: %s", strerror(errno));
            close_conn(c);
            return;
        }
        memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
        c->wlen -= (size_t)n;
    }
    if (!c->wlen) set_events(c, 0);
}

/* A masked client frame. */
static unsigned char *frame_buf;
static size_t frame_cap;

static void send_frame_b0(Conn *c, int b0, const unsigned char *data, size_t len) {
    size_t need = len + 14;
    if (need > frame_cap) {
        frame_cap = need;
        frame_buf = xrealloc(frame_buf, frame_cap);
    }
    unsigned char *p = frame_buf;
    *p++ = b0;
    if (len < 126) {
        *p++ = 0x80 | len;
    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = len >> 8;
        *p++ = len & 0xff;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--) *p++ = (len >> (8 * i)) & 0xff;
    }
    uint32_t m32 = (uint32_t)xorshift();
    unsigned char mask[4];
    memcpy(mask, &m32, 4);
    memcpy(p, mask, 4);
    p += 4;
    uint64_t m64;
    memcpy(&m64, mask, 4);
    memcpy((unsigned char *)&m64 + 4, mask, 4);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= m64;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) p[i] = data[i] ^ mask[i & 3];
    conn_write(c, frame_buf, (size_t)(p - frame_buf) + len);
}

static void send_frame(Conn *c, int opcode, const unsigned char *data, size_t len) {
    send_frame_b0(c, 0x80 | opcode, data, len);
}

/* The compressed form of message idx for a window of wbits (cached). */
static void compressed_msg(int idx, int wbits, const unsigned char **out, size_t *outlen) {
#ifdef WSLOAD_ZLIB
    if (wbits < 9) wbits = 9;  /* zlib cannot make an 8-bit window; 9 would overstep it */
    if (!zmsgs[wbits]) {
        zmsgs[wbits] = calloc((size_t)nmsgs, sizeof *zmsgs[wbits]);
        zlens[wbits] = calloc((size_t)nmsgs, sizeof *zlens[wbits]);
    }
    if (!zmsgs[wbits][idx]) {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, 6, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            fprintf(stderr, "deflateInit2 failed\n");
            exit(2);
        }
        size_t cap = deflateBound(&z, msg_lens[idx]) + 64;
        unsigned char *buf = xrealloc(NULL, cap);
        z.next_in = msgs[idx];
        z.avail_in = (uInt)msg_lens[idx];
        z.next_out = buf;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in) {
            fprintf(stderr, "deflate failed\n");
            exit(2);
        }
        size_t n = cap - z.avail_out;
        deflateEnd(&z);
        if (n < 4 || memcmp(buf + n - 4, "\x00\x00\xff\xff", 4) != 0) {
            fprintf(stderr, "deflate output does not end with 00 00 ff ff\n");
            exit(2);
        }
        zmsgs[wbits][idx] = buf;
        zlens[wbits][idx] = n - 4;
    }
    *out = zmsgs[wbits][idx];
    *outlen = zlens[wbits][idx];
#else
    (void)idx; (void)wbits; (void)out; (void)outlen;
    exit(2);
#endif
}

/* Send message idx of --payload-file as text, compressed when negotiated. */
static void send_msg(Conn *c, int idx) {
    if (c->pmd) {
        const unsigned char *z;
        size_t zl;
        compressed_msg(idx, c->cwbits, &z, &zl);
        send_frame_b0(c, 0x80 | 0x40 | 1, z, zl);
    } else {
        send_frame(c, 1, msgs[idx], msg_lens[idx]);
    }
}

/* Inflate a compressed message (RSV1) into zout; returns its length, or -1. */
static long inflate_msg(Conn *c, const unsigned char *data, size_t len) {
#ifdef WSLOAD_ZLIB
    static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
    z_stream *z = (z_stream *)c->inf;
    if (!z) {
        z = calloc(1, sizeof *z);
        if (inflateInit2(z, -15) != Z_OK) {
            fail("inflateInit2 failed");
            free(z);
            return -1;
        }
        c->inf = z;
    }
    size_t outlen = 0;
    for (int part = 0; part < 2; part++) {
        z->next_in = (unsigned char *)(part ? tail : data);
        z->avail_in = (uInt)(part ? 4 : len);
        for (;;) {
            if (zout_cap - outlen < 65536) {
                if (zout_cap > (size_t)256 << 20) {
                    fail("inflated message over 256 MiB");
                    return -1;
                }
                zout_cap = zout_cap * 2 + 65536;
                zout = xrealloc(zout, zout_cap);
            }
            z->next_out = zout + outlen;
            z->avail_out = (uInt)(zout_cap - outlen);
            int r = inflate(z, Z_SYNC_FLUSH);
            outlen = zout_cap - z->avail_out;
            if (r == Z_STREAM_END) {
                fail("server's deflate stream ended (BFINAL set)");
                return -1;
            }
            if (r != Z_OK && r != Z_BUF_ERROR) {
                fail("inflate: %s", z->msg ? z->msg : "error");
                return -1;
            }
            if (!z->avail_in && z->avail_out) break;
        }
    }
    if (c->srv_nct) inflateReset(z);
    return (long)outlen;
#else
    (void)c; (void)data; (void)len;
    fail("built without zlib");
    return -1;
#endif
}

static void start_connect(Conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fail("socket: %s", strerror(errno));
        c->state = S_DONE;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = fd;
    c->state = S_CONNECTING;
    c->rlen = c->wlen = 0;
    c->want_out = 1;
    c->inflight = c->head = 0;
    c->next_msg = (int)(c - conns);
    c->started = now();
    n_opening++;
    n_started++;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        fail("connect: %s", strerror(errno));
        close_conn(c);
    }
}

static void send_echo(Conn *c) {
    double t = now();
    int slot = (c->head + c->inflight) % MAX_DEPTH;
    c->sent_at[slot] = t;
    c->inflight++;
    if (nmsgs) {
        int idx = c->next_msg++ % nmsgs;
        c->sent_idx[slot] = idx;
        send_msg(c, idx);
    } else {
        send_frame(c, binary ? 2 : 1, payload, payload_len);
    }
}

static void on_opened(Conn *c) {
    n_opening--;
    n_open++;
    c->state = S_OPEN;
    if (mode == M_HANDSHAKE) {
        static const unsigned char close_payload[2] = { 0x03, 0xe8 };  /* 1000 */
        if (measuring) count++;
        if (measuring && nlat < lat_cap) lat[nlat++] = (uint32_t)((now() - c->started) * 1e6);
        c->state = S_CLOSING;
        n_open--;
        send_frame(c, 8, close_payload, 2);
    }
}

static void on_message(Conn *c, int opcode, int rsv1, const unsigned char *data, size_t len) {
    if (rsv1 && opcode < 8) {
        if (!c->pmd) {
            fail("RSV1 set without permessage-deflate");
            close_conn(c);
            return;
        }
        wire_in += len;
        long n = inflate_msg(c, data, len);
        if (n < 0) {
            close_conn(c);
            return;
        }
        n_inflated++;
        data = zout;
        len = (size_t)n;
    } else if (opcode < 8) {
        wire_in += len;
        n_plain++;
    }
    if (opcode == 9) {  /* ping: answer */
        send_frame(c, 10, data, len);
        return;
    }
    if (opcode == 10) return;
    if (opcode == 8) {
        if (mode == M_HANDSHAKE && c->state == S_CLOSING) {
            close_conn(c);
            return;
        }
        if (!stopped) fail("server sent a close frame (%zu bytes) during the run", len);
        close_conn(c);
        return;
    }
    if (mode == M_ECHO && nmsgs && c->inflight > 0) {
        int idx = c->sent_idx[c->head];
        if (len != msg_lens[idx] || memcmp(data, msgs[idx], len) != 0 || opcode != 1) {
            fail("bad echo: opcode %d, %zu bytes (expected message %d, %zu bytes)", opcode, len, idx, msg_lens[idx]);
            close_conn(c);
            return;
        }
    }
    if (mode == M_ECHO) {
        if (nmsgs) {
            /* checked above */
        } else if (len != payload_len || memcmp(data, payload, len) != 0 || opcode != (binary ? 2 : 1)) {
            fail("bad echo: opcode %d, %zu bytes (expected %zu)", opcode, len, payload_len);
            close_conn(c);
            return;
        }
        if (c->inflight <= 0) {
            fail("unexpected message");
            return;
        }
        double t = now();
        double sent = c->sent_at[c->head];
        c->head = (c->head + 1) % MAX_DEPTH;
        c->inflight--;
        if (measuring) {
            count++;
            bytes_in += len;
            if (nlat < lat_cap) lat[nlat++] = (uint32_t)((t - sent) * 1e6);
        }
        if (!stopped) send_echo(c);
    } else if (mode == M_BROADCAST) {
        if (syncing) {
            const unsigned char *want = nmsgs ? msgs[0] : (const unsigned char *)"sync";
            size_t want_len = nmsgs ? msg_lens[0] : 4;
            if (len != want_len || memcmp(data, want, len) != 0 || opcode != 1) {
                fail("bad answer to the sync message: opcode %d, %zu bytes", opcode, len);
                close_conn(c);
                return;
            }
            synced++;
            return;
        }
        if (len != payload_len || opcode != 1) {
            fail("bad broadcast message: opcode %d, %zu bytes (expected %zu)", opcode, len, payload_len);
            close_conn(c);
            return;
        }
        c->received++;
        total_received++;
    }
}

/* Parse whole frames in c->rbuf. */
static void parse_frames(Conn *c) {
    size_t pos = 0;
    while (c->fd >= 0 && c->rlen - pos >= 2) {
        unsigned char *b = c->rbuf + pos;
        int opcode = b[0] & 0x0f;
        if (b[1] & 0x80) {
            fail("server frame is masked");
            close_conn(c);
            return;
        }
        uint64_t len = b[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126) {
            if (c->rlen - pos < 4) break;
            len = ((uint64_t)b[2] << 8) | b[3];
            hdr = 4;
        } else if (len == 127) {
            if (c->rlen - pos < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
            hdr = 10;
        }
        if (c->rlen - pos < hdr + len) {
            if (hdr + len > c->rcap) {
                /* make room for the whole frame */
                memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
                c->rlen -= pos;
                pos = 0;
                c->rcap = hdr + len + 65536;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            break;
        }
        if (!(b[0] & 0x80) && opcode != 0 && opcode < 8) {
            fail("server fragmented a message (not handled by wsload)");
            close_conn(c);
            return;
        }
        if ((b[0] & 0x30) || ((b[0] & 0x40) && (opcode == 0 || opcode >= 8))) {
            fail("server frame has RSV bits 0x%02x on opcode %d", b[0] & 0x70, opcode);
            close_conn(c);
            return;
        }
        on_message(c, opcode, (b[0] & 0x40) != 0, b + hdr, (size_t)len);
        pos += hdr + (size_t)len;
    }
    if (c->fd < 0) return;
    if (pos) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
}

static void on_upgrade_data(Conn *c) {
    unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen > 16384) {
            fail("handshake response too long");
            close_conn(c);
        }
        return;
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) {
        fail("handshake refused: %.60s", (char *)c->rbuf);
        close_conn(c);
        return;
    }
    if (!memmem(c->rbuf, hlen, accept_val, strlen(accept_val))) {
        fail("wrong Sec-WebSocket-Accept in the handshake response");
        close_conn(c);
        return;
    }
    if (use_deflate) {
        /* the server's Sec-WebSocket-Extensions, if any (header names are case-insensitive) */
        char hdrs[16385];
        size_t n = hlen < sizeof hdrs - 1 ? hlen : sizeof hdrs - 1;
        for (size_t i = 0; i < n; i++) {
            char ch = (char)c->rbuf[i];
            hdrs[i] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
        }
        hdrs[n] = 0;
        char *h = strstr(hdrs, "\r\nsec-websocket-extensions:");
        if (!h || !strstr(h + 2, "permessage-deflate")) {
            fail("the server did not accept permessage-deflate");
            close_conn(c);
            return;
        }
        h += 28;  /* strlen("\r\nsec-websocket-extensions:") */
        char *eol = strstr(h, "\r\n");
        if (eol) *eol = 0;
        while (*h == ' ') h++;
        if (!ext_answer[0]) {
            snprintf(ext_answer, sizeof ext_answer, "%s", h);
            for (char *q = ext_answer; *q; q++) if (*q == '"' || *q == '\\' || (unsigned char)*q < 32) *q = '\'';
        }
        c->pmd = 1;
        n_pmd++;
        c->srv_nct = strstr(h, "server_no_context_takeover") != NULL;
        c->cwbits = 15;
        char *w = strstr(h, "client_max_window_bits");
        if (w) {
            w += 22;
            while (*w == ' ') w++;
            if (*w == '=') {
                w++;
                while (*w == ' ' || *w == '"') w++;
                int bits = atoi(w);
                if (bits >= 8 && bits <= 15) c->cwbits = bits;
            }
        }
    }
    memmove(c->rbuf, c->rbuf + hlen, c->rlen - hlen);
    c->rlen -= hlen;
    on_opened(c);
    if (c->fd >= 0 && c->rlen) parse_frames(c);
}

static void on_readable(Conn *c) {
    for (int rounds = 0; rounds < 4 && c->fd >= 0; rounds++) {
        if (c->rcap - c->rlen < 65536) {
            c->rcap = c->rcap * 2 + 65536;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) {
                close_conn(c);
                return;
            }
            fail("recv: %s (state %d)", strerror(errno), c->state);
            close_conn(c);
            return;
        }
        if (n == 0) {
            if (mode == M_HANDSHAKE && c->state == S_CLOSING) {
                close_conn(c);  /* the server closed without a close frame: fine */
                return;
            }
            if (!stopped) fail("server closed the connection (state %d)", c->state);
            close_conn(c);
            return;
        }
        if (c->state == S_CLOSING) {
            /* handshake mode: look for the close frame */
            c->rlen += (size_t)n;
            parse_frames(c);
            continue;
        }
        c->rlen += (size_t)n;
        if (c->state == S_UPGRADING) on_upgrade_data(c);
        else if (c->state == S_OPEN) parse_frames(c);
        if ((size_t)n < 65536) return;
    }
}

static void on_event(Conn *c, uint32_t events) {
    if (c->state == S_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) {
                fail("connect: %s", strerror(err));
                close_conn(c);
                return;
            }
            c->state = S_UPGRADING;
            set_events(c, 0);
            conn_write(c, (const unsigned char *)request, request_len);
        }
        return;
    }
    if (events & EPOLLOUT) flush_out(c);
    if (c->fd >= 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
}

static void poll_once(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) on_event((Conn *)evs[i].data.ptr, evs[i].events);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!nlat) return -1;
    size_t i = (size_t)(p * (nlat - 1));
    return lat[i] / 1000.0;  /* ms */
}

static void result_and_exit(const char *extra_fmt, ...) {
    char extra[8192] = "";
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(extra, sizeof extra, extra_fmt, ap);
        va_end(ap);
    }
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    printf("RESULT {\"ok\": %s, \"error\": \"", failed ? "false" : "true");
    for (char *p = errbuf; *p; p++) putchar(*p == '"' || *p == '\\' ? '\'' : *p);
    printf("\", \"lat_p50_ms\": %.4f, \"lat_p99_ms\": %.4f, \"samples\": %zu%s}\n",
           pct(0.5), pct(0.99), nlat, extra);
    fflush(stdout);
    for (int i = 0; i < nslots; i++) if (conns[i].fd >= 0) close_conn(&conns[i]);
    exit(0);
}

/* Open all connections, at most max_pending at a time. */
static int open_all(double deadline) {
    int next = 0;
    while (n_open < nconns) {
        while (next < nconns && n_opening < max_pending) start_connect(&conns[next++]);
        if (failed) return 0;
        if (now() > deadline) {
            fail("only %d of %d connections opened in time", n_open, nconns);
            return 0;
        }
        poll_once(10);
        if (failed) return 0;
    }
    return 1;
}

static void usage(void) {
    fprintf(stderr, "usage: wsload echo|broadcast|handshake --port P [options]; see the source\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (!strcmp(argv[1], "echo")) mode = M_ECHO;
    else if (!strcmp(argv[1], "broadcast")) mode = M_BROADCAST;
    else if (!strcmp(argv[1], "handshake")) mode = M_HANDSHAKE;
    else usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
        if (ARG("--port")) port = atoi(v);
        else if (ARG("--conns")) nconns = atoi(v);
        else if (ARG("--size")) msg_size = (size_t)atol(v);
        else if (!strcmp(a, "--binary")) binary = 1;
        else if (ARG("--depth")) depth = atoi(v);
        else if (ARG("--warmup")) warmup = atof(v);
        else if (ARG("--duration")) duration = atof(v);
        else if (ARG("--timeout")) timeout_s = atof(v);
        else if (ARG("--count")) bcount = atoi(v);
        else if (!strcmp(a, "--hold")) hold = 1;
        else if (ARG("--broadcast-timeout")) bcast_timeout = atof(v);
        else if (ARG("--concurrency")) concurrency = atoi(v);
        else if (ARG("--pending")) max_pending = atoi(v);
        else if (ARG("--key")) key = v;
        else if (ARG("--accept")) accept_val = v;
        else if (ARG("--seed")) rng = strtoull(v, NULL, 10) | 1;
        else if (!strcmp(a, "--deflate")) use_deflate = 1;
        else if (ARG("--payload-file")) payload_file = v;
        else if (!strcmp(a, "--no-sync")) no_sync = 1;
        else usage();
#undef ARG
    }
    if (!port || nconns < 1 || depth < 1 || depth > MAX_DEPTH) usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
#ifndef WSLOAD_ZLIB
    if (use_deflate) {
        fprintf(stderr, "wsload was built without zlib: --deflate needs "
                "gcc -O2 -DWSLOAD_ZLIB -o wsload wsload.c -lz (zlib headers: zlib1g-dev / zlib-devel)\n");
        exit(2);
    }
#endif
    if (payload_file) {
        FILE *f = fopen(payload_file, "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s: %s\n", payload_file, strerror(errno));
            exit(2);
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
            if (!n) continue;
            msgs = xrealloc(msgs, (size_t)(nmsgs + 1) * sizeof *msgs);
            msg_lens = xrealloc(msg_lens, (size_t)(nmsgs + 1) * sizeof *msg_lens);
            msgs[nmsgs] = xrealloc(NULL, (size_t)n);
            memcpy(msgs[nmsgs], line, (size_t)n);
            msg_lens[nmsgs++] = (size_t)n;
        }
        free(line);
        fclose(f);
        if (!nmsgs) {
            fprintf(stderr, "%s holds no message\n", payload_file);
            exit(2);
        }
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    request_len = (size_t)snprintf(request, sizeof request,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", port, key,
        use_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");

    ep = epoll_create1(0);
    nslots = mode == M_HANDSHAKE ? concurrency : nconns;
    conns = calloc((size_t)nslots, sizeof *conns);
    for (int i = 0; i < nslots; i++) {
        conns[i].fd = -1;
        conns[i].rcap = 4096;
        conns[i].rbuf = xrealloc(NULL, conns[i].rcap);
    }
    lat_cap = 4 * 1000 * 1000;
    lat = xrealloc(NULL, lat_cap * sizeof *lat);

    double t_begin = now();
    double deadline = t_begin + timeout_s;

    if (mode == M_ECHO) {
        payload_len = msg_size;
        payload = xrealloc(NULL, payload_len + 1);
        for (size_t i = 0; i < payload_len; i++) payload[i] = binary ? (unsigned char)xorshift() : 'a' + i % 26;
        if (!open_all(deadline)) result_and_exit(", \"connected\": %d", n_open);
        double t0 = now(), cpu0 = 0, ts = 0;
        for (int i = 0; i < nconns; i++) for (int d = 0; d < depth; d++) send_echo(&conns[i]);
        while (!failed) {
            double t = now();
            if (!measuring && t >= t0 + warmup) {
                measuring = 1;
                count = bytes_in = 0;
                nlat = 0;
                ts = now();
                cpu0 = cpu_seconds();
                printf("START\n");
            }
            if (measuring && t >= ts + duration) break;
            if (t > deadline) { fail("timeout"); break; }
            poll_once(5);
        }
        double te = now(), cpu1 = cpu_seconds();
        stopped = 1;
        printf("END\n");
        double wall = measuring ? te - ts : 0;
        result_and_exit(", \"connected\": %d, \"deflate_conns\": %d, \"extensions\": \"%s\", \"inflated\": %llu, "
                        "\"plain\": %llu, \"wire_bytes\": %llu, \"messages\": %llu, \"bytes\": %llu, \"seconds\": %.6f, "
                        "\"rate\": %.3f, \"client_cpu_s\": %.6f, \"client_cpu_pct\": %.2f",
                        n_open, n_pmd, ext_answer, (unsigned long long)n_inflated, (unsigned long long)n_plain,
                        (unsigned long long)wire_in, (unsigned long long)count, (unsigned long long)bytes_in, wall,
                        wall > 0 ? count / wall : 0.0, cpu1 - cpu0,
                        wall > 0 ? 100.0 * (cpu1 - cpu0) / wall : 0.0);
    }

    if (mode == M_BROADCAST) {
        payload_len = msg_size;
        payload = xrealloc(NULL, payload_len + 16);
        memcpy(payload, "broadcast:", 10);
        for (size_t i = 0; i < payload_len; i++) payload[10 + i] = 'a' + i % 26;
        double t_open0 = now();
        if (!open_all(t_open0 + 60 < deadline ? t_open0 + 60 : deadline)) result_and_exit(", \"connected\": %d", n_open);
        double open_s = now() - t_open0;
        /* Every connection sends "sync" and waits for its echo: once it is back,
           the server's handler runs for that connection and has registered it
           (some servers send the 101 before they add the client to their set). */
        syncing = 1;
        double sync_deadline = now() + (bcast_timeout > 30 ? bcast_timeout : 30);
        if (sync_deadline > deadline) sync_deadline = deadline;
        for (int i = 0; i < nconns && !no_sync; i++) {
            if (nmsgs) send_msg(&conns[i], 0);
            else send_frame(&conns[i], 1, (const unsigned char *)"sync", 4);
        }
        while (!no_sync && synced < nconns && !failed) {
            if (now() > sync_deadline) {
                fail("only %d of %d connections answered the sync message", synced, nconns);
                break;
            }
            poll_once(5);
        }
        syncing = 0;
        if (failed) result_and_exit(", \"connected\": %d, \"synced\": %d", n_open, synced);
        printf("READY %d\n", n_open);
        if (hold) {
            char line[64];
            if (!fgets(line, sizeof line, stdin)) bcount = 0;
        }
        /* drain anything that came meanwhile (pings) */
        poll_once(0);
        char lats[8192] = "";
        size_t lp = 0;
        double ts = now(), cpu0 = cpu_seconds(), sum = 0;
        printf("START\n");
        int done = 0;
        for (int k = 1; k <= bcount && !failed; k++) {
            double t_send = now();
            double bdeadline = t_send + bcast_timeout;
            if (bdeadline > deadline) bdeadline = deadline;
            /* send "broadcast:<payload>" on connection 0; we expect payload_len bytes back */
            send_frame(&conns[0], 1, payload, payload_len + 10);
            uint64_t target = (uint64_t)nconns * k;
            while (total_received < target && !failed) {
                if (now() > bdeadline) {
                    fail("broadcast %d: %llu of %d receivers got it before the timeout", k,
                         (unsigned long long)(total_received - (uint64_t)nconns * (k - 1)), nconns);
                    break;
                }
                poll_once(5);
            }
            if (failed) break;
            double l = now() - t_send;
            sum += l;
            if (nlat < lat_cap) lat[nlat++] = (uint32_t)(l * 1e6);
            if (lp < sizeof lats - 32) lp += (size_t)snprintf(lats + lp, sizeof lats - lp, "%s%.6f", done ? ", " : "", l);
            done++;
        }
        double te = now(), cpu1 = cpu_seconds();
        stopped = 1;
        printf("END\n");
        result_and_exit(", \"connected\": %d, \"deflate_conns\": %d, \"extensions\": \"%s\", \"inflated\": %llu, "
                        "\"open_seconds\": %.4f, \"broadcasts\": %d, \"latencies_s\": [%s], "
                        "\"deliveries\": %llu, \"busy_seconds\": %.6f, \"seconds\": %.6f, \"rate\": %.3f, "
                        "\"client_cpu_s\": %.6f, \"client_cpu_pct\": %.2f",
                        n_open, n_pmd, ext_answer, (unsigned long long)n_inflated, open_s, done, lats, (unsigned long long)((uint64_t)nconns * done), sum,
                        te - ts, sum > 0 ? nconns * done / sum : 0.0, cpu1 - cpu0,
                        te > ts ? 100.0 * (cpu1 - cpu0) / (te - ts) : 0.0);
    }

    /* handshake */
    {
        double t0 = now(), ts = 0, cpu0 = 0;
        while (!failed) {
            double t = now();
            if (!measuring && t >= t0 + warmup) {
                measuring = 1;
                count = 0;
                nlat = 0;
                ts = now();
                cpu0 = cpu_seconds();
                printf("START\n");
            }
            if (measuring && t >= ts + duration) break;
            if (t > deadline) { fail("timeout"); break; }
            for (int i = 0; i < nslots; i++) {
                Conn *c = &conns[i];
                if (c->state == S_FREE || c->state == S_DONE) start_connect(c);
                else if ((c->state == S_CONNECTING || c->state == S_UPGRADING || c->state == S_CLOSING)
                         && t - c->started > 10.0) {
                    fail("a connection did not finish its handshake and close within 10 s (state %d)", c->state);
                    break;
                }
            }
            poll_once(5);
        }
        double te = now(), cpu1 = cpu_seconds();
        stopped = 1;
        printf("END\n");
        double wall = measuring ? te - ts : 0;
        result_and_exit(", \"handshakes\": %llu, \"seconds\": %.6f, \"rate\": %.3f, \"client_cpu_s\": %.6f, "
                        "\"client_cpu_pct\": %.2f",
                        (unsigned long long)count, wall, wall > 0 ? count / wall : 0.0, cpu1 - cpu0,
                        wall > 0 ? 100.0 * (cpu1 - cpu0) / wall : 0.0);
    }
    return 0;
}
