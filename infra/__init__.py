"""Temporal plumbing shared by the API, the worker and the tools: client, codec, replay."""
