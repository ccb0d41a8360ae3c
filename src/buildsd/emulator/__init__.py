"""The emulator's room (D26): the control API under /_buildsd/ and the middleware that keeps the
request journal and applies faults; it reaches data only through services/."""
