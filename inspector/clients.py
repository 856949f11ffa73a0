"""Identify the BitTorrent client (name and version) behind a 20-byte peer id.

Peer ids are chosen by the remote peer, so everything here treats them as
untrusted bytes: no function raises on any input, unknown ids give ``None``
and every returned string is printable (no control characters).

Recognised encodings (BEP 20 and the conventions collected by the BitTorrent
community over the years):

* Azureus style  ``-XXabcd-``: a dash, a two-character client code, four
  version characters, a dash.  The code table is :data:`AZUREUS_CLIENTS`;
  each entry names a version *style* (see :data:`_AZ_STYLES`) because clients
  disagree on what the four characters mean.
* Shadow style   ``S58B-----``: one client letter, up to five version
  characters from a 64-character alphabet padded with ``-``, then ``---``
  (:data:`SHADOW_CLIENTS`).
* Mainline style ``M4-4-0--``: one letter, then dash separated decimal
  major/minor/patch (:data:`MAINLINE_CLIENTS`).
* Assorted one-off prefixes (``exbc``, ``A2-``, ``TIX``, ``XBT``, ``OP`` ...),
  listed with their decoder in :data:`SPECIAL_PREFIXES`.

Public API: :func:`identify` and :func:`identify_parts`.
"""

from __future__ import annotations

import re
from typing import Callable

__all__ = [
    "identify",
    "identify_parts",
    "AZUREUS_CLIENTS",
    "SHADOW_CLIENTS",
    "MAINLINE_CLIENTS",
    "SPECIAL_PREFIXES",
    "known_client_names",
]

PEER_ID_LEN = 20

# A decoder receives the (at most 20-byte) peer id and returns the version
# string ("" when the id carries no version) or None when the id does not
# actually follow the expected layout.
Decoder = Callable[[bytes], "str | None"]

# ---------------------------------------------------------------------------
# Character helpers
# ---------------------------------------------------------------------------

# libtorrent's fingerprint and Transmission use this "base 62" digit set for
# version components above 9: '0'-'9' = 0-9, 'A'-'Z' = 10-35, 'a'-'z' = 36-61.
_BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Shadow-style ids extend it with '.' = 62 and '-' = 63.
_SHADOW_ALPHABET = _BASE62 + b".-"
_B62_VALUE = {c: i for i, c in enumerate(_BASE62)}
_SHADOW_VALUE = {c: i for i, c in enumerate(_SHADOW_ALPHABET)}
# Hex digits in either case: the uTorrent family writes them lower case.
_HEX_VALUE = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


def _b62(ch: int) -> int | None:
    return _B62_VALUE.get(ch)


def _hex(ch: int) -> int | None:
    return _HEX_VALUE.get(ch)


def _dec(chunk: bytes) -> int | None:
    """Non-empty run of ASCII decimal digits -> int, else None."""
    if chunk and all(0x30 <= c <= 0x39 for c in chunk):
        return int(chunk)
    return None


def _printable_ascii(chunk: bytes) -> str | None:
    """The bytes as text if every one is printable ASCII (no space), else None."""
    if chunk and all(0x21 <= c <= 0x7E for c in chunk):
        return chunk.decode()
    return None


def _dotted(parts: list[int | None]) -> str | None:
    if not parts or any(p is None for p in parts):
        return None
    return ".".join(str(p) for p in parts)


# Release-type markers found in the last version character.  Unknown markers
# are dropped rather than guessed at.
_GENERIC_MARKS = {
    ord("b"): " (Beta)",
    ord("B"): " (Beta)",
    ord("d"): " (Debug)",
    ord("x"): " (Dev)",
    ord("X"): " (Dev)",
    ord("Z"): " (Dev)",
}
# Deluge >= 2.0: D = dev/nightly, a/b/r = pre-releases, s = stable.
_DELUGE_MARKS = {
    ord("D"): " (Dev)",
    ord("a"): " (Alpha)",
    ord("b"): " (Beta)",
    ord("r"): " (RC)",
    ord("s"): "",
}


