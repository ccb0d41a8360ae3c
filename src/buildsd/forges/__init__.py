"""Forge updates (D29): one module per forge's API, and the sender that delivers the outbox."""
