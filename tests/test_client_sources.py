"""Azureus-style client codes named as three other projects name them (issue 12, item 1).

``test_clients.py`` checks versions and layouts; a typo in a client *name* in
``inspector.clients.AZUREUS_CLIENTS`` could still pass wherever an expectation was read
back from that same table. Here the expectations are other projects' tables, copied by
hand into this file as data (never generated from btshark's), one dict per source:

* Wireshark, ``epan/dissectors/packet-bittorrent.c``, the ``peer_id[]`` table
  (wireshark/wireshark at 05c0152370cbe084193ad2946e6fc96a1017c08e);
* libtorrent, ``src/identify_client.cpp``, ``name_map[]``, and the entries of
  ``generic_mappings[]`` that start with ``-``, which it tries before the Azureus-style
  lookup and so are the names it gives those ids (arvidn/libtorrent at
  02c128078dd2038c5689bc63dbfee9359b8626c7);
* Transmission, ``libtransmission/clients.cc``, ``Clients[]``, its two-character ``-XX``
  entries (transmission/transmission at 0a10a124e7f950779f9f83ed70343cd881015869).

For every code any of them lists, ``identify`` of ``-XX1234-`` and 12 more bytes must name
the client as one of them does, or as ``DIFFERENCES`` says, each with why.
"""
from __future__ import annotations

import pytest

from inspector.clients import AZUREUS_CLIENTS, identify, identify_parts
from test_clients import pid

WIRESHARK: dict[str, str] = {
    "AG": "Ares", "A~": "Ares", "AR": "Arctic", "AT": "Artemis", "AV": "Avicora", "AX": "BitPump",
    "AZ": "Azureus", "BB": "BitBuddy", "BC": "BitComet", "BF": "Bitflu", "BG": "BTG (uses Rasterbar libtorrent)",
    "BP": "BitTorrent Pro (Azereus + spyware)", "BR": "BitRocket", "BS": "BTSlave", "BW": "BitWombat",
    "BX": "Bittorrent X", "CD": "Enhanced CTorrent", "CT": "CTorrent", "DE": "DelugeTorrent",
    "DP": "Propagate Data Client", "EB": "EBit", "ES": "electric sheep", "FC": "FileCroc", "FG": "FlashGet",
    "FT": "FoxTorrent", "GS": "GSTorrent", "HK": "Hekate", "HL": "Halite", "HN": "Hydranode", "KG": "KGet",
    "KT": "KTorrent", "LC": "LeechCraft", "LH": "LH-ABC", "LP": "Lphant", "LT": "libtorrent", "lt": "libTorrent",
    "LW": "LimeWire", "MO": "MonoTorrent", "MP": "MooPolice", "MR": "Miro", "MT": "MoonlightTorrent",
    "NE": "BT Next Evolution", "NX": "Net Transport", "OS": "OneSwarm", "OT": "OmegaTorrent", "PD": "Pando",
    "qB": "qBittorrent", "QD": "QQDownload", "QT": "Qt 4 Torrent example", "RT": "Retriever",
    "S~": "Shareaza alpha/beta", "SB": "Swiftbit", "SD": "Thunder (aka XunLei)", "SS": "SwarmScope",
    "ST": "SymTorrent", "st": "sharktorrent", "SZ": "Shareaza", "TN": "TorrentDotNET", "TR": "Transmission",
    "TS": "Torrentstorm", "TT": "TuoTu", "UL": "uLeecher!", "UM": "(my)Torrent for Mac", "UT": "(my)Torrent",
    "VG": "Vagaa", "WT": "BitLet", "WY": "FireTorrent", "XL": "Xunlei", "XT": "XanTorrent", "XX": "Xtorrent",
    "ZT": "ZipTorrent",
}

