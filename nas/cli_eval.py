"""``hwnas data synth|show`` and ``hwnas evaluate``: the built-in dataset, and one candidate
trained briefly and scored (issue 4)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from nas.cli_common import CliError, emit_json, load_experiment
from search_spaces.errors import HwnasError


def register(sub) -> None:
    data = sub.add_parser("data", help="video-latent datasets").add_subparsers(dest="action", required=True)
    p = data.add_parser("synth", help="write the built-in captioned video-latent dataset")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--config", help="experiment YAML whose video size and text tokens to use (default: tiny)")
    p.add_argument("--videos", type=int, default=512, help="clips in all (default 512)")
    p.add_argument("--val-videos", type=int, default=64, help="clips held out for validation (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text-encoder", choices=("builtin", "minilm"), default="builtin")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_synth)

    p = data.add_parser("show", help="check a dataset directory and summarise it")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_show)

    p = sub.add_parser("evaluate", help="train one architecture briefly and score it")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--arch", required=True, help="canonical string, JSON, 'empty' or 'full'")
    p.add_argument("--steps", type=int, help="training steps K (default: train.steps)")
    p.add_argument("--seed", type=int, help="seed of the brief training (default: the experiment's)")
    p.add_argument("--evaluator", help="evaluator name (default: evaluator.name)")
    p.add_argument("--workdir", help="data and backbone cache (default: .cache/hwnas/NAME)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_evaluate)


def _dataset_summary(data) -> dict:
    return {"dir": str(data.root), "train_videos": data.count("train"), "val_videos": data.count("val"),
            "latent_shape": list(data.latent_shape), "text_shape": list(data.text_shape),
            "encoder": data.meta.get("encoder"), "transform": data.meta.get("transform")}


def _print_summary(title: str, info: dict) -> None:
    print(title)
    for key, value in info.items():
        print(f"  {key}: {value}")


def run_synth(args) -> int:
    from evaluators.data import LatentDataset
    from evaluators.synth import synthesise

    if args.videos < 2 or not 1 <= args.val_videos < args.videos:
        raise CliError(f"--videos {args.videos} / --val-videos {args.val_videos}: need 1 <= val-videos < videos")
    frames, height, width, tokens, dim = 8, 16, 16, 8, 32
    if args.config:
        from search_spaces.space import SearchSpace

        space = SearchSpace(load_experiment(args.config).space)
        _, frames, channels, height, width = space.video_shape
        _, tokens, dim = space.text_shape
        if channels != 3:
            raise CliError(f"{args.config}: the built-in set is RGB pixels (3 channels); the backbone takes {channels}")
    start = time.perf_counter()
    synthesise(args.out, args.videos, args.val_videos, frames, height, width, tokens, dim, args.seed,
               args.text_encoder)
    info = _dataset_summary(LatentDataset(args.out)) | {"seconds": round(time.perf_counter() - start, 3)}
    if args.json:
        emit_json(info)
    else:
        _print_summary(f"wrote {args.out}", info)
    return 0


def run_show(args) -> int:
    from evaluators.data import LatentDataset

    data = LatentDataset(args.dir)
    for split in ("train", "val"):
        data.load(split)  # reads every shard: corrupt ones fail here
    info = _dataset_summary(data) | {"shards": len(data.meta["shards"])}
    emit_json(info) if args.json else _print_summary(f"dataset {args.dir}", info)
    return 0


def run_evaluate(args) -> int:
    from evaluators import CandidateRunner
    from evaluators.scores import EVALUATORS
    from search_spaces.space import SearchSpace

    exp = load_experiment(args.config)
    if args.steps is not None and args.steps < 0:
        raise CliError(f"--steps {args.steps}: must be non-negative")
    evaluator = exp.evaluator
    if args.evaluator:
        EVALUATORS.get(args.evaluator)  # unknown names fail with the allowed ones
        evaluator = dataclasses.replace(evaluator, name=args.evaluator)
    seed = exp.seed if args.seed is None else args.seed
    workdir = Path(args.workdir) if args.workdir else Path(".cache") / "hwnas" / exp.name
    runner = CandidateRunner(exp.space, exp.data, exp.train, evaluator, workdir, seed)
    arch = SearchSpace(exp.space).parse(args.arch)  # bad architectures fail before any work
    start = time.perf_counter()
    info = _prepare(runner, quiet=args.json)
    result = runner.run(arch, None, args.steps, seed)
    if result.status != "ok":
        raise HwnasError(f"candidate {result.arch} failed: {result.reason}")
    out = {"arch": result.arch, "quality": result.quality, "breakdown": result.breakdown,
           "seconds": round(time.perf_counter() - start, 3), "evaluator": evaluator.name,
           "steps": result.steps, "seed": seed, "train_loss": result.train_loss,
           "candidate_seconds": round(result.seconds, 3), "prepare": info}
    if args.json:
        emit_json(out)
        return 0
    print(f"{result.arch}: quality {result.quality:.6f} ({evaluator.name}, K={result.steps}, seed {seed})")
    for key, value in result.breakdown.items():
        print(f"  {key}: {value:.6g}")
    print(f"  train_loss: {result.train_loss}" if result.train_loss is not None else "  (no temporal layer to train)")
    print(f"{out['seconds']:.1f} s in all, {result.seconds:.1f} s for the candidate")
    return 0


def _prepare(runner, quiet: bool) -> dict:
    """Dataset and backbone, with a progress bar on stderr while the backbone pre-trains."""
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, disable=quiet, console=Console(stderr=True)) as bar:
        task = None

        def progress(step, total, loss):
            nonlocal task
            if task is None:
                task = bar.add_task("pre-training the spatial backbone", total=total)
            bar.update(task, completed=step, description=f"pre-training the spatial backbone (loss {loss:.4f})")

        return runner.prepare(progress)
