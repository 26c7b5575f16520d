"""MPI initialised before sparcol (as mpi4py would): sparcol leaves it alone, reports the thread level
it finds and warns below MPI_THREAD_MULTIPLE, and does not finalise it (this script does, at exit;
finalising twice would fail the run). Also: when sparcol initialises MPI itself it finalises it at
exit (test_module.py checks that part)."""

import atexit
import ctypes
import ctypes.util
import sys
import warnings

MPI_THREAD_FUNNELED = 1  # Open MPI's value (mpi.h)
lib = ctypes.util.find_library("mpi")
if lib is None:
    print("skipped: libmpi not found by ctypes")
    sys.exit(77)
mpi = ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
provided = ctypes.c_int(-1)
if mpi.MPI_Init_thread(None, None, MPI_THREAD_FUNNELED, ctypes.byref(provided)) != 0:
    sys.exit("MPI_Init_thread failed")


def finalize_ours():
    done = ctypes.c_int(0)
    mpi.MPI_Finalized(ctypes.byref(done))
    if done.value:
        print("FAILED: MPI was finalised by somebody else than its initialiser", flush=True)
        sys.stdout.flush()
        import os
        os._exit(1)
    mpi.MPI_Finalize()


atexit.register(finalize_ours)

import harness  # noqa: E402
from harness import check  # noqa: E402

import sparcol  # noqa: E402


def main():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = sparcol.world()
    check(not sparcol.mpi_initialized_here(), "sparcol did not initialise MPI")
    check(sparcol.mpi_thread_level() == "MPI_THREAD_FUNNELED", f"thread level {sparcol.mpi_thread_level()}")
    check(any(issubclass(w.category, RuntimeWarning) and "MPI_THREAD_FUNNELED" in str(w.message) for w in caught),
          f"a RuntimeWarning about the thread level ({[str(w.message) for w in caught]})")
    v = [float(c.rank + 1)] * 4
    import numpy as np
    a = np.array(v, np.float32)
    sparcol.RingAllreduce(c, 4).run(a)
    check(np.all(a == c.size * (c.size + 1) / 2), "collectives work on the application's MPI")


harness.run(main)
