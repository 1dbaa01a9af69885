"""Batch jobs: JSONL validation, checkpointed execution against an engine, stats and tools."""
