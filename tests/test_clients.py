"""Tests for inspector.clients: BitTorrent client identification from peer ids."""

from __future__ import annotations

import glob
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED_CAPTURES
from inspector import clients
from inspector.clients import identify, identify_parts

TAIL = b"0123456789ab"  # 12 "random" bytes completing an 8-byte prefix


def pid(head: bytes) -> bytes:
    """Pad a peer-id head to 20 bytes the way clients fill in randomness."""
    return (head + TAIL + b"xxxxxxxxxxxxxxxxxxxx")[:20]


# Peer ids seen on the wire in ../shared/captures/*.pcap, extracted with
#   tshark -r <file> -o tcp.reassemble_out_of_order:TRUE \
#          -d tcp.port==51413,bittorrent -Y bittorrent.peer_id \
#          -T fields -e bittorrent.peer_id
CAPTURED = {
    # aria2-to-libtorrent.pcap, seeder (port 51413): aria2 1.36.0 (Debian)
    bytes.fromhex("41322d312d33362d302d678dc164a9e19cfa70b2"): "aria2 1.36.0",
    # aria2-to-libtorrent.pcap, downloader: libtorrent 2.1.1 Python bindings
    bytes.fromhex("2d4c54323131302d642a2d7459682a334d322d4f"): "libtorrent (rasterbar) 2.1.1",
    # transmission-to-libtorrent.pcap, downloader side (libtorrent 2.1.1)
    bytes.fromhex("2d4c54323131302d306e424c4b78315933776c69"): "libtorrent (rasterbar) 2.1.1",
    bytes.fromhex("2d4c54323131302d684e4f3730515830446a652a"): "libtorrent (rasterbar) 2.1.1",
    # transmission-to-libtorrent.pcap, seeder: transmission-cli 3.00 (Debian)
    bytes.fromhex("2d5452333030302d6361646f6737757367323964"): "Transmission 3.00",
}


@pytest.mark.parametrize("peer_id,expected", sorted(CAPTURED.items()))
def test_captured_peer_ids(peer_id, expected):
    assert len(peer_id) == 20
    assert identify(peer_id) == expected


