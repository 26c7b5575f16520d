"""sparcol's compiled module under mpirun (no torch needed): MPI's thread level, the collectives,
compressors and Optimizer on numpy vectors, library errors as exceptions with their code, and bad
arguments raising ValueError / TypeError naming the argument before any communication."""

import atexit
import ctypes
import ctypes.util
import os

import numpy as np

import harness
from harness import check, raises, same_bits

import sparcol


class FakeGpuTensor:
    """Looks like a CUDA tensor to the module's buffer check (this torch build has no CUDA)."""
    is_cuda = True

    def numpy(self):
        raise TypeError("can't convert cuda tensor to numpy")


def test_mpi(c):
    check(sparcol.mpi_thread_level() == "MPI_THREAD_MULTIPLE", f"thread level {sparcol.mpi_thread_level()}")
    check(sparcol.mpi_initialized_here(), "the module initialised MPI")
    check(c.backend == "mpi" and 0 <= c.rank < c.size, f"communicator {c}")


def test_bad_arguments(c):
    n = 10
    x = np.zeros(n, np.float32)
    g = np.ones(n, np.float32)
    opt = sparcol.Optimizer(c, n, method="gmc", density=0.5)
    raises(ValueError, lambda: sparcol.Optimizer(c, n, method="nope"), "unknown method", "method")
    for d in (0.0, -0.1, 1.5, float("nan")):
        raises(ValueError, lambda d=d: sparcol.Optimizer(c, n, density=d), f"density {d}", "density")
    raises(ValueError, lambda: sparcol.Optimizer(c, n, compressor="zip"), "unknown compressor", "compressor")
    raises(ValueError, lambda: sparcol.Optimizer(c, n, momentum=1.0), "momentum 1", "momentum")
    raises(ValueError, lambda: sparcol.Optimizer(c, n, nan_policy="ignore"), "nan_policy", "nan_policy")
    raises(TypeError, lambda: opt.step(x, g.astype(np.float64), 0, 0.1), "float64 gradient", "g")
    raises(TypeError, lambda: opt.step(x.astype(np.float16), g, 0, 0.1), "float16 model", "x")
    raises(TypeError, lambda: opt.step(np.zeros(2 * n, np.float32)[::2], g, 0, 0.1), "non-contiguous x", "x")
    raises(TypeError, lambda: opt.step(FakeGpuTensor(), g, 0, 0.1), "GPU tensor", "GPU")
    raises(TypeError, lambda: opt.step([0.0] * n, g, 0, 0.1), "a list", "x")
    ro = x.copy()
    ro.setflags(write=False)
    raises(TypeError, lambda: opt.step(ro, g, 0, 0.1), "read-only x", "x")
    raises(ValueError, lambda: opt.step(x, np.ones(n + 1, np.float32), 0, 0.1), "mismatched g", "g")
    raises(ValueError, lambda: opt.step(x[:-1], g, 0, 0.1), "mismatched x", "x")
    raises(ValueError, lambda: opt.step(x, g, 0, -1.0), "negative lr", "lr")
    raises(ValueError, lambda: sparcol.Compressor("topk", density=2.0), "compressor density", "density")
    raises(ValueError, lambda: sparcol.Compressor("zip"), "compressor name", "name")
    ring = sparcol.RingAllreduce(c, n)
    raises(ValueError, lambda: ring.run(np.zeros(n + 1, np.float32)), "ring length", "data")
    raises(ValueError, lambda: sparcol.RingAllreduce(c, n, algorithm="tree"), "ring algorithm", "algorithm")
    sg = sparcol.SparseAllgather(c, n)
    raises(ValueError, lambda: sg.run(np.array([1, 2], np.uint32), np.ones(3, np.float32)), "pair lengths",
           "values")
    raises(ValueError, lambda: sg.run(np.array([n], np.uint32), np.ones(1, np.float32)), "index >= n", "indices")
    raises(TypeError, lambda: sg.run(np.array([1], np.int64), np.ones(1, np.float32)), "int64 indices", "indices")
    raises(ValueError, lambda: sparcol.Communicator("carrier-pigeon"), "unknown backend", "backend")
    raises(ValueError, lambda: sparcol.BucketExchange(c, n, density=0.0), "bucket density", "density")
    # None of the above communicated: the ranks are still in step, and the first step is t = 0.
    v = np.full(n, c.rank + 1, np.float32)
    ring.run(v)
    check(np.all(v == c.size * (c.size + 1) / 2), "a collective after the bad calls")
    check(not opt.step(x, g, 0, 0.1)["skipped"], "the optimizer's first step after the bad calls")


