"""websockets (asyncio API), compression off; broadcast with websockets.broadcast().

--deflate: websockets' own default, compression="deflate" (permessage-deflate
with its default settings), for the deflate group.
"""

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BACKLOG, BROADCAST_PREFIX, announce, exit_on_sigterm, raise_nofile  # noqa: E402

from websockets.asyncio.server import broadcast, serve  # noqa: E402

PREFIX_LEN = len(BROADCAST_PREFIX)


async def main():
    server = None

    async def handler(ws):
        async for msg in ws:
            if msg.__class__ is str and msg.startswith(BROADCAST_PREFIX):
                broadcast(server.connections, msg[PREFIX_LEN:])
            else:
                await ws.send(msg)

    compression = "deflate" if "--deflate" in sys.argv[1:] else None
    server = await serve(handler, "127.0.0.1", 0, compression=compression, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


if __name__ == "__main__":
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    asyncio.run(main())