AZUREUS_STYLE = [
    # the big ones
    (b"-LT2110-", "libtorrent (rasterbar) 2.1.1"),
    (b"-LT12E0-", "libtorrent (rasterbar) 1.2.14"),  # base-62 digit E = 14
    (b"-LT1B00-", "libtorrent (rasterbar) 1.11.0"),
    (b"-lt0D60-", "libTorrent (rakshasa) 0.13.6"),  # rtorrent 0.9.6
    (b"-qB4620-", "qBittorrent 4.6.2"),
    (b"-qB5010-", "qBittorrent 5.0.1"),
    (b"-UT355W-", "µTorrent 3.5.5"),
    (b"-UT354B-", "µTorrent 3.5.4 (Beta)"),
    (b"-UT3510S", "µTorrent 3.5.10"),  # 2-digit patch replaces the dash
    (b"-UT2210-", "µTorrent 2.2.1"),
    (b"-UM1870-", "µTorrent Mac 1.8.7"),
    (b"-UW140B-", "µTorrent Web 1.4.0 (Beta)"),
    (b"-UE3400-", "µTorrent Embedded 3.4.0"),
    (b"-BT7a5S-", "BitTorrent 7.10.5"),  # mainline 7.x is µTorrent based, hex digits
    (b"-BC0200-", "BitComet 2.00"),
    (b"-BC0136-", "BitComet 1.36"),
    (b"-DE211s-", "Deluge 2.1.1"),
    (b"-DE200D-", "Deluge 2.0.0 (Dev)"),
    (b"-DE201b-", "Deluge 2.0.1 (Beta)"),
    (b"-DE13F0-", "Deluge 1.3.15"),
    (b"-AZ5770-", "Azureus/Vuze 5.7.7.0"),
    (b"-AZ2060-", "Azureus/Vuze 2.0.6.0"),  # BEP 20's example
    (b"-BI3600-", "BiglyBT 3.6.0.0"),
    (b"-XL0012-", "Xunlei 0.0.1.2"),
    (b"-SD0100-", "Thunder (Xunlei) 0.1.0.0"),
    (b"-KT4130-", "KTorrent 4.1.3"),
    (b"-KT22D1-", "KTorrent 2.2 Dev 1"),
    (b"-KT22R2-", "KTorrent 2.2 RC 2"),
    (b"-LW0000-", "LimeWire"),
    (b"-FD6050-", "Free Download Manager 6.0.5"),
    (b"-FW6340-", "FrostWire 6.3.4"),
    (b"-BN0001-", "Baidu Netdisk"),
    (b"-WW0108-", "WebTorrent 1.8"),
    (b"-WD0013-", "WebTorrent Desktop 0.13"),
    (b"-PI0120-", "PicoTorrent 0.12.0"),
    (b"-HL0290-", "Halite 0.2.9"),
    (b"-MO1000-", "MonoTorrent 1.0.0.0"),
    (b"-RT0100-", "Retriever 0.1.0.0"),
    (b"-AG2053-", "Ares 2.0.5.3"),
    (b"-A~0100-", "Ares 0.1.0"),
    (b"-AR1000-", "Arctic 1.0.0.0"),
    (b"-BB1234-", "BitBuddy 1.234"),
    (b"-BF0000-", "Bitflu"),
    (b"-BG1000-", "BTG 1.0.0.0"),
    (b"-BR1234-", "BitRocket 1.2 (34)"),
    (b"-BS1000-", "BTSlave 1.0.0.0"),
    (b"-BX0100-", "BittorrentX 0.1.0.0"),
    (b"-CD0302-", "Enhanced CTorrent 3.02"),
    (b"-CT1204-", "CTorrent 1.2.04"),
    (b"-DP1000-", "Propagate Data Client 1.0.0.0"),
    (b"-EB1000-", "EBit 1.0.0.0"),
    (b"-ES0100-", "electric sheep 0.1.0"),
    (b"-FT1000-", "FoxTorrent 1.0.0.0"),
    (b"-FG0123-", "FlashGet 1.23"),
    (b"-FX1000-", "Freebox BitTorrent 1.0.0.0"),
    (b"-GS1000-", "GSTorrent 1.0.0.0"),
    (b"-HN1000-", "Hydranode 1.0.0.0"),
    (b"-KG2310-", "KGet 2.3.1.0"),
    (b"-LH0100-", "LH-ABC 0.1.0.0"),
    (b"-LP0310-", "Lphant 3.10"),
    (b"-MP0100-", "MooPolice 0.1.0"),
    (b"-MT1000-", "MoonlightTorrent 1.0.0.0"),
    (b"-PD1000-", "Pando 1.0.0.0"),
    (b"-QD1000-", "QQDownload 1.0.0.0"),
    (b"-QT1000-", "Qt 4 Torrent example 1.0.0.0"),
    (b"-RZ1000-", "RezTorrent 1.0.0.0"),
    (b"-SB1000-", "Swiftbit 1.0.0.0"),
    (b"-SS1000-", "SwarmScope 1.0.0.0"),
    (b"-ST1000-", "SymTorrent 1.0.0.0"),
    (b"-st1000-", "SharkTorrent 1.0.0.0"),
    (b"-SZ2700-", "Shareaza 2.7.0.0"),
    (b"-SP3605-", "BitSpirit 3.6.0"),
    (b"-TN1000-", "TorrentDotNET 1.0.0.0"),
    (b"-TS1000-", "Torrentstorm 1.0.0.0"),
    (b"-TT1000-", "TuoTu 1.0.0.0"),
    (b"-UL1000-", "uLeecher! 1.0.0.0"),
    (b"-VG1000-", "Vagaa 1.0.0.0"),
    (b"-XT1000-", "XanTorrent 1.0.0.0"),
    (b"-XX0025-", "Xtorrent 0.0 (25)"),
    (b"-ZT1000-", "ZipTorrent 1.0.0.0"),
    (b"-7T0100-", "aTorrent for Android 0.1.0.0"),
    (b"-LC0400-", "LeechCraft 0.4.0.0"),
    (b"-NX1000-", "Net Transport 1.0.0.0"),
    (b"-OS1000-", "OneSwarm 1.0.0.0"),
    (b"-TL0700-", "Tribler 0.7.0.0"),
    (b"-PB0100-", "Protocol::BitTorrent 0.1.0.0"),
    (b"-JS1000-", "Justseed.it client 1.0.0.0"),
    (b"-IL1000-", "iLivid 1.0.0.0"),
    (b"-TB1000-", "Torch 1.0.0.0"),
    (b"-tT1000-", "tTorrent 1.0.0.0"),
    (b"-WY1000-", "FireTorrent 1.0.0.0"),
    (b"-HK1000-", "Hekate 1.0.0.0"),
]


