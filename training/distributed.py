"""Pre-training over several processes, on one machine or several: PyTorch's own engine, launched by ``torchrun``.

``launch`` writes what the run needs into a folder (the store's location, the rows to learn from and to
validate on, the model and training settings), starts ``python -m torch.distributed.run --standalone
--nproc-per-node N -m training.distributed SPEC`` and follows rank 0's progress on its standard output.
Over several machines (``Nodes``) the launching one is node 0, the rendezvous is its ``host:port``, and
every other machine runs ``join`` (``manage.py pretrain_join``) with the same spec, read from the storage
they share, and its own node rank; each starts its processes when all have arrived.
Each process (``main``) joins the process group (NCCL on GPUs, gloo on CPUs), opens the spectrum store
memory-mapped, so no process holds every spectrum, and runs ``training.pretrain.pretrain``, which wraps
the model in DistributedDataParallel (see there). Rank 0 writes the checkpoints and metrics.json, so a
run is resumed, or read, exactly as one trained in one process. Each process dies with its parent
(Linux's parent-death signal), so a worker killed mid-run leaves no rank training on behind it: the run
resumes from its last checkpoint when started again.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from kb.store import SpectrumStore
from training.model import EncoderConfig
from training.pretrain import PretrainConfig, pretrain, rank_and_world

LAUNCH = "launch"  # the folder, in the run's, that ``write_spec`` fills
PROGRESS = "GALSPEC-PROGRESS "  # rank 0's progress lines on standard output start with this, then JSON


@dataclass(frozen=True)
class Nodes:
    """The machines a run spans: ``count`` of them, meeting at ``master`` (``host:port`` of node 0, the
    machine that launched the run and follows its progress; every other one must reach it); this one is
    ``rank`` among them."""

    count: int = 1
    rank: int = 0
    master: str = ""

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.rank < self.count:
            raise ValueError(f"node {self.rank} of {self.count}: give 1 or more nodes, ranks 0 to {self.count - 1}")
        host, _, port = self.master.rpartition(":")
        if self.count > 1 and not (host and port.isdigit()):
            raise ValueError(
                f"{self.count} nodes need node 0's address as host:port (GALSPEC_TRAIN_MASTER), not {self.master!r}"
            )


def launch(
    *,
    processes: int,
    store: str | Path,
    rows: np.ndarray,
    val_rows: np.ndarray,
    model_config: EncoderConfig,
    config: PretrainConfig,
    out_dir: str | Path,
    preprocess_config: dict | None = None,
    on_progress: Callable[[int, int, dict], None] | None = None,
    nodes: Nodes = Nodes(),
) -> dict:
    """Pre-train over ``processes`` processes on this machine (on each of ``nodes``; this one node 0), as
    ``pretrain`` does in one; returns the metrics rank 0 wrote. ValueError, starting nothing, when the
    batch does not split evenly over every process; RuntimeError, with the end of the processes' output,
    if the run fails."""
    world = processes * nodes.count
    if world >= 2 and config.batch_size % world:
        raise ValueError(f"a batch of {config.batch_size} does not split over {world} processes: choose a multiple")
    if nodes.rank != 0:
        raise ValueError("the launching machine is node 0: the others join (training.distributed.join)")
    gpus = torch.cuda.device_count() if config.device != "cpu" else 0
    if gpus and processes > gpus:
        raise ValueError(f"{processes} processes for {gpus} GPUs: run one process a GPU (GALSPEC_TRAIN_PROCESSES)")
    spec = write_spec(
        store=store,
        rows=rows,
        val_rows=val_rows,
        model_config=model_config,
        config=config,
        out_dir=out_dir,
        preprocess_config=preprocess_config,
    )
    _torchrun_follow(torchrun(processes, spec, nodes), processes, config, on_progress)
    return json.loads((Path(out_dir) / "metrics.json").read_text())


def join(spec: str | Path, *, processes: int, nodes: Nodes) -> None:
    """Run this machine's ``processes`` processes of a run that node 0 launched (``launch``) with ``spec``
    (its OUT_DIR/launch/spec.json, on shared storage); returns when the run ends. RuntimeError, with the
    end of the processes' output, if it fails."""
    if nodes.rank == 0:
        raise ValueError("node 0 launches the run (training.distributed.launch); the others join it")
    config = PretrainConfig(**json.loads(Path(spec).read_text())["training"])
    _torchrun_follow(torchrun(processes, Path(spec), nodes), processes, config, None)


