#!/usr/bin/env python3
"""Opens COUNT keep-alive connections to HOST:PORT, sends one GET on each and reads its
answer, then holds them all open, idle. benches/run.sh's `idle10k` profile uses it to read a
proxy's memory with that many idle clients.

    idle_conns.py HOST PORT COUNT READY_FILE [HOLD_SECONDS] [tls]

Writes "<ok> <failed>" to READY_FILE once every connection has had its answer (or failed),
then waits HOLD_SECONDS (default 60) or until killed, and closes everything."""
import asyncio
import ssl
import sys

HOST, PORT, COUNT, READY = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
HOLD = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
# "tls": the connections are TLS (the certificate is not checked: a bench's self-signed one).
TLS = None
if len(sys.argv) > 6 and sys.argv[6] == "tls":
    TLS = ssl.create_default_context()
    TLS.check_hostname = False
    TLS.verify_mode = ssl.CERT_NONE
REQUEST = b"GET /small HTTP/1.1\r\nHost: bench.local\r\n\r\n"
# Connections opened at once: a proxy's accept backlog is finite.
CONNECTING = 256


async def one(gate, held):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT, ssl=TLS), 10)
            writer.write(REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
            if not head.startswith(b"HTTP/1.1 200"):
                writer.close()
                return False
            held.append(writer)
            return True
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            return False


async def main():
    gate = asyncio.Semaphore(CONNECTING)
    held = []
    results = await asyncio.gather(*(one(gate, held) for _ in range(COUNT)))
    ok = sum(results)
    with open(READY, "w") as f:
        f.write(f"{ok} {COUNT - ok}\n")
    await asyncio.sleep(HOLD)
    for w in held:
        w.close()


asyncio.run(main())