@pytest.mark.parametrize("head,expected", AZUREUS_STYLE)
def test_azureus_style(head, expected):
    assert identify(pid(head)) == expected


def test_at_least_30_distinct_azureus_clients_tested():
    names = {identify_parts(pid(head))[0] for head, _ in AZUREUS_STYLE}
    assert len(names) >= 30


TRANSMISSION = [
    (b"-TR0006-", "Transmission 0.6"),  # before 0.80: two digits major, two minor
    (b"-TR0072-", "Transmission 0.72"),
    (b"-TR1330-", "Transmission 1.33"),  # 0.80 .. 3.00: X.YY + release marker
    (b"-TR133Z-", "Transmission 1.33 (Dev)"),  # nightly after 1.33
    (b"-TR133X-", "Transmission 1.34 (Beta)"),  # beta of the next release
    (b"-TR199X-", "Transmission 2.00 (Beta)"),
    (b"-TR2940-", "Transmission 2.94"),
    (b"-TR3000-", "Transmission 3.00"),
    (b"-TR300Z-", "Transmission 3.00 (Dev)"),
    (b"-TR4000-", "Transmission 4.0.0"),  # 4.x: base-62 major.minor.patch + 0/B/Z
    (b"-TR400B-", "Transmission 4.0.0 (Beta)"),
    (b"-TR400Z-", "Transmission 4.0.0 (Dev)"),
    (b"-TR4050-", "Transmission 4.0.5"),
    (b"-TR40aZ-", "Transmission 4.0.36 (Dev)"),
    (b"-TR4A00-", "Transmission 4.10.0"),
]


@pytest.mark.parametrize("head,expected", TRANSMISSION)
def test_transmission_versions(head, expected):
    assert identify(pid(head)) == expected


SPECIAL_STYLES = [
    # aria2: "A2-" + major-minor-patch separated by dashes, then binary
    (b"A2-1-36-0-" + bytes(range(0xF0, 0xFA)), "aria2 1.36.0"),
    (b"A2-1-9-5-" + bytes(range(0x80, 0x8B)), "aria2 1.9.5"),
    (pid(b"aria2-"), "aria2"),
    # Shadow style: letter + base-64 version chars padded with '-' + '---'
    (pid(b"S58B-----"), "Shadow 5.8.11"),
    (pid(b"T03I-----"), "BitTornado 0.3.18"),
    (pid(b"A310-----"), "ABC 3.1.0"),
    (pid(b"O0.1-----"), "Osprey Permaseed 0.62.1"),
    (pid(b"R34------"), "Tribler 3.4"),
    (pid(b"U8.------"), "UPnP NAT Bit Torrent 8.62"),
    # mainline style
    (pid(b"M4-4-0--"), "BitTorrent (mainline) 4.4.0"),
    (pid(b"M4-3-6--"), "BitTorrent (mainline) 4.3.6"),  # BEP 20 examples
    (pid(b"M4-20-8-"), "BitTorrent (mainline) 4.20.8"),
    (pid(b"Q1-10-0-"), "Queen Bee 1.10.0"),
    (pid(b"Q1-0-0--"), "Queen Bee 1.0.0"),
    # BitComet / BitLord before 0.59: "exbc" + two version bytes
    (pid(b"exbc\x00\x38"), "BitComet 0.56"),
    (pid(b"exbc\x00\x3aLORD"), "BitLord 0.58"),
    (pid(b"FUTB\x00\x38"), "BitComet (Solidox mod) 0.56"),
    # Tixati: TIX + two-digit major + two-digit minor
    (pid(b"TIX0203-"), "Tixati 2.03"),
    (pid(b"TIX0289-"), "Tixati 2.89"),
    (pid(b"XBT054d-"), "XBT Client 0.5.4 (Debug)"),
    (pid(b"XBT0700-"), "XBT Client 0.7.0"),
    (b"OP7685f2c1a0b9d8e7f6a5", "Opera build 7685"),
    (pid(b"-ML2.7.2-kgjjfkd"), "MLdonkey 2.7.2"),
    (pid(b"-BOWA0C-"), "Bits on Wheels 1.0.6"),
    (pid(b"-BOWA0B-"), "Bits on Wheels 1.0.5"),
    (pid(b"Pando-"), "Pando"),
    (pid(b"-G3somebody"), "G3 Torrent"),
    (pid(b"AZ2500BT"), "BitTyrant"),
    (pid(b"btpd/0.16-"), "BitTorrent Protocol Daemon 0.16"),
    (pid(b"BLZ\x02\x03"), "Blizzard Downloader"),
    (pid(b"Plus123"), "Plus! 1.23"),
    (pid(b"turbobt5.0.2-"), "TurboBT 5.0.2"),
    (pid(b"DNA010203"), "BitTorrent DNA 1.2.3"),
    (b"Deadman Walking-" + b"abcd", "Deadman Walking"),
    (pid(b"346-"), "TorrentTopia"),
    (b"\x00\x03BS" + bytes(16), "BitSpirit 3"),
    (b"\x00\x00BS" + bytes(16), "BitSpirit 1"),
    (pid(b"Mbrst1-0-2"), "burst! 1.0.2"),
    (pid(b"btuga"), "BTugaXP"),
    (pid(b"LIME"), "LimeWire"),
    (pid(b"10-------"), "JVtorrent"),
    (pid(b"eXsomeuser"), "eXeem"),
    (pid(b"a00---0"), "Swarmy"),
    (pid(b"QVOD0054"), "QVOD 0.0.5.4"),
    (pid(b"S3-1-0-0--"), "Amazon S3 1.0.0"),
    (b"\x00\x00\x00\x00\x00Azureus" + bytes(8), "Azureus 2.0.3.2"),
]


