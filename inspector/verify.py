"""`btshark verify`: btshark's decode checked against Wireshark's own BitTorrent dissector.

Wireshark's decode comes from tshark, each BitTorrent layer of its PDML read through
pyshark as the project's acceptance criterion asks, with tshark's uTP heuristic (off by
default) switched on::

    tshark -r CAPTURE -o tcp.reassemble_out_of_order:TRUE --enable-heuristic bt_utp_udp \\
           -Y bittorrent -T pdml -j "ip ipv6 tcp udp bittorrent ..."

with every TCP port btshark found BitTorrent on decoded as BitTorrent. Those ports are
not on the command line (one ``-d tcp.port==P,bittorrent`` each overflowed the argument
list at 26,000 flows): tshark runs in a private, empty configuration directory
(``WIRESHARK_CONFIG_DIR``) whose ``decode_as_entries`` lists them, so the reference
decode also owes nothing to the user's own Wireshark preferences. tshark is a plain
child process, started and waited for here, its PDML read with lxml as it comes, only
the BitTorrent layers made into pyshark layers. (Through ``pyshark.FileCapture``, its
asyncio child watcher, swapped process-wide, once lost tshark's exit status to another
waiter, "Unknown child process pid ..., returncode 255"; and it made every field of
every layer into objects: five to ten times slower on the sample captures.)

Both decodes are normalised to :class:`WireMessage` (message type in the ``-T jsonl``
vocabulary of DESIGN.md, plus index, begin and block length where the message has them)
and compared direction by direction, TCP and uTP alike. btshark's own decode is passed
in as its jsonl records, so this module does not depend on the decoder.

A check that compared nothing must not pass for one that agreed: a direction where
Wireshark decoded messages and btshark did not (or the other way round) is a difference,
not a skip, and when neither decode holds a BitTorrent message the report says
"nothing to compare" instead of "0 directions, 0 agree" (:func:`all_agree` is then true:
both agree the capture holds no plaintext BitTorrent).

Where tshark 4.0 is provably wrong, the difference is set aside and named (frames and
reason) instead of failing; "provably" means the captured bytes, read here independently
of both decoders, show it (:func:`tshark_errors`):

* a uTP DATA packet captured twice (a retransmission: same connection, seq_nr and bytes)
  is dissected twice by tshark; the copy's messages are dropped from Wireshark's side,
  so a btshark that also counted them twice still differs;
* tshark's uTP heuristic rejects packets carrying libtorrent's close-reason extension
  (type 3) and dissects nothing in them; btshark's messages completed in such a packet
  are set aside only when the packet's bytes split into exactly those whole messages.

Other differences are never excused; a likely cause may be named as a hint.

How tshark 4.0 shows BitTorrent, and how that is mapped here (one ``bittorrent`` layer
per PDU; pyshark exposes several PDUs in one frame as repeated layers, in stream order):

=================================================  ======================================
Wireshark layer                                    WireMessage
=================================================  ======================================
``bittorrent.protocol.name`` present               ``handshake``
``bittorrent.msg.type`` 0-9, 13-17, 20             the DESIGN.md name (``suggest`` for 13,
                                                   ``reject`` for 16, ``extended`` for 20)
``bittorrent.piece.index/begin/length``            index, begin, length (request, cancel,
                                                   reject); index only for have, suggest,
                                                   allowed_fast
piece (7): no length field                         length = ``bittorrent.msg.length`` - 9
``bittorrent.msg.length`` == 0, or an empty layer  ``keepalive`` (tshark 4.0 dissects a
                                                   4-byte PDU to an empty layer)
``bittorrent.continuous_data``                     ``unknown`` (tshark's "Continuation data")
``bittorrent.azureus_msg``                         ``unknown`` (Azureus messaging protocol)
=================================================  ======================================

tshark 4.0's dissector knows no message ids other than 0-9, 13-17 and 20: BEP 52's
hash_request/hashes/hash_reject (21-23) and any other id become "Continuation data" that
swallows the rest of the TCP segment, including any further messages in it. Other
quirks of tshark 4.0 that :func:`compare` recognises and names are listed in
:data:`TSHARK_QUIRKS`.

On a damaged capture (a record cut short, a length tshark refuses, trailing garbage)
tshark decodes the frames before the damage, then stops and exits 2. What both could
read is still compared: the frames tshark read, btshark's messages completed in later
frames counted but not compared, and the report says where tshark stopped and what it
said (:class:`TsharkStop`; capinfos, Wireshark's file reader without the dissection,
counts the frames). Refusing instead would throw away a comparison worth as much as
any other, and calling the uncompared tail a difference would blame btshark for
tshark's reader. When tshark reads no frame at all there is nothing to compare:
:class:`TsharkCannotRead`, one line naming what tshark said (the CLI adds what btshark
read of the file), exit status 2.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO

from lxml import etree

__all__ = [
    "WireMessage",
    "DirectionReport",
    "UtpPacket",
    "VerifyError",
    "TsharkCannotRead",
    "TsharkStop",
    "WiresharkDecode",
    "Verification",
    "TSHARK_QUIRKS",
    "UTP_HEURISTIC",
    "wireshark_messages",
    "utp_packets",
    "ours_from_records",
    "ports_from_records",
    "tshark_errors",
    "compare",
    "format_report",
    "all_agree",
    "NOTHING_TO_COMPARE",
    "SetAside",
    "verify",
]

Direction = tuple[str, str, str]  # (transport "tcp" | "utp", src 'ip:port', dst 'ip:port')
Connection = tuple[str, frozenset[str]]  # (transport, both endpoints)

# tshark's name for its uTP-over-UDP heuristic (`tshark -G heuristic-decodes` lists it
# as "udp bt-utp F": off unless enabled).
UTP_HEURISTIC = "bt_utp_udp"
_HANDSHAKE_START = b"\x13BitTorrent protocol"
_LENGTH = struct.Struct(">I")
_INDEX_BEGIN_LEN = struct.Struct(">III")
# BEP 29 header: type<<4 | version, first extension, connection_id, timestamp,
# timestamp_difference, wnd_size, seq_nr, ack_nr.
_UTP_HEADER = struct.Struct(">BBHIIIHH")
_UTP_DATA = 0
_UTP_CLOSE_REASON = 3  # libtorrent's extension; tshark 4.0 rejects packets carrying it

# Wireshark's bittorrent.msg.type values -> DESIGN.md jsonl type names.
WIRESHARK_TYPES: dict[int, str] = {
    0: "choke",
    1: "unchoke",
    2: "interested",
    3: "not_interested",
    4: "have",
    5: "bitfield",
    6: "request",
    7: "piece",
    8: "cancel",
    9: "port",
    13: "suggest",
    14: "have_all",
    15: "have_none",
    16: "reject",
    17: "allowed_fast",
    20: "extended",
    # tshark 4.0 has no 21-23 (BEP 52); listed so a newer tshark maps them right.
    21: "hash_request",
    22: "hashes",
    23: "hash_reject",
}

# Which of index/begin/length each message type carries (DESIGN.md `-T jsonl`).
_INDEX_ONLY = frozenset({"have", "suggest", "allowed_fast"})
_INDEX_BEGIN_LENGTH = frozenset({"request", "cancel", "reject", "piece"})
_BEP52 = frozenset({"hash_request", "hashes", "hash_reject"})

TSHARK_QUIRKS: dict[str, str] = {
    "unknown_id": (
        "tshark 4.0 knows only message ids 0-9, 13-17 and 20; it shows any other id as "
        "'Continuation data' and skips the rest of that TCP segment"
    ),
    "bep52": (
        "tshark 4.0 does not know BEP 52 messages (ids 21-23: hash_request, hashes, "
        "hash_reject); it shows them as 'Continuation data' and skips the rest of that TCP segment"
    ),
    "split_prefix": (
        "a message's 4-byte length prefix ended a TCP segment; tshark 4.0 cuts it off as an "
        "empty 4-byte PDU (which reads like a keep-alive) and shows the rest of the next "
        "segment as 'Continuation data'"
    ),
    "split_handshake": (
        "the handshake was split across TCP segments before its 20th byte; tshark 4.0 "
        "does not recognise it and shows 'Continuation data'"
    ),
    "continuation": (
        "tshark 4.0 lost message alignment here and shows 'Continuation data' "
        "(it does so for unknown ids and for length prefixes >= 0x1000000, then skips "
        "the rest of the segment)"
    ),
    "utp_close_reason": (
        "tshark 4.0's uTP heuristic rejects packets carrying libtorrent's close-reason "
        "extension (type 3) and dissects nothing in them"
    ),
    "truncated": (
        "Wireshark's decode stops early: a message still incomplete at the end of the "
        "capture, or data tshark did not reassemble (out-of-order segments need "
        "tcp.reassemble_out_of_order:TRUE)"
    ),
}


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One peer-wire message, normalised for comparison.

    Only ``type``, ``index``, ``begin`` and ``length`` take part in the comparison;
    ``frame`` and ``note`` say where and what, for the report.
    """

    type: str  # DESIGN.md jsonl type name
    index: int | None
    begin: int | None
    length: int | None  # request/cancel/reject: requested length; piece: block bytes
    frame: int  # frame that completed the message
    note: str | None = None  # e.g. Wireshark's "continuation data, 1234 bytes"

    @property
    def key(self) -> tuple[str, int | None, int | None, int | None]:
        return (self.type, self.index, self.begin, self.length)

    def describe(self) -> str:
        parts = []
        if self.index is not None:
            parts.append(f"index={self.index}")
        if self.begin is not None:
            parts.append(f"begin={self.begin:#x}")
        if self.length is not None:
            parts.append(f"length={self.length}")
        text = self.type + (f"({', '.join(parts)})" if parts else "")
        if self.note:
            text += f" [{self.note}]"
        return f"{text} @frame {self.frame}"