def test_library_errors(c):
    e = raises(sparcol.ArgumentError, lambda: sparcol.Optimizer(c, 4, method="dgc", wd_outside=True),
               "wd_outside without weight decay")
    if e is not None:
        check(isinstance(e, ValueError) and isinstance(e, sparcol.Error), "ArgumentError is a ValueError and an Error")
        check(e.code == "invalid_argument" and e.exit_code == 2, f"code {e.code}, exit code {e.exit_code}")
        check("weight" in e.message, f"message {e.message!r}")
    if c.size > 1:
        ring = sparcol.RingAllreduce(c, 8 + c.rank)  # the ranks disagree on the count
        e = raises(sparcol.Error, lambda: ring.run(np.zeros(8 + c.rank, np.float32)), "mismatched counts")
        if e is not None:
            check(e.code == "mismatch" and e.exit_code == 6, f"mismatch code {e.code}, exit code {e.exit_code}")
            check(e.rank == c.rank, f"error rank {e.rank}")


def test_collectives(c):
    K, r = c.size, c.rank
    for n in (0, 1, 5, 1000, 70001):
        for alg in ("auto", "ring", "direct"):
            v = (np.arange(n, dtype=np.float32) % 7) * (r + 1)
            ring = sparcol.RingAllreduce(c, n, algorithm=alg)
            ring.run(v, 3)
            want = (np.arange(n, dtype=np.float32) % 7) * (K * (K + 1) / 2)
            check(np.array_equal(v, want), f"ring all-reduce n={n} {alg}")
    v = np.full(9, float(r), np.float32)
    sparcol.dense_allreduce_sum(c, v)
    check(np.all(v == K * (K - 1) / 2), "dense all-reduce")

    # Sparse all-gather: rank r sends r + 1 pairs (index (r + 3 j) mod n, value r + 1 + j).
    n = 50
    idx = np.array([(r + 3 * j) % n for j in range(r + 1)], np.uint32)
    val = np.array([r + 1 + j for j in range(r + 1)], np.float32)
    sg = sparcol.SparseAllgather(c, n, expected_k=4)
    sg.run(idx, val, step=1)
    check(sg.counts == [q + 1 for q in range(K)], f"sparse counts {sg.counts}")
    want = np.zeros(n, np.float32)
    for q in range(K):
        check(np.array_equal(sg.indices(q), [(q + 3 * j) % n for j in range(q + 1)]), f"indices of rank {q}")
        for j in range(q + 1):
            want[(q + 3 * j) % n] += q + 1 + j
    out = np.empty(n, np.float32)
    sg.sum_into(out)
    check(np.array_equal(out, want), "sparse sum_into")
    sg.sum_into(out, float(K))
    check(same_bits(out, want / np.float32(K)), "sparse mean")
    check(sg.last_bytes_sent == 8 * (r + 1) * (K - 1) or K > 16, f"sparse bytes sent {sg.last_bytes_sent}")

    # RBGS: the block is the same on every rank and its elements are summed.
    rb = sparcol.RbgsAllreduce(c, 100, 10)
    v = np.full(100, r + 1, np.float32)
    block = rb.run(v, seed=5, step=2)
    check(block.length == 10 and sparcol.rbgs_block(100, 10, 5, 2).start == block.start, "RBGS block")
    inside = np.zeros(100, bool)
    inside[block.indices()] = True
    check(np.all(v[inside] == K * (K + 1) / 2) and np.all(v[~inside] == r + 1), "RBGS sums the block only")

    # Sign all-gather: the decoded mean equals the rank-order sum of scale_r * sign_r over K.
    n = 70
    rng = np.random.default_rng(100 + r)
    mine = rng.standard_normal(n).astype(np.float32)
    comp = sparcol.Compressor("sign")
    msg = comp.compress(mine)
    sa = sparcol.SignAllgather(c, n)
    sa.run(msg.bits, msg.scale, step=0)
    expect = np.zeros(n, np.float32)
    for q in range(K):
        words = sa.bits(q)
        s = np.where((words[np.arange(n) // 32] >> (np.arange(n) % 32)) & 1, 1.0, -1.0).astype(np.float32)
        expect += np.float32(sa.scale(q)) * s
    expect /= np.float32(K)
    got = np.empty(n, np.float32)
    sa.mean_into(got)
    check(same_bits(got, expect), "sign mean_into")


def test_compressors():
    v = np.array([0.5, -3.0, 1.0, 2.0, -0.25, 0.0], np.float32)
    comp = sparcol.Compressor("topk", density=0.5)
    msg = comp.compress(v)
    check(msg.kind == "sparse" and sorted(msg.indices.tolist()) == [1, 2, 3], f"top-3 indices {msg.indices}")
    dense = np.zeros(6, np.float32)
    sparcol.decompress(msg, dense)
    check(np.array_equal(dense, [0, -3, 1, 2, 0, 0]), "decompress")
    r = v.copy()
    sparcol.subtract_decompressed(msg, r)
    check(np.array_equal(r + dense, v) and np.all(r[[1, 2, 3]] == 0), "residual + C(v) = v")
    check(msg.wire_bytes == 24, f"wire bytes {msg.wire_bytes}")
    check(set(["topk", "rbgs", "sign", "none"]) <= set(sparcol.compressor_names()), "compressor names")


def test_optimizer(c):
    n = 200
    names = sparcol.method_names()
    check(len(names) >= 20 and {"gmc", "cser", "marsit", "sign-cascade", "powersgd", "liec", "local-sgd", "dpsgd"} <= set(names),
          f"methods {names}")
    check(sparcol.method_is_local("local-sgd") and not sparcol.method_is_local("gmc"), "method_is_local")
    # The replicated-model methods and the decentralized ones (the local-SGD family keeps a model per
    # rank and is tested in tests/coll).
    # The asynchronous methods (their results depend on timing) are tested in tests/topo.
    for method in [m for m in names if not sparcol.method_is_local(m) and not sparcol.method_is_async(m)]:
        opt = sparcol.Optimizer(c, [("w", 150, 2), ("b", 50, 1)], method=method, density=0.05, weight_decay=1e-4)
        x = np.linspace(-1, 1, n).astype(np.float32)
        rng = np.random.default_rng(c.rank)
        for t in range(6):
            z = opt.gradient_point(x, 0.1)
            check(not z.flags.writeable, "gradient_point is read-only")
            g = (z - rng.standard_normal(n).astype(np.float32)).astype(np.float32)
            st = opt.step(x, g, t, 0.1)
        # The decentralized methods keep a model per rank, and state beyond n-vectors (messages, p, q);
        # liec's server error covers the rank's own chunk only.
        decentralized = sparcol.method_is_decentralized(method)
        check(decentralized or harness.identical_on_all_ranks(x), f"{method}: replicas identical after 6 steps")
        state = opt.state()
        check(len(state) >= 1 and all(a.dtype == np.float32 and (decentralized or a.size == n or k in ("q", "server error"))
                                      for k, a in state.items()),
              f"{method}: state() {list(state)}")
        # One rank has no neighbour: the decentralized methods then send nothing.
        sends = st["bytes_up"] > 0 or (decentralized and c.size == 1)
        check(sends and ("skipped" in st), f"{method}: step statistics {st}")
    # A NaN on one rank: every rank skips the step (policy skip), x unchanged.
    opt = sparcol.Optimizer(c, 8)
    x = np.ones(8, np.float32)
    g = np.ones(8, np.float32)
    if c.rank == c.size - 1:
        g[3] = np.nan
    st = opt.step(x, g, 0, 0.1)
    check(st["skipped"] and st["bad_ranks"] == [c.size - 1] and np.all(x == 1), f"NaN skip {st}")


def check_finalized_at_exit():
    """Registered before sparcol initialises MPI, so it runs after sparcol's own exit handler (atexit
    is last in, first out): MPI must be finalised by then, since sparcol initialised it."""
    lib = ctypes.util.find_library("mpi")
    if lib is None:
        return
    done = ctypes.c_int(0)
    ctypes.CDLL(lib).MPI_Finalized(ctypes.byref(done))
    if not done.value:
        print("FAILED: sparcol initialised MPI but did not finalise it at exit", flush=True)
        os._exit(1)


def main():
    atexit.register(check_finalized_at_exit)
    c = harness.comm()
    test_mpi(c)
    test_bad_arguments(c)
    test_library_errors(c)
    test_collectives(c)
    test_compressors()
    test_optimizer(c)


harness.run(main)
