"""btshark's Textual front end (not built yet)."""
