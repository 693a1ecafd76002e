"""The reinforcement pass at scale: its own cost per view, overlap with the teachers, worker scaling, memory, GPU.

    python scripts/bench_reinforce.py                 # CPU: every figure below, side by side, in one run
    python scripts/bench_reinforce.py --only cpu      # one section: render, cpu, overlap, scaling or rss
    python scripts/bench_reinforce.py --baseline ../main --only cpu   # and the code in ../main, interleaved
    python scripts/bench_reinforce.py --rounds 3 --only cpu scaling  # repeated: least CPU, median scaling
    python scripts/bench_reinforce.py --device cuda   # one GPU: resnet50 bf16, bare vs pass with 4/8/16 workers

Every measurement runs the real folder pass (``hfr.reinforce(ds, config, output_dir)``: decoding, sampling,
rendering in worker processes, teachers, top-k, Arrow and parquet writing) in a fresh subprocess, on real images
stored like a real dataset: MNIST digits (28×28 PNG, rendered at 32 px) and the two scikit-learn photos (427×640
JPEG, each row rolled by its index so every row's bytes differ, rendered at 224 px), policy ``rrc+ra+re``, N=16, K=10.

0. **Render-worker CPU-ms per view** (``--only render``): what one render worker does for every task (decode,
   sampling, rendering, the report's un-augmented views), in-process on one thread, minimum of 3 per block — the
   figure that swings least on a shared machine (the pass's totals below swing by ±30 % between runs).
1. **Free-teacher CPU-ms per view** (DESIGN goal ≤ 0.2 at 32 px, ≤ 2.0 at 224 px): a teacher that returns zeros,
   so all CPU time is the pass's own; counted over the main process and its render workers (``getrusage`` of the
   process and of its reaped children), divided by the stored views.
2. **Pass / bare teacher forward** with ``num_workers=1`` (goal ≥ 0.95 for resnet18 at 224 px, ≥ 0.85 for the tiny
   ``test_resnet``): the bare forward is ``Ensemble.probs`` over the very batches the pass renders (pre-rendered,
   same shapes), timed before and after the pass; pass/bare = bare seconds / pass seconds. Beside it, what one
   render worker costs that teacher on this machine, measured directly: the teacher's speed alone and beside a
   process that renders the same views without pause, in alternating timings; with the rate that process
   renders, this gives the ratio a pass can expect however well it overlaps.
3. **Worker scaling**: free-teacher views/s at 224 px with 2 workers vs 1 (goal ≥ 1.7× on 2 cores), beside what
   the machine gives the render work itself: one process rendering the same views alone, then two at once.
4. **Peak RSS** of the folder pass over 1× and 4× rows (main process, and the largest worker).
5. ``--device cuda``: bare bf16 forward vs the full pass (marginal rate between 256 and 1,024 photo rows) for
   resnet50 at 224 px with 4, 8 and 16 workers (views/s and pass/bare); about 5 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

N, K, BLOCK = 16, 10, 16
SHARD_ROWS = 2048
"""``ReinforceConfig.rows_per_shard``'s default: what a user's pass writes. A shard's own costs (``datasets.map``
set-up, hashing, casting back, ≈ 70 ms) are then fixed costs that the marginal figures cancel; in 64-row shards
they added ≈ 0.1 CPU-ms per 32-px view."""


# -- data --------------------------------------------------------------------------------------------------------


def build_dataset(kind: str, rows: int, path: Path) -> None:
    """``rows`` real images as encoded bytes in an ``Image`` column: ``digits`` (MNIST PNG) or ``photos`` (JPEG)."""
    import datasets
    import numpy as np
    import PIL.Image

    from hf_reinforce import testing

    datasets.disable_progress_bars()
    if kind == "photos":  # distinct bytes per row (each photo rolled by i pixels), as a real dataset stores them
        photos = testing.photo_arrays()
        images = [
            testing.encode_image(PIL.Image.fromarray(np.roll(photos[i % 2], i, axis=1)), "JPEG", quality=90)
            for i in range(rows)
        ]
        labels = [i % 2 for i in range(rows)]
        dataset = datasets.Dataset.from_dict({"image": images, "label": labels}, features=testing.DIGIT_FEATURES)
    else:
        dataset = testing.mnist_dataset(rows)  # shuffled real digits, PNG bytes
    dataset.save_to_disk(str(path))


# -- one measurement (runs in a subprocess) ----------------------------------------------------------------------


class FreeModule(torch.nn.Module):
    """A teacher that costs nothing: zero logits for 10 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 10)