# ---------------------------------------------------------------------------
# Azureus-style version decoders.  The version characters are pid[3:7] and
# pid[7] is the closing '-' (checked by the caller, except for the uTorrent
# family which may put a digit there).  The caller hands them at least 8 bytes.
# ---------------------------------------------------------------------------


def _az_digits(pid: bytes, count: int) -> str | None:
    """Plain base-62 major.minor[.patch[.build]] from pid[3:3+count]."""
    return _dotted([_b62(c) for c in pid[3 : 3 + count]])


def _az_three(pid: bytes) -> str | None:
    # e.g. libtorrent -LT2110- -> 2.1.1 ; the 4th char is a tag, ignored
    return _az_digits(pid, 3)


def _az_four(pid: bytes) -> str | None:
    # e.g. Azureus -AZ5770- -> 5.7.7.0
    return _az_digits(pid, 4)


def _az_three_marked(marks: dict[int, str]) -> Decoder:
    """major.minor.patch + release marker (or build digit) in the 4th char."""

    def decode(pid: bytes) -> str | None:
        base = _az_digits(pid, 3)
        last = pid[6]
        if base is None:
            return None
        if last in marks:
            return base + marks[last]
        build = _b62(last)
        if build is None:
            return None
        return base if build == 0 else f"{base}.{build}"

    return decode


_TWO_TWO = re.compile(rb"(\d\d)(\d\d)")


def _two_two(pid: bytes) -> tuple[int, int] | None:
    """Two decimal digits major, two decimal digits minor at pid[3:7]."""
    m = _TWO_TWO.match(pid, 3)
    return (int(m[1]), int(m[2])) if m else None


def _az_two_two(pid: bytes) -> str | None:
    # -BC0200- -> 2.00
    parts = _two_two(pid)
    return None if parts is None else f"{parts[0]}.{parts[1]:02d}"


def _az_two_two_plain(pid: bytes) -> str | None:
    # WebTorrent encodes each component as two digits: -WW0108- -> 1.8
    parts = _two_two(pid)
    return None if parts is None else f"{parts[0]}.{parts[1]}"


def _az_utorrent(pid: bytes) -> str | None:
    """uTorrent family: hex major, hex minor, hex patch, build-type letter.

    For patch levels >= 16 the closing dash is replaced: -UT3510S -> 3.5.10.
    """
    if pid[7] == ord("-"):
        parts = [_hex(c) for c in pid[3:6]]
        mark = pid[6]
    else:
        parts = [_hex(c) for c in pid[3:5]] + [_dec(pid[5:7])]
        mark = pid[7]
    version = _dotted(parts)
    return None if version is None else version + _GENERIC_MARKS.get(mark, "")


def _az_transmission(pid: bytes) -> str | None:
    """Transmission changed its scheme twice.

    * before 0.80: -TR0006- = 0.6, -TR0072- = 0.72
    * 0.80 .. 3.00: -TRXYYR- = X.YY, R: '0' release, 'Z' nightly after X.YY,
      'X' beta of the *next* version (-TR133X- is 1.34 beta)
    * 4.0 onwards: -TRXYZR- base-62 major.minor.patch, R: '0' release,
      'B' beta, 'Z' dev build.  (-TR3000- reads the same either way: 3.00.)
    """
    ver = pid[3:7]
    major, mark = _b62(ver[0]), ver[3]
    if ver[:3] == b"000":
        minor = _dec(ver[3:4])
        return None if minor is None else f"0.{minor}"
    if ver[:2] == b"00":
        minor = _dec(ver[2:4])
        return None if minor is None else f"0.{minor:02d}"
    if major is None:
        return None
    if major <= 3:
        minor = _dec(ver[1:3])
        if minor is None:
            return None
        if mark == ord("X"):  # beta of the following release
            major, minor = (major + 1, 0) if minor == 99 else (major, minor + 1)
            return f"{major}.{minor:02d} (Beta)"
        suffix = {ord("0"): "", ord("Z"): " (Dev)"}.get(mark)
        return None if suffix is None else f"{major}.{minor:02d}{suffix}"
    base = _az_digits(pid, 3)
    if base is None:
        return None
    return base + {ord("B"): " (Beta)", ord("Z"): " (Dev)"}.get(mark, "")


