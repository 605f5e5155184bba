"""The GPU run, prepared: one command for a machine with an NVIDIA GPU, under 10 minutes.

    python scripts/gpu_check.py                     # on the GPU machine (installs cupy-cuda12x)
    python scripts/gpu_check.py --dry-run           # every step on the device double, no GPU

Steps, each timed, every figure into one report (``--out``, Markdown, and the same as JSON):

1. the machine: ``nvidia-smi``, the CuPy version (``pip install cupy-cuda12x`` if missing);
2. the device tests: ``tests/test_gpu_double.py`` on real CuPy (``BPTT_TEST_DEVICE=gpu``):
   every cell against NumPy, the gradient checks in float64 on the device, training, resume,
   checkpoints, seq2seq, generation, explain, the data-parallel reduction;
3. ``bptt bench --device gpu``, and PyTorch on CUDA with the same model where torch sees one;
4. the minGRU/minLSTM parallel scan against the loop at T = 256 .. 4096: largest difference
   and time of each;
5. the ``awd`` preset on the built-in corpus for ``--minutes`` minutes.

``--dry-run`` runs the same steps on the device double (:mod:`bptt.device_double`) at small
sizes, in about a minute: what CI runs, so the script itself is known to work the day a GPU is
lent. The thread guard of ``bptt train`` applies: one BLAS thread unless the environment says.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the busy-machine guard, before NumPy loads


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> dict:
    """A command's exit status, time and output tail."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})
        rc, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = 124, f"timed out after {timeout:.0f} s\n{e.stdout or ''}"
    return {"command": " ".join(cmd), "rc": rc, "seconds": round(time.perf_counter() - t0, 1),
            "tail": out[-3000:] if isinstance(out, str) else str(out)[-3000:]}


def machine(dry: bool) -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform()}
    if dry:
        info["device"] = "the device double (no GPU)"
        return info
    if shutil.which("nvidia-smi"):
        info["nvidia-smi"] = run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                  "--format=csv,noheader"])["tail"].strip()
    if importlib.util.find_spec("cupy") is None:
        info["install"] = run([sys.executable, "-m", "pip", "install", "-q", "cupy-cuda12x"],
                              timeout=300)
    try:
        import cupy
        info["cupy"] = cupy.__version__
        info["cuda_devices"] = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - the report says what went wrong
        info["cupy_error"] = f"{type(e).__name__}: {e}"
    return info


def device_tests(device: str) -> dict:
    r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu_double",
             "tests/test_gpu_double.py"], env={"BPTT_TEST_DEVICE": device}, timeout=400)
    r["summary"] = r["tail"].strip().splitlines()[-1] if r["tail"].strip() else ""
    return r


def bench(device: str, dry: bool) -> dict:
    steps = ["--steps", "3", "--repeats", "1", "--models", "rnnlm"] if dry else ["--repeats", "3"]
    out = ROOT / ".gpu_check_bench.json"
    r = run([sys.executable, "-m", "bptt", "bench", "--device", device, "--json", str(out),
             *steps], timeout=300)
    if out.exists():
        r["figures"] = json.loads(out.read_text(encoding="utf-8"))
        out.unlink()
    r["torch"] = torch_cuda(dry)
    return r


