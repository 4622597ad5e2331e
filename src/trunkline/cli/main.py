"""Entry point of the ``trunkline`` command (typer + rich)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import asdict
from enum import IntEnum
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from trunkline.enums import DialplanAction, EventType

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Trunkline: SIP trunks and RTP to AI voice agents, driven over the TeleQuick RPC.")
buckets_app = typer.Typer(no_args_is_help=False, help="Parked calls, by bucket.")
bulk_app = typer.Typer(no_args_is_help=True, help="Campaigns: many calls from a CSV, paced.")
keys_app = typer.Typer(no_args_is_help=True, help="Service accounts for JWT mode.")
app.add_typer(buckets_app, name="buckets")
app.add_typer(bulk_app, name="bulk")
app.add_typer(keys_app, name="keys")

# No emoji codes: a fingerprint's ":CD:" or ":AB:" must print as hex, not as a picture.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

ConfigOption = typer.Option(None, "--config", "-c", envvar="TRUNKLINE_CONFIG", help="TOML config file (default: built-in loopback defaults).")


class Target:
    """Where client commands connect, from the shared options."""

    def __init__(self, endpoint: str, credentials: Optional[Path], ca: Optional[Path], insecure: bool, data_dir: Path,
                 timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.credentials = credentials
        self.ca = ca
        self.insecure = insecure
        self.data_dir = data_dir

    def client(self, **kwargs: Any):
        from trunkline.sdk import Client
        from trunkline.sdk.client import parse_endpoint

        ca = self.ca
        if ca is None and not self.insecure:
            # A gateway on this machine with its own self-signed certificate: trust exactly that one.
            local = self.data_dir / "tls" / "cert.pem"
            host, _ = parse_endpoint(self.endpoint)
            if host in ("127.0.0.1", "::1", "localhost") and local.exists():
                ca = local
        return Client.connect(self.endpoint, credentials=self.credentials, ca_file=ca, insecure=self.insecure,
                              timeout=self.timeout, **kwargs)


@app.callback()
def common(
    ctx: typer.Context,
    endpoint: str = typer.Option("127.0.0.1:9090", "--endpoint", "-e", envvar="TRUNKLINE_ENDPOINT", help="Gateway host:port."),
    credentials: Optional[Path] = typer.Option(None, "--credentials", envvar="TRUNKLINE_CREDENTIALS", help="Service-account JSON (JWT mode)."),
    ca: Optional[Path] = typer.Option(None, "--ca", envvar="TRUNKLINE_CA", help="CA or certificate file to trust."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the gateway's certificate."),
    data_dir: Path = typer.Option(Path(".trunkline"), "--data-dir", envvar="TRUNKLINE_DATA_DIR", help="Local gateway data (its certificate is trusted on loopback)."),
    timeout: float = typer.Option(10.0, "--timeout", envvar="TRUNKLINE_TIMEOUT", min=0.1, help="Seconds to wait for the gateway."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("quic").setLevel(logging.WARNING)
    ctx.obj = Target(endpoint, credentials, ca, insecure, data_dir, timeout)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def run_client(ctx: typer.Context, job: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``job(client)`` and turn every failure into one line and a non-zero exit."""
    from trunkline.sdk import ConnectionLost, TrunklineError

    async def main() -> Any:
        async with ctx.obj.client() as client:
            return await job(client)

    try:
        return asyncio.run(main())
    except ConnectionLost as exc:
        fail(str(exc))
    except TrunklineError as exc:
        fail(str(exc) if exc.code.name in str(exc) else f"{exc} ({exc.code.name})")
    except ValueError as exc:  # e.g. an unreadable credentials file
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130)


def load_config_or_fail(config: Optional[Path]):
    from trunkline.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        fail(f"config: {exc}", 2)


# --- gateway -------------------------------------------------------------------------------------


