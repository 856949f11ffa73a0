"""The ``btshark`` command. Sub-commands import their heavy parts lazily, so
``btshark read`` starts without loading Textual, pyshark or the replayer."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "aria2-to-libtorrent.pcap"
FORMATS = click.Choice(["text", "json", "jsonl", "fields"])
FIELDS_OPTIONS = "header=y|n, separator=/t|/s|C, aggregator=,|/s|C, quote=d|s|n or occurrence=f|l|a"


class Failure(click.ClickException):
    """A one-line error for the user, exit code 2, never a traceback; what it quotes
    (a file name, a peer's bytes) is escaped as all output is."""

    exit_code = 2

    def __init__(self, message: str, escaped: bool = False) -> None:
        """``escaped``: the message is the user's own text, already one printable line
        (a filter error quotes the filter as typed), and is not escaped again."""
        from .output import safe_text

        super().__init__(message if escaped else safe_text(message))


class Size(click.ParamType):
    """A count of bytes: ``1048576``, ``64k``, ``16M``, ``1G``."""

    name = "size"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        from .limits import parse_size

        if isinstance(value, int):
            return value
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        return size


def limit_options(command):  # type: ignore[no-untyped-def]
    """The ``--max-*`` options of ``inspector.limits``, gathered into ``limits``."""
    from .limits import DEFAULT, OPTIONS

    from .extensions import DEPTH_CEILING

    counts = {"flows": None, "findings": None, "bencode_depth": DEPTH_CEILING}
    for field in reversed(OPTIONS):
        kind = click.IntRange(min=1, max=counts[field]) if field in counts else Size()
        command = click.option(f"--max-{field.replace('_', '-')}", field, type=kind, default=getattr(DEFAULT, field),
                               show_default=True, help=OPTIONS[field])(command)
    return command


def fields_options(command):  # type: ignore[no-untyped-def]
    """``-e`` and ``-E``, as tshark's: the fields ``-T fields`` prints, and how."""
    command = click.option("-E", "styles", multiple=True, metavar="KEY=VALUE",
                           help=f"With -T fields (repeatable): {FIELDS_OPTIONS}.")(command)
    return click.option("-e", "names", multiple=True, metavar="FIELD",
                        help="With -T fields (repeatable): a field to print, as -Y names them.")(command)


def _limits(values: dict) -> "Limits":  # noqa: F821
    """The decode's limits; the bencode ones are the extension decoder's, set for the process."""
    from .extensions import set_limits
    from .limits import Limits

    limits = Limits(**values)
    set_limits(size=limits.bencode_size, depth=limits.bencode_depth)
    return limits


def _warn(lines: list[str]) -> None:
    from .output import safe_text

    for line in lines:
        click.echo(f"btshark: warning: {safe_text(line)}", err=True)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Inspect and replay BitTorrent peer traffic. With no command: read the bundled sample."""
    import gc

    # A decode keeps up to a table of flows alive, each a few small containers; at the
    # default threshold (700) the collector walks them over and over and a flood of new
    # flows spent half its time there. Cycles are rare here: collect less often.
    gc.set_threshold(50_000, 20, 100)
    if ctx.invoked_subcommand is None:
        ctx.invoke(read, capture=str(SAMPLE))


@cli.command()
@click.argument("capture", required=False, type=click.Path(dir_okay=True))
@click.option("-Y", "display_filter", metavar="FILTER", help="Keep messages matching FILTER (see `btshark filters`).")
@click.option("-T", "fmt", type=FORMATS, default="text", show_default=True, help="Output format.")
@click.option("--sessions", is_flag=True, help="List the peer connections instead of messages.")
@click.option("-c", "count", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--torrent", "torrent_paths", multiple=True, type=click.Path(dir_okay=False),
              help="A .torrent of the capture (repeatable): piece counts checked, piece data hash-checked.")
@click.option("--stats", is_flag=True, help="Statistics per session and side instead of messages.")
@fields_options
@limit_options
def read(capture: str | None, display_filter: str | None, fmt: str, sessions: bool, count: int | None,
         torrent_paths: tuple[str, ...], stats: bool, names: tuple[str, ...], styles: tuple[str, ...],
         **limits: int) -> None:
    """Decode every BitTorrent peer message in CAPTURE (pcap, pcapng, gzipped).

    The --max-* options bound what a capture can make btshark hold; a capture that
    meets one gets a 'limit' finding or warning naming it, and decoding goes on.
    """
    from .capfile import CaptureError
    from .filters import FilterError, compile_filter
    from .pipeline import CaptureDecode

    if sessions and stats:
        raise Failure("--sessions and --stats are two views: give one")
    view = "stats" if stats else "sessions" if sessions else None
    try:
        keep = compile_filter(display_filter, lambda: decode.first_ts) if display_filter else None
        columns = _columns(fmt, names, styles, view, lambda: decode.first_ts)
        torrents = _torrents(torrent_paths)
        decode = CaptureDecode(capture or str(SAMPLE), limits=_limits(limits), torrents=torrents)
    except (CaptureError, FilterError) as exc:
        raise Failure(str(exc), escaped=isinstance(exc, FilterError)) from None
    try:
        _output(decode, keep, count, view, fmt, sys.stdout, columns)
    finally:
        _warn(decode.warnings)


def _torrents(paths: tuple[str, ...]) -> list:
    """The --torrent files, read; ``inspector.extract`` (and OpenSSL with it) only when one is given."""
    if not paths:
        return []
    from .extract import ExtractError, read_torrent

    try:
        return [read_torrent(path) for path in paths]
    except ExtractError as exc:
        raise Failure(str(exc)) from None


def _columns(fmt: str, names: tuple[str, ...], styles: tuple[str, ...], view: str | None,
             first_ts: Callable[[], float | None]) -> tuple | None:
    """``-T fields``: (the compiled fields, their names, the -E style); None for the other formats."""
    from .filters import compile_columns

    if fmt != "fields":
        if names or styles:
            raise Failure("-e and -E are for -T fields")
        return None
    if view is not None:
        raise Failure(f"-T fields prints messages, not --{view}")
    if not names:
        raise Failure("-T fields needs at least one -e FIELD (see `btshark filters`)")
    return compile_columns(names, first_ts), names, _fields_style(styles)


def _fields_style(options: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """tshark's -E options, each KEY=VALUE."""
    from .output import FieldsStyle

    chars = {"/t": "\t", "/s": " "}
    allowed = {"header": {"y": True, "n": False}, "quote": {"d": '"', "s": "'", "n": ""},
               "occurrence": {"f": "f", "l": "l", "a": "a"}}
    style: dict[str, object] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key in allowed and value in allowed[key]:
            style[key] = allowed[key][value]
        elif key in ("separator", "aggregator") and (value in chars or len(value) == 1):
            style[key] = chars.get(value, value)
        else:
            raise Failure(f"-E {option}: expected {FIELDS_OPTIONS}")
    return FieldsStyle(**style)  # type: ignore[arg-type]


def _output(decode, keep, count: int | None, view: str | None, fmt: str, out, columns: tuple | None = None) -> None:
    """The decode's records (filtered, counted) or its ``view`` ("sessions", "stats"), as
    ``read`` prints them; ``columns``: -T fields' (see ``_columns``)."""
    from .output import write_fields, write_records, write_sessions

    records = iter(decode)
    if keep is not None:
        records = filter(keep, records)
    if count is not None:
        records = _first_messages(records, count)
    try:
        if view == "stats":
            from .stats import Stats, write_stats

            tally = Stats()
            for record in records:
                tally.add(record)
            write_stats(tally, decode.sessions, fmt, out)
        elif view == "sessions":
            for _ in records:
                pass
            write_sessions(decode.sessions, fmt, out)
        elif columns is not None:
            write_fields(records, *columns, out)
        else:
            write_records(records, fmt, out, lambda: decode.first_ts)
    except BrokenPipeError:
        # Output piped into head and the like: stop quietly, exit 0, as tshark does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _first_messages(records, count: int):
    """The records up to and including the ``count``-th message (findings ride along)."""
    for record in records:
        yield record
        if record.event.type != "finding":
            count -= 1
            if not count:
                return


@cli.command()
@click.option("-i", "iface", required=True, metavar="IFACE", help="Interface to capture on.")
@click.option("-f", "bpf", metavar="BPF", help="Capture filter (libpcap syntax).  [default: tcp or udp]")
@click.option("--backend", type=click.Choice(["dumpcap", "scapy"]),
              help="dumpcap (default when installed) or scapy (a raw socket, as root).")
@click.option("-w", "write", type=click.Path(dir_okay=False), help="Also save what was captured (pcapng).")
@click.option("-c", "count", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("-a", "autostop", metavar="duration:S", help="Stop after S seconds.")
@click.option("-Y", "display_filter", metavar="FILTER", help="Keep messages matching FILTER (see `btshark filters`).")
@click.option("-T", "fmt", type=FORMATS, default="text", show_default=True, help="Output format.")
@click.option("--sessions", is_flag=True, help="List the peer connections when the capture stops.")
@fields_options
@limit_options
def sniff(iface: str, bpf: str | None, backend: str | None, write: str | None, count: int | None,
          autostop: str | None, display_filter: str | None, fmt: str, sessions: bool, names: tuple[str, ...],
          styles: tuple[str, ...], **limits: int) -> None:
    """Decode BitTorrent peer messages live on IFACE, as `read` prints them.

    Ctrl-C stops the capture cleanly (output and -w file flushed, exit 0); the
    frames captured and dropped by the kernel are reported on stderr.
    """
    import signal
    import threading

    from .filters import FilterError, compile_filter
    from .sniff import DEFAULT_FILTER, SniffError, open_live

    duration = _duration(autostop) if autostop is not None else None
    try:
        keep = compile_filter(display_filter, lambda: decode.first_ts) if display_filter else None
        columns = _columns(fmt, names, styles, "sessions" if sessions else None, lambda: decode.first_ts)
        decode = open_live(iface, bpf or DEFAULT_FILTER, backend, write, _limits(limits))
    except (SniffError, FilterError) as exc:
        raise Failure(str(exc), escaped=isinstance(exc, FilterError)) from None
    click.echo(f"Capturing on '{iface}'", err=True)  # as tshark says it: the capture is running from here

    def stop(*_: object) -> None:
        decode.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts outright

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(duration, decode.stop) if duration is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        _output(decode, keep, count, "sessions" if sessions else None, fmt, _Flushing(sys.stdout), columns)
        sys.stdout.flush()
    finally:
        if timer is not None:
            timer.cancel()
        decode.close()
        _warn(decode.warnings)
        click.echo(f"{decode.captured} frames captured, {decode.dropped} dropped by the kernel", err=True)


class _Flushing:
    """A text stream that flushes on every write: each message shows as it is decoded."""

    def __init__(self, out) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _duration(spec: str) -> float:
    """``-a duration:S`` as tshark spells it: seconds, above zero."""
    kind, _, value = spec.partition(":")
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if kind != "duration" or not seconds > 0:
        raise Failure(f"-a {spec}: expected duration:SECONDS")
    return seconds


@cli.command()
def filters() -> None:
    """List the display-filter fields (-Y) and the kinds of finding, as tshark -G lists its fields."""
    from .events import SEVERITY
    from .filters import field_help

    rows = field_help()
    width = max(len(name) for name, _, _ in rows)
    for name, kind, meaning in rows:
        click.echo(f"{name:<{width}}  {kind:<18}  {meaning}")
    click.echo("\nOperators: == != < <= > >= contains matches in {a b c..d}, not in; and or not && || !; ( )")
    click.echo("Each field also prints as a column: read -T fields -e FIELD [-e FIELD ...] [-E header=y].")
    click.echo("Message types are also bare words (piece, have); bt.finding == KIND selects findings:")
    for kind, severity in SEVERITY.items():
        click.echo(f"  {kind:<{width - 2}}  {severity}")


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=True))
@click.option("-v", "--verbose", is_flag=True, help="List every differing region, not just the first.")
def verify(capture: str, verbose: bool) -> None:
    """Compare btshark's decode of CAPTURE with Wireshark's, connection by connection.

    Exit status 0 when every direction agrees (or neither decode holds a message, which
    it says as "nothing to compare"), 1 when any differs, 2 when tshark fails or reads
    none of CAPTURE. When tshark stops reading at damage part-way, the frames before it
    are compared and a line says where it stopped.
    """
    from .capfile import CaptureError
    from .output import record_dict
    from .pipeline import CaptureDecode
    from .verify import TsharkCannotRead, VerifyError, all_agree, format_report
    from .verify import verify as against_wireshark

    try:
        decode = CaptureDecode(capture)
        records, losses = [], []
        for r in decode:
            if r.event.type != "finding":
                records.append(record_dict(r))
            elif r.event.kind in ("hole", "resync"):
                a, b = (side.addr for side in r.session.sides)
                src, dst = (a, b) if r.side == 0 else (b, a)
                losses.append({"transport": r.session.transport, "src": src, "dst": dst, "frame": r.frame})
    except CaptureError as exc:
        raise Failure(str(exc)) from None
    try:
        result = against_wireshark(capture, records, losses=losses)
    except TsharkCannotRead as exc:  # one line: what tshark said, and what btshark made of the file
        frames, messages = decode.capture.frame_count, len(records)
        ours = (f"btshark read {frames} frame{'s' * (frames != 1)} of it and decoded "
                f"{messages} message{'s' * (messages != 1)}")
        if decode.warnings:
            ours += f" ({'; '.join(decode.warnings)})"
        raise Failure(f"{exc}; {ours}") from None
    except VerifyError as exc:
        _warn(decode.warnings)
        raise Failure(str(exc)) from None
    _warn(decode.warnings)
    click.echo(format_report(result.reports, verbose=verbose, stop=result.stop))
    if not all_agree(result.reports):
        sys.exit(1)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--torrent", "torrent_path", required=True, type=click.Path(dir_okay=False),
              help="The .torrent the transfer belongs to (v1, v2 or hybrid).")
