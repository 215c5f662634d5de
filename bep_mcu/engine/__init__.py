"""The engine: packed bits, the counter-based generator, the fixed classifier frames, network
descriptions and the numpy BEP trainer (no dependency on anything above it)."""
