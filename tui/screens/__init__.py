"""The app's screens: the main one and one per view."""