@dataclass(frozen=True, slots=True)
class DirectionReport:
    src: str
    dst: str
    ours: int  # number of messages in btshark's decode
    theirs: int  # number of messages in Wireshark's decode
    agree: bool  # equal once tshark_errors are set aside
    first_difference: str | None  # one line: position, our message @frame, theirs @frame
    reason: str | None = None  # a likely cause of the first difference (a hint, not an excuse)
    differences: tuple[str, ...] = ()  # every differing region, one line each
    skipped: bool = False  # Wireshark-only, no handshake: not plaintext BitTorrent
    transport: str = "tcp"
    tshark_errors: tuple[str, ...] = ()  # tshark's proven mistakes, set aside, one line each

    @property
    def status(self) -> str:
        if self.skipped:
            return "skip"
        if not self.agree:
            return "DIFFER"
        return "agree*" if self.tshark_errors else "agree"


@dataclass(frozen=True, slots=True)
class UtpPacket:
    """One UDP datagram of a uTP flow, read from tshark's ``udp.payload``, for the byte checks."""

    frame: int
    direction: Direction
    dissected: bool  # tshark's uTP heuristic accepted it
    type: int
    connection_id: int
    seq_nr: int
    extensions: tuple[int, ...]
    data: bytes


class VerifyError(Exception):
    """tshark could not be run or failed on the capture: one line for the user."""


def _normalise(type_: str, index, begin, length, frame: int, note: str | None = None) -> WireMessage:
    """Keep index/begin/length only where DESIGN.md gives the message type them."""
    if type_ in _INDEX_BEGIN_LENGTH:
        return WireMessage(type_, _int(index), _int(begin), _int(length), frame, note)
    if type_ in _INDEX_ONLY:
        return WireMessage(type_, _int(index), None, None, frame, note)
    return WireMessage(type_, None, None, None, frame, note)