def _az_ktorrent(pid: bytes) -> str | None:
    # -KT22D1- = 2.2 Dev 1, -KT22R1- = 2.2 RC 1, otherwise major.minor.patch
    kind = {ord("D"): "Dev", ord("R"): "RC"}.get(pid[5])
    if kind is None:
        return _az_three(pid)
    version = _dotted([_b62(c) for c in pid[3:5]])
    last = _b62(pid[6])
    return None if version is None or last is None else f"{version} {kind} {last}"


def _az_literal(layout: str) -> Decoder:
    """Version text copied from pid[3:7] following a layout of indexes/literals.

    e.g. "3.456" -> pid[3] '.' pid[4] pid[5] pid[6].  Only printable ASCII
    version characters are accepted.
    """

    def decode(pid: bytes) -> str | None:
        out = []
        for ch in layout:
            if ch.isdigit():
                text = _printable_ascii(pid[int(ch) : int(ch) + 1])
                if text is None:
                    return None
                out.append(text)
            else:
                out.append(ch)
        return "".join(out)

    return decode


def _az_ctorrent(pid: bytes) -> str | None:
    # -CT1204- -> 1.2.04 (base-62 major/minor, then two literal chars)
    head = _dotted([_b62(c) for c in pid[3:5]])
    tail = _dec(pid[5:7])
    return None if head is None or tail is None else f"{head}.{pid[5:7].decode()}"


def _az_picotorrent(pid: bytes) -> str | None:
    # -PI0120- -> 0.12.0
    return _dotted([_b62(pid[3]), _dec(pid[4:6]), _b62(pid[6])])


def _az_xtorrent(pid: bytes) -> str | None:
    # -XX0025- -> 0.0 (25)
    head = _dotted([_b62(c) for c in pid[3:5]])
    build = _dec(pid[5:7])
    return None if head is None or build is None else f"{head} ({build})"


def _az_mldonkey(pid: bytes) -> str | None:
    # -ML2.7.2-xxxx : dotted version up to the next dash (no '-' at pid[7])
    m = re.match(rb"-ML(\d{1,3}(?:\.\d{1,3}){1,3})-", pid)
    return m.group(1).decode() if m else None


def _no_version(pid: bytes) -> str | None:
    return ""


# Version styles referenced by the client table.
_AZ_STYLES: dict[str, Decoder] = {
    "3": _az_three,
    "4": _az_four,
    "deluge": _az_three_marked(_DELUGE_MARKS),
    "2.2": _az_two_two,
    "2.2i": _az_two_two_plain,
    "utorrent": _az_utorrent,
    "transmission": _az_transmission,
    "ktorrent": _az_ktorrent,
    "ctorrent": _az_ctorrent,
    "picotorrent": _az_picotorrent,
    "xtorrent": _az_xtorrent,
    "bitbuddy": _az_literal("3.456"),
    "bitrocket": _az_literal("3.4 (56)"),
    "none": _no_version,
}
# Styles whose layout does not end with a '-' at pid[7].
_AZ_UNFRAMED = {"utorrent"}

