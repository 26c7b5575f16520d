"""Shared pieces of the Python tests (tests/suites/python.cmake runs them under mpirun).

The package comes from the build tree: SPARCOL_PYTHON_DIR (set by CTest) goes first on sys.path.
A test that needs torch calls require_torch(), which exits 77 (CTest: skipped) with the reason when
torch is missing, on every rank alike. check() records failures; finish() reduces them over the
ranks (so every rank exits 1 when any failed) and prints a summary on rank 0.
"""

import os
import sys
import traceback

_dir = os.environ.get("SPARCOL_PYTHON_DIR")
if _dir:
    sys.path.insert(0, _dir)

import numpy as np  # noqa: E402

import sparcol  # noqa: E402

SKIP = 77
_checks = 0
_failures = []


def comm():
    return sparcol.world()


def require_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        if sparcol.world().rank == 0:
            print(f"skipped: torch is not importable ({e}); scripts/setup.sh installs python3-torch", flush=True)
        sys.exit(SKIP)
    return torch


def check(cond, what):
    global _checks
    _checks += 1
    if not cond:
        _failures.append(what)
        print(f"rank {sparcol.world().rank}: FAILED: {what}", flush=True)


def raises(exc_type, fn, what, contains=None):
    """check() that fn() raises exc_type (whose message contains `contains`, e.g. the argument)."""
    try:
        fn()
    except exc_type as e:
        check(contains is None or contains in str(e), f"{what}: message {str(e)!r} lacks {contains!r}")
        return e
    except Exception as e:  # noqa: BLE001
        check(False, f"{what}: raised {type(e).__name__}: {e}, expected {exc_type.__name__}")
        return None
    check(False, f"{what}: raised nothing, expected {exc_type.__name__}")
    return None


def bits(a):
    """The bit patterns of a float32 array or tensor, for bitwise comparison."""
    if hasattr(a, "detach"):
        a = a.detach().numpy()
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def same_bits(a, b):
    return bits(a).shape == bits(b).shape and bool(np.array_equal(bits(a), bits(b)))


def identical_on_all_ranks(a):
    """Whether a float32 vector is bitwise the same on every rank (rank 0's broadcast to all)."""
    c = sparcol.world()
    mine = np.ascontiguousarray(a, dtype=np.float32).reshape(-1).copy()
    root = mine.copy()
    c.broadcast(root, 0)
    flag = np.array([0.0 if np.array_equal(mine.view(np.uint32), root.view(np.uint32)) else 1.0], np.float32)
    sparcol.dense_allreduce_sum(c, flag)
    return flag[0] == 0.0


def run(main):
    """Runs main(), turning an exception into a failure, then finish()."""
    try:
        main()
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        check(False, "uncaught exception")
    finish()


def finish():
    c = sparcol.world()
    flag = np.array([float(len(_failures))], np.float32)
    sparcol.dense_allreduce_sum(c, flag)
    if c.rank == 0:
        print(f"{_checks} checks on rank 0, {int(flag[0])} failure(s) over {c.size} rank(s)", flush=True)
    sys.exit(1 if flag[0] > 0 else 0)
