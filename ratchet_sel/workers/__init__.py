"""Prefork workers: several processes accepting on one port, supervised by a master.

- :mod:`~ratchet_sel.workers.master`: :class:`Workers` and :func:`run_workers`
  (forking, supervision, the local publish/subscribe hub);
- :mod:`~ratchet_sel.workers.worker`: :class:`Worker`, what each worker's
  factory gets, and its :class:`WorkerBackplane`;
- :mod:`~ratchet_sel.workers.wire`: the master/worker channel's frames (sans-IO);
- :mod:`~ratchet_sel.workers.channel`: one end of that channel on a loop.
"""

from .master import EXIT_BOOT_FAILED, MAX_WORKERS, ListenAddress, Workers, reuse_port_available, run_workers
from .wire import (METRICS, PUBLISH, READY, SUBSCRIBE, UNSUBSCRIBE, ChannelError, FrameReader,
                   encode_channel_frame)
from .worker import Worker, WorkerBackplane

__all__ = ["run_workers", "Workers", "Worker", "WorkerBackplane", "ListenAddress", "MAX_WORKERS",
           "EXIT_BOOT_FAILED", "reuse_port_available",
           "ChannelError", "FrameReader", "encode_channel_frame",
           "SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH", "READY", "METRICS"]