def torch_cuda(dry: bool) -> dict:
    """PyTorch's tokens/s for the rnnlm recipe on CUDA, where torch sees a GPU."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    if dry or not torch.cuda.is_available():
        return {"skipped": "no CUDA device for torch" + (" (dry run)" if dry else "")}
    dev = torch.device("cuda")
    V, D, H, N, T, steps = 10000, 100, 100, 20, 35, 60
    emb, rnn, lin = (torch.nn.Embedding(V, D).to(dev), torch.nn.LSTM(D, H, batch_first=True)
                     .to(dev), torch.nn.Linear(H, V).to(dev))
    params = [*emb.parameters(), *rnn.parameters(), *lin.parameters()]
    opt = torch.optim.SGD(params, lr=20.0)
    xs = torch.randint(0, V, (N, T), device=dev)
    ts = torch.randint(0, V, (N, T), device=dev)
    for k in range(steps + 5):
        if k == 5:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        h, _ = rnn(emb(xs))
        loss = torch.nn.functional.cross_entropy(lin(h).reshape(-1, V), ts.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()
    torch.cuda.synchronize()
    return {"rnnlm_tokens_per_s": round(steps * N * T / (time.perf_counter() - t0))}


def scan_vs_loop(device: str, dry: bool) -> list[dict]:
    import numpy as np

    from bptt import backend
    from bptt.nn.cells.mingru import TimeMinGRU
    from bptt.nn.cells.minlstm import TimeMinLSTM

    xp = backend.set_device(device)
    rows = []
    lengths = (16, 64) if dry else (256, 1024, 4096)
    for cls in (TimeMinGRU, TimeMinLSTM):
        for T in lengths:
            g = np.random.default_rng(T)
            G, D, H, N = cls.step.rule.gates, 32, 64, 8
            Wx = xp.asarray(g.standard_normal((D, G * H)) * 0.3)
            b = xp.asarray(g.standard_normal(G * H) * 0.1)
            xs = xp.asarray(g.standard_normal((N, T, D)))
            out, secs = {}, {}
            for mode in ("loop", "scan"):
                layer = cls(Wx, b, mode=mode)
                t0 = time.perf_counter()
                hs = layer.forward(xs)
                dxs = layer.backward(hs * 1.0)
                float(dxs.sum())  # waits for the device
                secs[mode] = time.perf_counter() - t0
                out[mode] = (backend.to_numpy(hs), backend.to_numpy(dxs))
            diff = max(float(np.abs(a - b).max()) for a, b in zip(out["loop"], out["scan"],
                                                                  strict=True))
            rows.append({"cell": cls.__name__, "T": T, "max_abs_diff": diff,
                         "loop_s": round(secs["loop"], 4), "scan_s": round(secs["scan"], 4)})
    backend.set_device("cpu")
    return rows


def awd(device: str, minutes: float, dry: bool, scratch: Path) -> dict:
    size = (["--layers", "2", "--embed", "16", "--hidden", "32", "--last-hidden", "16",
             "--batch", "8", "--bptt", "10", "--max-steps", "3"] if dry
            else ["--max-minutes", str(minutes)])
    r = run([sys.executable, "-m", "bptt", "--device", device, "train", "--preset", "awd",
             *size, "--quiet", "--overwrite", "--out", str(scratch / "awd")],
            timeout=60 * minutes + 120)
    metrics = scratch / "awd" / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text(encoding="utf-8"))
        r["figures"] = {k: m.get(k) for k in ("steps", "valid_ppl", "test_ppl", "stopped")}
    return r


def report_markdown(rep: dict) -> str:
    lines = [f"# GPU check ({'dry run on the device double' if rep['dry_run'] else 'GPU'})",
             "", f"- machine: `{json.dumps(rep['machine'])}`",
             f"- device tests: {rep['tests']['summary']} ({rep['tests']['seconds']} s)",
             f"- bench: rc {rep['bench']['rc']}; torch: {json.dumps(rep['bench']['torch'])}",
             f"- awd: {json.dumps(rep['awd'].get('figures'))} ({rep['awd']['seconds']} s)",
             "", "| cell | T | max abs diff | loop s | scan s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['cell']} | {r['T']} | {r['max_abs_diff']:.2e} | {r['loop_s']} | "
              f"{r['scan_s']} |" for r in rep["scan_vs_loop"]]
    figures = rep["bench"].get("figures")
    if figures:
        lines += ["", "bench figures:", "", "```json", json.dumps(figures, indent=1), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="run on the device double, small")
    ap.add_argument("--out", default="gpu_check.md", help="the report (and .json beside it)")
    ap.add_argument("--minutes", type=float, default=3.0, help="minutes of the awd preset")
    args = ap.parse_args()
    dry = args.dry_run
    device = "double" if dry else "gpu"
    scratch = Path(args.out).resolve().parent / ".gpu_check_runs"
    scratch.mkdir(parents=True, exist_ok=True)
    rep = {"dry_run": dry, "machine": machine(dry)}
    rep["tests"] = device_tests(device)
    rep["bench"] = bench(device, dry)
    rep["scan_vs_loop"] = scan_vs_loop(device, dry)
    rep["awd"] = awd(device, args.minutes, dry, scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    out = Path(args.out)
    out.write_text(report_markdown(rep), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(rep, indent=1), encoding="utf-8")
    ok = rep["tests"]["rc"] == 0 and rep["bench"]["rc"] == 0 and rep["awd"]["rc"] == 0
    print(f"{'all steps passed' if ok else 'a step FAILED'}: report {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
