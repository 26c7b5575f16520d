"""sparcol's DDP communication hooks under mpirun (gloo for DDP itself, sparcol over MPI for the
gradients): the dense hook's gradients equal gloo's mean bit for bit; the top-k hook with k = n
equals the dense hook bit for bit; what the ranks sent plus their residuals equals the accumulated
gradients (error feedback loses nothing); parameters identical on every rank after N steps with every
hook, with several buckets and with backward() on another thread; bad arguments raise."""

import threading

import numpy as np

import harness
from harness import check, raises, same_bits

torch = harness.require_torch()
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import sparcol  # noqa: E402
import sparcol.torch as st  # noqa: E402
from sparcol.torch import hooks  # noqa: E402


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def net(seed, dyadic=False):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 6))
    if dyadic:  # weights on a 1/8 grid: every product and sum of the test is exact
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randint(-4, 5, p.shape).float() / 8)
    return m


def test_dense_equals_gloo(comm):
    K = comm.size
    gen = torch.Generator().manual_seed(10 + comm.rank)
    a = DDP(net(1, dyadic=True))  # DDP's own gloo all-reduce
    b = DDP(net(1, dyadic=True))
    b.register_comm_hook(hooks.HookState(comm=comm), hooks.dense_hook)
    for it in range(3):  # the third after DDP's bucket rebuild
        x = torch.randint(-3, 4, (5, 12), generator=gen).float()
        coef = torch.randint(-2, 3, (5, 6), generator=gen).float()
        for m in (a, b):
            m.zero_grad()
            (m(x) * coef).sum().backward()
        ok = all(same_bits(p.grad, q.grad) for p, q in zip(a.parameters(), b.parameters()))
        check(ok, f"dense hook == gloo mean bit for bit, iteration {it}")
        check(K == 1 or any(p.grad.abs().sum() > 0 for p in b.parameters()), "non-trivial gradients")


def train(model, steps, seed, on_thread=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 12, generator=gen)
        y = torch.randn(8, 6, generator=gen)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        if on_thread:
            t = threading.Thread(target=loss.backward)
            t.start()
            t.join()
        else:
            loss.backward()
        opt.step()


def test_topk_full_equals_dense(comm):
    a = DDP(net(2), bucket_cap_mb=0.0002)
    a.register_comm_hook(hooks.HookState(comm=comm), hooks.dense_hook)
    b = DDP(net(2), bucket_cap_mb=0.0002)
    state = hooks.HookState(comm=comm, density=1.0, start_iter=2)
    b.register_comm_hook(state, hooks.topk_hook)
    train(a, 6, 20 + comm.rank)
    train(b, 6, 20 + comm.rank)
    check(same_bits(flat_params(a.module), flat_params(b.module)), "top-k with k = n == dense, bit for bit")
    check(state.iter == 6 and len(state._exchanges) >= 2, f"iterations {state.iter}, buckets {len(state._exchanges)}")


def test_conservation(comm):
    K = comm.size
    sizes = [300, 57]
    rng = np.random.default_rng(30 + comm.rank)
    for name in ("topk", "rbgs", "sign"):
        state = hooks.HookState(comm=comm, density=0.1, start_iter=1)
        hook = hooks.HOOKS[name]
        sent = [np.zeros(n, np.float64) for n in sizes]  # K * the hook's means: what all ranks sent
        given = [np.zeros(n, np.float32) for n in sizes]  # this rank's gradients, summed
        for it in range(8):
            for i, n in enumerate(sizes):
                g = rng.integers(-8, 9, n).astype(np.float32)
                given[i] += g
                fut = hook(state, hooks.StandaloneBucket(i, torch.from_numpy(g.copy()), i == len(sizes) - 1))
                sent[i] += K * fut.value().numpy().astype(np.float64)
        for i, n in enumerate(sizes):
            total = given[i].copy()
            sparcol.dense_allreduce_sum(comm, total)
            res = state.residual(name, i).copy()
            sparcol.dense_allreduce_sum(comm, res)
            got = sent[i] + res
            if name == "sign":  # scale = ||v||_1 / n is not exact: equal up to rounding
                ok = np.allclose(got, total, rtol=1e-5, atol=1e-3)
            else:  # integer gradients: every sum is exact
                ok = np.array_equal(got, total.astype(np.float64))
            check(ok, f"{name}, bucket {i}: sent + residual == accumulated gradient "
                      f"(max |diff| {np.max(np.abs(got - total)):.3g})")
        check(state.iter == 8 and state.bytes_sent > 0, f"{name}: {state.iter} iterations, {state.bytes_sent} bytes")


def test_replicas(comm):
    for name in ("dense", "topk", "rbgs", "sign"):
        model = DDP(net(3), bucket_cap_mb=0.0002)
        state = hooks.register(model, name, comm=comm, density=0.05)
        train(model, 5, 40 + comm.rank)
        check(harness.identical_on_all_ranks(flat_params(model.module).numpy()),
              f"{name}: parameters identical on every rank after 5 steps")
        if name != "dense":
            check(state.last_stats is not None and not state.last_stats["skipped"], f"{name}: compressed steps ran")
    model = DDP(net(4))
    hooks.register(model, "topk", comm=comm, density=0.05)
    train(model, 4, 50 + comm.rank, on_thread=True)
    check(harness.identical_on_all_ranks(flat_params(model.module).numpy()),
          "top-k hook with backward() on another thread: replicas identical")


def test_bad_arguments(comm):
    raises(ValueError, lambda: hooks.HookState(comm=comm, density=0.0), "density 0", "density")
    raises(ValueError, lambda: hooks.HookState(comm=comm, density=2.0), "density 2", "density")
    raises(ValueError, lambda: hooks.HookState(comm=comm, start_iter=0), "start_iter 0", "start_iter")
    raises(ValueError, lambda: hooks.compressed_hook("zip"), "unknown compressor", "compressor")
    state = hooks.HookState(comm=comm)
    raises(TypeError, lambda: hooks.topk_hook(state, hooks.StandaloneBucket(0, torch.zeros(8, dtype=torch.float64), True)),
           "float64 bucket", "float32")
    # Nothing was sent: the ranks are still in step.
    v = np.ones(3, np.float32)
    sparcol.dense_allreduce_sum(comm, v)
    check(np.all(v == comm.size), "a collective after the bad calls")


def main():
    # Small first buckets, so that the small test models get several buckets (DDP reads this when a
    # model is wrapped).
    dist._DEFAULT_FIRST_BUCKET_BYTES = 200
    comm = st.init_process_group()
    check(dist.get_world_size() == comm.size and dist.get_rank() == comm.rank, "gloo and MPI agree on ranks")
    test_bad_arguments(comm)
    test_dense_equals_gloo(comm)
    test_topk_full_equals_dense(comm)
    test_conservation(comm)
    test_replicas(comm)


harness.run(main)
