"""``hwnas pareto gallery``: what a point on the front buys, seen. One animated sample per
front architecture — the same prompts and the same initial noise for every one — beside its
quality, latency and memory, in one HTML page with its GIFs in a folder beside it.

Weights per architecture, in order of preference: a trained model folder given with
``models`` (``hwnas train``'s output) of that architecture; the campaign's stored weights
(the current model's and the final stage's); otherwise a brief training as the search gave it
(``train_steps``, default the campaign's K) from identity temporal layers on the campaign's
frozen backbone. The page says which each one got.
"""
from __future__ import annotations

import html
import time
from pathlib import Path

import torch

from core.errors import HwnasError
from core.io import atomic_text
from core.progress import as_progress
from nas.campaign import Campaign
from nas.deploy import stored_weights, workdir_of

DEFAULT_PROMPTS = ("a red circle moving right fast", "a blue square moving up slowly", "a yellow cross staying still")


def _runner(campaign: Campaign):
    from evaluators import CandidateRunner

    exp = campaign.experiment()
    return CandidateRunner(exp.space, exp.data, exp.train, exp.evaluator, workdir_of(campaign), exp.seed)


def _trained(runner, model, arch_meta: dict):
    from evaluators.model_dir import PIXEL_TRANSFORM, TrainedModel
    from evaluators.text import text_encoder

    data = runner.dataset
    tokens, dim = data.text_shape
    meta = {"arch": arch_meta["arch"], "text": {"tokens": tokens, "dim": dim},
            "latents": {"transform": data.meta.get("transform"),
                        "pixel_space": data.meta.get("transform") == PIXEL_TRANSFORM}}
    return TrainedModel(Path("."), meta, runner.space, model.eval(), text_encoder(runner.data_config.text_encoder,
                                                                                   tokens, dim))


def build_gallery(campaign: Campaign, out: str | Path, prompts=DEFAULT_PROMPTS, models=(), train_steps=None,
                  sample_steps: int = 16, guidance_scale: float = 1.0, seed: int = 0, fps: int = 8, scale: int = 8,
                  progress=True) -> dict:
    """Write ``out`` (HTML) and ``out``'s ``<stem>_files/`` (one GIF per architecture and
    prompt); returns the page's content as data."""
    from evaluators.model_dir import load_model, read_meta
    from evaluators.sample import decode, fixed_noise, sample_latents, write_video

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise HwnasError(f"--out {out}: the gallery is an .html page")
    prompts = list(prompts)
    if not prompts:
        raise HwnasError("give at least one --prompt")
    front = campaign.front()
    if not front.evaluated:
        raise HwnasError(f"{campaign.root}: no candidate has finished yet")
    exp = campaign.experiment()
    budgets = campaign.budgets()  # as the search resolved them (relative ones against its table)
    given = {}
    for path in models:
        given.setdefault(read_meta(path)["arch"], path)
    files = out.parent / f"{out.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    runner = _runner(campaign)
    steps = exp.candidate_steps if train_steps is None else train_steps
    rows = []
    start = time.perf_counter()
    with as_progress(progress) as shown:
        runner.prepare()
        shape = (len(prompts), *runner.space.video_shape[1:])
        noise = fixed_noise(shape, seed)  # the same noise for every architecture
        task = shown.task("gallery", total=len(front.points))
        for i, point in enumerate(front.points):
            task.update(description=f"sampling {point.arch}")
            if point.arch in given:
                trained = load_model(given[point.arch])
                source = f"trained model {given[point.arch]} ({trained.meta.get('steps', '?')} steps)"
            else:
                stored = stored_weights(campaign, point.arch)
                arch = runner.space.parse(point.arch)
                if stored is not None:
                    state, source = stored[0], f"campaign weights ({stored[1]['candidate']})"
                else:
                    result = runner.run(arch, None, steps, exp.seed)
                    if result.status != "ok":
                        raise HwnasError(f"{point.arch}: brief training failed: {result.reason}")
                    state, source = result.state, f"briefly trained here ({steps} step{'' if steps == 1 else 's'} from identity layers)"
                trained = _trained(runner, runner.build(arch, state, exp.seed), {"arch": point.arch})
            with torch.no_grad():
                clips = decode(trained, sample_latents(trained, prompts, None, sample_steps, guidance_scale, seed,
                                                       noise=noise))
            videos = []
            for j, clip in enumerate(clips):
                name = f"arch{i:02d}_prompt{j}.gif"
                write_video(clip, files / name, fps, scale)
                videos.append(f"{files.name}/{name}")
            feasible = not budgets.violations(point.latency_ms, point.memory_bytes)
            rows.append({"arch": point.arch, "quality": point.quality, "latency_ms": point.latency_ms,
                         "memory_bytes": point.memory_bytes, "feasible": feasible, "weights": source,
                         "videos": videos})
            task.update(advance=1)
        task.finish()
    page = {"campaign": str(campaign.root), "name": exp.name, "prompts": prompts, "seed": seed,
            "sample_steps": sample_steps, "cfg": guidance_scale, "rows": rows,
            "seconds": round(time.perf_counter() - start, 2)}
    atomic_text(out, render_html(page))
    out.chmod(0o644)
    return page


def render_html(page: dict) -> str:
    e = html.escape
    head = "".join(f"<th>{e(p)}</th>" for p in page["prompts"])
    body = []
    for r in page["rows"]:
        cells = "".join(f'<td><img class="sample" src="{e(v)}" alt="{e(r["arch"])}: {e(p)}" width="128" '
                        f'height="128"></td>' for v, p in zip(r["videos"], page["prompts"]))
        arch = "<br>".join(e(part) for part in r["arch"].split(","))
        body.append(
            f'<tr><td class="arch">{arch}<div class="src">{e(r["weights"])}</div></td>'
            f'<td>{r["quality"]:.5f}</td><td>{r["latency_ms"]:.3f}</td><td>{r["memory_bytes"] / 2**20:.2f}</td>'
            f'<td>{"yes" if r["feasible"] else "no"}</td>{cells}</tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(page['name'])}: Pareto front gallery</title>
<style>
body {{ font-family: sans-serif; background: #fafafa; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 6px; text-align: center; vertical-align: middle; }}
td.arch {{ text-align: left; font-family: monospace; }}
div.src {{ color: #777; font-size: 0.8em; font-family: sans-serif; max-width: 18em; }}
img.sample {{ image-rendering: pixelated; background: #000; }}
</style></head>
<body>
<h1>{e(page['name'])}: the Pareto front, sampled</h1>
<p>Campaign <code>{e(page['campaign'])}</code>. Every architecture gets the same prompts and the same
initial noise (seed {page['seed']}), {page['sample_steps']} Euler steps, guidance {page['cfg']}.
Latency per denoising step and peak memory are the lookup table's predictions.</p>
<table id="gallery">
<thead><tr><th>architecture</th><th>quality</th><th>latency ms</th><th>memory MiB</th><th>feasible</th>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""