@app.command()
def serve(config: Optional[Path] = ConfigOption) -> None:
    """Run the gateway (loopback and open mode unless the config says otherwise)."""
    from trunkline.gateway import Gateway

    cfg = load_config_or_fail(config)
    try:
        import uvloop
    except ImportError:
        uvloop = None

    async def main() -> None:
        try:
            gateway = Gateway(cfg)
        except ValueError as exc:  # bad certificate or key material
            fail(str(exc), 2)
        try:
            await gateway.start()
        except OSError as exc:
            fail(f"cannot listen on {cfg.server.quic_listen}: {exc.strerror or exc}")
        host, port = gateway.rpc.address
        out.print(f"[bold]trunkline[/bold] serving TeleQuick RPC on [cyan]{host}:{port}[/cyan] "
                  f"(auth {cfg.auth.mode}, {len(cfg.trunks)} trunk(s))")
        out.print(f"certificate sha256 {gateway.certificate.fingerprint_hex}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        out.print("stopping")
        await gateway.close()

    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())


@app.command()
def demo(seconds: float = typer.Option(6.0, "--seconds", min=2.0, max=60.0, help="How long the demo call lasts.")) -> None:
    """Place one call end to end on loopback: a built-in carrier, the gateway and an echo agent."""
    from trunkline.demo.run import run_demo

    if logging.getLogger().level > logging.DEBUG:  # the live view is the output; keep logs to warnings
        logging.getLogger().setLevel(logging.WARNING)
    code = asyncio.run(run_demo(seconds, out))
    raise typer.Exit(code)


@app.command()
def cert(config: Optional[Path] = ConfigOption) -> None:
    """Show the gateway's TLS certificate (making the local one if there is none yet)."""
    from trunkline.gateway import certificate_for

    cfg = load_config_or_fail(config)
    try:
        material = certificate_for(cfg)
    except ValueError as exc:
        fail(str(exc), 2)
    out.print(f"certificate  {material.cert_path}")
    out.print(f"sha256       {material.fingerprint_hex}")
    out.print(f"valid until  {material.not_after.isoformat()}" + ("  (self-signed, renewed automatically)" if material.self_signed else ""))


# --- calls ---------------------------------------------------------------------------------------


def _action(name: str) -> DialplanAction:
    try:
        return DialplanAction[name.upper()]
    except KeyError:
        fail(f"unknown app {name!r}; one of: {', '.join(a.name.lower() for a in DialplanAction if a <= 6)}")


