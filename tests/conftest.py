"""Test-wide settings.

One BLAS thread: the tests use small matrices, where OpenBLAS's threads cost far more than they
give (8-25x slower on a busy 2-core machine). Set before anything imports NumPy.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