def _teachers(job: dict[str, Any]) -> list[Any]:
    import hf_reinforce as hfr

    if job["teacher"] == "free":
        return [hfr.Teacher(FreeModule(), resolution=job["resolution"], name="free", num_outputs=10)]
    preprocessing = hfr.Preprocessing(resolution=job["resolution"])  # timm:<arch> teachers see the given resolution
    return [hfr.load_teacher(job["teacher"], num_classes=10, device=job["device"], preprocessing=preprocessing)]


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (the render workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cpu_main() -> float:
    """CPU seconds of this process alone (the main process of the pass)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bare_seconds(ensemble: Any, batches: list[dict[Any, torch.Tensor]]) -> float:
    _sync(ensemble.device)
    start = time.perf_counter()
    for views in batches:
        ensemble.probs(views)
    _sync(ensemble.device)
    return time.perf_counter() - start


def _tasks(run: Any) -> list[tuple[int, int]]:
    """Every render task of ``run`` in the order one process renders them."""
    from hf_reinforce.engine.render_workers import task_order

    return task_order(list(run.geometry.blocks(range(len(run.dataset)))), run.geometry.chunks, 1)


def _rendered_batches(run: Any) -> list[dict[Any, torch.Tensor]]:
    """The uint8 view batches the pass sends to the teachers, rendered once here (same shapes and order)."""
    renderer = run.renderer()
    return [renderer[task].views for task in _tasks(run)]


def _render_seconds(run: Any, repeats: int = 3) -> float:
    """One thread's CPU seconds to render every task of ``run`` (what its render workers do: decode, sample,
    render, the report's originals), the minimum over ``repeats`` per block: the steadiest figure on a shared box."""
    renderer = run.renderer()
    chunks = list(run.geometry.chunks)
    best: dict[int, float] = {}
    torch.set_num_threads(1)
    for _ in range(repeats):
        for block in run.geometry.blocks(range(len(run.dataset))):
            renderer._cached = None  # decode again, as a worker does for each new block
            start = time.process_time()
            for chunk in chunks:
                renderer[(block, chunk)]
            best[block] = min(best.get(block, float("inf")), time.process_time() - start)
    return sum(best.values())


def _render_wall(run: Any, start_at: float) -> float:
    """Wall seconds to render every task of ``run`` once on one thread, starting at ``time.time() == start_at``
    (so that processes started together render at the same time): the render workers' work without the pass."""
    renderer, tasks = run.renderer(), _tasks(run)
    torch.set_num_threads(1)
    renderer[tasks[0]]  # warm-up
    renderer._cached = None
    time.sleep(max(0.0, start_at - time.time()))
    start = time.perf_counter()
    for task in tasks:
        renderer[task]
    return time.perf_counter() - start


def _config(job: dict[str, Any]) -> Any:
    import hf_reinforce as hfr

    return hfr.ReinforceConfig(
        teachers=_teachers(job),
        policy="rrc+ra+re",
        num_augmentations=N,
        top_k=K,
        rows_per_block=BLOCK,
        augmentations_per_step=N,
        rows_per_shard=job["rows_per_shard"],
        num_workers=job["workers"],
        device=job["device"],
    )


CONTEND_SECONDS, CONTEND_VIEWS = 5.0, 64
"""Each timing of the contention check: at least this long, in teacher batches of this many views."""


def _render_forever(job: dict[str, Any], go: Any, resting: Any, stop: Any, views: Any) -> None:
    """Render ``job``'s tasks over and over on one thread (a render worker's work, no pass around it) while ``go``
    is set, until ``stop`` is; ``resting`` is set while it waits; ``views`` counts the views rendered."""
    import datasets

    from hf_reinforce.engine.reinforce_pass import ReinforcePass

    datasets.disable_progress_bars()
    torch.set_num_threads(1)
    run = ReinforcePass(datasets.load_from_disk(job["data"]), _config({**job, "teacher": "free"}))
    renderer = run.renderer()
    for task in itertools.cycle(_tasks(run)):
        if not go.is_set():
            resting.set()
            go.wait()
            if stop.is_set():
                return
            resting.clear()
        rendered = renderer[task]
        with views.get_lock():
            views.value += len(next(iter(rendered.views.values())))


def _contention(ensemble: Any, batches: list[dict[Any, torch.Tensor]], job: dict[str, Any], rounds: int = 3) -> dict:
    """What one render worker costs a CPU teacher on this machine: the teacher's views/s alone and beside a process
    that renders without pause (alternating, ``rounds`` each), and the views/s that process renders meanwhile.

    Beside a renderer running ``r`` views/s the teacher keeps a share ``s`` of its speed, so each view rendered
    costs it ``(1 - s) / r`` seconds, and a pass with one worker can expect pass / bare ≈ 1 / (1 + bare · (1 - s) / r)
    however well it overlaps (section 2 prints this beside the measured ratio)."""
    small = [{spec: view[:CONTEND_VIEWS] for spec, view in views.items()} for views in batches]
    context = multiprocessing.get_context("spawn")
    go, resting, stop, count = context.Event(), context.Event(), context.Event(), context.Value("q", 0)
    process = context.Process(target=_render_forever, args=(job, go, resting, stop, count), daemon=True)
    process.start()
    out: dict[str, list[float]] = {"alone": [], "beside": [], "render": []}
    try:
        if not resting.wait(timeout=600):
            raise RuntimeError("the contention check's render process did not start")
        for _ in range(rounds):
            out["alone"].append(_teacher_rate(ensemble, small, lambda spent: spent >= CONTEND_SECONDS))
            before, start = count.value, time.perf_counter()
            go.set()

            def done(spent: float) -> bool:  # the renderer stops after the timing and is waited for with the teacher
                if spent >= CONTEND_SECONDS:
                    go.clear()
                return not go.is_set() and resting.is_set()

            out["beside"].append(_teacher_rate(ensemble, small, done))
            out["render"].append((count.value - before) / (time.perf_counter() - start))
    finally:
        stop.set()
        go.set()
        process.join(timeout=60)
        if process.is_alive():
            process.terminate()
            process.join()
    return out


def _teacher_rate(ensemble: Any, batches: list[dict[Any, torch.Tensor]], done: Any) -> float:
    """The teacher's views/s over ``batches`` (cycled) until ``done(seconds so far)``."""
    views, spent = 0, 0.0
    for batch in itertools.cycle(batches):
        spent += _bare_seconds(ensemble, [batch])
        views += len(next(iter(batch.values())))
        if done(spent):
            return views / spent


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh process; returns JSON-able results."""
    import datasets

    import hf_reinforce as hfr
    from hf_reinforce.engine.reinforce_pass import ReinforcePass

    datasets.disable_progress_bars()
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    ds = datasets.load_from_disk(job["data"])
    config = _config(job)
    out: dict[str, Any] = {"views": len(ds) * N}
    if job.get("render"):
        out["render"] = _render_seconds(ReinforcePass(ds, config))
        return out
    if job.get("render_at"):
        out["wall"] = _render_wall(ReinforcePass(ds, config), job["render_at"])
        return out
    batches, run = None, None
    if job.get("bare"):
        run = ReinforcePass(ds, config)
        batches = _rendered_batches(run)
        _bare_seconds(run.ensemble, batches[:1])  # warm-up
        out["bare"] = [_bare_seconds(run.ensemble, batches)]
    with tempfile.TemporaryDirectory(dir=job["scratch"]) as folder:
        cpu, main, wall = _cpu(), _cpu_main(), time.perf_counter()
        hfr.reinforce(ds, config, output_dir=folder, progress=False)
        out["wall"], out["cpu"], out["cpu_main"] = time.perf_counter() - wall, _cpu() - cpu, _cpu_main() - main
    if run is not None and batches is not None:
        out["bare"].append(_bare_seconds(run.ensemble, batches))
        if job.get("contention"):
            out["contention"] = _contention(run.ensemble, batches, job)
    out["rss_main"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_worker"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return out


def _contention_figures(contention: dict[str, list[float]]) -> tuple[float, float]:
    """The teacher's median share of its speed beside a renderer, and the renderer's median views/s."""
    shares = [beside / alone for alone, beside in zip(contention["alone"], contention["beside"])]
    return statistics.median(shares), statistics.median(contention["render"])


def run_job(job: dict[str, Any], code: str | None = None) -> dict[str, Any]:
    """``measure(job)`` in a fresh subprocess; with ``code``, that source tree comes first on ``PYTHONPATH``."""
    return run_jobs([job], code)[0]


def run_jobs(jobs: list[dict[str, Any]], code: str | None = None) -> list[dict[str, Any]]:
    """``measure(job)`` for every job, each in its own subprocess, all started at once (see :func:`run_job`)."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(code).resolve()), env.get("PYTHONPATH", "")])
    results = [tempfile.NamedTemporaryFile("r", suffix=".json", dir=job["scratch"]) for job in jobs]
    try:
        cmds = [[sys.executable, __file__, "--job", json.dumps(j), "--result", r.name] for j, r in zip(jobs, results)]
        processes = [subprocess.Popen(cmd, env=env) for cmd in cmds]
        codes = [process.wait() for process in processes]
        for cmd, returncode in zip(cmds, codes):
            if returncode:
                raise subprocess.CalledProcessError(returncode, cmd)
        return [json.load(open(result.name)) for result in results]
    finally:
        for result in results:
            result.close()


# -- report ------------------------------------------------------------------------------------------------------


def machine(device: str) -> str:
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if device.startswith("cuda"):
        text += f", {torch.cuda.get_device_name(torch.device(device))} (bf16, channels_last)"
    return text


SECTIONS = ("render", "cpu", "overlap", "scaling", "rss")


class Bench:
    """The CPU sections, sharing one scratch folder, its datasets (built on first use) and the code under test.

    With ``baseline`` (a source tree, e.g. a checkout of main), every measurement also runs with that tree first on
    ``PYTHONPATH``, interleaved with the current code's run, and both figures are printed side by side.
    """

    def __init__(self, scratch: str, rows: int, baseline: str | None, rounds: int = 1) -> None:
        self.scratch, self.rows, self.baseline, self.rounds = scratch, rows, baseline, rounds
        self.base = {"scratch": scratch, "device": "cpu", "rows_per_shard": SHARD_ROWS}
        self.load = [os.getloadavg()[0]]
        self._data: dict[str, Path] = {}

    def data(self, kind: str, rows: int) -> str:
        key = f"{kind}-{rows}"
        if key not in self._data:
            self._data[key] = Path(self.scratch, key)
            build_dataset(kind, rows, self._data[key])
        return str(self._data[key])

    def codes(self) -> list[str | None]:
        """The code trees to measure: the baseline's (if any), then this checkout's (``None``)."""
        return [self.baseline, None] if self.baseline else [None]

    def label(self, code: str | None) -> str:
        return "" if not self.baseline else ("baseline" if code else "this code")

    def marginal(self, job: dict[str, Any], small: str, large: str, code: str | None) -> tuple[dict, dict]:
        """One run over ``small`` rows and one over ``large`` rows (the ``bare`` forward timed in the small run)."""
        return run_job({**job, "data": small}, code), run_job({**job, "data": large, "bare": False}, code)

    def render(self) -> None:
        print("\n0. render-worker CPU-ms per view (decode, sample, render, originals; one thread, min of 3 per block,")
        print("   code trees alternating over 3 rounds, the best round shown; the worker's share of section 1)")
        print("| view | code | CPU-ms/view, best round | all rounds |")
        print("|---|---|---:|---|")
        for label, kind, res, n in (
            ("28→32 px digits", "digits", 32, 4 * self.rows),
            ("427×640 JPEG→224 px", "photos", 224, self.rows),
        ):
            job = {**self.base, "teacher": "free", "resolution": res, "workers": 0, "render": True}
            rounds: dict[str | None, list[float]] = {code: [] for code in self.codes()}
            for _ in range(3):
                for code in self.codes():
                    r = run_job({**job, "data": self.data(kind, n)}, code)
                    rounds[code].append(1e3 * r["render"] / r["views"])
            for code, values in rounds.items():
                shown = ", ".join(f"{v:.2f}" for v in values)
                print(f"| {label} | {self.label(code) or '—'} | {min(values):.2f} | {shown} |")
        self.load.append(os.getloadavg()[0])

    def cpu(self) -> None:
        rows = self.rows
        print("\n1. free-teacher CPU-ms per stored view, main process + render workers (DESIGN goal ≤ 0.2 at 32 px,")
        print("   ≤ 2.0 at 224 px); marginal = (run over 4× rows − run over 1× rows) / extra views: fixed costs")
        print("   (pass set-up, card, reload) cancel out; total = one run over 4× rows / its views;")
        print(
            f"   {self.rounds} round(s), code trees alternating within each; the round with the least marginal CPU shown"
        )
        print(
            "| view | workers | code | marginal CPU-ms/view | goal | main process share | total CPU-ms/view "
            "| marginal views/s | marginal, all rounds |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|---|")
        for label, kind, res, goal, n in (
            ("28→32 px digits", "digits", 32, 0.2, 4 * rows),
            ("427×640 JPEG→224 px", "photos", 224, 2.0, rows),
        ):
            for workers in (0, 1):
                job = {**self.base, "teacher": "free", "resolution": res, "workers": workers}
                rounds: dict[str | None, list[tuple[float, ...]]] = {code: [] for code in self.codes()}
                for _ in range(self.rounds):
                    for code in self.codes():
                        small, large = self.marginal(job, self.data(kind, n), self.data(kind, 4 * n), code)
                        views, cpu, main, wall = (large[k] - small[k] for k in ("views", "cpu", "cpu_main", "wall"))
                        total = 1e3 * large["cpu"] / large["views"]
                        rounds[code].append((1e3 * cpu / views, 1e3 * main / views, total, views / wall))
                for code, figures in rounds.items():
                    cpu, main, total, rate = min(figures)
                    shown = ", ".join(f"{f[0]:.2f}" for f in figures)
                    print(
                        f"| {label} | {workers} | {self.label(code) or '—'} | {cpu:.2f} | ≤ {goal} "
                        f"| {main:.2f} | {total:.2f} | {rate:,.0f} | {shown} |"
                    )
        self.load.append(os.getloadavg()[0])

    def overlap(self) -> None:
        rows = self.rows
        print("\n2. pass / bare teacher forward, num_workers=1 (goal ≥ 0.95 resnet18 at 224, ≥ 0.85 test_resnet)")
        print(
            "   bare: the teacher over the pass's own pre-rendered batches; pass: marginal rate between 1× and 4× rows"
        )
        print("   expected: 1 / (1 + bare · (1 - s) / r), the teacher keeping a share s of its speed beside a process")
        print("   rendering r views/s without pause (medians of 3 alternating timings): what one worker costs it here")
        print("| teacher | code | bare views/s | pass views/s | pass/bare | s | r views/s | expected | goal |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for spec, res, goal in (("timm:resnet18", 224, 0.95), ("timm:test_resnet", 160, 0.85)):
            job = {**self.base, "teacher": spec, "resolution": res, "workers": 1, "bare": True, "contention": True}
            for code in self.codes():
                small, large = self.marginal(job, self.data("photos", rows // 2), self.data("photos", 2 * rows), code)
                bare = small["views"] / (sum(small["bare"]) / len(small["bare"]))
                rate = (large["views"] - small["views"]) / (large["wall"] - small["wall"])
                share, render = _contention_figures(small["contention"])
                expected = 1 / (1 + bare * (1 - share) / render)
                print(
                    f"| {spec} | {self.label(code) or '—'} | {bare:,.1f} | {rate:,.1f} | {rate / bare:.2f} "
                    f"| {share:.2f} | {render:,.0f} | {expected:.2f} | ≥ {goal} |"
                )
        self.load.append(os.getloadavg()[0])

    def scaling(self) -> None:
        rows = self.rows
        print("\n3. worker scaling, free teacher at 224 px, marginal views/s, 1 and 2 workers measured side by side")
        print(
            f"   (goal ≥ 1.7× from 1 to 2 workers on 2 cores; this machine has {os.cpu_count()} cores); last row: the"
        )
        print("   render work alone (no pass, no main process) in 1 process, then 2 at once: what the machine allows;")
        print(f"   {self.rounds} round(s), the median ratio shown")
        print("| code | 1 worker views/s | 2 workers views/s | 2 / 1 (median) | goal | 2 / 1, all rounds |")
        print("|---|---:|---:|---:|---:|---|")
        rounds: dict[str | None, list[tuple[float, float, float]]] = {code: [] for code in [*self.codes(), "box"]}
        for _ in range(self.rounds):
            for code in self.codes():
                rates = []
                for workers in (1, 2):
                    job = {**self.base, "teacher": "free", "resolution": 224, "workers": workers}
                    small, large = self.marginal(job, self.data("photos", rows), self.data("photos", 4 * rows), code)
                    rates.append((large["views"] - small["views"]) / (large["wall"] - small["wall"]))
                rounds[code].append((rates[1] / rates[0], *rates))
            rounds["box"].append(self.render_scaling(self.data("photos", 4 * rows)))
        for code, figures in rounds.items():
            ratio, one, two = sorted(figures)[len(figures) // 2]
            shown = ", ".join(f"{f[0]:.2f}×" for f in figures)
            label = "render alone, 1 vs 2 processes" if code == "box" else self.label(code) or "—"
            print(f"| {label} | {one:,.0f} | {two:,.0f} | {ratio:.2f}× | ≥ 1.7× | {shown} |")
        self.load.append(os.getloadavg()[0])

    def render_scaling(self, data: str) -> tuple[float, float, float]:
        """What the machine gives two render workers: views/s of the render work alone (no pass, no main process)
        in one process, then in two processes rendering at the same time; ``(ratio, one, two)``."""
        job = {**self.base, "teacher": "free", "resolution": 224, "workers": 0, "data": data}
        rates = []
        for processes in (1, 2):
            start_at = time.time() + 15  # after every process has imported and prepared its pass
            results = run_jobs([{**job, "render_at": start_at}] * processes)
            rates.append(sum(r["views"] for r in results) / max(r["wall"] for r in results))
        return rates[1] / rates[0], *rates

    def rss(self) -> None:
        rows = self.rows
        print(
            "\n4. peak RSS of the folder pass, free teacher at 224 px, 1 worker, shards of 16 rows (goal: flat in rows)"
        )
        print("| rows | code | main RSS (MB) | largest worker RSS (MB) |")
        print("|---:|---|---:|---:|")
        for n in (rows, 4 * rows):
            job = {**self.base, "rows_per_shard": BLOCK, "data": self.data("photos", n), "teacher": "free"}
            for code in self.codes():
                r = run_job({**job, "resolution": 224, "workers": 1}, code)
                print(
                    f"| {n} | {self.label(code) or '—'} | {r['rss_main'] / 1e6:,.0f} | {r['rss_worker'] / 1e6:,.0f} |"
                )
        self.load.append(os.getloadavg()[0])

    def report_machine(self) -> None:
        print(f"\nmachine: {machine('cpu')}; load average during the run: {min(self.load):.2f}–{max(self.load):.2f}")


def cpu_benchmarks(scratch: str, rows: int, only: list[str], baseline: str | None, rounds: int = 1) -> None:
    bench = Bench(scratch, rows, baseline, rounds)
    for section in only or SECTIONS:
        getattr(bench, section)()
    bench.report_machine()


def gpu_benchmark(scratch: str, rows: int, device: str) -> None:
    data = {key: Path(scratch, key) for key in ("photos", "photos4")}
    build_dataset("photos", rows, data["photos"])
    build_dataset("photos", 4 * rows, data["photos4"])
    print(
        f"resnet50 at 224 px, bf16 + channels_last, N={N} (rrc+ra+re); pass = marginal rate, {rows} → {4 * rows} rows"
    )
    print("| workers | bare views/s | pass views/s | pass/bare |")
    print("|---:|---:|---:|---:|")
    for workers in (4, 8, 16):
        shard = -(-4 * rows // BLOCK) * BLOCK  # every row in one shard, a whole number of blocks
        job = {"scratch": scratch, "device": device, "rows_per_shard": shard, "teacher": "timm:resnet50"}
        job.update(resolution=224, workers=workers)
        small = run_job({**job, "data": str(data["photos"]), "bare": True})
        large = run_job({**job, "data": str(data["photos4"])})
        bare = small["views"] / (sum(small["bare"]) / len(small["bare"]))
        rate = (large["views"] - small["views"]) / (large["wall"] - small["wall"])
        print(f"| {workers} | {bare:,.0f} | {rate:,.0f} | {rate / bare:.2f} |")
    print(f"\nmachine: {machine(device)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (all CPU figures) or cuda (the GPU run)")
    parser.add_argument("--rows", type=int, help="photo rows of the small run (default: 64 on CPU, 256 on GPU)")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=[], help="CPU sections to run (default: all, in this order)"
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="also measure the hf_reinforce in source tree SRC (e.g. a checkout of main), interleaved, side by side",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the cpu and scaling sections' measurements (code trees alternating): least CPU / median ratio",
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write the output to FILE as markdown (see _common.py)"
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        Path(args.result).write_text(json.dumps(measure(json.loads(args.job))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common as common  # not in the measured subprocesses (--job): only what the pass imports is there

    with common.markdown_output(args.markdown), tempfile.TemporaryDirectory(prefix="bench-reinforce-") as scratch:
        if args.device.startswith("cuda"):
            gpu_benchmark(scratch, args.rows or 256, args.device)
        else:
            cpu_benchmarks(scratch, args.rows or 64, args.only, args.baseline, args.rounds)


if __name__ == "__main__":
    main()