def _int(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return int(str(value), 0)  # Wireshark shows BASE_HEX fields as "0x00004000"


def _endpoint(addr: str, port: int | str) -> str:
    """'ip:port', IPv6 as '[addr]:port' (compressed form, as btshark prints it)."""
    if ":" in addr:  # tshark writes IPv4 as btshark does; IPv6 it may not compress
        addr = f"[{ipaddress.IPv6Address(addr).compressed}]"
    return f"{addr}:{int(port)}"


# ---------------------------------------------------------------------------
# Wireshark's side


def _field(layer, name: str) -> str | None:
    field = layer.get_field(name)
    if field is None:
        return None
    return field.get_default_value()


def _field_size(layer, name: str) -> int | None:
    field = layer.get_field(name)
    if field is None or field.size is None:
        return None
    return int(field.size)


def _layer_to_message(layer, frame: int) -> WireMessage:
    """Map one Wireshark ``bittorrent`` layer (one PDU) to a WireMessage."""
    if layer.get_field("bittorrent.protocol.name") is not None:
        return WireMessage("handshake", None, None, None, frame)
    msg_type = _field(layer, "bittorrent.msg.type")
    msg_len = _field(layer, "bittorrent.msg.length")
    if msg_type is not None:
        type_id = int(msg_type, 0)
        type_ = WIRESHARK_TYPES.get(type_id)
        if type_ is None:
            return WireMessage("unknown", None, None, None, frame, f"Wireshark msg.type {type_id}")
        length = _field(layer, "bittorrent.piece.length")
        if type_ == "piece":
            length = int(msg_len) - 9 if msg_len is not None else None
        return _normalise(
            type_,
            _field(layer, "bittorrent.piece.index"),
            _field(layer, "bittorrent.piece.begin"),
            length,
            frame,
        )
    if layer.get_field("bittorrent.continuous_data") is not None:
        size = _field_size(layer, "bittorrent.continuous_data")
        note = "continuation data" + (f", {size} bytes" if size is not None else "")
        return WireMessage("unknown", None, None, None, frame, note)
    if layer.get_field("bittorrent.azureus_msg") is not None:
        aztype = _field(layer, "bittorrent.msg.aztype")
        return WireMessage("unknown", None, None, None, frame, f"Azureus message {aztype}")
    if msg_len is not None and int(msg_len) == 0:
        return WireMessage("keepalive", None, None, None, frame)
    if not layer.field_names:
        # tshark 4.0 dissects every 4-byte PDU to an empty layer: a keep-alive, or a
        # length prefix that ended a segment (see TSHARK_QUIRKS['split_prefix']).
        return WireMessage("keepalive", None, None, None, frame, "empty 4-byte PDU")
    return WireMessage("unknown", None, None, None, frame, "unrecognised Wireshark layer")


def _shown(proto: etree._Element, *names: str) -> list[str | None]:
    """The values of fields at the top of a PDML protocol tree, as pyshark gives them
    (``show``, else ``value``, else ``showname``), first occurrence of each."""
    found: dict[str, str | None] = {}
    for field in proto.iterchildren("field"):
        name = field.get("name")
        if name in names and name not in found:
            found[name] = field.get("show") or field.get("value") or field.get("showname")
            if len(found) == len(names):
                break
    return [found.get(name) for name in names]


def _packet_direction(packet: etree._Element) -> Direction | None:
    """(transport, src, dst) of a PDML packet's innermost IP header and the TCP or UDP
    header in it."""
    ip_proto = None
    for proto in packet.iterchildren("proto"):
        name = proto.get("name")
        if name in ("ip", "ipv6"):
            ip_proto = proto
        elif name in ("tcp", "udp") and ip_proto is not None:
            prefix = ip_proto.get("name")
            src, dst = _shown(ip_proto, f"{prefix}.src", f"{prefix}.dst")
            sport, dport = _shown(proto, f"{name}.srcport", f"{name}.dstport")
            if None in (src, dst, sport, dport):
                return None
            transport = "tcp" if name == "tcp" else "utp"
            return transport, _endpoint(src, sport), _endpoint(dst, dport)
    return None


@dataclass(frozen=True, slots=True)
class TsharkStop:
    """tshark read the capture up to damage (a record cut short, a length it refuses,
    trailing garbage) and stopped there, exiting 2: the frames before it are compared."""

    frames: int  # frames tshark read
    reason: str  # what tshark said, one line
    ours_after: int = 0  # btshark's messages completed in later frames, not compared

    def describe(self) -> str:
        text = (f"tshark stopped reading after frame {self.frames}: {self.reason}; "
                f"compared frames 1-{self.frames}")
        if self.ours_after:
            text += f" (btshark's {self.ours_after} message(s) in later frames not compared)"
        return text


@dataclass(frozen=True, slots=True)
class WiresharkDecode:
    """Wireshark's messages per direction, and where tshark stopped if it did not read it all."""

    messages: dict[Direction, list[WireMessage]]
    stop: TsharkStop | None = None


class TsharkCannotRead(VerifyError):
    """tshark read not one frame of the capture: there is no Wireshark decode to compare with."""


# ``-j``: tshark expands only these PDML nodes; every other protocol, and every subtree
# under these, is written as its top line alone. Every field read here sits directly
# under one of them. The PDML is half as long (the sample captures', a handshake
# frame's), and reading it is most of what verify spends its time on.
_PDML_TREES = "ip ipv6 tcp udp bittorrent bittorrent.msg bittorrent.azureus_msg"
_READ_ERROR = 2  # tshark's exit status when the capture cannot be opened or read to its end


def wireshark_messages(
    capture: str | os.PathLike,
    ports: Iterable[int],
    *,
    tshark_path: str | None = None,
) -> WiresharkDecode:
    """Wireshark's decode, keyed by (transport, src 'ip:port', dst 'ip:port') (IPv6 as
    '[addr]:port'), messages in stream order.

    ``ports`` are decoded as BitTorrent over TCP (Wireshark's "Decode As" on ``tcp.port``,
    which matches either end of a connection). tshark's TCP heuristic (on by default) also
    finds streams that start with the 20-byte "\\x13BitTorrent protocol"; its uTP heuristic
    is switched on, and checks each UDP datagram's header, so uTP needs no ports. Over
    uTP, tshark 4.0 shows a message in the frame where it *starts* (btshark: where it
    ends); frames are not compared.

    Raises :class:`TsharkCannotRead` when tshark reads no frame of the capture, and
    :class:`VerifyError` when it cannot be run or fails otherwise; when it reads part of
    the capture and stops at damage, ``stop`` says where and why.
    """
    from pyshark.packet.layers.xml_layer import XmlLayer  # pyshark's view of each layer

    capture = os.fspath(capture)
    tshark = _tshark(tshark_path)
    cmd = [tshark, "-n", "-r", capture, "-o", "tcp.reassemble_out_of_order:TRUE",
           "--enable-heuristic", UTP_HEURISTIC, "-Y", "bittorrent", "-T", "pdml", "-j", _PDML_TREES]
    result: dict[Direction, list[WireMessage]] = {}
    unreadable: list[etree.XMLSyntaxError] = []

    def read(pdml: IO[bytes]) -> None:
        try:
            for packet in _pdml_packets(pdml):
                direction = _packet_direction(packet)
                if direction is None:
                    continue
                (frame,) = _shown(packet.find("proto[@name='geninfo']"), "num")
                messages = result.setdefault(direction, [])
                for layer in packet.iterchildren("proto"):
                    if layer.get("name") == "bittorrent":
                        messages.append(_layer_to_message(XmlLayer(layer), int(frame)))
        except etree.XMLSyntaxError as exc:  # no PDML at all when tshark cannot open the file
            unreadable.append(exc)

    with _profile(ports) as env:
        status, said = _run_tshark(cmd, env, read, capture)
    if status != 0:
        return WiresharkDecode(result, _stopped(capture, tshark, status, said))
    if unreadable:
        raise VerifyError(f"tshark's PDML for {capture} is not XML: {unreadable[0]}")
    return WiresharkDecode(result)


def _pdml_packets(pdml: IO[bytes]) -> Iterator[etree._Element]:
    """Each ``<packet>`` of tshark's PDML as it is read, dropped from memory once used.
    Read as pyshark reads it: with lxml, recovering from what is not well-formed."""
    for _, packet in etree.iterparse(pdml, tag="packet", huge_tree=True, recover=True):
        yield packet
        packet.clear()
        while packet.getprevious() is not None:
            del packet.getparent()[0]


@contextlib.contextmanager
def _profile(tcp_ports: Iterable[int] = ()) -> Iterator[dict[str, str]]:
    """The environment tshark runs in: a private configuration directory, removed after.

    Its ``decode_as_entries`` decode every port in ``tcp_ports`` as BitTorrent, however
    many (one ``-d tcp.port==P,bittorrent`` per port overflowed the argument list at
    26,000 flows); and the user's own Wireshark preferences, "Decode As" rules and
    disabled protocols play no part in the reference decode.
    """
    with tempfile.TemporaryDirectory(prefix="btshark-verify-") as home:
        with open(os.path.join(home, "decode_as_entries"), "w", encoding="ascii") as out:
            out.writelines(f"decode_as_entry: tcp.port,{p},(none),BitTorrent\n" for p in sorted(set(tcp_ports)))
        yield {**os.environ, "WIRESHARK_CONFIG_DIR": home}


def _run_tshark(cmd: list[str], env: Mapping[str, str], read: Callable[[IO[bytes]], None],
                capture: str) -> tuple[int, str]:
    """Run tshark, ``read`` its output as it comes, wait for it: its exit status and its
    complaint in one line (see :func:`_complaint`). stderr goes to a file, not a pipe
    that could fill while stdout is read."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, env=env)
        except OSError as exc:
            raise VerifyError(f"tshark could not be run: {exc}") from None
        with proc:  # closes stdout and waits, however read() ends
            read(proc.stdout)
            while proc.stdout.read(1 << 16):  # whatever read() left: tshark must not block on it
                pass
        errors.seek(0)
        return proc.returncode, _complaint(errors.read().decode(errors="replace"), capture)


def _complaint(stderr: str, capture: str) -> str:
    """tshark's error in one line: its "tshark: ..." line and the "(...)" detail lines
    after it, without 'The file "CAPTURE"' (the caller names the capture)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("tshark:")), None)
    if start is None:
        return lines[-1] if lines else "no message"
    said = [lines[start].removeprefix("tshark:").strip()]
    said += [ln for ln in lines[start + 1:] if ln.startswith("(")][:1]
    text = " ".join(said).replace(f'The file "{capture}" ', "", 1)
    return text.replace(". (", " (").rstrip(".")


