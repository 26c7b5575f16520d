"""sparcol from Python: communication-compressed collectives and optimizers (docs/python.md).

The compiled module ``sparcol._sparcol`` binds the C++ library through the buffer protocol: every
array argument is a contiguous numpy array (float32 vectors, uint32 indices and sign words); torch
CPU tensors pass through ``tensor.numpy()``, which shares their memory. ``sparcol.torch`` builds a
``torch.optim.Optimizer`` and DDP communication hooks on top.

MPI is initialised (MPI_THREAD_MULTIPLE) by the first ``Communicator("mpi")`` unless somebody has
already initialised it, and finalised at interpreter exit only when sparcol initialised it.
"""

from ._sparcol import (  # noqa: F401
    ArgumentError,
    Block,
    BucketExchange,
    Communicator,
    Compressor,
    Error,
    Message,
    Optimizer,
    RbgsAllreduce,
    RingAllreduce,
    SignAllgather,
    SparseAllgather,
    compressor_names,
    decompress,
    dense_allreduce_sum,
    init_mpi,
    k_floor,
    k_round,
    method_is_async,
    method_is_decentralized,
    method_is_dense,
    method_is_local,
    method_names,
    mpi_initialized_here,
    mpi_thread_level,
    rbgs_block,
    subtract_decompressed,
)

__all__ = [
    "ArgumentError", "Block", "BucketExchange", "Communicator", "Compressor", "Error", "Message", "Optimizer",
    "RbgsAllreduce", "RingAllreduce", "SignAllgather", "SparseAllgather", "compressor_names", "decompress",
    "dense_allreduce_sum", "init_mpi", "k_floor", "k_round", "method_is_async", "method_is_decentralized", "method_is_dense",
    "method_is_local", "method_names", "mpi_initialized_here", "mpi_thread_level", "rbgs_block",
    "subtract_decompressed", "world",
]

_world = None


def world():
    """The process-wide MPI communicator (MPI_COMM_WORLD, duplicated once), created on first use."""
    global _world
    if _world is None:
        _world = Communicator("mpi")
    return _world