@app.command()
def dial(
    ctx: typer.Context,
    to: str = typer.Argument(..., help="E.164 number (+15551234567) or SIP URI."),
    trunk: str = typer.Option(..., "--trunk", "-t", help="Configured trunk id."),
    call_from: str = typer.Option("", "--from", "-f", help="Caller id."),
    app_name: str = typer.Option("park", "--app", help="What the call lands in: hangup, park, music_on_hold, playback, unpark_and_bridge, answer, ai_bidirectional_stream."),
    app_args: str = typer.Option("", "--app-args"),
    ai_ws: str = typer.Option("", "--ai-ws", help="Agent WebSocket URL."),
    ai_quic: str = typer.Option("", "--ai-quic", help="Agent QUIC/WebTransport URL."),
    max_duration: int = typer.Option(0, "--max-duration-ms"),
    call_sid: str = typer.Option("", "--call-sid", help="Idempotency key."),
    follow: bool = typer.Option(False, "--follow", help="Stay and print the call's events until it hangs up."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Place a call through a trunk."""
    action = _action(app_name)

    async def job(client):
        response = await client.dial(to, trunk_id=trunk, call_from=call_from, default_app=action, default_app_args=app_args,
                                     ai_websocket_url=ai_ws, ai_quic_url=ai_quic, max_duration_ms=max_duration, call_sid=call_sid)
        _print(as_json, asdict(response), f"{response.call_sid}  {response.status}")
        if follow:
            async for event in client.events():
                if event.call_sid == response.call_sid:
                    _print_event(event, as_json)
                    if event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
                        return

    run_client(ctx, job)


@app.command()
def hangup(ctx: typer.Context, call_sid: str) -> None:
    """End a call (CANCEL while ringing, BYE once answered)."""
    response = run_client(ctx, lambda c: c.terminate(call_sid))
    out.print(f"{response.call_sid}  {response.status}")


@app.command()
def events(
    ctx: typer.Context,
    client_id: str = typer.Option("", "--client-id", help="Follow calls placed with this client id (default: the tenant's unrouted calls)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Print call events live until interrupted."""

    async def job(client):
        async for event in client.events(client_id or None):
            _print_event(event, as_json)

    run_client(ctx, job)


def _verb(name: str, doc: str, call: Callable[..., Any]) -> None:
    def command(ctx: typer.Context, call_sid: str, wire: bool = typer.Option(False, "--wire", help="Also re-INVITE (MUTE/UNMUTE).")) -> None:
        response = run_client(ctx, lambda c: call(c, call_sid, wire))
        out.print(f"{call_sid}  {response.status or 'OK'}")

    command.__doc__ = doc
    app.command(name)(command)


_verb("mute", "Stop sending audio to the caller.", lambda c, sid, wire: c.mute(sid, wire))
_verb("unmute", "Undo mute.", lambda c, sid, wire: c.unmute(sid, wire))
_verb("hold", "Put the far end on hold (re-INVITE sendonly).", lambda c, sid, wire: c.hold(sid))
_verb("unhold", "Resume a held call.", lambda c, sid, wire: c.unhold(sid))


@app.command()
def transfer(ctx: typer.Context, call_sid: str, to: str = typer.Argument(..., help="E.164 or SIP URI.")) -> None:
    """Blind-transfer a call with SIP REFER."""
    response = run_client(ctx, lambda c: c.transfer(call_sid, to))
    out.print(f"{call_sid}  {response.status or 'OK'}")


@app.command()
def dtmf(
    ctx: typer.Context,
    call_sid: str,
    digits: str = typer.Argument(..., help="Digits 0-9 * # A-D."),
    mode: str = typer.Option("rfc2833", "--mode", help="rfc2833, info or inband."),
    duration: int = typer.Option(100, "--duration-ms", min=40, max=4000),
) -> None:
    """Send DTMF digits into a call."""
    bad = set(digits.upper()) - set("0123456789*#ABCD")
    if bad:
        fail(f"not DTMF digits: {''.join(sorted(bad))}")
    run_client(ctx, lambda c: c.send_dtmf(call_sid, digits.upper(), mode, duration))
    out.print(f"{call_sid}  sent {digits}")


# --- buckets -------------------------------------------------------------------------------------

BUCKET_ACTIONS = {"hangup": 0, "unpark": 1, "announce": 2}


@buckets_app.callback(invoke_without_command=True)
def buckets_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List buckets with parked calls."""
    if ctx.invoked_subcommand:
        return
    found = run_client(ctx, lambda c: c.get_active_buckets())
    if as_json:
        out.print_json(data=[asdict(b) for b in found])
        return
    table = Table("bucket", "parked")
    for b in found:
        table.add_row(b.bucket_id, str(b.pending_count))
    out.print(table)


@buckets_app.command("calls")
def buckets_calls(ctx: typer.Context, bucket_id: str) -> None:
    """List the calls parked in a bucket."""
    for sid in run_client(ctx, lambda c: c.get_bucket_calls(bucket_id)):
        out.print(sid)


@buckets_app.command("act")
def buckets_act(ctx: typer.Context, bucket_id: str, action: str = typer.Argument(..., help="hangup, unpark or announce.")) -> None:
    """Act on every call in a bucket."""
    if action not in BUCKET_ACTIONS:
        fail(f"unknown action {action!r}; one of: {', '.join(BUCKET_ACTIONS)}")
    count = run_client(ctx, lambda c: c.execute_bucket_action(bucket_id, BUCKET_ACTIONS[action]))
    out.print(f"{bucket_id}: {count} call(s) processed")


# --- bulk ----------------------------------------------------------------------------------------


@bulk_app.command("start")
def bulk_start(
    ctx: typer.Context,
    csv_url: str = typer.Argument(..., help="HTTPS URL of a CSV; first column = destination."),
    trunk: str = typer.Option(..., "--trunk", "-t"),
    campaign: str = typer.Option(..., "--campaign", help="Campaign id (for abort)."),
    call_from: str = typer.Option("", "--from", "-f"),
    cps: int = typer.Option(1, "--cps", min=1, help="Calls per second."),
    max_concurrent: int = typer.Option(10, "--max-concurrent", min=1),
    app_name: str = typer.Option("park", "--app"),
    app_args: str = typer.Option("", "--app-args"),
    ai_ws: str = typer.Option("", "--ai-ws"),
    max_duration: int = typer.Option(0, "--max-duration-ms"),
) -> None:
    """Start a campaign."""
    action = _action(app_name)
    response = run_client(ctx, lambda c: c.originate_bulk(
        csv_url=csv_url, template_trunk_id=trunk, template_call_from=call_from, template_default_app=action,
        template_default_app_args=app_args, template_ai_websocket_url=ai_ws, template_max_duration_ms=max_duration,
        calls_per_second=cps, max_concurrent_calls=max_concurrent, campaign_id=campaign))
    out.print(f"{campaign}: {response.status}, {response.loaded_numbers} number(s) loaded")


@bulk_app.command("abort")
def bulk_abort(ctx: typer.Context, campaign: str) -> None:
    """Stop a campaign."""
    response = run_client(ctx, lambda c: c.abort_bulk(campaign))
    out.print(f"{campaign}: {response.status}")


# --- keys ----------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant"),
    kid: str = typer.Option(..., "--kid"),
    output: Path = typer.Option(..., "--out", "-o", help="Where to write the service-account JSON (private)."),
    algorithm: str = typer.Option("ES256", "--alg", help="ES256 or RS256."),
) -> None:
    """Make a service account: the JSON for the client, the [[tenants]] entry for the gateway."""
    from trunkline.auth.service_account import create_service_account

    if algorithm not in ("ES256", "RS256"):
        fail("--alg must be ES256 or RS256")
    if output.exists():
        fail(f"{output} exists; not overwriting a private key")
    account, public_pem = create_service_account(tenant, kid, algorithm)  # type: ignore[arg-type]
    output.touch(mode=0o600)
    output.write_text(account.to_json())
    err.print(f"wrote {output} (keep it secret); add this to the gateway config:")
    out.print(f'[[tenants]]\nid = "{tenant}"\nkeys = [{{ kid = "{kid}", public_key_pem = """\n{public_pem.strip()}\n""" }}]', markup=False)


# --- output --------------------------------------------------------------------------------------


def _print(as_json: bool, data: dict, human: str) -> None:
    if as_json:
        print(json.dumps(_jsonable(data)), flush=True)
    else:
        out.print(human)


def _jsonable(data: dict) -> dict:
    return {k: (v.name if isinstance(v, IntEnum) else v) for k, v in data.items()}


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_jsonable(asdict(event))), flush=True)
        return
    when = datetime.fromtimestamp((event.timestamp_ms or 0) / 1000, timezone.utc) if event.timestamp_ms else datetime.now(timezone.utc)
    line = f"{when:%H:%M:%S.%f}"[:-3] + f"  {event.call_sid}  [bold]{event.event_type.name}[/bold]  {event.status}"
    if event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
        line += (f"  q850={event.q850_cause} dur={event.duration_seconds}s codec={event.codec or '-'}"
                 f" rtp tx={event.packets_sent} rx={event.packets_received} lost={event.packets_lost}"
                 f" jitter={event.jitter_ms:.1f}ms mos={event.estimated_mos:.2f}")
    out.print(line)