def _stopped(capture: str, tshark: str, status: int, said: str) -> TsharkStop:
    """What a tshark that failed on ``capture`` read of it (see :class:`TsharkStop`), or
    the error that says why there is nothing to compare."""
    if status < 0:
        raise VerifyError(f"tshark was killed by signal {-status} reading {capture}: {said}")
    if status != _READ_ERROR:
        raise VerifyError(f"tshark failed on {capture} (exit {status}): {said}")
    frames = _frames_read(capture, tshark)
    if frames is None:
        raise VerifyError(f"tshark cannot read all of {capture}: {said} (capinfos, which "
                          "counts the frames it can read, was not found beside tshark)")
    if frames == 0:
        raise TsharkCannotRead(f"tshark cannot read {capture}: {said}")
    return TsharkStop(frames, said)


def _frames_read(capture: str, tshark: str) -> int | None:
    """How many frames Wireshark's file reader gets from ``capture`` before it fails,
    counted by capinfos (beside tshark: the same reader, no dissection), or None."""
    capinfos = shutil.which("capinfos", path=os.path.dirname(tshark)) or shutil.which("capinfos")
    if capinfos is None:
        return None
    proc = subprocess.run([capinfos, "-T", "-r", "-c", capture], capture_output=True, text=True,
                          errors="replace", check=False)
    failed = re.search(r"after reading (\d+) packets", proc.stderr)
    counted = re.search(r"\t(\d+)\s*$", proc.stdout)
    return int((failed or counted).group(1)) if failed or counted else 0