@click.option("-o", "outdir", required=True, type=click.Path(file_okay=False), help="Folder to write the files into.")
def extract(capture: str, torrent_path: str, outdir: str) -> None:
    """Rebuild the torrent's files from the pieces CAPTURE holds, each hash-checked.

    Exit status 0 when every piece was captured and verified, 1 when some were not
    (they are listed, and files touching them are not written), 2 on bad input.
    Blocks captured twice with different bytes are listed either way.
    """
    from .capfile import CaptureError
    from .extract import ExtractError, read_torrent
    from .extract import extract as rebuild
    from .output import ranges

    try:
        torrent = read_torrent(torrent_path)
        result = rebuild(capture, torrent, Path(outdir))
    except (CaptureError, ExtractError) as exc:
        raise Failure(str(exc)) from None
    except OSError as exc:
        raise Failure(f"cannot write to {outdir}: {exc.strerror or exc}") from None
    click.echo(f"{len(result.verified)} of {torrent.pieces} pieces verified; "
               f"{len(result.written)} file(s) written to {outdir}")
    if result.missing:
        click.echo(f"not in the capture: pieces {ranges(result.missing)}")
    if result.bad:
        click.echo(f"captured but failing their hash: pieces {ranges(result.bad)}")
    if result.split:
        click.echo(f"captured but v1 and v2 hashes disagree: pieces {ranges(result.split)}")
    for c in result.conflicts:
        first, last = c.earlier
        earlier = f"frame {first}" if first == last else f"frames {first}-{last}"
        click.echo(f"block seen twice with different bytes: piece {c.piece} begin {c.begin} length {c.length} "
                   f"in frame {c.frame} (the piece's earlier bytes: {earlier})")
    if result.unlisted:
        click.echo(f"{result.unlisted} more block(s) seen twice with different bytes")
    if result.incomplete:
        click.echo(f"not written (pieces missing or failing): {', '.join(result.incomplete)}")
    if result.missing or result.bad or result.split:
        sys.exit(1)