LIBTORRENT: dict[str, str] = {
    "7T": "aTorrent for android", "AB": "AnyEvent BitTorrent", "AG": "Ares", "AR": "Arctic Torrent",
    "AT": "Artemis", "AV": "Avicora", "AX": "BitPump", "AZ": "Azureus", "A~": "Ares", "BB": "BitBuddy",
    "BC": "BitComet", "BE": "baretorrent", "BF": "Bitflu", "BG": "BTG", "BL": "BitBlinder",
    "BP": "BitTorrent Pro", "BR": "BitRocket", "BS": "BTSlave", "BT": "BitTorrent", "BU": "BigUp",
    "BW": "BitWombat", "BX": "BittorrentX", "CD": "Enhanced CTorrent", "CT": "CTorrent", "DE": "Deluge",
    "DP": "Propagate Data Client", "EB": "EBit", "ES": "electric sheep", "FC": "FileCroc", "FT": "FoxTorrent",
    "FX": "Freebox BitTorrent", "GS": "GSTorrent", "HK": "Hekate", "HL": "Halite", "HN": "Hydranode",
    "IL": "iLivid", "KC": "Koinonein", "KG": "KGet", "KT": "KTorrent", "LC": "LeechCraft", "LH": "LH-ABC",
    "LK": "Linkage", "LP": "lphant", "LT": "libtorrent", "LW": "Limewire", "MO": "Mono Torrent",
    "MP": "MooPolice", "MR": "Miro", "MT": "Moonlight Torrent", "NX": "Net Transport", "OS": "OneSwarm",
    "OT": "OmegaTorrent", "PD": "Pando", "QD": "QQDownload", "QT": "Qt 4", "RT": "Retriever",
    "RZ": "RezTorrent", "SB": "Swiftbit", "SD": "Xunlei", "SK": "spark", "SN": "ShareNet", "SS": "SwarmScope",
    "ST": "SymTorrent", "SZ": "Shareaza", "S~": "Shareaza (beta)", "TB": "Torch", "TL": "Tribler",
    "TN": "Torrent.NET", "TR": "Transmission", "TS": "TorrentStorm", "TT": "TuoTu", "UL": "uLeecher",
    "UM": "uTorrent Mac", "UT": "uTorrent", "VG": "Vagaa", "WT": "BitLet", "WY": "FireTorrent", "XF": "Xfplay",
    "XL": "Xunlei", "XS": "XSwifter", "XT": "XanTorrent", "XX": "Xtorrent", "ZT": "ZipTorrent",
    "lt": "rTorrent", "pX": "pHoeniX", "qB": "qBittorrent", "st": "SharkTorrent",
    # generic_mappings[], tried first: {0, "-G3", ...}, {0, "-FG", ...}, {0, "-ML", ...}, {0, "-MG", ...}
    "G3": "G3 Torrent", "FG": "FlashGet", "ML": "MLdonkey", "MG": "Media Get",
}

TRANSMISSION: dict[str, str] = {
    "AG": "Ares", "AR": "Arctic", "AT": "Artemis", "AV": "Avicora", "AX": "BitPump", "AZ": "Azureus / Vuze",
    "A~": "Ares", "BB": "BitBuddy", "BC": "BitComet", "BE": "BitTorrent SDK", "BF": "BitFlu", "BG": "BTGetit",
    "BH": "BitZilla", "BI": "BiglyBT", "BL": "BitLord", "BM": "BitMagnet", "BN": "Baidu Netdisk",
    "BP": "BitTorrent Pro (Azureus + Spyware)", "BR": "BitRocket", "BS": "BTSlave", "BT": "BitTorrent",
    "BW": "BitWombat", "BX": "BittorrentX", "CD": "Enhanced CTorrent", "CT": "CTorrent", "DE": "Deluge",
    "DP": "Propagate Data Client", "EB": "EBit", "ES": "Electric Sheep", "FC": "FileCroc",
    "FD": "Free Download Manager", "FG": "FlashGet", "FL": "Folx", "FT": "FoxTorrent/RedSwoosh",
    "FW": "FrostWire", "FX": "Freebox", "G3": "G3 Torrent", "GR": "GetRight", "GS": "GSTorrent",
    "HK": "Hekate", "HL": "Halite", "HN": "Hydranode", "KG": "KGet", "KT": "KTorrent", "LC": "LeechCraft",
    "LH": "LH-ABC", "LP": "Lphant", "LT": "libtorrent (Rasterbar)", "LW": "LimeWire", "MG": "MediaGet",
    "MK": "Meerkat", "ML": "MLDonkey", "MO": "MonoTorrent", "MP": "MooPolice", "MR": "Miro", "MT": "Moonlight",
    "NE": "BT Next Evolution", "NX": "Net Transport", "OS": "OneSwarm", "OT": "OmegaTorrent", "PD": "Pando",
    "PI": "PicoTorrent", "QD": "QQDownload", "QT": "QT 4 Torrent example", "RS": "Rufus", "RT": "Retriever",
    "RZ": "RezTorrent", "SB": "~Swiftbit", "SD": "Thunder", "SM": "SoMud", "SP": "BitSpirit",
    "SS": "SwarmScope", "ST": "SymTorrent", "SZ": "Shareaza", "S~": "Shareaza", "TN": "Torrent .NET",
    "TR": "Transmission", "TS": "Torrentstorm", "TT": "TuoTu", "UE": "\u00b5Torrent Embedded",
    "UL": "uLeecher!", "UM": "\u00b5Torrent Mac", "UT": "\u00b5Torrent", "UW": "\u00b5Torrent Web", "VG": "Vagaa",
    "WS": "HTTP Seed", "WT": "BitLet", "WW": "WebTorrent", "WY": "FireTorrent", "XC": "Xtorrent",
    "XF": "Xfplay", "XL": "Xunlei", "XS": "XSwifter", "XT": "XanTorrent", "XX": "Xtorrent", "ZO": "Zona",
    "ZT": "Zip Torrent", "bk": "BitKitten (libtorrent)", "lt": "libTorrent (Rakshasa)", "pb": "pbTorrent",
    "qB": "qBittorrent", "st": "SharkTorrent",
}

