"""btshark's replayer: talks a captured session back to a real peer (not built yet)."""
