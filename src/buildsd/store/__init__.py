"""Queries only, one module per aggregate.

get() raises NotFound, find() returns None, page() returns a page and the total.

Store functions take a db.Connection; they never commit and know nothing of HTTP.
"""