@cli.command()
@click.argument("capture", type=click.Path(dir_okay=True))
@click.option("--session", "session", required=True, type=int, help="Session id, as `read --sessions` lists them.")
@click.option("--side", required=True, type=click.Choice(["a", "b"]), help="The side to play (a opened the connection).")
@click.option("--connect", "connect", multiple=True, metavar="HOST:PORT",
              help="A live peer to connect to (repeat for several).")
@click.option("--listen", "listen", metavar="HOST:PORT", help="Wait for live peers here (port 0: any free port).")
@click.option("--torrent", "torrent_path", type=click.Path(dir_okay=False),
              help="The .torrent: pieces are hash-checked and announced exactly.")
@click.option("--speed", default="1", show_default=True, metavar="FACTOR|max",
              help="Captured pace times FACTOR; max: as fast as the protocol allows.")
@click.option("--max-initiate", type=click.IntRange(min=1), default=40, show_default=True,
              help="Connections open at once; other --connect peers wait as spares.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds to wait for a connection, and for a silent peer.")
@click.option("-w", "write", type=click.Path(dir_okay=False), help="Write what each connection carried as a pcap.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the full report (JSON).")
@click.option("--allow-remote", is_flag=True, help="Allow peers outside loopback.")
def replay(capture: str, session: int, side: str, connect: tuple[str, ...], listen: str | None,
           torrent_path: str | None, speed: str, max_initiate: int, timeout: float, write: str | None,
           report: str | None, allow_remote: bool) -> None:
    """Play one side of a captured session against live peers, and compare.

    Exit status 0 when the replayed side did what it did in the capture, 1 when the live
    peers did not let it (one line says why), 2 on bad input, 130 when interrupted.
    """
    from replay.run import Options, ReplayError, parse_address, parse_speed
    from replay.run import run as play

    try:
        opts = Options(capture, session, side, [parse_address(a) for a in connect],
                       parse_address(listen) if listen else None, torrent_path, parse_speed(speed),
                       max_initiate, timeout, write, report, allow_remote)
        status = play(opts)
    except ReplayError as exc:
        raise Failure(str(exc)) from None
    sys.exit(status)


