"""Tools for testing and demos: a tiny random Qwen3 and a FineWeb-style sample corpus."""