def _torchrun_follow(command: list[str], processes: int, config: PretrainConfig, on_progress) -> None:
    """Run ``command`` (torchrun), passing rank 0's progress lines to ``on_progress``."""
    tail: deque[str] = deque(maxlen=40)
    threads = config.num_threads or max(1, (os.cpu_count() or 1) // processes)  # torchrun would give each 1
    with subprocess.Popen(  # noqa: S603  torchrun's argv, built by torchrun() from numbers and a host:port setting
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))},
    ) as child:
        for line in child.stdout:
            if line.startswith(PROGRESS):
                if on_progress:
                    report = json.loads(line[len(PROGRESS) :])
                    on_progress(report.pop("step"), report.pop("max_steps"), report)
            else:
                tail.append(line)
    if child.returncode:
        raise RuntimeError(f"pre-training over {processes} processes failed ({child.returncode}):\n{''.join(tail)}")


def write_spec(
    *,
    store: str | Path,
    rows: np.ndarray,
    val_rows: np.ndarray,
    model_config: EncoderConfig,
    config: PretrainConfig,
    out_dir: str | Path,
    preprocess_config: dict | None = None,
) -> Path:
    """What every rank reads: OUT_DIR/launch/spec.json, beside the rows (int64 .npy) it names; each file
    written whole under a temporary name, then renamed, the spec last, so a machine waiting to join never
    reads half of one."""
    folder = Path(out_dir) / LAUNCH
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in (("rows.npy", rows), ("val_rows.npy", val_rows)):
        with open(folder / f"{name}.tmp", "wb") as handle:
            np.save(handle, np.asarray(values, dtype=np.int64))
        os.replace(folder / f"{name}.tmp", folder / name)
    spec = {
        "store": str(store),
        "rows": str(folder / "rows.npy"),
        "val_rows": str(folder / "val_rows.npy"),
        "model": model_config.to_dict(),
        "training": config.to_dict(),
        "preprocess": preprocess_config or {},
        "out_dir": str(out_dir),
    }
    (folder / "spec.json.tmp").write_text(json.dumps(spec, indent=2))
    os.replace(folder / "spec.json.tmp", folder / "spec.json")
    return folder / "spec.json"


def torchrun(processes: int, spec: Path, nodes: Nodes = Nodes()) -> list[str]:
    """The command that runs ``main`` in ``processes`` processes on this machine, node ``nodes.rank`` of
    ``nodes.count``."""
    if processes * nodes.count < 2:
        raise ValueError("a distributed run needs at least 2 processes; run pretrain directly for one")
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}"]
    if nodes.count == 1:
        launcher.append("--standalone")
    else:
        host, _, port = nodes.master.rpartition(":")
        launcher += [f"--nnodes={nodes.count}", f"--node-rank={nodes.rank}"]
        launcher += [f"--master-addr={host}", f"--master-port={port}"]
    return [*launcher, "-m", "training.distributed", str(spec)]


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere, nothing.
    A parent that died while the request was made (this process was adopted) ends this one at once."""
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)


def main(spec_path: str) -> None:
    """One rank of a run ``launch`` started (under torchrun, which sets RANK, WORLD_SIZE and the rendezvous)."""
    die_with_parent()
    spec = json.loads(Path(spec_path).read_text())
    config = PretrainConfig(**spec["training"])
    if config.device != "cpu" and torch.cuda.is_available():  # one GPU a rank: collectives run on it
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        model_config = EncoderConfig.from_dict(spec["model"])
        store = SpectrumStore(spec["store"], n_pixels=model_config.n_pixels)
        flux, valid = store.read()

        def progress(step: int, max_steps: int, report: dict) -> None:
            print(PROGRESS + json.dumps({"step": step, "max_steps": max_steps, **report}), flush=True)

        pretrain(
            flux,
            valid,
            store.read_ivar(),
            model_config=model_config,
            config=config,
            out_dir=spec["out_dir"],
            preprocess_config=spec["preprocess"],
            on_progress=progress if rank_and_world()[0] == 0 else None,
            rows=np.load(spec["rows"]),
            val_rows=np.load(spec["val_rows"]),
        )
        dist.barrier()  # rank 0 writes the last checkpoint and metrics while the others wait to leave together
    finally:
        gc.collect()  # the DDP model's reference cycles hold the process group: free it now, not at exit
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
