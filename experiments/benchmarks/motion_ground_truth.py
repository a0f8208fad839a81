"""A ground truth that can be learned (issue 10, item 1): long-train architectures, sample
videos for held-out captions, and measure whether they move the way the caption says.

For each architecture: the temporal layers are trained ``--steps`` steps (one AdamW run,
not restarted) on the frozen pre-trained backbone; every ``--eval-every`` steps the model
samples one video per held-out caption (``--prompts`` of them, fixed noise) and the
offline ``prompt_suite`` classifier scores it (motion accuracy: chance 0.2 over
left/right/up/down/none). ``--discrimination`` also scores the no-sampling
``caption_discrimination`` evaluator at every checkpoint, to see whether it tracks the
sampled motion accuracy. Every knob that item 1 asks about is a flag mapped onto the
experiment's typed config sections (``data.speed_scale``, ``space.op_options.frame_embedding``,
``train.logit_mean``, ``train.lr``, ``train.noise_correlation``, ``train.pretrain``,
``evaluator.guidance_scale``).

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/motion_ground_truth.py \\
        --tag fe_m0 --frames 8 --size 8 --speed-scale 1.1 --frame-embedding --logit-mean 0 \\
        --archs "" "down0:conv1d:1,mid:conv1d:1,up1:conv1d:1" --steps 2000 --eval-every 500

Writes results/motion_ground_truth_TAG.json (rewritten after every checkpoint, so a run cut
short keeps what it measured) and results/motion_ground_truth_TAG.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _machine import machine, write  # noqa: E402

from evaluators import CandidateRunner  # noqa: E402
from evaluators.flow import flow_loss, logit_normal_t, video_noise  # noqa: E402
from evaluators.scores import create_evaluator  # noqa: E402
from evaluators.training import param_groups, temporal_state  # noqa: E402
from nas.config import Experiment  # noqa: E402


def configs(args):
    exp = Experiment.load(args.config)
    space = exp.space
    space = dataclasses.replace(
        space, video=dataclasses.replace(space.video, frames=args.frames, height=args.size, width=args.size),
        op_options=dataclasses.replace(space.op_options, frame_embedding=args.frame_embedding),
        ops=tuple(args.ops) if args.ops else space.ops)
    data = dataclasses.replace(exp.data, videos=args.videos, val_videos=args.prompts, speed_scale=args.speed_scale,
                               text_encoder=args.text_encoder)
    pre = dataclasses.replace(exp.train.pretrain, steps=args.pretrain_steps, batch=32, lr=2e-3,
                              logit_mean=args.pretrain_logit_mean)
    train = dataclasses.replace(exp.train, batch=args.batch, lr=args.lr, logit_mean=args.logit_mean,
                                logit_std=args.logit_std, threads=1, pretrain=pre,
                                noise_correlation=args.noise_correlation,
                                lr_scale={op: args.attn_lr_scale for op in ("cross_attn1d", "self_attn1d",
                                                                            "cross_attn3d", "self_attn3d")
                                          if args.attn_lr_scale != 1.0})
    ev = dataclasses.replace(exp.evaluator, noise_correlation=args.noise_correlation)
    suite = ev.switch("prompt_suite", prompts=args.prompts, sample_steps=args.sample_steps,
                      guidance_scale=args.guidance)
    disc = ev.switch("caption_discrimination", clips=args.disc_clips, t_values=tuple(args.disc_t),
                     attributes=tuple(args.disc_attributes), quality="margin") if args.discrimination else None
    flow = ev.switch("flow_loss", val_clips=64)
    return space, data, train, suite, disc, flow


def contact_sheet(suite, model, path: Path, per_motion: int = 2) -> Path:
    """A PNG to look at: ``per_motion`` held-out captions of each motion, one row each (the
    sampled frames left to right, ×8), labelled with the caption and the motion the
    prompt_suite classifier reads in the sample."""
    from PIL import Image, ImageDraw

    from evaluators.data import latents_to_frames
    from evaluators.flow import euler_sample
    from evaluators.sample import to_uint8
    from evaluators.scores.prompt_suite import foreground, motion_of

    labels = suite.labels["motion"]
    rows = [i for m in ("left", "right", "up", "down", "none") for i in [j for j, x in enumerate(labels) if x == m][:per_motion]]
    with torch.no_grad():
        frames = latents_to_frames(euler_sample(model, suite.noise[rows], suite.text[rows], suite.options.sample_steps,
                                                suite.options.guidance_scale))
    read = motion_of(foreground(frames))
    scale, label_w = 8, 300
    t, h, w = frames.shape[1], frames.shape[3] * scale, frames.shape[4] * scale
    sheet = Image.new("RGB", (label_w + t * (w + 2), len(rows) * (h + 4)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for r, (i, clip) in enumerate(zip(rows, frames)):
        y = r * (h + 4)
        ok = read[r] == labels[i]
        draw.text((4, y + h // 2 - 12), suite.captions[i], fill=(230, 230, 230))
        draw.text((4, y + h // 2 + 2), f"reads: {read[r]}", fill=(120, 230, 120) if ok else (240, 110, 110))
        for k, frame in enumerate(to_uint8(clip, scale)):
            sheet.paste(Image.fromarray(frame), (label_w + k * (w + 2), y))
    sheet.save(path)
    return path


def evaluate(model, evaluators) -> dict:
    out = {}
    for name, ev in evaluators.items():
        t0 = time.perf_counter()
        score = ev.score(model)
        out[name] = {"quality": score.quality, **score.breakdown, "seconds": time.perf_counter() - t0}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "experiments" / "tiny.yaml"))
    ap.add_argument("--tag", required=True)
    ap.add_argument("--archs", nargs="+", default=["", "down0:conv1d:1,mid:conv1d:1,up1:conv1d:1"])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ops", nargs="+", help="space.ops (default: the config's)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--speed-scale", type=float, default=1.1)
    ap.add_argument("--frame-embedding", action="store_true")
    ap.add_argument("--text-encoder", default="builtin")
    ap.add_argument("--logit-mean", type=float, default=-1.0)
    ap.add_argument("--logit-std", type=float, default=1.0)
    ap.add_argument("--pretrain-logit-mean", type=float, help="train.pretrain.logit_mean (default: --logit-mean)")
    ap.add_argument("--noise-correlation", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--attn-lr-scale", type=float, default=1.0, help="train.lr_scale of the attention ops")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--videos", type=int, default=2304)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--sample-steps", type=int, default=8)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--discrimination", action="store_true")
    ap.add_argument("--disc-clips", type=int, default=64)
    ap.add_argument("--disc-t", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    ap.add_argument("--disc-attributes", nargs="+", default=["motion", "speed", "colour", "object"])
    ap.add_argument("--init-from", help="start from the temporal weights another tag saved (with --steps 0: "
                    "re-score them, e.g. with another --guidance or --sample-steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet", action="store_true", help="write a PNG of samples per architecture at the end")
    ap.add_argument("--workdir", default=str(ROOT / ".cache" / "hwnas" / "motion"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    space, data, train, suite, disc, flow = configs(args)
    pre_m = args.logit_mean if args.pretrain_logit_mean is None else args.pretrain_logit_mean
    workdir = Path(args.workdir) / (f"T{args.frames}_S{args.size}_v{args.videos}_p{args.prompts}_sp{args.speed_scale:g}"
                                    f"_{args.text_encoder}_pre{args.pretrain_steps}_m{pre_m:g}")
    runner = CandidateRunner(space, data, train, suite, workdir, args.seed)
    t0 = time.perf_counter()
    info = runner.prepare(progress=lambda s, n, loss: print(f"pretrain {s}/{n} {loss:.4f}", flush=True)
                          if s % 250 == 0 else None)
    prepare_s = time.perf_counter() - t0
    evaluators = {"prompt_suite": runner.evaluator, "flow_loss": create_evaluator(flow, runner.dataset)}
    if disc is not None:
        evaluators["caption_discrimination"] = create_evaluator(disc, runner.dataset)
    result = {"tag": args.tag, "args": vars(args), "prepare": {**info, "seconds": prepare_s},
              "space": dataclasses.asdict(space), "data": dataclasses.asdict(data), "train": dataclasses.asdict(train),
              "runs": {}, "machine": machine()}

    def save():
        write(f"motion_ground_truth_{args.tag}", result)

    for arch_text in args.archs:
        arch = runner.space.parse(arch_text)
        name = str(arch) or "empty"
        def saved(tag):
            return workdir / f"temporal-{tag}-{name.replace(':', '_').replace(',', '+')}.pt"

        parent = torch.load(saved(args.init_from), weights_only=True) if args.init_from and str(arch) else None
        model = runner.build(arch, parent, args.seed)
        params = [p for p in model.temporal.parameters() if p.requires_grad]
        run = result["runs"][name] = {"arch": name, "params": sum(p.numel() for p in params), "checkpoints": []}
        gen = torch.Generator().manual_seed(args.seed)
        opt = torch.optim.AdamW(param_groups(model, train), lr=train.lr) if params else None
        stream = runner.dataset.batches("train", train.batch, gen)
        steps = args.steps if params else 0
        run["init_from"] = args.init_from
        start, losses = time.perf_counter(), []
        for step in range(steps + 1):
            at_start_like_empty = step == 0 and steps and "empty" in result["runs"]  # identity layers
            if (step % args.eval_every == 0 or step == steps) and not at_start_like_empty:
                model.eval()
                with torch.no_grad():
                    scores = evaluate(model, evaluators)
                ck = {"step": step, "train_seconds": time.perf_counter() - start,
                      "train_loss": sum(losses) / len(losses) if losses else None, **scores}
                run["checkpoints"].append(ck)
                losses = []
                ps = scores["prompt_suite"]
                line = (f"[{args.tag}] {name} step {step}: motion {ps['motion']:.3f} (moving {ps['motion_moving']:.3f}) "
                        f"colour {ps['colour']:.3f} object {ps['object']:.3f} flicker {ps['flicker']:.4f} "
                        f"flowQ {scores['flow_loss']['quality']:.5f}")
                if "caption_discrimination" in scores:
                    cd = scores["caption_discrimination"]
                    line += " disc " + " ".join(f"{k}={v:.3f}" for k, v in cd.items() if k.startswith(("acc_", "margin_")))
                print(line, f"({time.perf_counter() - start:.0f}s)", flush=True)
                save()
            if step == steps:
                break
            model.temporal.train()
            batch = next(stream)
            t = logit_normal_t(len(batch.latents), train.logit_mean, train.logit_std, gen)
            noise = video_noise(batch.latents.shape, gen, train.noise_correlation)
            loss = flow_loss(model, batch.latents, batch.text, t, noise)
            if not math.isfinite(loss.item()):
                run["failed"] = f"loss {loss.item()} at step {step}"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
        if params and steps:  # the trained temporal weights, to re-score with other samplers (--init-from)
            torch.save(temporal_state(model), saved(args.tag))
        if args.sheet:
            model.eval()
            sheet = contact_sheet(runner.evaluator, model, ROOT / "experiments" / "benchmarks" / "results" /
                                  f"motion_ground_truth_{args.tag}_{name.replace(':', '_').replace(',', '+')}.png")
            print("wrote", sheet, flush=True)
        run["seconds"] = time.perf_counter() - start
        run["seconds_per_step"] = run["seconds"] / max(steps, 1)
        save()

    lines = [f"# Motion ground truth `{args.tag}`", "",
             f"machine: {result['machine']['cpu']}, 1 thread, {result['machine']['date']}; "
             f"torch {torch.__version__}", "",
             "```", "PYTHONPATH=. .venv/bin/python experiments/benchmarks/motion_ground_truth.py " +
             " ".join(sys.argv[1:]), "```", "",
             "| arch | step | motion | motion (moving) | colour | object | flicker | flow quality |",
             "|---|---|---|---|---|---|---|---|"]
    for name, run in result["runs"].items():
        for ck in run["checkpoints"]:
            ps = ck["prompt_suite"]
            lines.append(f"| {name} | {ck['step']} | {ps['motion']:.3f} | {ps['motion_moving']:.3f} | {ps['colour']:.3f} | "
                         f"{ps['object']:.3f} | {ps['flicker']:.4f} | {ck['flow_loss']['quality']:.5f} |")
    path = write(f"motion_ground_truth_{args.tag}", result)
    (path.parent / (path.stem + ".md")).write_text("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
