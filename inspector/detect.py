"""What a connection is, from how it opens: BitTorrent, MSE/PE-encrypted BitTorrent, or other.

Ports say nothing about BitTorrent, so the opening bytes must. A plaintext
handshake is unmistakable. MSE/PE is meant to look random, and so is everything
else encrypted (TLS, SSH, Noise, ECIES, Kerberos tickets), so "the first bytes
look random" labels half the Internet as BitTorrent. What MSE has that a blob
does not is a *conversation shape* (the MSE spec; libtorrent's
``bt_peer_connection``):

1. the opener sends Ya (96 bytes, a 768-bit Diffie-Hellman key) + PadA (0-512
   random bytes), then waits: it cannot go on before it has Yb;
2. the other side answers Yb + PadB, 96-608 bytes again;
3. the opener sends HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), then
   under RC4 VC (8), crypto_provide (4), len(PadC) (2), PadC, len(IA) (2): at
   least 56 bytes before the other side can answer.

So a ``Probe`` sees both directions in arrival order, cuts them into flights
(what one side sends before the other speaks) and wants that shape, from a
connection whose opener is known (the SYN was captured). Each key flight must
also look like uniform random bytes and not like a known framing: a flight
whose leading length field counts exactly the rest of it (Kerberos and SMB over
TCP, Ethereum's EIP-8 auth, LDAP's BER) is a record, since Ya is uniformly
random; TLS records, SSH banners, text, WhatsApp's prologue and the legacy RLPx
ECIES sizes are named outright.

uTP shares its UDP port with everything, and one 20-byte header passes
``inspector.utp.parse`` by chance (a WireGuard handshake initiation always
does), so a ``UtpGate`` holds a candidate flow's first packets until they show
a connection: a SYN answered by the STATE acking it, or, without a SYN,
consistent ids, sequence numbers advancing by one, acks that track the other
side and sender clocks that run with the capture's.
"""
from __future__ import annotations

import struct

from .utp import HALF, SEQ_MASK, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN
from .wire import HANDSHAKE_PREFIX

__all__ = ["UNDECIDED", "BITTORRENT", "ENCRYPTED", "OTHER", "Probe", "UtpGate", "key_flight"]

UNDECIDED, BITTORRENT, ENCRYPTED, OTHER = range(4)

DH_KEY = 96  # Ya, Yb: a 768-bit Diffie-Hellman public key
MAX_PAD = 512  # PadA, PadB
MAX_KEY_FLIGHT = DH_KEY + MAX_PAD
MIN_STEP3 = 20 + 20 + 8 + 4 + 2 + 2  # req1 hash, req2^req3 hash, VC, crypto_provide, len(PadC), len(IA)
# 96 uniform bytes show ~80 distinct values (sd ~3.5); the commonest appears 2-3 times,
# 8 times about once in 500,000 keys; about 36 are printable ASCII (sd ~4.7).
MIN_DISTINCT = 60
MAX_REPEAT = 8
MAX_PRINTABLE = 64
_PRINTABLE = bytes(range(0x20, 0x7F))
_SIGNATURES = (
    b"SSH-",  # SSH banner
    b"ED\x00\x01", b"WA",  # WhatsApp: edge routing header, Noise prologue
    b"ZBXD",  # Zabbix
)
_RLPX_LEGACY = (307, 210)  # ECIES auth and ack of RLPx before EIP-8, both led by 0x04 (an EC point)


def _records(data: bytes, width: int) -> bool:
    """Whether ``data`` is exactly a run of records, each led by a ``width``-byte big-endian
    count of the bytes after it."""
    pos, n = 0, len(data)
    while pos + width <= n:
        pos += width + int.from_bytes(data[pos : pos + width], "big")
    return pos == n


def _ber(data: bytes) -> bool:
    """Whether ``data`` is exactly a run of BER SEQUENCEs (LDAP, SNMP, ...) with definite lengths."""
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] != 0x30 or pos + 2 > n:
            return False
        size = data[pos + 1]
        pos += 2
        if size & 0x80:
            width = size & 0x7F
            if not 1 <= width <= 4 or pos + width > n:
                return False
            size = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        pos += size
    return pos == n


