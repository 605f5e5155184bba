"""A recurrent step's product with few rows on weights packed once a layer call (compiled by
Numba; :func:`bptt.kernels.packed_right` says when it is used and why).

    out[r, j] = sum_q a[r, q] b[q, j]      a (M, K), b (K, N), out (M, N); M small (a batch)

b is the same matrix for every step of a layer call (Wh, or Wh.T going back), so it is copied
once into panels two SIMD vectors wide (16 float32 or 8 float64 columns: one 64-byte cache
line a row) and zero-padded on the right::

    packed[p, q, :] = b[q, p W : (p + 1) W]        packed (P, K, W), P = ceil(N / W)

Each step then runs, for every panel and every block of up to six rows, one kernel that keeps
the block's 6 x W sums in twelve vector registers (with the two panel vectors and one
broadcast row value: 15 of AVX2's 16) while q runs over K::

    acc[r] += a[r, q] * packed[p, q, :]        (one fused multiply-add a vector, where the CPU
                                               has FMA: LLVM contracts the multiply and add)

so b is read once a step, straight from the panels, where a BLAS library packs its slice of b
again on every call. q runs in stretches of K_BLOCK (a panel's 16 KB slice stays in the
first-level cache while the row blocks use it); each stretch is summed from 0 and added to
out, so every out[r, j] is the same chain of adds, whatever the block, the panel's thread or
the other rows: the result does not depend on the number of threads or on the batch around a
row. (One chain over all of K was 5.7x further from the exact sum than OpenBLAS at K 2600;
stretches of 256 bring it within OpenBLAS's.)

The kernels are written as LLVM vector code through Numba's ``intrinsic`` (no compiler but
Numba's LLVM is needed; an install without Numba uses NumPy's product).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .kernels import PANEL_BYTES  # a panel's row: two vectors, one cache line

VECTOR_BYTES = PANEL_BYTES // 2  # one AVX2 register; on other units LLVM splits or joins them
MAX_BLOCK_ROWS = 6  # 2 x 6 accumulators + 2 panel vectors + 1 broadcast = 15 registers
K_BLOCK = 256  # terms summed from 0 before they are added to out: a panel's 16 KB slice


def _block_kernel(rows: int):
    """An intrinsic ``kernel(a, lda, k, panel, out, ldo, accumulate, zero)``: for r < rows,
    out[r ldo : r ldo + W] (+)= sum_q a[r lda + q] panel[q W : q W + W] for q < k, the sum
    started from 0 and added to out when ``accumulate`` is 1 (addresses as integers, strides
    in elements, ``zero`` a scalar of the dtype)."""

    @intrinsic
    def kernel(typingctx, a, lda, k, panel, out, ldo, accumulate, zero):
        def codegen(context, builder, signature, args):
            a_addr, lda_, k_, panel_addr, out_addr, ldo_, accumulate_, _ = args
            scalar = context.get_value_type(signature.args[-1])
            itemsize = context.get_abi_sizeof(scalar)
            lanes = VECTOR_BYTES // itemsize
            vector = ir.VectorType(scalar, lanes)
            i32, i64 = ir.IntType(32), ir.IntType(64)
            a_ptr = builder.inttoptr(a_addr, scalar.as_pointer())
            panel_ptr = builder.inttoptr(panel_addr, scalar.as_pointer())
            out_ptr = builder.inttoptr(out_addr, scalar.as_pointer())
            zeros = ir.Constant(vector, [0.0] * lanes)
            accumulators = []
            for _ in range(2 * rows):  # stack slots that LLVM keeps in registers
                slot = cgutils.alloca_once(builder, vector)
                builder.store(zeros, slot)
                accumulators.append(slot)
            splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
            row_starts = [builder.mul(ir.Constant(i64, r), lda_) for r in range(rows)]
            with cgutils.for_range(builder, k_) as loop:
                q = loop.index
                row = builder.gep(panel_ptr, [builder.mul(q, ir.Constant(i64, 2 * lanes))])
                halves = [builder.load(builder.bitcast(builder.gep(row, [ir.Constant(i64, h)]),
                                                       vector.as_pointer()), align=itemsize)
                          for h in (0, lanes)]
                for r in range(rows):
                    value = builder.load(builder.gep(a_ptr, [builder.add(row_starts[r], q)]))
                    broadcast = builder.shuffle_vector(
                        builder.insert_element(ir.Constant(vector, ir.Undefined), value,
                                               ir.Constant(i32, 0)),
                        ir.Constant(vector, ir.Undefined), splat)
                    for h, half in enumerate(halves):
                        slot = accumulators[2 * r + h]
                        product = builder.fmul(broadcast, half, flags=("contract",))
                        builder.store(builder.fadd(builder.load(slot), product,
                                                   flags=("contract",)), slot)
            adding = builder.icmp_signed("!=", accumulate_, ir.Constant(i64, 0))
            for r in range(rows):
                start = builder.gep(out_ptr, [builder.mul(ir.Constant(i64, r), ldo_)])
                for h in (0, 1):
                    target = builder.bitcast(builder.gep(start, [ir.Constant(i64, h * lanes)]),
                                             vector.as_pointer())
                    total = builder.load(accumulators[2 * r + h])
                    with builder.if_then(adding):
                        builder.store(builder.fadd(builder.load(target, align=itemsize), total),
                                      accumulators[2 * r + h])
                    builder.store(builder.load(accumulators[2 * r + h]), target, align=itemsize)
            return context.get_dummy_value()

        signature = types.void(types.intp, types.int64, types.int64, types.intp, types.intp,
                               types.int64, types.int64, zero)
        return signature, codegen

    return kernel


_rows1, _rows2, _rows3, _rows4, _rows5, _rows6 = (_block_kernel(r) for r in range(1, 7))


@njit(nogil=True, cache=True)
def _block(rows, a, lda, k, panel, out, ldo, accumulate, zero):
    if rows == 6:
        _rows6(a, lda, k, panel, out, ldo, accumulate, zero)
    elif rows == 5:
        _rows5(a, lda, k, panel, out, ldo, accumulate, zero)
    elif rows == 4:
        _rows4(a, lda, k, panel, out, ldo, accumulate, zero)
    elif rows == 3:
        _rows3(a, lda, k, panel, out, ldo, accumulate, zero)
    elif rows == 2:
        _rows2(a, lda, k, panel, out, ldo, accumulate, zero)
    else:
        _rows1(a, lda, k, panel, out, ldo, accumulate, zero)


@njit(nogil=True, cache=True)
def _panels(a, packed, out, first, stop, tail):
    """out[:, first W : stop W] from panels first..stop-1: for each run of K_BLOCK terms of
    the sums (a panel's slice then stays in the first-level cache), every panel, the rows in
    blocks of up to six (as even as they come: 20 rows are 4 blocks of 5). A panel past out's
    last column is summed in ``tail`` (M, W) and copied at the end."""
    m, k = a.shape
    n = out.shape[1]
    width = packed.shape[2]
    size = a.itemsize
    lda, ldo = a.strides[0] // size, out.strides[0] // size
    zero = a.dtype.type(0)
    blocks = (m + MAX_BLOCK_ROWS - 1) // MAX_BLOCK_ROWS
    for q in range(0, k, K_BLOCK):
        depth = min(K_BLOCK, k - q)
        accumulate = 1 if q > 0 else 0
        for p in range(first, stop):
            full = (p + 1) * width <= n
            panel = packed.ctypes.data + p * packed.strides[0] + q * width * size
            r = 0
            for block in range(blocks):
                rows = (m - r) // (blocks - block)
                a_rows = a.ctypes.data + r * a.strides[0] + q * size
                if full:
                    _block(rows, a_rows, lda, depth, panel,
                           out.ctypes.data + r * out.strides[0] + p * width * size, ldo,
                           accumulate, zero)
                else:
                    _block(rows, a_rows, lda, depth, panel, tail.ctypes.data + r * width * size,
                           width, accumulate, zero)
                r += rows
    if stop * width > n:
        start = (stop - 1) * width
        for i in range(m):
            for j in range(n - start):
                out[i, start + j] = tail[i, j]


@njit(nogil=True, cache=True)
def product(a, packed, out):
    """out = a @ b, b as :func:`pack` left it in ``packed``; a (M, K) and out (M, N) with unit
    column strides (the caller checks shapes, dtypes and layouts)."""
    tail = np.empty((a.shape[0], packed.shape[2]), a.dtype)
    _panels(a, packed, out, 0, packed.shape[0], tail)


@njit(nogil=True, parallel=True, cache=True)
def product_parallel(a, packed, out, threads):
    """:func:`product` with the panels split in ``threads`` contiguous runs over the pool (the
    same bits: each column is computed the same way on any thread)."""
    count = packed.shape[0]
    parts = min(threads, count)
    for part in prange(parts):
        tail = np.empty((a.shape[0], packed.shape[2]), a.dtype)
        _panels(a, packed, out, part * count // parts, (part + 1) * count // parts, tail)


@njit(nogil=True, cache=True)
def _pack_panels(b, packed, first, stop):
    """packed[p, q, j] = b[q, p W + j] for panels first..stop-1, 0 past b's last column."""
    k, n = b.shape
    width = PANEL_BYTES // b.itemsize  # a constant to the compiler: whole-line copies
    size = b.itemsize
    for p in range(first, stop):
        start = p * width
        if start + width > n:  # the last, partial panel
            for q in range(k):
                for j in range(width):
                    packed[p, q, j] = b[q, start + j] if start + j < n else 0
        elif b.strides[1] == size:  # rows contiguous: a line from each row
            for q in range(k):
                for j in range(width):
                    packed[p, q, j] = b[q, start + j]
        elif b.strides[0] == size:  # columns contiguous (a transposed view): 8 x W tiles
            q0 = 0
            while q0 + 8 <= k:
                for q in range(q0, q0 + 8):
                    for j in range(width):
                        packed[p, q, j] = b[q, start + j]
                q0 += 8
            for q in range(q0, k):
                for j in range(width):
                    packed[p, q, j] = b[q, start + j]
        else:
            for q in range(k):
                for j in range(width):
                    packed[p, q, j] = b[q, start + j]


@njit(nogil=True, cache=True)
def pack(b, packed):
    """packed[p, q, j] = b[q, p W + j], 0 past b's last column: packed (ceil(N / W), K, W)
    from b (K, N) in any layout (a transposed view ``Wh.T`` is read from Wh's rows)."""
    _pack_panels(b, packed, 0, packed.shape[0])


@njit(nogil=True, parallel=True, cache=True)
def pack_parallel(b, packed, threads):
    """:func:`pack` with the panels split in ``threads`` contiguous runs over the pool."""
    count = packed.shape[0]
    parts = min(threads, count)
    for part in prange(parts):
        _pack_panels(b, packed, part * count // parts, (part + 1) * count // parts)
