"""Model cache, fetching from every source kind, quantizing and sizing."""
