"""qcraft_ray: synthetic search queries from web-scale corpora on Ray Data + vLLM."""

__version__ = "0.1.0"
