"""Pydantic models of kubeinfer's custom resources: the single source of truth for their schemas."""
