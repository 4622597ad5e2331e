"""An echo agent in the Twilio Media Streams protocol: what the caller says comes straight back."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Callable

from websockets.asyncio.server import Server, serve

from trunkline.media.g711 import pcmu_decode
from trunkline.media._audioop import audioop


class EchoAgent:
    """``on_level(rms)`` is told the loudness of every frame the agent hears (for the demo's meter)."""

    def __init__(self, on_level: Callable[[int], None] | None = None) -> None:
        self.on_level = on_level
        self.frames = 0
        self._server: Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await serve(self._session, host, port, compression=None)
        return f"ws://{host}:{self._server.sockets[0].getsockname()[1]}/echo"

    async def _session(self, ws) -> None:
        stream_sid = ""
        async for raw in ws:
            message = json.loads(raw)
            if message.get("event") == "start":
                stream_sid = message["streamSid"]
            elif message.get("event") == "media":
                payload = message["media"]["payload"]
                self.frames += 1
                if self.on_level is not None:
                    self.on_level(audioop.rms(pcmu_decode(base64.b64decode(payload)), 2))
                await ws.send(json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def main(port: int) -> None:  # pragma: no cover - for running the agent in its own process
    url = await EchoAgent().start(port=port)
    print(url, flush=True)
    await asyncio.Event().wait()
