"""buildsd: a self-hostable, wire-compatible implementation of Cloudflare Workers Builds."""

__version__ = "0.1.0"
