"""Inference engines: building llama.cpp, launching servers, talking to them."""