# Two-character Azureus-style client codes -> (client name, version style).
AZUREUS_CLIENTS: dict[str, tuple[str, str]] = {
    "7T": ("aTorrent for Android", "4"),
    "AB": ("AnyEvent::BitTorrent", "4"),
    "AG": ("Ares", "4"),
    "A~": ("Ares", "3"),
    "AR": ("Arctic", "4"),
    "AT": ("Artemis", "4"),
    "AV": ("Avicora", "4"),
    "AX": ("BitPump", "2.2"),
    "AZ": ("Azureus/Vuze", "4"),
    "BB": ("BitBuddy", "bitbuddy"),
    "BC": ("BitComet", "2.2"),
    "BE": ("BitTorrent SDK", "4"),
    "BF": ("Bitflu", "none"),
    "BG": ("BTG", "4"),
    "BH": ("BitZilla", "4"),
    "BI": ("BiglyBT", "4"),
    "BL": ("BitLord", "4"),
    "BM": ("BitMagnet", "4"),
    "BN": ("Baidu Netdisk", "none"),
    "BP": ("BitTorrent Pro", "4"),
    "BR": ("BitRocket", "bitrocket"),
    "BS": ("BTSlave", "4"),
    "BT": ("BitTorrent", "utorrent"),
    "BU": ("BigUp", "4"),
    "BW": ("BitWombat", "4"),
    "BX": ("BittorrentX", "4"),
    "CD": ("Enhanced CTorrent", "2.2"),
    "CT": ("CTorrent", "ctorrent"),
    "DE": ("Deluge", "deluge"),
    "DP": ("Propagate Data Client", "4"),
    "EB": ("EBit", "4"),
    "ES": ("electric sheep", "3"),
    "FC": ("FileCroc", "4"),
    "FD": ("Free Download Manager", "3"),
    "FG": ("FlashGet", "2.2"),
    "FT": ("FoxTorrent", "4"),
    "FW": ("FrostWire", "3"),
    "FX": ("Freebox BitTorrent", "4"),
    "GR": ("GetRight", "4"),
    "GS": ("GSTorrent", "4"),
    "HK": ("Hekate", "4"),
    "HL": ("Halite", "3"),
    "HN": ("Hydranode", "4"),
    "IL": ("iLivid", "4"),
    "JS": ("Justseed.it client", "4"),
    "KC": ("Koinonein", "4"),
    "KG": ("KGet", "4"),
    "KT": ("KTorrent", "ktorrent"),
    "LC": ("LeechCraft", "4"),
    "LH": ("LH-ABC", "4"),
    "LK": ("Linkage", "4"),
    "LP": ("Lphant", "2.2"),
    "LT": ("libtorrent (rasterbar)", "3"),
    "LW": ("LimeWire", "none"),
    "MG": ("MediaGet", "4"),
    "MK": ("Meerkat", "4"),
    "MO": ("MonoTorrent", "4"),
    "MP": ("MooPolice", "3"),
    "MR": ("Miro", "4"),
    "MT": ("MoonlightTorrent", "4"),
    "NE": ("BT Next Evolution", "4"),
    "NX": ("Net Transport", "4"),
    "OS": ("OneSwarm", "4"),
    "OT": ("OmegaTorrent", "4"),
    "PB": ("Protocol::BitTorrent", "4"),
    "PD": ("Pando", "4"),
    "PI": ("PicoTorrent", "picotorrent"),
    "QD": ("QQDownload", "4"),
    "QT": ("Qt 4 Torrent example", "4"),
    "RS": ("Rufus", "4"),
    "RT": ("Retriever", "4"),
    "RZ": ("RezTorrent", "4"),
    "SB": ("Swiftbit", "4"),
    "SD": ("Thunder (Xunlei)", "4"),
    "SK": ("spark", "4"),
    "SM": ("SoMud", "4"),
    "SN": ("ShareNet", "4"),
    "SP": ("BitSpirit", "3"),
    "SS": ("SwarmScope", "4"),
    "ST": ("SymTorrent", "4"),
    "SZ": ("Shareaza", "4"),
    "S~": ("Shareaza (alpha/beta)", "4"),
    "TB": ("Torch", "4"),
    "TL": ("Tribler", "4"),
    "TN": ("TorrentDotNET", "4"),
    "TR": ("Transmission", "transmission"),
    "TS": ("Torrentstorm", "4"),
    "TT": ("TuoTu", "4"),
    "UE": ("µTorrent Embedded", "utorrent"),
    "UL": ("uLeecher!", "4"),
    "UM": ("µTorrent Mac", "utorrent"),
    "UT": ("µTorrent", "utorrent"),
    "UW": ("µTorrent Web", "utorrent"),
    "VG": ("Vagaa", "4"),
    "WD": ("WebTorrent Desktop", "2.2i"),
    "WS": ("HTTP Seed", "none"),
    "WT": ("BitLet", "4"),
    "WW": ("WebTorrent", "2.2i"),
    "WY": ("FireTorrent", "4"),
    "XC": ("Xtorrent", "xtorrent"),
    "XF": ("Xfplay", "4"),
    "XL": ("Xunlei", "4"),
    "XS": ("XSwifter", "4"),
    "XT": ("XanTorrent", "4"),
    "XX": ("Xtorrent", "xtorrent"),
    "ZO": ("Zona", "4"),
    "ZT": ("ZipTorrent", "4"),
    "bk": ("BitKitten", "4"),
    "lt": ("libTorrent (rakshasa)", "3"),
    "pb": ("pbTorrent", "3"),
    "pX": ("pHoeniX", "4"),
    "qB": ("qBittorrent", "3"),
    "st": ("SharkTorrent", "4"),
    "tT": ("tTorrent", "4"),
}

