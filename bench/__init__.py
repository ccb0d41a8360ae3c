"""The `make bench` load harness: wrk against a bare ASGI app and buildsd, report in docs/."""
