"""Backends: the NumPy CPU backend and the CUDA backend, behind one interface."""

from .base import Backend, ShiftResult, available_backends, register_backend, resolve_backend

__all__ = ["Backend", "ShiftResult", "available_backends", "register_backend", "resolve_backend"]