def _tshark(tshark_path: str | None) -> str:
    from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path

    try:
        return get_process_path(tshark_path)
    except TSharkNotFoundException as exc:
        raise VerifyError(f"tshark not found: {exc}") from None


def _parse_utp(payload: bytes) -> tuple[int, int, int, tuple[int, ...], bytes] | None:
    """(type, connection_id, seq_nr, extension types, data) of a uTP datagram, or None.

    Written here from BEP 29, apart from btshark's reassembler, so the byte checks do
    not lean on the code they check.
    """
    if len(payload) < _UTP_HEADER.size:
        return None
    type_ver, ext, connection_id, _, _, _, seq_nr, _ = _UTP_HEADER.unpack_from(payload)
    if type_ver & 0x0F != 1 or type_ver >> 4 > 4:
        return None
    pos, extensions = _UTP_HEADER.size, []
    while ext:
        if pos + 2 > len(payload):
            return None
        extensions.append(ext)
        ext, size = payload[pos], payload[pos + 1]
        pos += 2 + size
    if pos > len(payload):
        return None
    return type_ver >> 4, connection_id, seq_nr, tuple(extensions), payload[pos:]


_MAX_FILTER_RANGES = 512  # past this many port ranges, tshark lists all of UDP and Python picks


def _port_ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ports as the fewest (first, last) runs of consecutive ports."""
    runs: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if runs and runs[-1][1] == port - 1:
            runs[-1] = (runs[-1][0], port)
        else:
            runs.append((port, port))
    return runs


def utp_packets(
    capture: str | os.PathLike,
    directions: Iterable[Direction],
    *,
    tshark_path: str | None = None,
) -> list[UtpPacket]:
    """Every uTP datagram of the given uTP directions, in capture order, with whether
    tshark's uTP heuristic accepted it. One ``tshark -T fields`` pass over their UDP ports
    (or over all of UDP, when the ports make more than a few hundred ranges)."""
    wanted = {d for d in directions if d[0] == "utp"}
    if not wanted:
        return []
    capture = os.fspath(capture)
    tshark = _tshark(tshark_path)
    runs = _port_ranges(int(e.rsplit(":", 1)[1]) for _, src, dst in wanted for e in (src, dst))
    shown = "udp"
    if len(runs) <= _MAX_FILTER_RANGES:
        shown = "udp.port in {" + ",".join(f"{a}..{b}" if a != b else f"{a}" for a, b in runs) + "}"
    fields = ["frame.number", "ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst",
              "udp.dstport", "bt-utp.type", "udp.payload"]
    cmd = [tshark, "-n", "-r", capture, "--enable-heuristic", UTP_HEURISTIC,
           "-Y", shown, "-T", "fields", "-E", "occurrence=f"]
    for name in fields:
        cmd += ["-e", name]
    packets = []

    def read(out: IO[bytes]) -> None:
        for line in out:
            frame, ip4s, ip6s, sport, ip4d, ip6d, dport, utp_type, payload = (
                line.decode("ascii", "replace").rstrip("\n").split("\t"))
            if not sport or not payload:
                continue
            direction = ("utp", _endpoint(ip4s or ip6s, sport), _endpoint(ip4d or ip6d, dport))
            parsed = _parse_utp(bytes.fromhex(payload.replace(":", "")))
            if direction in wanted and parsed is not None:
                packets.append(UtpPacket(int(frame), direction, bool(utp_type), *parsed))

    with _profile() as env:
        status, said = _run_tshark(cmd, env, read, capture)
    if status != 0:
        _stopped(capture, tshark, status, said)  # raises unless tshark read a part: those packets
    return packets


# ---------------------------------------------------------------------------
# btshark's side


def ours_from_records(records: Iterable[Mapping]) -> dict[Direction, list[WireMessage]]:
    """btshark's ``-T jsonl`` records grouped by (transport, src, dst), in record order."""
    result: dict[Direction, list[WireMessage]] = {}
    for record in records:
        if record.get("type") == "finding":
            continue
        message = _normalise(
            str(record["type"]),
            record.get("index"),
            record.get("begin"),
            record.get("length"),
            int(record["frame"]),
        )
        key = (str(record["transport"]), str(record["src"]), str(record["dst"]))
        result.setdefault(key, []).append(message)
    return result


def ports_from_records(records: Iterable[Mapping]) -> set[int]:
    """Every TCP port btshark saw BitTorrent on: the ports to decode as BitTorrent."""
    ports: set[int] = set()
    for record in records:
        if record.get("transport") != "tcp":
            continue
        for endpoint in (record["src"], record["dst"]):
            ports.add(int(str(endpoint).rsplit(":", 1)[1]))
    return ports


# ---------------------------------------------------------------------------
# Comparison