SOURCES = {"Wireshark": WIRESHARK, "libtorrent": LIBTORRENT, "Transmission": TRANSMISSION}

# Where btshark's name is none of the sources' names: the name it must give, and why.
DIFFERENCES: dict[str, tuple[str, str]] = {
    "7T": ("aTorrent for Android", "libtorrent writes 'android' in lower case; the product is capitalised"),
    "AB": ("AnyEvent::BitTorrent", "the Perl module's own name; libtorrent drops the '::'"),
    "AZ": ("Azureus/Vuze", "one client renamed in 2008 under the same code; Transmission spaces the slash"),
    "LT": ("libtorrent (rasterbar)", "qualified to tell it from rakshasa's 'lt'; Transmission capitalises it"),
    "lt": ("libTorrent (rakshasa)", "qualified to tell it from rasterbar's 'LT'; libtorrent names the "
                                    "rTorrent front end instead, Transmission capitalises it"),
    "SD": ("Thunder (Xunlei)", "Xunlei's client Thunder: Wireshark says 'aka', libtorrent and Transmission "
                               "give one of the two names"),
    "S~": ("Shareaza (alpha/beta)", "Wireshark's 'Shareaza alpha/beta' with the qualifier in parentheses"),
    "bk": ("BitKitten", "Transmission adds what it is built on, '(libtorrent)'"),
}

# Codes a source lists that btshark does not know (identify gives None), and why.
UNKNOWN_TO_BTSHARK: dict[str, str] = {
    "FL": "Folx (Transmission only): not in btshark's table",
}

# btshark's codes that no source above lists: still without an independent expectation.
UNSOURCED = {"JS", "PB", "WD", "tT"}

# Ids whose client writes something other than four version characters after the code.
SAMPLE_ID = {"ML": b"-ML2.7.2-abcdefghijk"}  # MLdonkey: a dotted version up to the next dash


def sample_id(code: str) -> bytes:
    peer_id = SAMPLE_ID.get(code, b"-" + code.encode("latin-1") + b"1234-" + b"abcdefghijkl")
    assert len(peer_id) == 20
    return peer_id


SOURCE_CODES = sorted(set().union(*SOURCES.values()) - UNKNOWN_TO_BTSHARK.keys())


@pytest.mark.parametrize("code", SOURCE_CODES)
def test_client_named_as_an_independent_source_names_it(code):
    named = {source: table[code] for source, table in SOURCES.items() if code in table}
    parts = identify_parts(sample_id(code))
    assert parts is not None, f"{code!r} is listed by {sorted(named)} but btshark does not know it"
    name = parts[0]
    if code in DIFFERENCES:
        assert name == DIFFERENCES[code][0], f"{code!r}: btshark says {name!r}; sources say {named}"
    else:
        assert name in named.values(), f"{code!r}: btshark says {name!r}; sources say {named}"
    shown = identify(sample_id(code))
    assert shown == name or shown.startswith(name + " ")


@pytest.mark.parametrize("code", sorted(UNKNOWN_TO_BTSHARK))
def test_codes_listed_as_unknown_are_unknown(code):
    assert identify(sample_id(code)) is None


def test_every_listed_difference_is_needed():
    """A difference that a source agrees with, or for a code no source lists, is stale."""
    for code, (name, _why) in DIFFERENCES.items():
        named = [table[code] for table in SOURCES.values() if code in table]
        assert named, f"{code!r} is in no source"
        assert name not in named, f"{code!r}: {name!r} is a source's own name, no difference"


def test_codes_without_an_independent_expectation_are_the_listed_few():
    sourced = set().union(*SOURCES.values())
    assert set(AZUREUS_CLIENTS) - sourced == UNSOURCED
    assert len(set(AZUREUS_CLIENTS) & sourced) >= 100


