"""One module per scenario; each exposes functions taking the shared :class:`harness.Bench`."""
