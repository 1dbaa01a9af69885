"""Benchmark matrices: planning, termination rules, profiles, ratings, recommendations and reports."""
