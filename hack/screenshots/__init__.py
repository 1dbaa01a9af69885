"""`make screenshots`: the web console's pages as PNGs for docs/console.md, from real parts only."""
