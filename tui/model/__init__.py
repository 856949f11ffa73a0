"""What the TUI shows, without Textual: the capture's messages in compact columns,
loaded in batches, filtered, formatted. Tests and tools use it directly."""
