"""``hwnas train``: the chosen architecture trained longer, into a model folder."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from core.progress import Progress
from nas.cli.common import CliError, PretrainProgress, emit_json


def register(sub) -> None:
    p = sub.add_parser("train", help="train one architecture longer (from a campaign's front or a config) "
                                     "into a model folder")
    p.add_argument("target", help="campaign directory (with --pick) or experiment YAML (with --arch)")
    p.add_argument("--pick", help="campaign: an evaluated ARCH, 'best' or 'knee'")
    p.add_argument("--arch", help="config: canonical string, JSON, 'empty' or 'full'")
    p.add_argument("--out", help="model folder (default: models/NAME-ARCH); an existing one resumes")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--batch", type=int, help="clips per step (default: train.batch)")
    p.add_argument("--lr", type=float, help="peak learning rate of the temporal layers (default: train.lr)")
    p.add_argument("--schedule", choices=("cosine", "linear", "constant"), default="cosine")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay; 0 turns EMA off")
    p.add_argument("--clip", type=float, default=1.0, help="gradient clipping norm; 0 turns it off")
    p.add_argument("--unfreeze-spatial", action="store_true", help="train the spatial layers too")
    p.add_argument("--spatial-lr", type=float, help="their learning rate (default: lr / 10)")
    p.add_argument("--image-ratio", type=float, default=0.0,
                   help="share of steps on image batches (one frame per clip), mixed with video batches")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between resumable checkpoints")
    p.add_argument("--seed", type=int, help="default: the experiment's")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: cuda on a Ray worker with --gpus, else cpu)")
    p.add_argument("--ray", action="store_true",
                   help="train in a Ray actor: on the cluster at --ray-address (default: search.ray_address), "
                        "else a local one; checkpoints go to --out, which the worker must see")
    p.add_argument("--ray-address", help="join this Ray cluster (implies --ray)")
    p.add_argument("--gpus", type=float, help="GPUs the Ray actor asks for (default: search.gpus_per_worker)")
    p.add_argument("--threads", type=int, help="torch threads (default: train.threads)")
    p.add_argument("--workdir", help="data and backbone cache (config: default .cache/hwnas/NAME; "
                                     "campaign: its own)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_train)


def _options(args, train):
    from evaluators.longtrain import LongTrainConfig

    try:
        return LongTrainConfig(
            steps=args.steps, batch=args.batch or train.get("batch", 4), lr=args.lr or train.get("lr", 1e-3),
            weight_decay=train.get("weight_decay", 0.0), schedule=args.schedule, warmup_steps=args.warmup,
            ema=args.ema or None, max_grad_norm=args.clip or None, unfreeze_spatial=args.unfreeze_spatial,
            spatial_lr=args.spatial_lr, image_ratio=args.image_ratio, checkpoint_every=args.checkpoint_every,
            logit_mean=train.get("logit_mean", -1.0), logit_std=train.get("logit_std", 1.0))
    except ValueError as exc:
        raise CliError(f"hwnas train: {exc}") from None


def run_train(args) -> int:
    from evaluators.longtrain import train_model

    target = Path(args.target)
    if (target / "campaign.json").is_file():
        from nas.campaign import Campaign
        from nas.deploy import campaign_plan

        if args.arch:
            raise CliError("a campaign takes --pick ARCH|best|knee, not --arch")
        if not args.pick:
            raise CliError(f"{target} is a campaign: give --pick ARCH|best|knee")
        plan = campaign_plan(Campaign.open(target), args.pick)
        if args.workdir:
            plan["workdir"] = Path(args.workdir)
    else:
        if target.is_dir():
            raise CliError(f"{target}: neither a campaign directory (no campaign.json) nor an experiment YAML")
        if args.pick:
            raise CliError("--pick needs a campaign directory; with an experiment YAML give --arch")
        if not args.arch:
            raise CliError("an experiment YAML needs --arch ARCH")
        from nas.config import Experiment
        from search_spaces.space import SearchSpace

        exp = Experiment.load(target)
        arch = str(SearchSpace(exp.space).parse(args.arch))
        plan = {"experiment": exp.to_dict(), "arch": arch, "init_state": None,
                "init_info": {"source": "identity", "note": "trained from a config: temporal layers start as "
                                                            "the identity"},
                "workdir": Path(args.workdir) if args.workdir else Path(".cache") / "hwnas" / exp.name}
    exp = plan["experiment"]
    options = _options(args, exp.get("train", {}))
    seed = exp.get("seed", 0) if args.seed is None else args.seed
    out = Path(args.out) if args.out else Path("models") / f"{exp.get('name', 'model')}-{_slug(plan['arch'])}"
    threads = args.threads or exp.get("train", {}).get("threads")
    from evaluators.longtrain import read_checkpoint, run_identity

    read_checkpoint(out / "checkpoint.pt", run_identity(exp, plan["arch"], options, seed, plan["init_info"]))
    placement = _ray_placement(args, exp.get("search", {}))
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if placement is not None:  # the cluster first: one without the GPUs asked for is refused before any work
            from nas.remote_train import RemoteTrainer

            search = exp.get("search", {})
            trainer = stack.enter_context(RemoteTrainer(placement["address"], placement["gpus"],
                                                        search.get("retries", 2), search.get("max_restarts", 2)))
        shown = stack.enter_context(Progress(enabled=not args.json))
        info = plan["init_info"]
        shown.print(f"training {plan['arch']} for {options.steps} steps into {out}; start: "
                    + (f"campaign weights of candidate {info['candidate']}" if info["source"] == "campaign"
                       else info["note"]))
        task = {}

        def on_step(step, total, loss):
            if "t" not in task:
                task["t"] = shown.task("training", total=total, completed=step - 1)
            task["t"].update(completed=step, description=f"training, loss {loss:.4f}")

        job = {"experiment": exp, "arch": plan["arch"], "out": out, "config": options, "seed": seed,
               "workdir": plan["workdir"], "init_state": plan["init_state"], "init_info": plan["init_info"],
               "threads": threads}
        if placement is None:
            record = train_model(**job, device=args.device or "cpu", progress=PretrainProgress(shown),
                                 on_step=on_step)
        else:
            workers = []

            def on_worker(pid):
                if workers:
                    shown.print(f"the Ray worker (pid {workers[-1]}) was lost; pid {pid} resumes from the last "
                                "checkpoint")
                workers.append(pid)

            job.update(out=out.resolve(), workdir=Path(job["workdir"]).resolve(),
                       device=args.device or ("cuda" if placement["gpus"] else "cpu"))
            record = trainer.train(job, on_step=on_step, on_pretrain=PretrainProgress(shown), on_worker=on_worker)
    record = {**record, "out": str(out), "wall_seconds": round(time.perf_counter() - start, 3)}
    if args.json:
        emit_json({k: v for k, v in record.items() if k != "log"} | {"log_tail": record["log"][-5:]})
        return 0
    resumed = f", resumed at step {record['resumed_from']}" if record["resumed_from"] is not None else ""
    loss = f"{record['final_loss']:.5f}" if record["final_loss"] is not None else "n/a (no temporal layer)"
    worker = record.get("worker")
    where = (f" on Ray worker pid {worker['pid']} ({worker['node']}"
             + (f", GPU {','.join(worker['gpu_ids'])}" if worker["gpu_ids"] else "") + ")") if worker else ""
    print(f"{record['arch']}: {record['steps']} steps{resumed}, final loss {loss}, "
          f"{record['wall_seconds']:.1f} s{where} -> {out}")
    return 0


def _ray_placement(args, search: dict) -> dict | None:
    """Where --ray trains: {"address", "gpus"}, or None for this process."""
    if not (args.ray or args.ray_address):
        if args.gpus is not None:
            raise CliError("--gpus is for a Ray worker: add --ray")
        return None
    gpus = search.get("gpus_per_worker", 0.0) if args.gpus is None else args.gpus
    if gpus < 0:
        raise CliError(f"--gpus {gpus:g}: must be 0 or more")
    return {"address": args.ray_address or search.get("ray_address"), "gpus": gpus}


def _slug(arch: str) -> str:
    return arch.replace(":", "-").replace(",", "_")