def _explain(ours: Sequence[WireMessage], theirs: Sequence[WireMessage], i: int) -> str | None:
    """Name the known tshark quirk behind a difference at position i, if there is one."""
    our = ours[i] if i < len(ours) else None
    their = theirs[i] if i < len(theirs) else None
    if their is None:
        return TSHARK_QUIRKS["truncated"] if our is not None else None
    continuation = their.type == "unknown" and (their.note or "").startswith("continuation")
    if continuation and our is not None:
        if our.type in _BEP52:
            return f"frame {their.frame}: {TSHARK_QUIRKS['bep52']}"
        if our.type == "handshake":
            return f"frame {their.frame}: {TSHARK_QUIRKS['split_handshake']}"
        if our.type == "unknown":
            return f"frame {their.frame}: {TSHARK_QUIRKS['unknown_id']}"
    if (
        their.type == "keepalive"
        and (our is None or our.type != "keepalive")
        and i + 1 < len(theirs)
        and theirs[i + 1].type == "unknown"
    ):
        return (
            f"frames {their.frame} and {theirs[i + 1].frame}: {TSHARK_QUIRKS['split_prefix']}"
        )
    # A tshark continuation just before this point swallowed messages that followed it.
    if i > 0 and i - 1 < len(theirs):
        previous = theirs[i - 1]
        if previous.type == "unknown" and (previous.note or "").startswith("continuation"):
            if i - 1 < len(ours) and ours[i - 1].type in _BEP52:
                return f"frame {previous.frame}: {TSHARK_QUIRKS['bep52']}"
            return f"frame {previous.frame}: {TSHARK_QUIRKS['unknown_id']}"
    if continuation:
        return f"frame {their.frame}: {TSHARK_QUIRKS['continuation']}"
    return None


def _first_difference(ours: Sequence[WireMessage], theirs: Sequence[WireMessage]) -> int | None:
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a.key != b.key:
            return i
    if len(ours) != len(theirs):
        return min(len(ours), len(theirs))
    return None


def _side(messages: Sequence[WireMessage], i: int) -> str:
    if i < len(messages):
        return messages[i].describe()
    return f"<none: ends after {len(messages)} messages>"


def _regions(ours: Sequence[WireMessage], theirs: Sequence[WireMessage], limit: int = 20) -> tuple[str, ...]:
    """Differing regions after aligning both sequences (difflib), one line each."""
    matcher = difflib.SequenceMatcher(
        None, [m.key for m in ours], [m.key for m in theirs], autojunk=False
    )
    lines = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if len(lines) == limit:
            lines.append("... more differing regions not shown")
            break

        def span(messages, lo, hi):
            if lo == hi:
                return "nothing"
            shown = "; ".join(m.describe() for m in messages[lo : min(hi, lo + 3)])
            more = f"; ... ({hi - lo} in all)" if hi - lo > 3 else ""
            return shown + more

        def where(lo, hi):
            return f"#{lo + 1}-{hi}" if hi > lo else f"before #{lo + 1}"

        lines.append(
            f"{tag}: ours {where(i1, i2)} [{span(ours, i1, i2)}] "
            f"vs wireshark {where(j1, j2)} [{span(theirs, j1, j2)}]"
        )
    return tuple(lines)


def _connection(direction: Direction) -> Connection:
    return direction[0], frozenset(direction[1:])


# ---------------------------------------------------------------------------
# tshark's proven mistakes


@dataclass(frozen=True, slots=True)
class SetAside:
    """What :func:`tshark_errors` proved wrong in one direction, and what it therefore drops."""

    theirs_frames: frozenset[int] = frozenset()  # Wireshark's messages in these frames
    ours_frames: frozenset[int] = frozenset()  # btshark's messages completed in these frames
    notes: tuple[str, ...] = ()  # one line each: frames and reason
    hints: tuple[str, ...] = ()  # tshark trouble seen, but nothing could be set aside


