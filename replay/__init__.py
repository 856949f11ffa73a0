"""btshark's replayer: talks a captured session back to a real peer.

So far its transport: :mod:`replay.encoder`, the original client's Encoder and
Connection in asyncio.
"""