def _tls(data: bytes) -> bool:
    """A TLS record header: content type 20-24, version 3.0-3.4."""
    return 20 <= data[0] <= 24 and data[1] == 3 and data[2] <= 4


def key_flight(data: bytes) -> bool:
    """Whether one side's first flight can be a DH key and its padding (Ya + PadA, Yb + PadB)."""
    if not DH_KEY <= len(data) <= MAX_KEY_FLIGHT:
        return False
    key = data[:DH_KEY]
    if len(set(key)) < MIN_DISTINCT or max(map(key.count, set(key))) >= MAX_REPEAT:
        return False
    if DH_KEY - len(key.translate(None, _PRINTABLE)) > MAX_PRINTABLE:
        return False
    if data.startswith(_SIGNATURES) or _tls(data) or (len(data) in _RLPX_LEGACY and data[0] == 4):
        return False
    return not (_records(data, 2) or _records(data, 3) or _records(data, 4) or _ber(data))


class Probe:
    """A connection's opening, both directions in arrival order, until it says what it is.

    Side 0 is the opener when ``opener_known``. ``held`` keeps each side's bytes
    for the caller to decode once the verdict is in; it stays small because every
    path to a verdict is bounded (20 bytes of handshake prefix, two key flights
    of at most 608 bytes and 56 bytes of step 3).
    """

    __slots__ = ("opener_known", "held", "flights", "verdict")

    def __init__(self, opener_known: bool) -> None:
        self.opener_known = opener_known
        self.held = (bytearray(), bytearray())
        self.flights: list[list[int]] = []  # [side, length] in arrival order
        self.verdict = UNDECIDED

    def feed(self, side: int, data: bytes | memoryview) -> int:
        """More bytes from ``side``; returns the verdict so far."""
        self.held[side].extend(data)
        if self.verdict != UNDECIDED or not data:
            return self.verdict
        flights = self.flights
        if flights and flights[-1][0] == side:
            flights[-1][1] += len(data)
        else:
            flights.append([side, len(data)])
        ours, theirs = self._handshake(side), self._handshake(1 - side)
        if ours or theirs:
            self.verdict = BITTORRENT
        else:
            mse = self._mse()
            if mse == ENCRYPTED or mse == OTHER and ours is False:
                self.verdict = mse
        return self.verdict

    def gap(self, side: int) -> int:
        """Bytes from ``side`` were not captured: a start that is lost cannot be recognised."""
        if self.verdict == UNDECIDED:
            self.verdict = OTHER
        return self.verdict

    def end(self) -> int:
        """The connection is over: two key flights and no more is an MSE exchange cut short."""
        if self.verdict == UNDECIDED:
            shaped = len(self.flights) >= 2 and self._mse() == UNDECIDED and key_flight(self._flight(1))
            self.verdict = ENCRYPTED if shaped else OTHER
        return self.verdict

    def _handshake(self, side: int) -> bool | None:
        """True: ``side`` opened with the handshake prefix; False: it did not; None: too early to say."""
        head = self.held[side]
        n = min(len(head), len(HANDSHAKE_PREFIX))
        if head[:n] != HANDSHAKE_PREFIX[:n]:
            return False
        return True if n == len(HANDSHAKE_PREFIX) else None

    def _flight(self, index: int) -> bytes:
        """The bytes of key flight ``index`` (0: the opener's, 1: the answer)."""
        return bytes(self.held[index][: self.flights[index][1]])

    def _mse(self) -> int:
        """ENCRYPTED once step 3 has begun on cue; OTHER as soon as the shape is broken."""
        flights = self.flights
        if not self.opener_known or flights[0][0] != 0:
            return OTHER
        for index in range(min(len(flights), 2)):
            if flights[index][1] > MAX_KEY_FLIGHT:
                return OTHER
            if len(flights) > index + 1 and not key_flight(self._flight(index)):
                return OTHER
        if len(flights) < 3:
            return UNDECIDED
        if flights[2][1] >= MIN_STEP3:
            return ENCRYPTED
        return UNDECIDED if len(flights) == 3 else OTHER