# First letter of Shadow-style ids.
SHADOW_CLIENTS: dict[str, str] = {
    "A": "ABC",
    "O": "Osprey Permaseed",
    "Q": "BTQueue",
    "R": "Tribler",
    "S": "Shadow",
    "T": "BitTornado",
    "U": "UPnP NAT Bit Torrent",
}

# First letter of mainline-style ids (Mx-y-z-- / Mx-yy-z-).
MAINLINE_CLIENTS: dict[str, str] = {
    "M": "BitTorrent (mainline)",
    "Q": "Queen Bee",
}


# ---------------------------------------------------------------------------
# Decoders for the one-off prefixes
# ---------------------------------------------------------------------------


def _bitcomet_exbc(pid: bytes) -> str | None:
    # exbc + two raw bytes: major, minor (0.x versions before 0.59): exbc\x00\x38 -> 0.56
    if len(pid) < 6:
        return None
    return f"{pid[4]}.{pid[5]:02d}"


def _dashed_triplet(start: int) -> Decoder:
    """Decimal a-b-c- at pid[start:], as aria2 (A2-1-36-0-) and Amazon S3 use."""
    pattern = re.compile(rb"(\d{1,3})-(\d{1,3})-(\d{1,3})-")

    def decode(pid: bytes) -> str | None:
        m = pattern.match(pid, start)
        return ".".join(g.decode() for g in m.groups()) if m else None

    return decode


def _two_two_at3(pid: bytes) -> str | None:
    # Tixati: TIX0203- -> 2.03 (same two-digit layout as -BC0200-)
    return _az_two_two(pid)


_XBT = re.compile(rb"XBT(\d)(\d)(\d)(.)", re.DOTALL)
_OPERA = re.compile(rb"OP(\d{4})")
_DNA = re.compile(rb"DNA(\d\d)(\d\d)(\d\d)")
_PLUS = re.compile(rb"Plus(\d)(\d\d)")
_QVOD = re.compile(rb"QVOD([0-9A-Za-z]{4})")


def _xbt(pid: bytes) -> str | None:
    # XBT054d- -> 0.5.4 (Debug)
    m = _XBT.match(pid)
    return f"{int(m[1])}.{int(m[2])}.{int(m[3])}" + _GENERIC_MARKS.get(m[4][0], "") if m else None


def _opera(pid: bytes) -> str | None:
    # OP7685 + hex: the four digits are the build number
    m = _OPERA.match(pid)
    return f"build {m[1].decode()}" if m else None


def _bits_on_wheels(pid: bytes) -> str | None:
    known = {b"A0B": "1.0.5", b"A0C": "1.0.6"}
    ver = pid[4:7]
    if ver in known:
        return known[ver]
    text = _printable_ascii(ver)
    return None if text is None or len(text) != 3 else ".".join(text)


def _dna(pid: bytes) -> str | None:
    # DNA010203 -> 1.2.3 (three two-digit decimal fields)
    m = _DNA.match(pid)
    return f"{int(m[1])}.{int(m[2])}.{int(m[3])}" if m else None


