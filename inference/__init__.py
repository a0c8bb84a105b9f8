"""The bundled inference service: FastAPI app, model loading, batching, metrics.

It imports no control-plane room and runs alone: ``python -m inference`` (``inferplane serve`` is the same).
"""
