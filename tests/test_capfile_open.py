"""Opening a capture: what it is called in messages, how it is read, what is closed.

Why: a mutation run found these unpinned. A stream with a file name must be called by
it (``btshark read`` on a file opened by the caller); messages for a file that is not a
capture are exact one-liners; a FIFO (``tcpdump -w fifo``) must yield each frame as it
arrives, which a buffered open would hold back until a whole chunk came; and a gzip
capture must not leave its file open after ``close``.
"""
from __future__ import annotations

import gzip
import os
import threading
import warnings
from pathlib import Path

import pytest

from inspector.capfile import CaptureError, CaptureFile
from test_capfile import pcap

FRAMES = [(1, 0, b"a" * 60), (2, 500_000, b"b" * 61)]


def test_a_stream_is_called_by_its_file_name(tmp_path: Path) -> None:
    path = tmp_path / "named.pcap"
    path.write_bytes(pcap(FRAMES))
    with open(path, "rb") as stream, CaptureFile(stream) as cf:
        assert cf.path == str(path)
        assert [ts for ts, _, _ in cf] == [1.0, 2.5]


def test_a_stream_that_is_not_a_capture_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a capture at all\n")
    with open(path, "rb") as stream, pytest.raises(CaptureError) as caught:
        CaptureFile(stream)
    assert str(caught.value) == f"{path}: not a pcap or pcapng capture"


@pytest.mark.parametrize("content, what", [
    (b"", "empty file"),
    (b"GIF89a" + bytes(40), "not a pcap or pcapng capture"),
    (gzip.compress(b"GIF89a" + bytes(40)), "not a pcap or pcapng capture (gzip-compressed)"),
], ids=["empty", "other", "other-gzip"])
def test_what_a_file_that_is_not_a_capture_is_called(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "odd"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as caught:
        CaptureFile(path)
    assert str(caught.value) == f"{path}: {what}"


def test_opening_a_capture_warns_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "quiet.pcap"
    path.write_bytes(pcap(FRAMES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with CaptureFile(path) as cf:
            assert len(list(cf)) == 2


def test_a_fifo_yields_each_frame_as_it_arrives(tmp_path: Path) -> None:
    """The writer holds the second frame back until the reader has the first: a reader
    that waited for a whole chunk would see the first only when the writer gave up."""
    fifo = tmp_path / "live"
    os.mkfifo(fifo)
    content = pcap(FRAMES)
    first = 24 + 16 + 60  # file header, record header, first frame
    delivered = threading.Event()
    in_time: list[bool] = []

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as out:
            out.write(content[:first])
            in_time.append(delivered.wait(timeout=10))
            out.write(content[first:])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with CaptureFile(fifo) as cf:
            frames = iter(cf)
            assert next(frames)[0] == 1.0
            delivered.set()
            assert next(frames)[0] == 2.5
    finally:
        delivered.set()
        thread.join()
    assert in_time == [True]


def open_descriptors() -> set[str]:
    """This process's open file descriptors (Linux, where btshark runs)."""
    return set(os.listdir("/proc/self/fd"))


def test_closing_a_gzip_capture_closes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "packed.pcap.gz"
    path.write_bytes(gzip.compress(pcap(FRAMES)))
    before = open_descriptors()
    cf = CaptureFile(path)
    assert len(list(cf)) == 2
    cf.close()
    assert open_descriptors() == before
