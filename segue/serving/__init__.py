"""The inference server: Open Inference Protocol v2 and ``/predict`` over a micro-batched model.

``segue serve MODEL_URI`` loads a verified model, checks every request against its signature at
the edge (orjson and NumPy, no per-request pydantic or pandas), batches concurrent requests into
one ``predict`` run off the event loop, and exposes Prometheus metrics and OpenAPI docs.
``--route URI=WEIGHT`` spreads traffic over several versions (sticky on ``x-routing-key``),
``--shadow URI`` mirrors it to a version that only writes to the prediction log, and alias routes
follow the registry, swapping versions without failing a request (:mod:`.watcher`). Every answer
goes to the prediction log, and ``POST /feedback`` labels to the feedback log (:mod:`.recorder`).
"""
