"""Entry point of the ``trunkline`` command (typer + rich)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from dataclasses import asdict
from enum import IntEnum
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from trunkline.enums import DialplanAction, EventType

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Trunkline: SIP trunks and RTP to AI voice agents, driven over the TeleQuick RPC.")
buckets_app = typer.Typer(no_args_is_help=False, help="Parked calls, by bucket.")
bulk_app = typer.Typer(no_args_is_help=True, help="Campaigns: many calls from a CSV, paced.")
keys_app = typer.Typer(no_args_is_help=True, help="Service accounts for JWT mode.")
app.add_typer(buckets_app, name="buckets")
app.add_typer(bulk_app, name="bulk")
app.add_typer(keys_app, name="keys")
config_app = typer.Typer(no_args_is_help=True, help="Gateway configuration files.")
app.add_typer(config_app, name="config")
webhook_app = typer.Typer(no_args_is_help=True, help="Signed webhooks (incoming calls waiting for an answer).")
app.add_typer(webhook_app, name="webhook")
inbound_app = typer.Typer(no_args_is_help=True, help="What calls coming in on a trunk get.")
app.add_typer(inbound_app, name="inbound")

# No emoji codes: a fingerprint's ":CD:" or ":AB:" must print as hex, not as a picture.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

ConfigOption = typer.Option(None, "--config", "-c", envvar="TRUNKLINE_CONFIG", help="TOML config file (default: built-in loopback defaults).")
DataDirOption = typer.Option(None, "--data-dir", help="The gateway's data directory (default: its config's, else ./.trunkline).")
#: The client_id every CLI command uses unless told otherwise, so that ``events`` in one terminal shows
#: the calls ``dial`` places from another (events routed to a client_id reach only its subscribers).
CLI_CLIENT_ID = "trunkline-cli"
ClientIdOption = typer.Option(CLI_CLIENT_ID, "--client-id", envvar="TRUNKLINE_CLIENT_ID",
                              help="Whose events: calls placed with this client id (every CLI command shares one by default).")


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

    def client(self, client_id: str = CLI_CLIENT_ID, **kwargs: Any):
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
                              timeout=self.timeout, client_id=client_id, **kwargs)


def _show_version(value: bool) -> None:
    if value:
        from trunkline import __version__

        out.print(f"trunkline {__version__}")
        raise typer.Exit()


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
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
) -> None:
    host, colon, port = endpoint.removeprefix("quic://").rpartition(":")
    if colon and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        fail(f"--endpoint {endpoint!r}: expected host:port with a port number 1-65535")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # aioquic logs a refused handshake as a warning too: the error line says it once
        logging.getLogger("quic").setLevel(logging.ERROR)
    ctx.obj = Target(endpoint, credentials, ca, insecure, data_dir, timeout)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def run_client(ctx: typer.Context, job: Callable[[Any], Awaitable[Any]], client_id: str = CLI_CLIENT_ID) -> Any:
    """Run ``job(client)`` and turn every failure into one line and a non-zero exit."""
    from trunkline.sdk import CertificateRefused, ConnectionLost, TrunklineError, Unauthorized

    target: Target = ctx.obj

    async def main() -> Any:
        async with target.client(client_id) as client:
            return await job(client)

    try:
        return asyncio.run(main())
    except CertificateRefused as exc:
        fail(f"{exc}; trust it with --ca FILE (`trunkline cert` in the gateway's directory shows the file)")
    except ConnectionLost as exc:
        fail(str(exc))
    except Unauthorized as exc:
        if target.credentials is None:
            fail(f"{exc}: the gateway wants a token (JWT mode); pass --credentials FILE or set TRUNKLINE_CREDENTIALS "
                 "to a service-account JSON (trunkline keys create)")
        fail(_refusal(exc))
    except TrunklineError as exc:
        fail(_refusal(exc))
    except socket.gaierror as exc:
        fail(f"cannot resolve the host of {target.endpoint}: {exc.strerror}")
    except ValueError as exc:  # e.g. an unreadable credentials file
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130)


def _refusal(exc: Any) -> str:
    return str(exc) if exc.code.name in str(exc) else f"{exc} ({exc.code.name})"


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
    from trunkline.gateway import Gateway, ListenError
    from trunkline.store import StoreError

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
        except ListenError as exc:
            fail(exc.strerror)
        except StoreError as exc:
            fail(str(exc))
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
def cert(
    ctx: typer.Context,
    config: Optional[Path] = ConfigOption,
    data_dir: Optional[Path] = DataDirOption,
    make_ca: bool = typer.Option(False, "--ca", help="Make a local CA (once) and issue the gateway's certificate from it, for SDKs that verify against a CA bundle."),
) -> None:
    """Show the TLS certificate of the gateway that uses this data directory.

    Only --ca makes anything: a gateway makes its own certificate when it starts."""
    from trunkline.gateway import MAINTENANCE_INTERVAL_S, certificate_for, current_certificate

    cfg = _gateway_config(ctx, config, data_dir)
    if make_ca and cfg.server.cert_file is not None:
        fail(f"--ca: the gateway serves the configured {cfg.server.cert_file}; a local CA only issues the local certificate", 2)
    try:
        material = certificate_for(cfg, make_ca=True) if make_ca else current_certificate(cfg)
    except ValueError as exc:
        fail(str(exc), 2)
    if material is None:
        fail(f"no gateway certificate in {cfg.server.data_dir.resolve()}: no gateway ran with this data directory; pass the "
             "gateway's --config or --data-dir, or make a local CA with `trunkline cert --ca`")
    issuer = "local CA" if material.local_ca else "self-signed" if material.self_signed else "configured"
    out.print(f"certificate  {material.cert_path.resolve()}  ({issuer})")
    out.print(f"sha256       {material.fingerprint_hex}")
    out.print(f"valid        {material.not_before:%Y-%m-%d %H:%M} to {material.not_after:%Y-%m-%d %H:%M} UTC"
              + ("" if cfg.server.cert_file else "  (the gateway renews it)"))
    out.print(f"names        {', '.join(material.hostnames)}")
    if material.local_ca:
        import shlex

        ca = material.local_ca.resolve()
        out.print(f"ca           {ca}")
        out.print(f'trust it     cat {shlex.quote(str(ca))} >> "$(python -m certifi)"', markup=False)
    if make_ca:
        err.print(f"run the trust line once in each Python environment of an SDK; a running gateway "
                  f"serves the new certificate within {MAINTENANCE_INTERVAL_S:g} s")


def _gateway_config(ctx: typer.Context, config: Optional[Path], data_dir: Optional[Path]):
    """The config of the gateway a local command (cert, webhook secret) describes; a --data-dir (this
    command's, or the global one when given) overrides the config's."""
    from dataclasses import replace

    cfg = load_config_or_fail(config)
    if data_dir is None and ctx.find_root().get_parameter_source("data_dir").name != "DEFAULT":  # click's enum
        data_dir = ctx.obj.data_dir
    if data_dir is not None:
        cfg = replace(cfg, server=replace(cfg.server, data_dir=data_dir))
    return cfg


@webhook_app.command("secret")
def webhook_secret(ctx: typer.Context, config: Optional[Path] = ConfigOption, data_dir: Optional[Path] = DataDirOption) -> None:
    """Print the secret that signs webhooks of tenants with no webhook_secret (made on first use)."""
    from trunkline.telephony.webhook_sender import ensure_webhook_secret

    cfg = _gateway_config(ctx, config, data_dir)
    try:
        out.print(ensure_webhook_secret(cfg.server.data_dir), markup=False)
    except OSError as exc:
        fail(f"cannot read or make the webhook secret in {cfg.server.data_dir}: {exc.strerror or exc}")


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="The TOML file `trunkline serve --config` would read.")) -> None:
    """Validate a config file as `serve` would, without starting anything."""
    cfg = load_config_or_fail(file)
    out.print(f"{file}: OK: RPC on {cfg.server.quic_listen} (auth {cfg.auth.mode}), SIP on {cfg.sip.listen}, "
              f"{len(cfg.trunks)} trunk(s), {len(cfg.agents)} agent(s), data in {cfg.server.data_dir}")


# --- calls ---------------------------------------------------------------------------------------


def _action(name: str) -> DialplanAction:
    try:
        return DialplanAction[name.upper()]
    except KeyError:
        fail(f"unknown app {name!r}; one of: {', '.join(a.name.lower() for a in DialplanAction if a <= 6)}")


APPS_HELP = "hangup, park, music_on_hold, playback, unpark_and_bridge, answer or ai_bidirectional_stream"
AppArgsOption = typer.Option("", "--app-args", help="The app's argument: park = bucket id, playback = .wav path or URL, "
                             "unpark_and_bridge = the parked call_sid, ai_bidirectional_stream = an \\[\\[agents]] id.")
MaxDurationOption = typer.Option(0, "--max-duration-ms", min=0, help="Hang up after this long once answered (0 = the trunk's max_duration_s).")
JsonOption = typer.Option(False, "--json", help="One JSON object per line instead of text.")


@app.command()
def dial(
    ctx: typer.Context,
    to: str = typer.Argument(..., help="E.164 number (+15551234567) or SIP URI."),
    trunk: str = typer.Option(..., "--trunk", "-t", help="Configured trunk id."),
    call_from: str = typer.Option("", "--from", "-f", help="Caller id (must be in the trunk's caller_ids if it lists any)."),
    app_name: Optional[str] = typer.Option(None, "--app", help=f"What the call runs once answered: {APPS_HELP} "
                                           "(default: park, or ai_bidirectional_stream with --agent/--ai-ws/--ai-quic)."),
    app_args: str = AppArgsOption,
    agent: str = typer.Option("", "--agent", help="An \\[\\[agents]] id from the gateway's config to stream the call to."),
    ai_ws: str = typer.Option("", "--ai-ws", help="Agent WebSocket URL (ws:// or wss://, Twilio Media Streams)."),
    ai_quic: str = typer.Option("", "--ai-quic", help="Agent QUIC/WebTransport URL (https:// or quic://)."),
    max_duration: int = MaxDurationOption,
    call_sid: str = typer.Option("", "--call-sid", help="Your id for the call; repeating it never places a second call."),
    client_id: str = ClientIdOption,
    follow: bool = typer.Option(False, "--follow", help="Stay and print the call's events until it hangs up."),
    as_json: bool = JsonOption,
) -> None:
    """Place a call through a trunk."""
    streams = bool(agent or ai_ws or ai_quic)
    action = _action(app_name or ("ai_bidirectional_stream" if streams else "park"))

    async def job(client):
        response = await client.dial(to, trunk_id=trunk, call_from=call_from, default_app=action, default_app_args=app_args,
                                     ai_websocket_url=ai_ws, ai_quic_url=ai_quic, max_duration_ms=max_duration,
                                     call_sid=call_sid, agent_config_key=agent)
        _print(as_json, asdict(response), f"{response.call_sid}  {response.status}")
        if not follow:
            if not as_json:
                events_cmd = "trunkline events" + ("" if client_id == CLI_CLIENT_ID else f" --client-id {client_id}")
                err.print(f"follow it with `{events_cmd}`, end it with `trunkline hangup {response.call_sid}`", markup=False)
            return
        async for event in client.events():
            if event.call_sid == response.call_sid:
                _print_event(event, as_json)
                if event.event_type == EventType.CHANNEL_HANGUP_COMPLETE:
                    return

    run_client(ctx, job, client_id)


@app.command()
def hangup(ctx: typer.Context, call_sid: str = typer.Argument(..., help="The call to end.")) -> None:
    """End a call (CANCEL while ringing, BYE once answered)."""
    response = run_client(ctx, lambda c: c.terminate(call_sid))
    out.print(f"{response.call_sid}  {response.status}")


@app.command()
def events(ctx: typer.Context, client_id: str = ClientIdOption, as_json: bool = JsonOption) -> None:
    """Print call events live until interrupted.

    Shows the calls placed with the client id (by default the one every CLI command shares, so a
    `dial` in another terminal shows here) and the tenant's calls placed with no client id."""

    async def job(client):
        async for event in client.events(client_id):
            _print_event(event, as_json)

    run_client(ctx, job, client_id)


def _verb(name: str, doc: str, call: Callable[..., Any]) -> None:
    def command(ctx: typer.Context, call_sid: str = typer.Argument(..., help="An answered call."),
                wire: bool = typer.Option(False, "--wire", help="mute/unmute: also re-INVITE the far end (a=recvonly).")) -> None:
        response = run_client(ctx, lambda c: call(c, call_sid, wire))
        out.print(f"{call_sid}  {response.status or 'OK'}")

    command.__doc__ = doc
    app.command(name)(command)


_verb("mute", "Stop sending audio to the caller.", lambda c, sid, wire: c.mute(sid, wire))
_verb("unmute", "Undo mute.", lambda c, sid, wire: c.unmute(sid, wire))
_verb("hold", "Put the far end on hold (re-INVITE sendonly).", lambda c, sid, wire: c.hold(sid))
_verb("unhold", "Resume a held call.", lambda c, sid, wire: c.unhold(sid))


@app.command()
def transfer(ctx: typer.Context, call_sid: str = typer.Argument(..., help="An answered call."),
             to: str = typer.Argument(..., help="E.164 or SIP URI.")) -> None:
    """Blind-transfer a call with SIP REFER."""
    response = run_client(ctx, lambda c: c.transfer(call_sid, to))
    out.print(f"{call_sid}  {response.status or 'OK'}")


@app.command()
def dtmf(
    ctx: typer.Context,
    call_sid: str = typer.Argument(..., help="An answered call."),
    digits: str = typer.Argument(..., help="Digits 0-9 * # A-D."),
    mode: str = typer.Option("rfc2833", "--mode", help="rfc2833 (RFC 4733 events), info (SIP INFO) or inband (tones)."),
    duration: int = typer.Option(100, "--duration-ms", min=40, max=4000, help="How long each digit sounds."),
) -> None:
    """Send DTMF digits into a call."""
    bad = sorted({c for c in digits if c.upper() not in "0123456789*#ABCD"})
    if bad:
        fail(f"not DTMF digits: {''.join(bad)} (use 0-9 * # A-D)")
    run_client(ctx, lambda c: c.send_dtmf(call_sid, digits.upper(), mode, duration))
    out.print(f"{call_sid}  sent {digits}")


# --- inbound -------------------------------------------------------------------------------------

INBOUND_RULES = {"reject": 0, "play-and-hangup": 1, "notify-and-hangup": 2, "handle-ai": 3}


@inbound_app.command("set")
def inbound_set(
    ctx: typer.Context,
    trunk: str = typer.Argument(..., help="The trunk the calls come in on."),
    rule: str = typer.Option(..., "--rule", help="reject, play-and-hangup, notify-and-hangup or handle-ai."),
    play: str = typer.Option("", "--play", help="play-and-hangup: an absolute .wav path, file:// or http(s) URL."),
    webhook: str = typer.Option("", "--webhook", help="notify-and-hangup: the http(s) URL that gets the signed notice."),
    ws: str = typer.Option("", "--ws", help="handle-ai: the agent's WebSocket URL."),
    quic: str = typer.Option("", "--quic", help="handle-ai: the agent's QUIC/WebTransport URL."),
) -> None:
    """Route a trunk's incoming calls (stored by the gateway: it survives a restart)."""
    from trunkline.enums import InboundRule

    if rule not in INBOUND_RULES:
        fail(f"unknown rule {rule!r}; one of: {', '.join(INBOUND_RULES)}")
    run_client(ctx, lambda c: c.set_inbound_routing(trunk, InboundRule(INBOUND_RULES[rule]), audio_url=play,
                                                    webhook_url=webhook, ai_websocket_url=ws, ai_quic_url=quic))
    out.print(f"{trunk}: {rule}")


@inbound_app.command("show")
def inbound_show(
    ctx: typer.Context,
    trunk: Optional[str] = typer.Argument(None, help="One trunk (default: every routed trunk)."),
    config: Optional[Path] = ConfigOption,
    data_dir: Optional[Path] = DataDirOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the routing the gateway stored (read from its data directory, on its machine)."""
    from trunkline.gateway import STORE_FILE
    from trunkline.store import SqliteStore, StoreError

    cfg = _gateway_config(ctx, config, data_dir)
    path = cfg.server.data_dir / STORE_FILE
    if not path.exists():
        fail(f"no gateway store in {cfg.server.data_dir.resolve()}: no gateway ran with this data directory; "
             "pass the gateway's --config or --data-dir")

    async def read():
        store = SqliteStore.open(path)
        try:
            return await store.inbound_routings()
        finally:
            await store.close()

    try:
        routings = [r for r in asyncio.run(read()) if trunk is None or r.trunk_id == trunk]
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        for r in routings:
            print(json.dumps({**asdict(r), "rule": r.rule.name}), flush=True)
        return
    table = Table("tenant", "trunk", "rule", "target")
    for r in routings:
        target = r.audio_url or r.webhook_url or r.ai_websocket_url or r.ai_quic_url or r.agent_id
        table.add_row(r.tenant_id, r.trunk_id, r.rule.name.lower().replace("_", "-"), target)
    out.print(table)


# --- buckets -------------------------------------------------------------------------------------

BUCKET_ACTIONS = {"hangup": 0, "unpark": 1, "announce": 2}


@buckets_app.callback(invoke_without_command=True)
def buckets_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
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
def buckets_calls(ctx: typer.Context, bucket_id: str = typer.Argument(..., help="The bucket (PARK's app args; 'default' when none).")) -> None:
    """List the calls parked in a bucket."""
    for sid in run_client(ctx, lambda c: c.get_bucket_calls(bucket_id)):
        out.print(sid)


@buckets_app.command("act")
def buckets_act(ctx: typer.Context, bucket_id: str = typer.Argument(..., help="The bucket."),
                action: str = typer.Argument(..., help="hangup, unpark (bridge each call to its agent) or announce.")) -> None:
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
    trunk: str = typer.Option(..., "--trunk", "-t", help="Configured trunk id for every call."),
    campaign: str = typer.Option(..., "--campaign", help="Campaign id (for abort)."),
    call_from: str = typer.Option("", "--from", "-f", help="Caller id for every call."),
    cps: int = typer.Option(1, "--cps", min=1, help="Calls per second."),
    max_concurrent: int = typer.Option(10, "--max-concurrent", min=1, help="Calls of the campaign up at once."),
    app_name: str = typer.Option("park", "--app", help=f"What each call runs once answered: {APPS_HELP}."),
    app_args: str = AppArgsOption,
    ai_ws: str = typer.Option("", "--ai-ws", help="Agent WebSocket URL for every call."),
    max_duration: int = MaxDurationOption,
) -> None:
    """Start a campaign."""
    action = _action(app_name)
    response = run_client(ctx, lambda c: c.originate_bulk(
        csv_url=csv_url, template_trunk_id=trunk, template_call_from=call_from, template_default_app=action,
        template_default_app_args=app_args, template_ai_websocket_url=ai_ws, template_max_duration_ms=max_duration,
        calls_per_second=cps, max_concurrent_calls=max_concurrent, campaign_id=campaign))
    out.print(f"{campaign}: {response.status}, {response.loaded_numbers} number(s) loaded")


@bulk_app.command("abort")
def bulk_abort(ctx: typer.Context, campaign: str = typer.Argument(..., help="The campaign id given to bulk start.")) -> None:
    """Stop a campaign."""
    response = run_client(ctx, lambda c: c.abort_bulk(campaign))
    out.print(f"{campaign}: {response.status}")


# --- keys ----------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant", help="The tenant the account acts for."),
    kid: str = typer.Option(..., "--kid", help="Key id: names the key in the gateway's [[tenants]] keys."),
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