@pytest.mark.parametrize("peer_id,expected", SPECIAL_STYLES)
def test_special_styles(peer_id, expected):
    assert identify(peer_id) == expected


# Each layout at its edges, the values written from the layouts above (BEP 20 and the
# clients' own schemes): the shortest id that still carries the version and one byte
# less, a character outside a field's alphabet, the ends of an alphabet, the markers.
EDGES = [
    # printable ASCII version characters (BitBuddy: pid[3] '.' pid[4:7]): '!' and '~' are
    # the ends of the range; space, DEL and a C1 byte are not version characters
    (pid(b"-BB!~!~-"), "BitBuddy !.~!~"),
    (pid(b"-BB1 23-"), "BitBuddy"),
    (pid(b"-BB1\x7f23-"), "BitBuddy"),
    (pid(b"-BB1\x8023-"), "BitBuddy"),
    # two decimal digits major, two minor: both fields read, each must be digits
    (pid(b"-BC1203-"), "BitComet 12.03"),
    (pid(b"-BC02x0-"), "BitComet"),
    (pid(b"-BCx200-"), "BitComet"),
    (pid(b"-WW1208-"), "WebTorrent 12.8"),
    (b"TIX0203", "Tixati 2.03"),
    (b"TIX020", None),
    # uTorrent: hex digits (either case); an unframed id has its marker at pid[7]
    (pid(b"-UT7A5S-"), "\u00b5Torrent 7.10.5"),
    (b"-UT3510B", "\u00b5Torrent 3.5.10 (Beta)"),
    (pid(b"-UT3510B"), "\u00b5Torrent 3.5.10 (Beta)"),
    (pid(b"-UT3g5B-"), "\u00b5Torrent"),
    # KTorrent dev/RC: both the version and the number must be base-62 digits
    (pid(b"-KT!2D1-"), "KTorrent"),
    (pid(b"-KT22D!-"), "KTorrent"),
    (pid(b"-KT22\x00\x00-"), "KTorrent"),
    (pid(b"-CT1204-"), "CTorrent 1.2.04"),
    (pid(b"-CT12x4-"), "CTorrent"),
    (pid(b"-CT!204-"), "CTorrent"),
    (pid(b"-XX0025-"), "Xtorrent 0.0 (25)"),
    (pid(b"-XX!!25-"), "Xtorrent"),
    (pid(b"-XX00x5-"), "Xtorrent"),
    (pid(b"-XX00:5-"), "Xtorrent"),  # ':' and '/' border the digits
    (pid(b"-XX00/5-"), "Xtorrent"),
    (pid(b"-PIa120-"), "PicoTorrent 36.12.0"),
    (pid(b"-PI01!0-"), "PicoTorrent"),
    # one-off prefixes, at the length that holds the version and one byte shorter
    (b"exbc\x00\x38", "BitComet 0.56"),
    (b"exbc\x00", None),
    (b"XBT054d", "XBT Client 0.5.4 (Debug)"),
    (b"XBT054", None),
    (b"XBT0x4-", None),
    (b"OP7685", "Opera build 7685"),
    (b"OP768", None),
    (pid(b"OPx685"), None),
    (pid(b"-BOW123-"), "Bits on Wheels 1.2.3"),
    (b"-BOW12", None),
    (pid(b"-BOW1\x7f3-"), None),
    (b"DNA010203", "BitTorrent DNA 1.2.3"),
    (b"DNA01020", None),
    (pid(b"DNA01x203"), None),
    (b"Plus123", "Plus! 1.23"),
    (b"Plus12", "Plus!"),
    (pid(b"Plusx23"), "Plus!"),
    (pid(b"Plus1x3"), "Plus!"),
    (pid(b"Plus---"), "Plus!"),
    (b"QVOD0054", "QVOD 0.0.5.4"),
    (b"QVOD005", None),
    (pid(b"QVODA0z4"), "QVOD 10.0.61.4"),
    (b"\x00\x03BS", "BitSpirit 3"),
    (b"\x01\x03BS" + bytes(16), None),
    # Shadow: every version character from the 64-character alphabet, dashes stripped
    (pid(b"S4X------"), "Shadow 4.33"),
    (pid(b"S5!B-----"), None),
    (pid(b"S--------"), None),
]


