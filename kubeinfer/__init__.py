"""kubeinfer: benchmark model x quantization matrices and run OpenAI-compatible batches."""

__version__ = "0.1.0"