def _whole_messages(data: bytes, frame: int) -> list[WireMessage] | None:
    """The peer-wire messages ``data`` splits into exactly, or None if it does not."""
    out, pos = [], 0
    if data.startswith(_HANDSHAKE_START):
        if len(data) < 68:
            return None
        out.append(WireMessage("handshake", None, None, None, frame))
        pos = 68
    while pos < len(data):
        if pos + 4 > len(data):
            return None
        (size,) = _LENGTH.unpack_from(data, pos)
        body = data[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if len(body) != size:
            return None
        if not size:
            out.append(WireMessage("keepalive", None, None, None, frame))
            continue
        type_ = WIRESHARK_TYPES.get(body[0], "unknown")
        index = begin = length = None
        if type_ in _INDEX_ONLY or type_ in _INDEX_BEGIN_LENGTH:
            if len(body) < (9 if type_ == "piece" else 5 if type_ in _INDEX_ONLY else 13):
                return None
            index, begin, length = _INDEX_BEGIN_LEN.unpack_from(body.ljust(13, b"\0"), 1)
            if type_ == "piece":
                length = size - 9
        out.append(_normalise(type_, index, begin, length, frame))
    return out


def _listing(messages: Sequence[WireMessage]) -> str:
    shown = "; ".join(m.describe() for m in messages[:3])
    return shown + (f"; ... ({len(messages)} in all)" if len(messages) > 3 else "")


def tshark_errors(
    ours: Mapping[Direction, Sequence[WireMessage]],
    theirs: Mapping[Direction, Sequence[WireMessage]],
    packets: Iterable[UtpPacket],
) -> dict[Direction, SetAside]:
    """tshark 4.0's uTP mistakes that the captured bytes prove, per direction.

    * A DATA packet whose connection, seq_nr and bytes repeat an earlier one's (within
      the last half of the sequence space) is a retransmission: the stream holds those
      bytes once, so Wireshark's messages starting in the copy are set aside. Wireshark's
      messages from the first copy stay, so a btshark that dropped the bytes both times,
      or kept them both times, still differs.
    * A packet tshark's heuristic rejected that carries the close-reason extension: if its
      data splits into exactly the whole messages btshark completed in that frame, those
      are set aside (tshark has nothing to compare them with); otherwise it is a hint.
    """
    theirs_frames: dict[Direction, set[int]] = {}
    ours_frames: dict[Direction, set[int]] = {}
    notes: dict[Direction, list[str]] = {}
    hints: dict[Direction, list[str]] = {}
    seen: dict[tuple[Direction, int, int], UtpPacket] = {}
    for packet in packets:
        if packet.type != _UTP_DATA:
            continue
        d = packet.direction
        seen.pop((d, packet.connection_id, (packet.seq_nr + 0x8000) & 0xFFFF), None)
        original = seen.setdefault((d, packet.connection_id, packet.seq_nr), packet)
        if original is not packet:
            copies = [m for m in theirs.get(d, ()) if m.frame == packet.frame]
            if copies and original.data == packet.data:
                theirs_frames.setdefault(d, set()).add(packet.frame)
                notes.setdefault(d, []).append(
                    f"frame {packet.frame} repeats uTP seq_nr {packet.seq_nr} of frame "
                    f"{original.frame} byte for byte (a retransmission) and tshark 4.0 "
                    f"dissects it again: set aside {_listing(copies)}"
                )
            continue
        if packet.dissected or _UTP_CLOSE_REASON not in packet.extensions:
            continue
        mine = [m for m in ours.get(d, ()) if m.frame == packet.frame]
        found = _whole_messages(packet.data, packet.frame)
        if mine and found is not None and [m.key for m in found] == [m.key for m in mine]:
            ours_frames.setdefault(d, set()).add(packet.frame)
            notes.setdefault(d, []).append(
                f"frame {packet.frame} carries libtorrent's close-reason extension, so "
                f"tshark 4.0 rejects it as uTP; its bytes hold exactly btshark's "
                f"{_listing(mine)}, set aside uncompared"
            )
        elif packet.data:
            hints.setdefault(d, []).append(
                f"frame {packet.frame}: {TSHARK_QUIRKS['utp_close_reason']}"
            )
    return {
        d: SetAside(
            frozenset(theirs_frames.get(d, ())), frozenset(ours_frames.get(d, ())),
            tuple(notes.get(d, ())), tuple(hints.get(d, ())),
        )
        for d in set(notes) | set(hints)
    }


# ---------------------------------------------------------------------------
# Comparison and verdict


def compare(
    ours: Mapping[Direction, Sequence[WireMessage]],
    theirs: Mapping[Direction, Sequence[WireMessage]],
    *,
    set_aside: Mapping[Direction, SetAside] | None = None,
    losses: Mapping[Direction, Sequence[int]] | None = None,
) -> list[DirectionReport]:
    """Compare two decodes direction by direction, in order of each direction's first frame.

    ``set_aside`` (from :func:`tshark_errors`) drops messages tshark provably got wrong
    before comparing; the report keeps the full counts and names what was dropped.

    A direction only Wireshark has, on a connection btshark decoded nothing on, is
    ``skipped`` when Wireshark found no message in it either, only "Continuation data"
    (decode-as forced over something that is not plaintext BitTorrent, MSE/PE for one).
    Any other direction only one side decoded is a difference: btshark calling a
    connection encrypted is no excuse when Wireshark finds plaintext messages in it.

    ``losses`` (frames of btshark's hole and resync findings, per direction): when
    every message Wireshark decoded is btshark's too, in order, and Wireshark stops
    where btshark reported a loss (with out-of-order reassembly on it waits for bytes
    the capture never held), the direction agrees on all it compared, and the note
    says how many of btshark's messages after the loss went uncompared.
    """
    set_aside = set_aside or {}
    our_connections = {_connection(d) for d, msgs in ours.items() if msgs}
    directions = set(ours) | set(theirs)

    def first_frame(direction: Direction) -> int:
        frames = [m[0].frame for m in (ours.get(direction), theirs.get(direction)) if m]
        return min(frames) if frames else 0

    reports = []
    for direction in sorted(directions, key=lambda d: (first_frame(d), d)):
        full_a = list(ours.get(direction, ()))
        full_b = list(theirs.get(direction, ()))
        aside = set_aside.get(direction, SetAside())
        a = [m for m in full_a if m.frame not in aside.ours_frames]
        b = [m for m in full_b if m.frame not in aside.theirs_frames]
        transport, src, dst = direction
        common = dict(transport=transport, tshark_errors=aside.notes)
        i = _first_difference(a, b)
        if i is None:
            reports.append(DirectionReport(src, dst, len(full_a), len(full_b), True, None, **common))
            continue
        stop = _stopped_at_a_loss(a, b, i, (losses or {}).get(direction, ()))
        if stop is not None:
            common["tshark_errors"] = aside.notes + (
                f"frame {stop}: tshark 4.0 decodes nothing after the bytes btshark reports lost here "
                f"(out-of-order reassembly waits for them); btshark's {len(a) - i} later message(s) "
                "are not compared",)
            reports.append(DirectionReport(src, dst, len(full_a), len(full_b), True, None, **common))
            continue
        framed = [m for m in b if not _is_continuation(m)]
        if a and len(framed) < len(b) and _first_difference(a, framed) is None:
            # "Continuation data" is tshark saying it could not frame those bytes, not a
            # message; with it left out, every message of each side is the other's.
            notes = tuple(f"frame {m.frame}: tshark 4.0 shows {m.note} where it lost the framing "
                          "(not a message; every message on both sides matches without it)"
                          for m in b if _is_continuation(m))
            common["tshark_errors"] = aside.notes + notes
            reports.append(DirectionReport(src, dst, len(full_a), len(full_b), True, None, **common))
            continue
        if (
            not full_a
            and _connection(direction) not in our_connections
            and all(m.type == "unknown" for m in b)
        ):
            reports.append(
                DirectionReport(
                    src, dst, 0, len(full_b), False, None,
                    reason="Wireshark found only 'Continuation data' on a connection btshark "
                    "decoded nothing on: not plaintext BitTorrent",
                    skipped=True, **common,
                )
            )
            continue
        line = f"#{i + 1}: ours {_side(a, i)} | wireshark {_side(b, i)}"
        hint = next(iter(aside.hints), None) or _explain(a, b, i)
        real = sum(m.type != "unknown" for m in b)
        if not a and real:
            hint = f"btshark decoded nothing here; Wireshark decoded {real} message(s) besides continuation data"
        reports.append(
            DirectionReport(
                src, dst, len(full_a), len(full_b), False, line,
                reason=hint, differences=_regions(a, b), **common,
            )
        )
    return reports


def _stopped_at_a_loss(ours: Sequence[WireMessage], theirs: Sequence[WireMessage], i: int,
                       losses: Sequence[int]) -> int | None:
    """The loss frame where Wireshark's decode ended, if all it decoded is ours and
    btshark reported a loss after the last message both have (the loss may be declared
    after the frames of the messages that follow it: those wait for it to be known)."""
    if i != len(theirs) or i >= len(ours) or not theirs:
        return None
    after = theirs[-1].frame
    return next((f for f in sorted(losses) if f >= after), None)


def _is_continuation(message: WireMessage) -> bool:
    return message.type == "unknown" and (message.note or "").startswith("continuation")


def all_agree(reports: Iterable[DirectionReport]) -> bool:
    """The verdict: every direction either decode has agrees (skipped ones do not count).

    A direction exists only where one side decoded a message, and one the other side
    decoded nothing in differs, so this is false whenever Wireshark decoded messages
    btshark did not. It is true with no directions: both agree there is nothing, which
    :func:`format_report` says as :data:`NOTHING_TO_COMPARE`.
    """
    return all(r.agree or r.skipped for r in reports)


NOTHING_TO_COMPARE = (
    "nothing to compare: neither btshark nor Wireshark decoded a BitTorrent message "
    "(TCP or uTP) in this capture"
)


def format_report(reports: Sequence[DirectionReport], *, verbose: bool = False,
                  stop: TsharkStop | None = None) -> str:
    """One line per direction (tshark's errors set aside indented under it), then
    "N directions, N agree, N differ" (and skipped, if any), or :data:`NOTHING_TO_COMPARE`.

    ``verbose`` adds, under a differing direction, every differing region; ``stop``, the
    line that says where tshark stopped reading, just above the summary.
    """
    lines = []
    for r in reports:
        line = f"{r.status:6} {r.transport} {r.src} -> {r.dst}  ours {r.ours}  wireshark {r.theirs}"
        if r.first_difference:
            line += f"  first difference {r.first_difference}"
        if r.reason:
            line += f"  -- {r.reason}"
        lines.append(line)
        lines.extend(f"    tshark error: {note}" for note in r.tshark_errors)
        if verbose:
            lines.extend(f"    {d}" for d in r.differences)
    compared = [r for r in reports if not r.skipped]
    skipped = len(reports) - len(compared)
    if compared:
        agree = sum(r.agree for r in compared)
        excused = sum(r.agree and bool(r.tshark_errors) for r in compared)
        summary = f"{len(compared)} directions, {agree} agree"
        if excused:
            summary += f" ({excused} once tshark's errors are set aside)"
        summary += f", {len(compared) - agree} differ"
    else:
        summary = NOTHING_TO_COMPARE
    if skipped:
        summary += f", {skipped} skipped (not plaintext BitTorrent)"
    if stop is not None:
        lines.append(stop.describe())
    lines.append(summary)
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify` found: one report per direction, and where tshark stopped
    reading if it did not read the whole capture."""

    reports: list[DirectionReport]
    stop: TsharkStop | None = None


def verify(
    capture: str | os.PathLike,
    records: Iterable[Mapping],
    *,
    extra_ports: Iterable[int] = (),
    tshark_path: str | None = None,
    losses: Iterable[Mapping] = (),
) -> Verification:
    """The whole of `btshark verify`: btshark's records for CAPTURE against Wireshark's decode.

    ``losses`` are btshark's hole and resync findings (records with src, dst, transport
    and frame): where tshark stops at a loss btshark decoded past, it is named, not blamed.

    Wireshark decodes as BitTorrent every TCP port btshark found BitTorrent on (plus
    ``extra_ports``); its heuristics also catch TCP streams that begin with a handshake and
    uTP datagrams anywhere. When tshark stops reading at damage, the frames it read are
    compared and btshark's messages in later frames are counted, not compared.
    Raises :class:`TsharkCannotRead` when tshark reads no frame of CAPTURE, and
    :class:`VerifyError` when tshark is missing or fails otherwise.
    """
    records = list(records)
    ours = ours_from_records(records)
    ports = ports_from_records(records) | {int(p) for p in extra_ports}
    decode = wireshark_messages(capture, ports, tshark_path=tshark_path)
    theirs, stop = decode.messages, decode.stop
    if stop is not None:
        before = {d: [m for m in msgs if m.frame <= stop.frames] for d, msgs in ours.items()}
        after = sum(map(len, ours.values())) - sum(map(len, before.values()))
        ours, stop = {d: msgs for d, msgs in before.items() if msgs}, replace(stop, ours_after=after)
    packets = utp_packets(capture, set(ours) | set(theirs), tshark_path=tshark_path)
    lost: dict[Direction, list[int]] = {}
    for r in losses:
        lost.setdefault((r["transport"], r["src"], r["dst"]), []).append(r["frame"])
    return Verification(compare(ours, theirs, set_aside=tshark_errors(ours, theirs, packets), losses=lost), stop)