def _burst(pid: bytes) -> str | None:
    # Mbrst1-2-3 -> 1.2.3
    m = re.match(rb"Mbrst(\d)-(\d)-(\d)", pid)
    return ".".join(g.decode() for g in m.groups()) if m else None


def _plus(pid: bytes) -> str | None:
    # Plus123 -> 1.23; Plus--- has no version
    m = _PLUS.match(pid)
    return f"{m[1].decode()}.{m[2].decode()}" if m else ""


def _trailing_dotted(start: int) -> Decoder:
    """Optional dotted version right after the prefix (turbobt5.0.2, btpd/0.16)."""
    pattern = re.compile(rb"/?(\d{1,3}(?:\.\d{1,3}){0,3})")

    def decode(pid: bytes) -> str | None:
        m = pattern.match(pid, start)
        return m.group(1).decode() if m else ""

    return decode


def _qvod(pid: bytes) -> str | None:
    # QVOD0054 -> 0.0.5.4
    m = _QVOD.match(pid)
    return _dotted([_b62(c) for c in m[1]]) if m else None


def _bitspirit(pid: bytes) -> str | None:
    # \x00 <version byte> B S ... ; version byte 0 means BitSpirit 1 (the prefix, at
    # offset 2, guarantees four bytes)
    return str(pid[1] or 1) if pid[0] == 0 else None


def _bitlord_exbc(pid: bytes) -> str | None:
    # exbc + version bytes + LORD: BitLord on BitComet's old scheme
    return _bitcomet_exbc(pid) if pid[6:10] == b"LORD" else None


# (offset, prefix, client name, decoder).  Tried in order, before the generic
# Azureus/mainline/Shadow parsers: longer and more specific prefixes first.
# A decoder returning None means "not really this layout": matching goes on.
SPECIAL_PREFIXES: list[tuple[int, bytes, str, Decoder]] = [
    (0, b"Deadman Walking-", "Deadman Walking", _no_version),
    (0, b"10-------", "JVtorrent", _no_version),
    (0, b"AZ2500BT", "BitTyrant", _no_version),
    (0, b"PRC.P---", "BitTorrent Plus! II", _no_version),
    (0, b"P87.P---", "BitTorrent Plus!", _no_version),
    (0, b"S587Plus", "BitTorrent Plus!", _no_version),
    (5, b"Azureus", "Azureus", lambda pid: "2.0.3.2"),
    (0, b"DansClient", "XanTorrent", _no_version),
    (0, b"PEERAPP", "PeerApp", _no_version),
    (0, b"a00---0", "Swarmy", _no_version),
    (0, b"a02---0", "Swarmy", _no_version),
    (0, b"T00---0", "Teeweety", _no_version),
    (0, b"martini", "Martini Man", _no_version),
    (0, b"turbobt", "TurboBT", _trailing_dotted(7)),
    (4, b"btfans", "SimpleBT", _no_version),
    (0, b"BTDWV-", "Deadman Walking", _no_version),
    (0, b"aria2-", "aria2", _no_version),
    (0, b"Mbrst", "burst!", _burst),
    (0, b"btuga", "BTugaXP", _no_version),
    (0, b"oernu", "BTugaXP", _no_version),
    (0, b"Pando", "Pando", _no_version),
    (0, b"-BOW", "Bits on Wheels", _bits_on_wheels),
    (0, b"-Qt-", "Qt", _no_version),
    (0, b"-G3", "G3 Torrent", _no_version),  # -G3 + nickname, no version
    (0, b"346-", "TorrentTopia", _no_version),
    (0, b"exbc", "BitLord", _bitlord_exbc),
    (0, b"exbc", "BitComet", _bitcomet_exbc),
    (0, b"FUTB", "BitComet (Solidox mod)", _bitcomet_exbc),
    (0, b"xUTB", "BitComet (mod 2)", _bitcomet_exbc),
    (0, b"LIME", "LimeWire", _no_version),
    (0, b"Plus", "Plus!", _plus),
    (0, b"QVOD", "QVOD", _qvod),
    (0, b"btpd", "BitTorrent Protocol Daemon", _trailing_dotted(4)),
    (0, b"-ML", "MLdonkey", _az_mldonkey),
    (0, b"A2-", "aria2", _dashed_triplet(3)),
    (0, b"S3-", "Amazon S3", _dashed_triplet(3)),
    (0, b"TIX", "Tixati", _two_two_at3),
    (0, b"XBT", "XBT Client", _xbt),
    (0, b"DNA", "BitTorrent DNA", _dna),
    (0, b"BLZ", "Blizzard Downloader", _no_version),
    (0, b"OP", "Opera", _opera),
    (0, b"eX", "eXeem", _no_version),
    (2, b"BS", "BitSpirit", _bitspirit),
]