# Transmission's own expectations for whole ids, name and version, copied by hand from
# tests/libtransmission/clients-test.cc, TEST(Client, clientForId)
# (transmission/transmission at 009379c49ae78babb63b60a24a9c9d1f62ed9452). Its ids are
# heads; the test there fills the rest of the 20 bytes with random bytes, as test_clients' pid() does.
TRANSMISSION_IDS: list[tuple[bytes, str]] = [
    (b"-AZ8421-", "Azureus / Vuze 8.4.2.1"),
    (b"-BC0241-", "BitComet 2.41"),
    (b"-BI2300-", "BiglyBT 2.3.0.0"),
    (b"-BN0001-", "Baidu Netdisk"),
    (b"-BT791B-", "BitTorrent 7.9.1 (Beta)"),
    (b"-BT791\x00-", "BitTorrent 7.9.1"),
    (b"-BW1293-", "BitTorrent Web 1.2.9"),
    (b"-FC1013-", "FileCroc 1.0.1.3"),
    (b"-FD51@\xff-", "Free Download Manager 5.1.x"),
    (b"-FD51R\xff-", "Free Download Manager 5.1.27"),
    (b"-FW6830-", "FrostWire 6.8.3"),
    (b"-KT33D1-", "KTorrent 3.3 Dev 1"),
    (b"-MR1100-", "Miro 1.1.0.0"),
    (b"-PI0091-", "PicoTorrent 0.09.1"),
    (b"-PI0120-", "PicoTorrent 0.12.0"),
    (b"-TB2137-", "Torch Browser"),
    (b"-TR0006-", "Transmission 0.6"),
    (b"-TR0072-", "Transmission 0.72"),
    (b"-TR111Z-", "Transmission 1.11 (Dev)"),
    (b"-TR400B-", "Transmission 4.0.0 (Beta)"),
    (b"-TR4000-", "Transmission 4.0.0"),
    (b"-TR4Az0-", "Transmission 4.10.61"),
    (b"-UT341\x00-", "\u00b5Torrent 3.4.1"),
    (b"-UT7a5\x00-", "\u00b5Torrent 7.10.5"),
    (b"-UW110Q-", "\u00b5Torrent Web 1.1.0"),
    (b"-UW1110Q", "\u00b5Torrent Web 1.1.10"),
    (b"-WS1000-", "HTTP Seed"),
    (b"-WW0007-", "WebTorrent 0.0.0.7"),
    (b"-XF9990-", "Xfplay 9.9.9"),
    (b"-XF9992-", "Xfplay 9.9.92"),
    (b"A2-1-18-8-", "aria2 1.18.8"),
    (b"A2-1-2-0-", "aria2 1.2.0"),
    (b"S58B-----", "Shad0w 5.8.11"),
    (b"Q1-23-4-", "Queen Bee 1.23.4"),
    (b"TIX0193-", "Tixati 1.93"),
    (bytes.fromhex("657862630038" "4c4f5244" "3200048eced57bd71028"), "BitLord 0.56"),
    (bytes.fromhex("657862630038" "7a446310" "2d6e9ad6723b339f35a9"), "BitComet 0.56"),
]

# Where btshark says something else: what it says, and why.
TRANSMISSION_ID_DIFFERENCES: dict[bytes, tuple[str, str]] = {
    b"-AZ8421-": ("Azureus/Vuze 8.4.2.1", "the name as above (Transmission spaces the slash)"),
    b"-BW1293-": ("BitWombat 1.2.9.3", "Wireshark and libtorrent name BW BitWombat; "
                                       "Transmission gives the code to BitTorrent Web"),
    b"-FD51@\xff-": ("Free Download Manager", "a version byte that is no digit: btshark shows no "
                                              "version rather than Transmission's 'x'"),
    b"-PI0091-": ("PicoTorrent 0.9.1", "the minor is a number: PicoTorrent's own releases are "
                                       "0.9, 0.10 ...; Transmission prints the two characters"),
    b"-TB2137-": ("Torch 2.1.3.7", "libtorrent's name; Transmission knows the digits are a build "
                                   "number, btshark reads them as four base-62 digits"),
    b"-WW0007-": ("WebTorrent 0.7", "WebTorrent writes each of major.minor as two digits "
                                    "(VERSION_STR in its index.js): 0007 is 0.7"),
    b"-XF9990-": ("Xfplay 9.9.9.0", "btshark reads four digits; Transmission special-cases "
                                    "Xfplay's three-part versions"),
    b"-XF9992-": ("Xfplay 9.9.9.2", "as above"),
    b"S58B-----": ("Shadow 5.8.11", "the client's name; Transmission spells it with a zero"),
}


@pytest.mark.parametrize("head,expected", TRANSMISSION_IDS, ids=[h.hex() for h, _ in TRANSMISSION_IDS])
def test_transmission_names_and_versions_whole_ids(head, expected):
    got = identify(pid(head))
    if head in TRANSMISSION_ID_DIFFERENCES:
        assert got == TRANSMISSION_ID_DIFFERENCES[head][0]
        assert got != expected
    else:
        assert got == expected


def test_every_listed_transmission_id_difference_is_one_of_its_ids():
    assert set(TRANSMISSION_ID_DIFFERENCES) <= {head for head, _ in TRANSMISSION_IDS}
