"""aiohttp.web, compress=False; broadcast is a loop of ws.send_str (aiohttp has no broadcast helper).

--deflate: compress=True (aiohttp's default, permessage-deflate), for the deflate group.
"""

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, BROADCAST_PREFIX, announce, exit_on_sigterm, raise_nofile  # noqa: E402

from aiohttp import WSMsgType, web  # noqa: E402

PREFIX_LEN = len(BROADCAST_PREFIX)
clients = set()
COMPRESS = "--deflate" in sys.argv[1:]


async def handler(request):
    ws = web.WebSocketResponse(compress=COMPRESS)
    await ws.prepare(request)
    clients.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = msg.data
                if data.startswith(BROADCAST_PREFIX):
                    payload = data[PREFIX_LEN:]
                    for client in list(clients):
                        if not client.closed:
                            await client.send_str(payload)
                else:
                    await ws.send_str(data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        clients.discard(ws)
    return ws


async def main():
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    announce(site._server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


if __name__ == "__main__":
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    asyncio.run(main())
