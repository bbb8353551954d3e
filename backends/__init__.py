"""Backends: the Backend protocol and its kinds, the local engine, the work queue and the worker."""
