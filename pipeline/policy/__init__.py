"""Policy: typed, cited regional policy files with overlays, and what `policy check` prints."""
