"""sparcol.torch.DistributedOptimizer: a sparcol method as a torch.optim.Optimizer.

The parameters become views into one flat float32 buffer (their order is the order given), the
gradients are gathered into a second flat buffer each step, and ``sparcol.Optimizer`` runs the
method on the flat vector, so the trajectory is the native library's on the same flat problem, bit
for bit, and the replicas stay bitwise identical across ranks. No DDP is involved: the optimizer
does the communication itself (every rank must call ``step()`` the same number of times).

Methods that evaluate the gradient away from the model (gmc-plus, def-a, cser, liec) keep the model x in a
buffer of their own; the parameters then hold the gradient point z = gradient_point(x, lr), computed
at the end of each step with that step's learning rate (and when the optimizer is built or loaded).
``model_parameters()`` lends the parameters x itself, e.g. for evaluation.
"""

import contextlib

import numpy as np
import torch

import sparcol

# Methods whose gradient point differs from the model (docs/optimizers.md).
_DETACHED = ("gmc-plus", "def-a", "cser", "liec")


class _Required:
    def __repr__(self):
        return "<required>"


required = _Required()


class DistributedOptimizer(torch.optim.Optimizer):
    """A torch optimizer running a sparcol method (docs/optimizers.md) over MPI.

    Args:
        params: the parameters (one group), float32 CPU tensors.
        method, compressor, density, momentum, weight_decay: as in sparcol.Optimizer.
        lr: the learning rate (group["lr"]; a scheduler may change it between steps).
        comm: a sparcol.Communicator (default: sparcol.world()).
        **options: any further keyword of sparcol.Optimizer (seed, layerwise, alpha, clip_norm,
            nesterov, warmup_epochs, wd_outside, cser_*, nan_policy, sample_ratio, ...).
    Only the learning rate may change after construction; the other hyperparameters are fixed.
    """

    def __init__(self, params, method="gmc", compressor="topk", density=0.01, lr=required, momentum=0.9,
                 weight_decay=0.0, comm=None, **options):
        if lr is required:
            raise TypeError("lr: required")
        if not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr < 0:
            raise ValueError(f"lr: must be a finite number >= 0, got {lr!r}")
        if isinstance(params, torch.Tensor):
            raise TypeError("params: expected an iterable of tensors, got a tensor")
        params = list(params)
        if len(params) == 0:
            raise ValueError("params: empty parameter list")
        if isinstance(params[0], dict) and len(params) > 1:
            raise ValueError("params: sparcol optimizes one flat vector, so it takes one parameter group")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        plist = self.param_groups[0]["params"]
        for i, p in enumerate(plist):
            if p.device.type != "cpu":
                raise TypeError(f"params[{i}]: on device {p.device}; sparcol's Python module takes CPU tensors")
            if p.dtype != torch.float32:
                raise TypeError(f"params[{i}]: dtype {p.dtype}, expected torch.float32")
            if p.is_sparse:
                raise TypeError(f"params[{i}]: sparse tensors are not supported")
        self._comm = comm if comm is not None else sparcol.world()
        self._method = method
        self._sizes = [p.numel() for p in plist]
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)]).astype(np.int64).tolist()
        n = self._offsets[-1]
        layout = [(f"param{i}", p.numel(), p.dim()) for i, p in enumerate(plist)]
        # Built before any parameter is touched: bad arguments raise here with the model unchanged.
        self._opt = sparcol.Optimizer(self._comm, layout, method=method, compressor=compressor, density=density,
                                      momentum=momentum, weight_decay=weight_decay, **options)
        self._params_flat = torch.empty(n, dtype=torch.float32)
        with torch.no_grad():
            for p, a, b in zip(plist, self._offsets[:-1], self._offsets[1:]):
                self._params_flat[a:b].copy_(p.detach().reshape(-1))
                p.data = self._params_flat[a:b].view_as(p)
        self._detached = method in _DETACHED
        self._model = self._params_flat.clone() if self._detached else self._params_flat
        self._grad_flat = torch.zeros(n, dtype=torch.float32)
        self._t = 0
        self._epoch = 0.0
        self.last_stats = None
        self.bytes_sent = 0  # payload bytes this rank sent, summed over steps
        self.bytes_recv = 0
        self._set_gradient_point()

    # -- properties ------------------------------------------------------------------------------
    @property
    def comm(self):
        return self._comm

    @property
    def method(self):
        return self._method

    @property
    def steps(self):
        """Steps taken (the t of the next step)."""
        return self._t

    @property
    def flat_parameters(self):
        """The flat float32 tensor the parameters are views of."""
        return self._params_flat

    @property
    def model(self):
        """The model x as one flat tensor (the parameters themselves unless the method detaches)."""
        return self._model

    @property
    def sparcol_optimizer(self):
        return self._opt

    def set_epoch(self, epoch):
        """The (fractional) epoch passed to the method (DGC's density warm-up)."""
        self._epoch = float(epoch)

    # -- stepping --------------------------------------------------------------------------------
    def _set_gradient_point(self):
        if not self._detached:
            return
        z = self._opt.gradient_point(self._model.numpy(), self.param_groups[0]["lr"])
        np.copyto(self._params_flat.numpy(), z)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        for i, (p, a, b) in enumerate(zip(group["params"], self._offsets[:-1], self._offsets[1:])):
            if p.grad is None:
                self._grad_flat[a:b].zero_()
            else:
                if p.grad.is_sparse or p.grad.dtype != torch.float32:
                    raise TypeError(f"params[{i}].grad: expected a dense float32 gradient")
                self._grad_flat[a:b].copy_(p.grad.reshape(-1))
        stats = self._opt.step(self._model.numpy(), self._grad_flat.numpy(), self._t, group["lr"], self._epoch)
        self._t += 1
        self.last_stats = stats
        self.bytes_sent += stats["bytes_sent"]
        self.bytes_recv += stats["bytes_recv"]
        self._set_gradient_point()
        return loss

    @contextlib.contextmanager
    def model_parameters(self):
        """Within the block the parameters hold the model x (for methods that detach the gradient
        point; a no-op otherwise), e.g. for evaluation; on exit they return to the gradient point."""
        if not self._detached:
            yield
            return
        saved = self._params_flat.clone()
        self._params_flat.copy_(self._model)
        try:
            yield
        finally:
            self._params_flat.copy_(saved)

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self):
        """This rank's optimizer state: the method's buffers (residuals, momentum, errors; they differ
        per rank), the step counter and, for methods that detach, the model x. Copies, bitwise."""
        buffers = {name: torch.from_numpy(np.array(a, copy=True)) for name, a in self._opt.state().items()}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.param_groups[0]["params"])))
        return {
            "state": {
                "t": self._t,
                "epoch": self._epoch,
                "skipped_steps": self._opt.skipped_steps,
                "buffers": buffers,
                "model": self._model.clone() if self._detached else None,
                "bytes_sent": self.bytes_sent,
                "bytes_recv": self.bytes_recv,
            },
            "param_groups": [group],
            "sparcol": {"method": self._method, "size": self._opt.size, "rank": self._comm.rank,
                        "world": self._comm.size},
        }

    def load_state_dict(self, state_dict):
        """Restores what state_dict() saved (this rank's). The parameters (for methods that do not
        detach, the model itself) are restored by the model's own load_state_dict."""
        info = state_dict.get("sparcol")
        if info is None:
            raise ValueError("state_dict: not a sparcol.torch.DistributedOptimizer state")
        if info["method"] != self._method or info["size"] != self._opt.size or info["world"] != self._comm.size:
            raise ValueError(f"state_dict: saved for method {info['method']}, size {info['size']}, {info['world']} "
                             f"ranks; this optimizer is {self._method}, size {self._opt.size}, {self._comm.size} ranks")
        st = state_dict["state"]
        mine = self._opt.state()
        if set(mine) != set(st["buffers"]):
            raise ValueError(f"state_dict: buffers {sorted(st['buffers'])}, expected {sorted(mine)}")
        for name, view in mine.items():
            src = st["buffers"][name]
            if src.numel() != view.size or src.dtype != torch.float32:
                raise ValueError(f"state_dict: buffer {name} has {src.numel()} {src.dtype} elements, "
                                 f"expected {view.size} float32")
            np.copyto(view, src.detach().cpu().reshape(-1).numpy())
        self._t = int(st["t"])
        self._epoch = float(st["epoch"])
        self._opt.skipped_steps = int(st["skipped_steps"])
        self.bytes_sent = int(st.get("bytes_sent", 0))
        self.bytes_recv = int(st.get("bytes_recv", 0))
        for k, v in state_dict["param_groups"][0].items():
            if k != "params":
                self.param_groups[0][k] = v
        if self._detached:
            self._model.copy_(st["model"])
            self._set_gradient_point()
