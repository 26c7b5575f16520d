"""sparcol for PyTorch (docs/python.md).

* ``DistributedOptimizer``: a ``torch.optim.Optimizer`` that keeps the parameters as views into one
  flat float32 buffer and runs a sparcol method (gmc, dgc, ef-sgd, ...) on it, without DDP.
* ``hooks``: DDP communication hooks (``dense_hook``, ``topk_hook``, ``rbgs_hook``, ``sign_hook``)
  that aggregate gradient buckets with sparcol over MPI while DDP keeps gloo for its bookkeeping.
* ``init_process_group``: torch.distributed on gloo for a job launched by ``mpirun`` (rank and
  size from MPI, a free port chosen by rank 0).

Launch with ``mpirun -np K /usr/bin/python3 script.py`` (not torchrun: see docs/python.md).
"""

import os
import socket

import numpy as np
import torch.distributed as dist

import sparcol

from . import hooks  # noqa: F401
from .optimizer import DistributedOptimizer  # noqa: F401

__all__ = ["DistributedOptimizer", "hooks", "init_process_group"]


def init_process_group(comm=None, backend="gloo", timeout=None):
    """Initialises torch.distributed with this MPI job's rank and size (gloo by default).

    Rank 0 picks a free TCP port on MASTER_ADDR (default 127.0.0.1, one node) unless MASTER_PORT is
    set, and broadcasts it over sparcol's communicator, so concurrent jobs never collide on a port.
    Returns the sparcol communicator used.
    """
    comm = comm if comm is not None else sparcol.world()
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = os.environ.get("MASTER_PORT")
    if port is None:
        box = np.zeros(1, dtype=np.float32)  # a port (< 2^16) is exact in float32
        if comm.rank == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((addr, 0))
                box[0] = s.getsockname()[1]
        comm.broadcast(box, 0)
        port = str(int(box[0]))
    kwargs = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=comm.rank, world_size=comm.size,
                            **kwargs)
    return comm