@cli.command()
@click.argument("capture", required=False, type=click.Path(dir_okay=True))
@click.option("-i", "iface", metavar="IFACE", help="Capture live on IFACE instead of reading CAPTURE.")
@click.option("-f", "bpf", metavar="BPF", help="Capture filter, with -i (libpcap syntax).  [default: tcp or udp]")
@click.option("--backend", type=click.Choice(["dumpcap", "scapy"]),
              help="With -i: dumpcap (default when installed) or scapy (a raw socket, as root).")
def tui(capture: str | None, iface: str | None, bpf: str | None, backend: str | None) -> None:
    """Browse CAPTURE in a Wireshark-style terminal app (no argument: the bundled sample).

    With -i, watch IFACE live: sessions appear and grow as they are captured; the
    messages follow the newest (End follows again); space pauses the view, w saves
    what was captured, ctrl+e stops the capture, q stops it and quits.
    """
    from .capfile import CaptureError
    from .sniff import SniffError

    if iface is None and (bpf is not None or backend is not None):
        raise Failure("-f and --backend are for a live capture (-i IFACE)")
    if iface is not None and capture is not None:
        raise Failure("give a CAPTURE to read or -i IFACE to capture on, not both")
    try:
        from tui import make_app, make_live_app

        app = make_live_app(iface, bpf, backend) if iface is not None else make_app(capture or str(SAMPLE))
    except (CaptureError, SniffError) as exc:
        raise Failure(str(exc)) from None
    try:
        app.run()
    finally:
        if iface is not None:
            app.close_live()
            click.echo(f"{app.live.captured} frames captured, {app.live.dropped} dropped by the kernel", err=True)
    sys.exit(app.return_code or 0)


def main() -> None:
    """Entry point: one-line errors, tshark's exit codes, no tracebacks for the expected."""
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show "→" gets "\u2192", not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        cli.main(prog_name="btshark", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as exc:  # bad options and arguments, and our Failure
        click.echo(f"btshark: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        sys.exit(130)