@pytest.mark.parametrize("peer_id,expected", EDGES, ids=[p.hex() for p, _ in EDGES])
def test_layout_edges(peer_id, expected):
    assert identify(peer_id) == expected


UNKNOWN = [
    b"",
    b"-",
    b"-L",
    bytes(20),  # all zeros
    b"\xff" * 20,
    bytes(range(20)),
    bytes.fromhex("8d1f0b3e57a6c2d4e9f0718293a4b5c6d7e8f901"),
    pid(b"-ZZ1234-"),  # well-formed but unknown client code
    pid(b"-XY1234-"),
    pid(b"-LT2110x"),  # known code but broken frame
    pid(b"-qB\x00\x01\x02\x03x"),
    pid(b"M4-x-0--"),  # not mainline
    pid(b"S58B--x--"),  # not shadow
    pid(b"Z58B-----"),  # unknown shadow letter
    pid(b"OPxxxx"),
    pid(b"hello world!"),
]


@pytest.mark.parametrize("peer_id", UNKNOWN)
def test_unknown_ids_are_none(peer_id):
    assert identify(peer_id) is None
    assert identify_parts(peer_id) is None


def test_known_code_with_garbage_version_keeps_name_only():
    # '-' frame intact, version characters unreadable: still clearly libtorrent
    assert identify(pid(b"-LT\x01\x02\x03\x04-")) == "libtorrent (rasterbar)"
    assert identify_parts(pid(b"-LT\x01\x02\x03\x04-")) == ("libtorrent (rasterbar)", "")


@pytest.mark.parametrize("head", [
    b"-TR000X-",  # pre-0.80 layout, minor not a digit
    b"-TR00A0-",  # pre-0.80 layout, two-digit minor not digits
    b"-TR123Q-",  # X.YY layout, 'Q' is none of release, nightly, beta
])
def test_transmission_unreadable_version_keeps_name_only(head):
    assert identify_parts(pid(head)) == ("Transmission", "")


def test_unframed_utorrent_with_unreadable_version_is_unknown():
    # µTorrent may drop the closing dash (-UT3510S = 3.5.10), but only a readable
    # version earns that: without frame or version nothing says it is µTorrent.
    assert identify_parts(pid(b"-UT3510S")) == ("µTorrent", "3.5.10")
    assert identify_parts(pid(b"-UTzz10S")) is None


def test_every_table_name_is_printable():
    assert all(name and name.isprintable() for name in clients.known_client_names())


