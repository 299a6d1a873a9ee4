"""Coalescing: due single sends share provider batch calls (see docs/coalescing.md)."""
