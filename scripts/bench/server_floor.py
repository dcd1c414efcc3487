"""The pure-Python floor: the least a selectors WebSocket echo server can do.

Not a library and not a peer: one function per event, no framework, no
validation beyond what echoing needs (no UTF-8 check, no fragmentation, no
limits, no control frames but close).  What ratchet_sel spends above this,
per message, is the price of its components and its protocol checks.  It reads
with recv(), answers every frame of one read with one send(), and buffers only
what the kernel did not take.
"""

import base64
import hashlib
import os
import selectors
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, announce, exit_on_sigterm, raise_nofile  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
sel = selectors.DefaultSelector()


class Peer:
    __slots__ = ("sock", "inbuf", "outbuf", "upgraded")

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.upgraded = False


def unmask(data, mask):
    size = len(data)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")


def header(opcode, size):
    if size < 126:
        return struct.pack("!BB", 0x80 | opcode, size)
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, size)
    return struct.pack("!BBQ", 0x80 | opcode, 127, size)


def drop(peer):
    if peer.sock.fileno() >= 0:
        sel.unregister(peer.sock)
        peer.sock.close()


def write(peer, data):
    if peer.outbuf:
        peer.outbuf += data
        return
    try:
        sent = peer.sock.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:  # the peer went away
        drop(peer)
        return
    if sent < len(data):
        peer.outbuf = data[sent:]
        sel.modify(peer.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, peer)


def on_writable(peer):
    try:
        sent = peer.sock.send(peer.outbuf)
    except OSError:
        drop(peer)
        return
    peer.outbuf = peer.outbuf[sent:]
    if not peer.outbuf:
        sel.modify(peer.sock, selectors.EVENT_READ, peer)


def on_readable(peer):
    try:
        data = peer.sock.recv(262144)
    except OSError:
        data = b""
    if not data:
        drop(peer)
        return
    buf = peer.inbuf + data if peer.inbuf else data
    if not peer.upgraded:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            peer.inbuf = buf
            return
        key = next(line.split(b":", 1)[1].strip() for line in buf[:end].split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        write(peer, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        peer.upgraded = True
        buf = buf[end + 4:]
    out = []
    pos, end = 0, len(buf)
    while end - pos >= 6:
        opcode, size = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        start = pos + 6
        if size == 126:
            size, start = struct.unpack_from("!H", buf, pos + 2)[0], pos + 8
        elif size == 127:
            size, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 14
        if end < start + size:
            break
        payload = unmask(buf[start:start + size], buf[start - 4:start])
        pos = start + size
        if opcode == 8:
            write(peer, b"\x88\x02" + payload[:2])
            drop(peer)
            return
        out.append(header(opcode, size) + payload)
    peer.inbuf = buf[pos:]
    if out:
        write(peer, b"".join(out))


def on_acceptable(listener):
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(sock, selectors.EVENT_READ, Peer(sock))


def main():
    raise_nofile()
    exit_on_sigterm()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    announce(listener.getsockname()[1])
    while True:
        for key, events in sel.select():
            if key.data is None:
                on_acceptable(key.fileobj)
                continue
            peer = key.data
            if events & selectors.EVENT_WRITE and peer.outbuf:
                on_writable(peer)
            if events & selectors.EVENT_READ and peer.sock.fileno() >= 0:
                on_readable(peer)


if __name__ == "__main__":
    main()