def test_parts_and_string_agree():
    assert identify_parts(pid(b"-qB4620-")) == ("qBittorrent", "4.6.2")
    assert identify_parts(pid(b"-LW0000-")) == ("LimeWire", "")
    assert identify(pid(b"-LW0000-")) == "LimeWire"


def test_short_long_and_other_buffer_types():
    assert identify(b"-qB4620-") == "qBittorrent 4.6.2"  # truncated id
    assert identify(pid(b"-qB4620-") + b"trailing junk") == "qBittorrent 4.6.2"
    assert identify(bytearray(pid(b"-qB4620-"))) == "qBittorrent 4.6.2"
    assert identify(memoryview(pid(b"-qB4620-"))) == "qBittorrent 4.6.2"
    assert identify(None) is None  # type: ignore[arg-type]
    assert identify("-qB4620-abcdefghijkl") is None  # type: ignore[arg-type]
    assert identify(20) is None  # type: ignore[arg-type]


def test_client_table_size():
    assert len(clients.AZUREUS_CLIENTS) >= 30
    assert len(clients.known_client_names()) >= 100


def test_every_azureus_entry_is_reached_by_its_code():
    """Dispatch only: each code finds its own row (no row shadowed by a prefix rule or
    another code). Whether the names are right is test_client_sources.py's job, against
    names written down from Wireshark's, libtorrent's and Transmission's tables."""
    for code, (name, _style) in clients.AZUREUS_CLIENTS.items():
        got = identify_parts(pid(b"-" + code.encode("latin-1") + b"1230-"))
        assert got is not None and got[0] == name, code


def _is_clean(text: str) -> bool:
    return bool(text) and text.isprintable()


@settings(max_examples=2000, deadline=None)
@given(st.binary(min_size=0, max_size=40))
def test_arbitrary_bytes_never_raise(data):
    result = identify(data)
    assert result is None or (isinstance(result, str) and _is_clean(result))


_KNOWN_HEADS = sorted(
    {b"-" + code.encode("latin-1") for code in clients.AZUREUS_CLIENTS}
    | {prefix if offset == 0 else bytes(offset) + prefix
       for offset, prefix, _, _ in clients.SPECIAL_PREFIXES}
    | {letter.encode() for letter in clients.SHADOW_CLIENTS}
    | {letter.encode() for letter in clients.MAINLINE_CLIENTS}
)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(_KNOWN_HEADS), st.binary(min_size=0, max_size=30))
def test_known_prefix_with_hostile_tail_never_raises(head, tail):
    # Random bytes rarely hit a decoder; start from every known prefix so the
    # version decoders themselves see adversarial input.
    for data in (head + tail, (head + tail)[:20]):
        result = identify(data)
        assert result is None or (isinstance(result, str) and _is_clean(result))
        parts = identify_parts(data)
        if parts is not None:
            assert all(p.isprintable() for p in parts)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(sorted(clients.AZUREUS_CLIENTS)),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), min_size=4, max_size=4),
)
def test_azureus_frame_with_any_version_chars(code, version):
    data = b"-" + code.encode("latin-1") + version.encode("latin-1") + b"-" + TAIL
    result = identify(data)
    assert result is None or _is_clean(result)


CAPTURE_FILES = sorted(glob.glob(str(SHARED_CAPTURES / "*.pcap")))


@pytest.mark.skipif(not shutil.which("tshark") or not CAPTURE_FILES, reason="needs tshark and captures")
def test_live_peer_ids_from_captures_are_recognised():
    """Re-extract handshake peer ids from the reference captures with tshark."""
    seen: dict[bytes, str | None] = {}
    for path in CAPTURE_FILES:
        out = subprocess.run(
            ["tshark", "-r", path, "-o", "tcp.reassemble_out_of_order:TRUE",
             "-d", "tcp.port==51413,bittorrent", "-Y", "bittorrent.peer_id",
             "-T", "fields", "-e", "bittorrent.peer_id"],
            capture_output=True, text=True, timeout=120,
        ).stdout
        for line in out.split():
            raw = bytes.fromhex(line.replace(":", ""))
            seen[raw] = identify(raw)
    names = set(seen.values())
    assert {"aria2 1.36.0", "libtorrent (rasterbar) 2.1.1", "Transmission 3.00"} <= names
    assert None not in names
