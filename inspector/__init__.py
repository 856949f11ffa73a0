"""btshark's inspector: capture files in, BitTorrent peer-wire events and sessions out.

Kept free of sockets, asyncio and Textual so that the same decode serves captures,
live sniffing and the replayer's sockets.
"""
