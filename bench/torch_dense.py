#!/usr/bin/python3
"""torch_dense.py - PyTorch's side of the dense-training benchmark.

The same work per step as build/bench/bench_dense measures for BP: an MLP
784-1024-1024-10 (nn.Linear with bias, ReLU), softmax cross-entropy, a
backward pass and one torch.optim.SGD step with momentum 0.9, on a batch of
128 random float32 examples on the CPU.  The same timing method too: warm
up, then time each step for about --seconds and report the median step.
Measured twice, with libgomp's default OpenMP wait policy and with
OMP_WAIT_POLICY=PASSIVE (see main()); prints human-readable lines, a
`RESULT torch_dense_<policy> ...` line for each and `RESULT torch_dense
samples_per_s=... step_ms=...` for the faster, which bench/run.sh compares.

Threads: torch.set_num_threads(T) sets the intra-op pool; Debian's torch
calls OpenBLAS through libblas.so.3 and never sets OpenBLAS's own thread
count, so OPENBLAS_NUM_THREADS is set to T here before torch (and with it
OpenBLAS) is loaded.  Run with /usr/bin/python3 (Debian's python3-torch).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

N_IN, HIDDEN, N_OUT, BATCH = 784, 1024, 10, 128
POOL = 8  # distinct batches cycled through, as bench_dense does


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_t = int(os.environ.get("EG_BENCH_THREADS", "2"))
    p.add_argument("--threads", type=int, default=default_t)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--policy", choices=("both", "default", "passive"),
                   default="both",
                   help="OpenMP wait policy: libgomp's default (spin, then"
                   " sleep), PASSIVE, or both in turn (the faster counts)")
    return p.parse_args()


def both(args):
    """Runs this script once per wait policy (OpenMP reads the policy when
    it starts, so each needs its own process) and reports the faster as
    torch_dense: the fair comparison is with torch at its best here."""
    best = None
    for policy in ("default", "passive"):
        r = subprocess.run([sys.executable, os.path.abspath(__file__),
                            "--policy", policy, "--threads", str(args.threads),
                            "--seconds", str(args.seconds)],
                           stdout=subprocess.PIPE, text=True, check=False)
        sys.stdout.write(r.stdout)
        sys.stdout.flush()
        if r.returncode != 0:
            return r.returncode
        for line in r.stdout.splitlines():
            if line.startswith("RESULT torch_dense_"):
                kv = dict(f.split("=", 1) for f in line.split()[2:])
                if best is None or float(kv["step_ms"]) < float(best[1]["step_ms"]):
                    best = (policy, kv)
    if best is None:
        print("torch_dense: no result", file=sys.stderr)
        return 1
    kv = best[1]
    print(f"torch best: wait policy {best[0]}, {float(kv['samples_per_s']):.1f}"
          " samples/s")
    print(f"RESULT torch_dense samples_per_s={kv['samples_per_s']} "
          f"step_ms={kv['step_ms']} min_step_ms={kv['min_step_ms']} "
          f"policy={best[0]} threads={args.threads}")
    return 0


def main():
    args = parse()
    if args.policy == "both":
        return both(args)
    t = args.threads
    # Must happen before `import torch` loads OpenBLAS: it reads the
    # variable once, when the library initializes.
    os.environ["OPENBLAS_NUM_THREADS"] = str(t)
    os.environ["OMP_NUM_THREADS"] = str(t)
    # torch's OpenMP workers spin for a while after each parallel region by
    # default and so take the cores from OpenBLAS's own threads, which then
    # wait at their barriers: on 2 cores that can cost torch a large
    # factor, which PASSIVE avoids.  Both are measured (see both()).
    if args.policy == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    try:
        import torch
        from torch import nn
    except ImportError as e:
        print(f"torch_dense: no torch here ({e}); run with /usr/bin/python3"
              " and install python3-torch", file=sys.stderr)
        return 1
    torch.set_num_threads(t)
    torch.manual_seed(0)

    model = nn.Sequential(nn.Linear(N_IN, HIDDEN), nn.ReLU(),
                          nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                          nn.Linear(HIDDEN, N_OUT))
    lossf = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = torch.randn(POOL, BATCH, N_IN, dtype=torch.float32)
    ys = torch.randint(0, N_OUT, (POOL, BATCH), dtype=torch.int64)

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xs[i % POOL]), ys[i % POOL])
        loss.backward()
        opt.step()
        return loss

    # Warm-up: allocator caches, OpenBLAS buffers, momentum buffers.
    t0 = time.perf_counter()
    i = 0
    while i < 10 or time.perf_counter() - t0 < 0.3:
        step(i)
        i += 1

    # Each step timed on its own; the median counts (as in bench_dense:
    # on a shared machine the mean measures the neighbours too).
    times = []
    start = t0 = time.perf_counter()
    while t0 - start < args.seconds:
        loss = step(i)
        i += 1
        t1 = time.perf_counter()
        times.append(t1 - t0)
        t0 = t1
    if not torch.isfinite(loss):
        print("torch_dense: loss is not finite", file=sys.stderr)
        return 1
    total_steps = len(times)
    median_ms = 1e3 * statistics.median(times)
    min_ms = 1e3 * min(times)
    mean_sps = BATCH * total_steps / (t0 - start)
    sps = BATCH / (median_ms / 1e3)

    print(f"torch {torch.__version__}, {t} threads, wait policy {args.policy}, "
          f"MLP {N_IN}-{HIDDEN}-{HIDDEN}-{N_OUT}, batch {BATCH}, SGD momentum 0.9")
    print(f"torch BP step  {median_ms:8.3f} ms  {sps:10.1f} samples/s"
          f"  (min {min_ms:.3f} ms; mean {mean_sps:.1f} samples/s over"
          f" {total_steps} steps)")
    print(f"RESULT torch_dense_{args.policy} samples_per_s={sps:.1f} step_ms={median_ms:.4f} "
          f"min_step_ms={min_ms:.4f} mean_samples_per_s={mean_sps:.1f} "
          f"threads={t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
