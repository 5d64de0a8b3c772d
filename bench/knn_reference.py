"""Reference benchmark for exact k-nearest-neighbour search by pixel L2 (the bar for `eidetic bench knn`).

Queries are the first ``--num-queries`` images of split ``--queries`` and references the first
``--num-references`` images of split ``--references`` of an Eidetic HDF5 image file
(``/<split>/images``, uint8 [N, C, H, W]). Images become float32 x / 255, flattened in stored
(C, H, W) order to D values. Backends:

* ``faiss``: ``IndexFlatL2(D)``, ``add(references)``, ``search(queries, k)``.
* ``torch``: queries in blocks of ``--block`` rows; ``d2 = ||q||^2 + ||r||^2 - 2 q r^T``
  (``torch.addmm`` into a reused [block, N] buffer), then ``torch.topk(k, largest=False)``.

Both work in float32, so near-ties may come out in a different order than an exact search and
distances of (near-)duplicates carry cancellation error (|d2| error ~ 1e-7 * (||q||^2 + ||r||^2)).

Timing: wall clock (``time.perf_counter``) of ``search`` only, after the thread count is set
(``OMP/MKL/OPENBLAS_NUM_THREADS`` before import, ``faiss.omp_set_num_threads``,
``torch.set_num_threads``). Building the index (faiss ``add`` / torch reference norms) is timed
separately as ``build_seconds``. With ``--repeat R`` the search runs R times and the fastest
counts. Loading and uint8 -> float32 conversion are not timed.

stdout: one JSON line per backend, e.g.
``{"backend": "faiss", "queries": M, "references": N, "k": k, "threads": t, "seconds": s,
"gflops": 2*M*N*D/s/1e9, "build_seconds": b, "repeat": R, "version": "1.15.1"}``.
``--out FILE`` writes ``<backend>/indices`` int64 [M, k] and ``<backend>/distances`` float32
[M, k] = sqrt(max(d2, 0) / D) (RMS pixel difference on [0, 1]), nearest first.

``--self-test`` checks every importable backend against an exact float64 numpy brute force on
small random uint8 data and exits 1 on a mismatch.

Usage::

    bench/.venv/bin/python bench/knn_reference.py --data datasets/cifar10.h5 --queries test \\
        --references train --num-queries 10000 --num-references 50000 --k 50 --threads 2 \\
        --backend both --out /tmp/ref_knn.h5
    bench/.venv/bin/python bench/knn_reference.py --self-test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="exact kNN reference benchmark (faiss / torch)")
    ap.add_argument("--data", default="datasets/cifar10.h5", help="HDF5 image file")
    ap.add_argument("--queries", default="test", help="split of the queries (default: test)")
    ap.add_argument("--references", default="train", help="split of the references (default: train)")
    ap.add_argument("--num-queries", type=int, default=None, help="first M query images (default: all)")
    ap.add_argument("--num-references", type=int, default=None, help="first N reference images (default: all)")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--backend", choices=["faiss", "torch", "both"], default="both")
    ap.add_argument("--block", type=int, default=1024, help="torch: queries per block (default: 1024)")
    ap.add_argument("--repeat", type=int, default=1, help="timed searches per backend; the fastest counts")
    ap.add_argument("--out", default=None, help="write indices / distances to this HDF5 file")
    ap.add_argument("--self-test", action="store_true", help="check backends against numpy on random data")
    return ap.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # thread pools read these at import time
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import numpy as np  # noqa: E402

try:
    import faiss  # noqa: E402
except ImportError:
    faiss = None
try:
    import torch  # noqa: E402
except ImportError:
    torch = None


def search_faiss(refs, queries, k, threads, repeat):
    """Returns (squared L2 float32 [M,k], indices int64 [M,k], build seconds, best search seconds)."""
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(refs.shape[1])
    index.add(refs)
    build = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        d2, idx = index.search(queries, k)
        best = min(best, time.perf_counter() - t0)
    return d2, idx.astype(np.int64), build, best


def search_torch(refs, queries, k, threads, repeat, block=1024):
    """Same contract as search_faiss; exact search in query blocks with bounded memory."""
    torch.set_num_threads(threads)
    with torch.no_grad():
        t0 = time.perf_counter()
        r = torch.from_numpy(refs)
        rn = (r * r).sum(1)                       # [N]
        build = time.perf_counter() - t0
        q_all = torch.from_numpy(queries)
        m, n = q_all.shape[0], r.shape[0]
        buf = torch.empty(min(block, m), n)       # reused [block, N] score buffer
        best = float("inf")
        for _ in range(repeat):
            d2 = torch.empty(m, k)
            idx = torch.empty(m, k, dtype=torch.int64)
            t0 = time.perf_counter()
            for s in range(0, m, block):
                q = q_all[s:s + block]
                b = q.shape[0]
                scores = torch.addmm(rn, q, r.T, alpha=-2.0, out=buf[:b])  # ||r||^2 - 2 q.r
                vals, ind = torch.topk(scores, k, dim=1, largest=False, sorted=True)
                d2[s:s + b] = vals + (q * q).sum(1, keepdim=True)
                idx[s:s + b] = ind
            best = min(best, time.perf_counter() - t0)
    return d2.numpy(), idx.numpy(), build, best


def available(name):
    return (faiss if name == "faiss" else torch) is not None


def run_backend(name, refs, queries, args):
    if name == "faiss":
        return search_faiss(refs, queries, args.k, args.threads, args.repeat)
    return search_torch(refs, queries, args.k, args.threads, args.repeat, args.block)


def normalized(d2, dim):
    return np.sqrt(np.maximum(d2, 0) / dim).astype(np.float32)


def load(path, split, count):
    import h5py
    with h5py.File(path, "r") as f:
        ds = f[split]["images"]
        if count is not None and count > ds.shape[0]:
            sys.exit(f"error: {split} has {ds.shape[0]} images, asked for {count}")
        x = ds[: ds.shape[0] if count is None else count]
    return x.reshape(x.shape[0], -1)


def to_float(x_u8):
    return np.ascontiguousarray(x_u8.astype(np.float32) / np.float32(255))


def self_test(args) -> int:
    rng = np.random.default_rng(0)
    n, m, dim, k = 500, 60, 48, 10
    refs_u8 = rng.integers(0, 256, size=(n, dim), dtype=np.uint8)
    qs_u8 = rng.integers(0, 256, size=(m, dim), dtype=np.uint8)
    # Exact squared distances in pixel units (integer-valued float64: every sum is exact).
    r, q = refs_u8.astype(np.float64), qs_u8.astype(np.float64)
    exact = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2 * q @ r.T
    order = np.argsort(exact, axis=1, kind="stable")[:, :k]          # ties: smaller index first
    want_dist = np.sqrt(np.take_along_axis(exact, order, 1) / dim) / 255
    ok = True
    for name in ("faiss", "torch"):
        if args.backend not in (name, "both"):
            continue
        if not available(name):
            print(f"self-test {name}: not importable, skipped", file=sys.stderr)
            continue
        sub = argparse.Namespace(**{**vars(args), "k": k, "repeat": 1, "block": 16})
        d2, idx, _, _ = run_backend(name, to_float(refs_u8), to_float(qs_u8), sub)
        got = normalized(d2, dim).astype(np.float64)
        valid = (idx >= 0).all() and (idx < n).all() and all(len(set(row)) == k for row in idx)
        true_of_got = np.sqrt(np.take_along_axis(exact, np.clip(idx, 0, n - 1), 1) / dim) / 255
        dist_err = np.abs(got - want_dist).max()
        rank_err = np.abs(true_of_got - want_dist).max()   # 0 unless a non-tie was swapped in
        swapped = int((idx != order).sum())
        passed = bool(valid) and dist_err <= 1e-5 and rank_err <= 1e-5
        print(f"self-test {name}: {'ok' if passed else 'FAIL'} (max |dist err| {dist_err:.2e}, "
              f"max |true dist - wanted| {rank_err:.2e}, {swapped} index differences (allowed at ties), "
              f"valid indices {bool(valid)})", file=sys.stderr)
        ok &= passed
    return 0 if ok else 1


def main(args) -> int:
    if args.self_test:
        return self_test(args)
    names = ["faiss", "torch"] if args.backend == "both" else [args.backend]
    for name in names:
        if not available(name):
            if args.backend != "both":
                sys.exit(f"error: backend {name} is not importable")
            print(f"{name}: not importable, skipped", file=sys.stderr)
    names = [nm for nm in names if available(nm)]
    if not names:
        sys.exit("error: neither faiss nor torch is importable")
    refs = to_float(load(args.data, args.references, args.num_references))
    queries = to_float(load(args.data, args.queries, args.num_queries))
    (m, dim), n = queries.shape, refs.shape[0]
    if not 1 <= args.k <= n:
        sys.exit(f"error: k must be in 1...{n}")
    results = {}
    for name in names:
        d2, idx, build, secs = run_backend(name, refs, queries, args)
        results[name] = (idx, normalized(d2, dim))
        version = (faiss if name == "faiss" else torch).__version__
        print(json.dumps({"backend": name, "queries": m, "references": n, "k": args.k,
                          "threads": args.threads, "seconds": secs,
                          "gflops": 2.0 * m * n * dim / secs / 1e9, "build_seconds": build,
                          "repeat": args.repeat, "version": version}), flush=True)
    if args.out:
        import h5py
        with h5py.File(args.out, "w") as f:
            for name, (idx, dist) in results.items():
                f.create_dataset(f"{name}/indices", data=idx.astype(np.int64))
                f.create_dataset(f"{name}/distances", data=dist.astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
