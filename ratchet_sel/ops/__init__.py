"""Operations: what running a server needs besides serving.

- :mod:`~ratchet_sel.ops.stats`: the process's counters (one increment per event);
- :mod:`~ratchet_sel.ops.metrics`: :class:`MetricsEndpoint`, Prometheus text at ``GET /metrics``;
- :mod:`~ratchet_sel.ops.health`: :class:`HealthEndpoint`, a JSON status at ``GET /healthz`` on any Host;
- :mod:`~ratchet_sel.ops.bundle`: one-file deployment (``python -m ratchet_sel bundle``);
- :mod:`~ratchet_sel.ops.accelerator`: which masking implementation runs (the optional C one).

Nothing is imported here, so that ``import ratchet_sel.ops.stats`` stays cheap.
"""