_UTP = struct.Struct(">BBHIIIHH")  # type|version, extension, connection_id, timestamp, difference, wnd, seq, ack
TS_WRAP = 1 << 32
TS_BEHIND = 500_000  # µs a sender's clock may seem to run back (packets reordered on the way)
TS_AHEAD = 1_000_000  # µs it may run ahead of the capture's clock, beyond the capture's own gap
SEQ_WINDOW = 64  # packets a sequence or ack number may jump (losses, reordering)
MAX_HELD = 16  # packets held before a flow must have shown itself


class UtpGate:
    """A UDP flow with a uTP-shaped first packet, held until its packets show a uTP connection.

    ``offer`` each packet of the flow (side 0 sent the first); it returns None
    while undecided, True for a uTP connection, False for something else. The
    caller's items are kept in ``held``, in order, to be fed on once confirmed.
    """

    __slots__ = ("syn", "held", "cids", "nxt", "clock", "advanced", "acked")

    def __init__(self, syn: bool) -> None:
        self.syn = syn
        self.held: list[object] = []
        self.cids: list[int | None] = [None, None]  # connection id each side sends with
        self.nxt: list[int | None] = [None, None]  # each side's next sequence number
        self.clock: list[tuple[int, float] | None] = [None, None]  # last (timestamp field, capture time)
        self.advanced = False  # a sender's sequence number went up by exactly one
        self.acked = [False, False]  # side i acked exactly what the other side had sent

    def offer(self, side: int, payload: bytes, ts: float, item: object) -> bool | None:
        self.held.append(item)
        kind, _ext, cid, stamp, _diff, _wnd, seq, ack = _UTP.unpack_from(payload)
        kind >>= 4
        if kind == ST_RESET:
            return None if len(self.held) < MAX_HELD else False
        if not (self._cid(side, kind, cid) and self._clock(side, stamp, ts) and self._seq(side, kind, seq)
                and self._ack(side, kind, ack)):
            return False
        if self.syn and (self.acked[1] or side == 0 and self.advanced):
            return True  # the SYN answered, or followed by the opener's first data packet
        if all(self.acked) and self.advanced and len(self.held) >= 3:
            return True
        return None if len(self.held) < MAX_HELD else False

    def _cid(self, side: int, kind: int, cid: int) -> bool:
        """Each side keeps one id; the opener's SYN carries one less than its later packets."""
        if kind == ST_SYN:
            cid = (cid + 1) & SEQ_MASK
        if self.cids[side] is None:
            self.cids[side] = cid
        return self.cids[side] == cid

    def _clock(self, side: int, stamp: int, ts: float) -> bool:
        """The sender's microsecond clock runs with the capture's, give or take the path's jitter."""
        last = self.clock[side]
        self.clock[side] = (stamp, ts)
        if last is None:
            return True
        step = (stamp - last[0]) % TS_WRAP
        if step >= TS_WRAP // 2:
            step -= TS_WRAP
        return -TS_BEHIND <= step <= (ts - last[1]) * 1e6 + TS_AHEAD

    def _seq(self, side: int, kind: int, seq: int) -> bool:
        """Data and FIN consume one sequence number each; SYN names the one before the first
        data packet; STATE names the next one without consuming it."""
        nxt = self.nxt[side]
        if kind == ST_SYN:  # only the opener sends one, again if unanswered
            self.nxt[side] = (seq + 1) & SEQ_MASK
            return side == 0 and nxt in (None, self.nxt[side])
        if nxt is None:
            self.nxt[side] = seq if kind == ST_STATE else (seq + 1) & SEQ_MASK
            return True
        delta = (seq - nxt) & SEQ_MASK
        if delta >= HALF:
            delta -= SEQ_MASK + 1
        if not -SEQ_WINDOW <= delta <= SEQ_WINDOW:
            return False
        if kind in (ST_DATA, ST_FIN) and delta >= 0:
            self.advanced = self.advanced or delta == 0
            self.nxt[side] = (seq + 1) & SEQ_MASK
        return True

    def _ack(self, side: int, kind: int, ack: int) -> bool:
        """An ack names the last sequence number received from the other side."""
        theirs = self.nxt[1 - side]
        if kind == ST_SYN or theirs is None:
            return True
        delta = (ack - (theirs - 1)) & SEQ_MASK
        if delta >= HALF:
            delta -= SEQ_MASK + 1
        if not -SEQ_WINDOW <= delta <= SEQ_WINDOW:
            return False
        if not delta:
            self.acked[side] = True
        return True
