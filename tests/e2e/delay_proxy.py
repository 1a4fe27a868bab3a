#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a configurable time, each way.

This kernel has no netem, so the fault tests put this between the gateway
and an exporter to add latency. Usage:

    delay_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_FILE

DELAY_FILE holds the delay in milliseconds (missing or empty: 0); it is read
again for every chunk, so a test changes the delay while traffic flows.
Order is kept: each direction is a queue released at (arrival + delay).
"""
import asyncio
import sys
import time


def delay_seconds(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) / 1000.0 if text else 0.0
    except (OSError, ValueError):
        return 0.0


async def pump(reader, writer, path):
    queue = asyncio.Queue()

    async def release():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    releaser = asyncio.ensure_future(release())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await queue.put((time.monotonic() + delay_seconds(path), data))
    except (ConnectionError, OSError):
        pass
    await queue.put((0, None))
    try:
        await releaser
    except (ConnectionError, OSError):
        pass


async def main():
    listen_port, host, port, path = (int(sys.argv[1]), sys.argv[2],
                                     int(sys.argv[3]), sys.argv[4])

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(
                host, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, server_writer, path),
                             pump(server_reader, client_writer, path))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