# ---------------------------------------------------------------------------
# Generic parsers
# ---------------------------------------------------------------------------


def _parse_special(pid: bytes) -> tuple[str, str] | None:
    for offset, prefix, name, decode in SPECIAL_PREFIXES:
        if pid.startswith(prefix, offset):
            version = decode(pid)
            if version is not None:
                return name, version
    return None


def _parse_azureus(pid: bytes) -> tuple[str, str] | None:
    if len(pid) < 8 or pid[0] != ord("-"):
        return None
    entry = AZUREUS_CLIENTS.get(pid[1:3].decode("latin-1"))
    if entry is None:
        return None
    name, style = entry
    framed = pid[7] == ord("-")
    if not framed and style not in _AZ_UNFRAMED:
        return None
    version = _AZ_STYLES[style](pid)
    if version is None:
        # Right frame, unreadable version: still clearly this client.
        return (name, "") if framed else None
    return name, version


def _parse_mainline(pid: bytes) -> tuple[str, str] | None:
    name = MAINLINE_CLIENTS.get(chr(pid[0]))
    if name is None:
        return None
    # "M4-4-0--" / "M7-10-3-": the 8-byte head is digits and dashes only.
    m = re.fullmatch(rb"(\d{1,3})-(\d{1,3})-(\d{1,3})-+", pid[1:8])
    if m is None:
        return None
    return name, ".".join(g.decode() for g in m.groups())


def _parse_shadow(pid: bytes) -> tuple[str, str] | None:
    name = SHADOW_CLIENTS.get(chr(pid[0]))
    if name is None or pid[6:9] != b"---":
        return None
    chars = pid[1:6].rstrip(b"-")
    values = [_SHADOW_VALUE.get(c) for c in chars]
    if not values or None in values:
        return None
    return name, ".".join(str(v) for v in values)


_PARSERS: tuple[Callable[[bytes], "tuple[str, str] | None"], ...] = (
    _parse_special,
    _parse_azureus,
    _parse_mainline,
    _parse_shadow,
)


def identify_parts(peer_id: bytes) -> tuple[str, str] | None:
    """(client name, version) for a peer id, or None when unknown.

    The version is "" when the client is recognised but its id carries no
    (readable) version.  Only the first 20 bytes are considered; shorter ids
    are matched as far as they go.  Never raises.  Both parts are printable:
    names come from the tables, versions only from digits and printable ASCII.
    """
    if not isinstance(peer_id, (bytes, bytearray, memoryview)):
        return None
    pid = bytes(peer_id[:PEER_ID_LEN])
    if not pid.strip(b"\x00"):
        return None
    for parse in _PARSERS:
        found = parse(pid)
        if found is not None:
            return found
    return None


def identify(peer_id: bytes) -> str | None:
    """Human-readable client, e.g. "qBittorrent 4.6.2", or None when unknown."""
    parts = identify_parts(peer_id)
    if parts is None:
        return None
    name, version = parts
    return f"{name} {version}" if version else name


def known_client_names() -> set[str]:
    """Every distinct client name this module can report."""
    names = {name for name, _ in AZUREUS_CLIENTS.values()}
    names.update(SHADOW_CLIENTS.values())
    names.update(MAINLINE_CLIENTS.values())
    names.update(name for _, _, name, _ in SPECIAL_PREFIXES)
    return names
