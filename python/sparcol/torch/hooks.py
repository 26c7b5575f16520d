"""DDP communication hooks that aggregate gradient buckets with sparcol over MPI.

    state = sparcol.torch.hooks.HookState(density=0.01)
    ddp_model.register_comm_hook(state, sparcol.torch.hooks.topk_hook)

DDP keeps its process group (gloo) for its own bookkeeping (parameter broadcast, bucket rebuild);
the gradients travel over sparcol's MPI communicator. Each hook takes the bucket's flat gradient
(this rank's), and returns a completed future holding the bucket's average over ranks:

* ``dense_hook``: sum over ranks with sparcol's all-reduce (the direct algorithm: every element is
  summed in rank order, as the sparse hooks sum), divided by K. No compression, no state.
* ``topk_hook``, ``rbgs_hook``, ``sign_hook`` (and ``compressed_hook(name)`` for any compressor of
  sparcol.compressor_names()): error feedback per bucket. With r the bucket's residual (zero at
  first): v = r + g; the bucket average is mean_k C(v_k); r <- v - C(v). Top-k sends this rank's
  k = density * n largest |v| as (index, value) pairs (sparse all-gather); RBGS all-reduces one
  random block of k elements shared by all ranks (no indices on the wire); sign sends one bit per
  element and one scale (scaled-sign compression). The library has no low-rank compressor.

Per-bucket state is created only after DDP has rebuilt its buckets (it does after the first
iteration): the first ``start_iter`` iterations (default 2) use the dense hook's path, as torch's
PowerSGD hook does. Buckets are told apart by ``bucket.index()``; their size is checked each call.
If any rank's bucket gradient is not finite, every rank's hook returns NaNs for that bucket (so all
replicas see the same non-finite gradient, as with DDP's own all-reduce) and the residual is kept.

The hooks run on the thread that calls ``backward()``; sparcol releases the GIL while it communicates.
Every rank must run the same buckets in the same order (DDP does).
"""

import torch

import sparcol


class HookState:
    """What the sparcol hooks share: the communicator, the density, and per-bucket exchanges.

    Attributes after each iteration: ``iter`` (iterations done), ``bytes_sent`` / ``bytes_recv``
    (payload bytes this rank moved in sparcol's collectives, all buckets, since the start; the
    dense warm-up iterations included), ``last_stats`` (the last bucket's statistics).
    """

    def __init__(self, comm=None, density=0.01, start_iter=2, seed=0, sign_majority=False):
        if not (0.0 < density <= 1.0):
            raise ValueError(f"density: must lie in (0, 1], got {density!r}")
        if start_iter < 1:
            raise ValueError("start_iter: must be >= 1 (DDP rebuilds its buckets after the first iteration)")
        self.comm = comm if comm is not None else sparcol.world()
        self.density = float(density)
        self.start_iter = int(start_iter)
        self.seed = int(seed)
        self.sign_majority = bool(sign_majority)
        self.iter = 0
        self.bytes_sent = 0
        self.bytes_recv = 0
        self.last_stats = None
        self._rings = {}  # bucket length -> RingAllreduce (direct)
        self._exchanges = {}  # (compressor, bucket index) -> BucketExchange

    def _advance(self, bucket):
        if bucket.is_last():
            self.iter += 1

    def dense_mean(self, t):
        """t <- mean over ranks of t (a flat float32 CPU tensor), in place."""
        n = t.numel()
        ring = self._rings.get(n)
        if ring is None:
            ring = sparcol.RingAllreduce(self.comm, n, algorithm="direct")
            self._rings[n] = ring
        ring.run(t.numpy(), self.iter)
        t.div_(self.comm.size)
        self.bytes_sent += ring.bytes_sent_per_run
        self.bytes_recv += ring.bytes_sent_per_run

    def exchange(self, compressor, index, n):
        """The BucketExchange of bucket `index` (n elements) for `compressor`, created on first use."""
        key = (compressor, index)
        ex = self._exchanges.get(key)
        if ex is None:
            ex = sparcol.BucketExchange(self.comm, n, compressor=compressor, density=self.density, seed=self.seed,
                                        stream=index, sign_majority=self.sign_majority)
            self._exchanges[key] = ex
        elif ex.size != n:
            raise RuntimeError(f"sparcol hook: bucket {index} has {n} elements, {ex.size} when its state was "
                               "created (buckets changed after start_iter)")
        return ex

    def residual(self, compressor, index):
        """The residual of a bucket (a numpy view), or None before its state exists."""
        ex = self._exchanges.get((compressor, index))
        return None if ex is None else ex.residual


class StandaloneBucket:
    """A stand-in for DDP's GradBucket (index, buffer, is_last), to call a hook outside DDP: for
    tests and for timing a hook against the bare collective (python/examples/bench_hooks.py)."""

    def __init__(self, index, tensor, last):
        self._i, self._t, self._last = index, tensor, last

    def buffer(self):
        return self._t

    def index(self):
        return self._i

    def is_last(self):
        return self._last


def _bucket_tensor(bucket):
    buf = bucket.buffer()
    if buf.dtype != torch.float32 or buf.device.type != "cpu" or not buf.is_contiguous():
        raise TypeError(f"sparcol hook: bucket {bucket.index()} is {buf.dtype} on {buf.device}; "
                        "sparcol's hooks take contiguous float32 CPU buckets")
    return buf.detach()


def _done(t):
    fut = torch.futures.Future()
    fut.set_result(t)
    return fut


def dense_hook(state, bucket):
    """The bucket's mean over ranks with sparcol's dense all-reduce."""
    buf = _bucket_tensor(bucket)
    state.dense_mean(buf)
    state._advance(bucket)
    return _done(buf)


def compressed_hook(compressor):
    """A hook with error feedback for any sparcol compressor name (see the module comment)."""
    if compressor not in sparcol.compressor_names():
        raise ValueError(f"compressor: unknown '{compressor}' (one of {', '.join(sparcol.compressor_names())})")

    def hook(state, bucket):
        buf = _bucket_tensor(bucket)
        if state.iter < state.start_iter:
            state.dense_mean(buf)
        else:
            ex = state.exchange(compressor, bucket.index(), buf.numel())
            a = buf.numpy()
            stats = ex.run(a, a, state.iter)
            state.bytes_sent += stats["bytes_sent"]
            state.bytes_recv += stats["bytes_recv"]
            state.last_stats = stats
        state._advance(bucket)
        return _done(buf)

    hook.__name__ = f"{compressor.replace('-', '_')}_hook"
    hook.__qualname__ = hook.__name__
    return hook


topk_hook = compressed_hook("topk")
rbgs_hook = compressed_hook("rbgs")
sign_hook = compressed_hook("sign")

HOOKS = {"dense": dense_hook, "topk": topk_hook, "rbgs": rbgs_hook, "sign": sign_hook}


def register(ddp_model, name, **state_options):
    """Registers hook `name` (dense, topk, rbgs, sign, or any compressor name) on a
    DistributedDataParallel model with a new HookState(**state_options); returns the state."""
    state = HookState(**state_options)
    hook = HOOKS.get(name) or compressed_hook(name)
    ddp_model.register_comm_hook(state, hook)
    return state


__all__ = ["HookState", "StandaloneBucket", "dense_hook", "topk_hook", "rbgs_hook", "sign_hook", "compressed_hook", "register", "HOOKS"]
