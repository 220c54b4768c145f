"""The inference server: Open Inference Protocol v2 and ``/predict`` over a micro-batched model.

``segue serve MODEL_URI`` loads a verified model, checks every request against its signature at
the edge (orjson and NumPy, no per-request pydantic or pandas), batches concurrent requests into
one ``predict`` run off the event loop, and exposes Prometheus metrics and OpenAPI docs.
"""
