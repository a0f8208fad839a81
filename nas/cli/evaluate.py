"""``hwnas evaluate``: one candidate trained briefly and scored."""
from __future__ import annotations

import time
from pathlib import Path

from core.errors import HwnasError
from core.progress import Progress
from nas.cli.common import CliError, PretrainProgress, emit_json, load_experiment


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="train one architecture briefly and score it")
    p.add_argument("config", help="experiment YAML, or a model folder written by `hwnas train`")
    p.add_argument("--arch", help="canonical string, JSON, 'empty' or 'full'")
    p.add_argument("--steps", type=int, help="training steps K (default: train.steps)")
    p.add_argument("--seed", type=int, help="seed of the brief training (default: the experiment's)")
    p.add_argument("--evaluator", help="evaluator name (default: evaluator.name)")
    p.add_argument("--workdir", help="data and backbone cache (default: .cache/hwnas/NAME)")
    p.add_argument("--campaign", help="reuse this campaign's prepared data and pre-trained backbone")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from evaluators import CandidateRunner
    from evaluators.model_dir import is_model_dir
    from search_spaces.space import SearchSpace

    if is_model_dir(args.config):
        return _evaluate_model(args)
    if not args.arch:
        raise CliError("--arch is required with an experiment YAML")
    exp = load_experiment(args.config)
    if args.steps is not None and args.steps < 0:
        raise CliError(f"--steps {args.steps}: must be non-negative")
    evaluator = exp.evaluator
    if args.evaluator:  # options it shares with the configured evaluator carry over
        evaluator = evaluator.switch(args.evaluator)
    seed = exp.seed if args.seed is None else args.seed
    if args.campaign and args.workdir:
        raise CliError("give --campaign or --workdir, not both")
    if args.campaign:
        from nas.campaign import Campaign

        workdir = Campaign.open(args.campaign).workdir()
    else:
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


def _evaluate_model(args) -> int:
    """A trained model folder, scored as it is (no further training)."""
    from evaluators.model_dir import evaluate_model

    if args.arch or args.steps is not None:
        raise CliError("a model folder is scored as trained: --arch and --steps do not apply")
    workdir = Path(args.workdir) if args.workdir else Path(".cache") / "hwnas" / "models"
    out = evaluate_model(args.config, workdir, args.evaluator)
    if args.json:
        emit_json(out)
        return 0
    print(f"{out['arch']}: quality {out['quality']:.6f} ({out['evaluator']}, model {out['model']}, "
          f"{out['steps']} training steps)")
    for key, value in out["breakdown"].items():
        print(f"  {key}: {value:.6g}")
    return 0


def _prepare(runner, quiet: bool) -> dict:
    """Dataset and backbone, with progress on stderr while the backbone pre-trains."""
    with Progress(enabled=not quiet) as shown:
        return runner.prepare(PretrainProgress(shown))
