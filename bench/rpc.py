"""RPC throughput and latency: Trunkline's QUIC front door beside bare QUIC echo servers.

Every server runs in its own process (uvloop when installed) on 127.0.0.1; one client process drives
it with 1 and then 16 requests in flight on one connection for a fixed time. The floor is a bare
aioquic server that answers each bidi stream with a fixed frame and does nothing else; a bare qh3
server (the aioquic fork) is measured the same way to show what swapping the QUIC library would buy.
Figures: RPCs/s, p50/p99 latency, server CPU per RPC, and Trunkline's ratio to the aioquic floor.

    python bench/rpc.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from trunkline.wire import METHODS_BY_NAME, encode_frame
from trunkline.wire import dtos as d

METHOD = METHODS_BY_NAME["Authenticate"]
REQUEST = encode_frame(METHOD.method_id, d.AuthRequest(token=""))
RESPONSE = encode_frame(METHOD.method_id, d.AuthResponse(tenant_id="local", status="OK"))


# --- bare echo servers (run in a child process) ---------------------------------------------------


def serve_echo(lib: str, port: int, cert: str, key: str) -> None:
    asyncio_mod = importlib.import_module(f"{lib}.asyncio")
    events = importlib.import_module(f"{lib}.quic.events")
    configuration_mod = importlib.import_module(f"{lib}.quic.configuration")

    class Echo(asyncio_mod.QuicConnectionProtocol):
        def quic_event_received(self, event):
            if isinstance(event, events.StreamDataReceived) and event.end_stream:
                self._quic.send_stream_data(event.stream_id, RESPONSE, end_stream=True)
                self.transmit()

    async def main() -> None:
        configuration = configuration_mod.QuicConfiguration(is_client=False, alpn_protocols=["h3"])
        configuration.load_cert_chain(cert, key)
        await asyncio_mod.serve("127.0.0.1", port, configuration=configuration, create_protocol=Echo)
        print("ready", flush=True)
        await asyncio.Event().wait()

    _run(main())


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


# --- load client ------------------------------------------------------------------------------------


async def drive(port: int, inflight: int, seconds: float) -> list[float]:
    from aioquic.asyncio import QuicConnectionProtocol, connect
    from aioquic.quic import events
    from aioquic.quic.configuration import QuicConfiguration

    class Client(QuicConnectionProtocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.waiting: dict[int, asyncio.Future] = {}

        def quic_event_received(self, event):
            if isinstance(event, events.StreamDataReceived) and event.end_stream:
                self.waiting.pop(event.stream_id).set_result(None)

        async def call(self) -> None:
            stream_id = self._quic.get_next_available_stream_id()
            future = self.waiting[stream_id] = asyncio.get_running_loop().create_future()
            self._quic.send_stream_data(stream_id, REQUEST, end_stream=True)
            self.transmit()
            await future

    configuration = QuicConfiguration(is_client=True, alpn_protocols=["h3"])
    configuration.verify_mode = ssl.CERT_NONE
    latencies: list[float] = []
    async with connect("127.0.0.1", port, configuration=configuration, create_protocol=Client) as client:
        for _ in range(50):  # warm-up
            await client.call()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while (start := time.perf_counter()) < deadline:
                await client.call()
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(inflight)))
    return latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, port: int, cert: str, key: str, workdir: Path) -> subprocess.Popen:
    if kind == "trunkline":
        config = workdir / "bench.toml"
        config.write_text(f'[server]\nquic_listen = "127.0.0.1:{port}"\ncert_file = "{cert}"\nkey_file = "{key}"\n'
                          '[sip]\nlisten = "127.0.0.1:0"\n')
        cmd = [sys.executable, "-m", "trunkline", "serve", "--config", str(config)]
        ready = "serving"
    else:
        cmd = [sys.executable, __file__, "--serve-echo", kind, "--port", str(port), "--cert", cert, "--key", key]
        ready = "ready"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)
    for line in proc.stdout:
        if ready in line:
            return proc
    raise RuntimeError(f"{kind} server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per server and depth")
    parser.add_argument("--serve-echo", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo, args.port, args.cert, args.key)
        return

    from trunkline.certs import ensure_certificate

    workdir = Path(tempfile.mkdtemp(prefix="trunkline-bench-"))
    material = ensure_certificate(workdir, datetime.now(timezone.utc))
    cert, key = str(material.cert_path), str(material.key_path)
    servers = ["aioquic", "qh3", "trunkline"]
    results: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    print(f"{'server':<11} {'in flight':>9} {'RPC/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'server CPU us/RPC':>18}")
    for kind in servers:
        port = free_port()
        proc = start_server(kind, port, cert, key, workdir)
        try:
            for inflight in (1, 16):
                cpu_before = cpu_seconds(proc.pid)
                t0 = time.perf_counter()
                latencies = asyncio.run(drive(port, inflight, args.seconds))
                elapsed = time.perf_counter() - t0
                cpu = cpu_seconds(proc.pid) - cpu_before
                rate = len(latencies) / args.seconds
                q = statistics.quantiles(latencies, n=100)
                cpu_per = cpu / (len(latencies) + 50) * 1e6
                results[(kind, inflight)] = (rate, q[49] * 1e3, q[98] * 1e3, cpu_per)
                print(f"{kind:<11} {inflight:>9} {rate:>8.0f} {q[49] * 1e3:>7.2f} {q[98] * 1e3:>7.2f} {cpu_per:>18.0f}", flush=True)
                del elapsed
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print()
    for inflight in (1, 16):
        floor, ours = results[("aioquic", inflight)], results[("trunkline", inflight)]
        qh3 = results[("qh3", inflight)]
        print(f"in flight {inflight:>2}: trunkline/aioquic-floor throughput ratio {ours[0] / floor[0]:.2f} "
              f"(goal >= 0.80); qh3/aioquic floor ratio {qh3[0] / floor[0]:.2f}")


if __name__ == "__main__":
    main()
