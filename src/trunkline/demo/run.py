"""The demo's script: gateway + carrier + echo agent on loopback, one call through the SDK, shown live."""

from __future__ import annotations

import asyncio
import tempfile
from importlib import resources
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trunkline.config import config_from_dict
from trunkline.demo.carrier import DemoCarrier
from trunkline.demo.echo_agent import EchoAgent
from trunkline.enums import DialplanAction, EventType
from trunkline.gateway import Gateway
from trunkline.media_engine.clock import MediaClock
from trunkline.media_engine.ports import RtpPortPool
from trunkline.sdk import Client


class Levels:
    """Peak loudness per path since the last screen refresh."""

    def __init__(self) -> None:
        self.agent = 0
        self.caller = 0

    def meter(self, value: int) -> Text:
        width = min(40, value * 40 // 12000)
        return Text("█" * width + "·" * (40 - width), style="green" if width else "dim")


async def run_demo(seconds: float, console: Console) -> int:
    levels = Levels()
    agent = EchoAgent(on_level=lambda rms: setattr(levels, "agent", max(levels.agent, rms)))
    agent_url = await agent.start()
    data_dir = Path(tempfile.mkdtemp(prefix="trunkline-demo-"))
    # The carrier's trunk port is known only once it listens, so the gateway is configured after it.
    voice = resources.files("trunkline.telephony").joinpath("assets/hold_music.wav").read_bytes()
    carrier = DemoCarrier(MediaClock(), RtpPortPool("127.0.0.1", 40000, 40999), voice,
                          on_level=lambda rms: setattr(levels, "caller", max(levels.caller, rms)))
    carrier_host, carrier_port = await carrier.start()
    gateway = Gateway(config_from_dict({
        "server": {"quic_listen": "127.0.0.1:0", "data_dir": str(data_dir)},
        "sip": {"listen": "127.0.0.1:0"},
        "trunks": [{"id": "demo-carrier", "host": carrier_host, "port": carrier_port, "keepalive_s": 0}],
    }))
    await gateway.start()
    host, port = gateway.rpc.address
    events: list[str] = []
    final = None
    try:
        async with Client.connect(f"{host}:{port}", ca_file=gateway.certificate.cert_path) as client:
            stream = client.events().__aiter__()
            call = await client.dial("+15550100200", trunk_id="demo-carrier", default_app=DialplanAction.AI_BIDIRECTIONAL_STREAM,
                                     ai_websocket_url=agent_url)
            events.append(f"Originate → {call.call_sid} {call.status}")
            answered = asyncio.Event()

            async def collect() -> None:
                nonlocal final
                async for event in stream:
                    events.append(f"{event.event_type.name:<24} {event.status}")
                    if event.event_type == EventType.CHANNEL_ANSWER:
                        answered.set()
                    elif event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
                        final = event
                        return

            async def hang_up_when_time_is_up() -> None:
                """Hang up as an application would, so the call ends COMPLETED (Q.850 16): letting
                max_duration_ms end it reports TIMEOUT, which reads like a failure."""
                await answered.wait()
                await asyncio.sleep(seconds)
                events.append(f"Terminate → {call.call_sid} (the demo's {seconds:g} s are up)")
                await client.terminate(call.call_sid)

            collector = asyncio.create_task(collect())
            ender = asyncio.create_task(hang_up_when_time_is_up())
            with Live(console=console, refresh_per_second=10, transient=False) as live:
                while True:
                    table = Table.grid(padding=(0, 2))
                    table.add_row("carrier → agent", levels.meter(levels.agent))
                    table.add_row("agent → carrier", levels.meter(levels.caller))
                    live.update(Group(Text("trunkline demo: carrier ⇄ gateway ⇄ echo agent, all on 127.0.0.1\n", style="bold"),
                                      Text("\n".join(events[-6:])), Text(""), table))
                    if collector.done():
                        break
                    levels.agent = levels.caller = 0
                    await asyncio.sleep(0.1)
            ender.cancel()  # when the call ended before its time was up
            await collector
    finally:
        await gateway.close()
        carrier.close()
        await agent.close()
    if final is None:
        console.print("[red]the call ended without a hangup event[/red]")
        return 1
    console.print(f"\ncall {final.call_sid}: {final.status} (Q.850 {final.q850_cause}), {final.duration_seconds}s, codec {final.codec}, "
                  f"RTP sent {final.packets_sent} / received {final.packets_received}, lost {final.packets_lost}, "
                  f"jitter {final.jitter_ms:.1f} ms, MOS {final.estimated_mos:.2f}")
    return 0 if final.status == "COMPLETED" and final.packets_received and agent.frames else 1
