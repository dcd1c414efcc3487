"""An echo server built on the `websockets` package, for scripts/interop_client.sh.

Usage: python server_websockets.py [--tls CERT KEY]
Listens on 127.0.0.1 with an ephemeral port, prints "PORT <n>" once ready,
echoes every message (permessage-deflate enabled, the library's default), and
stops when stdin closes.
"""

import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    context = None
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    async with serve(echo, "127.0.0.1", 0, ssl=context, max_size=8 * 1024 * 1024) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print("PORT %d" % port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


asyncio.run(main())
