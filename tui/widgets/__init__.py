"""The app's widgets, each in a module named for what it shows."""
