"""The details tree of the selected message: every field, with where its bytes are.

Each node's data is the ``(start, end)`` byte range of its field within the
message as sent (length prefix included), so the hex pane can light it up.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from inspector import events as ev
from inspector.clients import identify
from inspector.output import printable_id, ranges, safe_text
from inspector.wire import RESERVED_BITS

from ..model.index import Row

# Byte ranges of the fixed layouts (BEP 3, 6, 10, 52), length prefix included.
PREFIX, ID = (0, 4), (4, 5)
_HANDSHAKE = {"protocol name length": (0, 1), "protocol name": (1, 20), "reserved": (20, 28),
              "info hash": (28, 48), "peer id": (48, 68)}


def _bits(reserved: bytes) -> list[tuple[str, bool]]:
    """Every reserved bit BitTorrent names, and whether it is set."""
    return [(name, bool(reserved[byte] & mask)) for (byte, mask), name in RESERVED_BITS.items()]


class DetailsTree(Tree):
    DEFAULT_CSS = "DetailsTree { height: 1fr; }"

    def process_label(self, label: str | Text) -> Text:
        """Labels are text, never markup: peer-controlled strings go in them."""
        return Text(label) if isinstance(label, str) else label

    def __init__(self, **kw) -> None:
        super().__init__("message", **kw)
        self.show_root = False

    def show_row(self, row: Row | None, findings: list[ev.Event] = (), frames: str = "") -> None:
        self.clear()
        if row is None:
            return
        root = self.root
        e, s = row.event, row.session
        a, b = s.sides
        src, dst = (a, b) if row.side == 0 else (b, a)
        top = root.add(f"Frame {row.frame}{frames}, session #{s.id} ({s.transport})", expand=True)
        top.add_leaf(f"{src.addr} → {dst.addr}")
        top.add_leaf(f"time {row.ts - self.app.first_ts:.6f} s after the first frame ({row.ts:.6f})")
        if e.type == "finding":
            node = root.add(f"Finding: {e.kind} [{e.severity}]", expand=True)
            node.add_leaf(safe_text(e.detail))
            return
        size = e.size
        msg = root.add(f"BitTorrent {e.type}", data=(0, size + 4 if e.type != "handshake" else 68), expand=True)
        if e.type == "handshake":
            self._handshake(msg, e)
        else:
            msg.add_leaf(f"length prefix: {size}", data=PREFIX)
            if e.id is not None:
                msg.add_leaf(f"message id: {e.id} ({e.type})", data=ID)
            self._body(msg, e)
        for f in findings:
            node = root.add(f"Finding: {f.kind} [{f.severity}]", expand=True)
            node.add_leaf(safe_text(f.detail))

    def _handshake(self, msg: TreeNode, e: ev.Handshake) -> None:
        msg.add_leaf("protocol name: BitTorrent protocol", data=_HANDSHAKE["protocol name"])
        reserved = msg.add(f"reserved: {e.reserved.hex()}", data=_HANDSHAKE["reserved"], expand=True)
        for name, on in _bits(e.reserved):
            reserved.add_leaf(f"[{'x' if on else ' '}] {name}", data=_HANDSHAKE["reserved"])
        msg.add_leaf(f"info hash: {e.info_hash.hex()}", data=_HANDSHAKE["info hash"])
        client = safe_text(identify(e.peer_id) or "unknown client")
        msg.add_leaf(f"peer id: {printable_id(e.peer_id)} ({client})", data=_HANDSHAKE["peer id"])

    def _body(self, msg: TreeNode, e: ev.Event) -> None:
        kind = e.type
        if kind in ("request", "cancel", "reject", "piece"):
            msg.add_leaf(f"index: {e.index}", data=(5, 9))
            msg.add_leaf(f"begin: {e.begin} (0x{e.begin:x})", data=(9, 13))
            if kind == "piece":
                msg.add_leaf(f"block: {e.length} bytes", data=(13, 13 + e.length))
                if e.missing:
                    msg.add_leaf(f"not captured: {e.missing} bytes")
            else:
                msg.add_leaf(f"length: {e.length}", data=(13, 17))
        elif kind in ("have", "suggest", "allowed_fast"):
            msg.add_leaf(f"index: {e.index}", data=(5, 9))
        elif kind == "port":
            msg.add_leaf(f"port: {e.port}", data=(5, 7))
        elif kind == "bitfield":
            have = [i for i, byte in enumerate(e.bits) for j in range(8) if byte & (0x80 >> j)]
            node = msg.add(f"bitfield: {e.count} pieces of {8 * len(e.bits)} bits", data=(5, 5 + len(e.bits)))
            node.add_leaf(f"pieces: {ranges(have) or 'none'}")
            if e.missing:
                node.add_leaf(f"not captured: {e.missing} bytes")
        elif kind == "extended":
            msg.add_leaf(f"extended id: {e.ext_id} ({e.ext_name or 'unnamed'})", data=(5, 6))
            body = msg.add("payload", data=(6, e.size + 4 - e.trailing), expand=True)
            _tree(body, e.data)
            if e.trailing:
                msg.add_leaf(f"trailing data: {e.trailing} bytes", data=(e.size + 4 - e.trailing, e.size + 4))
            if e.missing:
                msg.add_leaf(f"not captured: {e.missing} bytes")
        elif kind in ("hash_request", "hashes", "hash_reject"):
            msg.add_leaf(f"pieces root: {e.pieces_root.hex()}", data=(5, 37))
            msg.add_leaf(f"base layer: {e.base_layer}", data=(37, 41))
            msg.add_leaf(f"index: {e.index}", data=(41, 45))
            msg.add_leaf(f"length: {e.length}", data=(45, 49))
            msg.add_leaf(f"proof layers: {e.proof_layers}", data=(49, 53))
            if kind == "hashes":
                msg.add_leaf(f"hashes: {len(e.hashes)}", data=(53, e.size + 4))


def _tree(node: TreeNode, value: object, limit: int = 200) -> None:
    """Decoded bencode as a tree (text escaped; big lists cut)."""
    if isinstance(value, dict):
        for k, v in list(value.items())[:limit]:
            if isinstance(v, (dict, list)):
                _tree(node.add(safe_text(str(k)), expand=True), v)
            else:
                node.add_leaf(safe_text(f"{k}: {v}"))
    elif isinstance(value, list):
        for i, v in enumerate(value[:limit]):
            if isinstance(v, (dict, list)):
                _tree(node.add(f"[{i}]", expand=True), v)
            else:
                node.add_leaf(safe_text(f"[{i}] {v}"))
        if len(value) > limit:
            node.add_leaf(f"… {len(value) - limit} more")
    else:
        node.add_leaf(safe_text(str(value)))

