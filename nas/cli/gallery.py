"""``hwnas pareto gallery``: one animated sample per front architecture (registered under ``pareto``)."""
from __future__ import annotations

from nas.cli.common import CliError, emit_json


def register(pareto) -> None:
    p = pareto.add_parser("gallery", help="an HTML page: one animated sample per front architecture beside its "
                                          "quality, latency and memory")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--out", required=True, help="gallery.html (its GIFs go to gallery_files/ beside it)")
    p.add_argument("--prompt", action="append", dest="prompts", help="a prompt (repeat; default: three built-in)")
    p.add_argument("--models", nargs="*", default=[], help="trained model folders to use for their architectures")
    p.add_argument("--train-steps", type=int, help="brief training of an architecture without stored weights "
                                                   "(default: the campaign's K)")
    p.add_argument("--steps", type=int, default=16, help="Euler steps per sample")
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise shared by every architecture")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_gallery)


def run_gallery(args) -> int:
    from nas.campaign import Campaign
    from nas.gallery import DEFAULT_PROMPTS, build_gallery

    if args.steps < 1:
        raise CliError(f"--steps {args.steps}: must be at least 1")
    page = build_gallery(Campaign.open(args.dir), args.out, args.prompts or DEFAULT_PROMPTS, args.models,
                         args.train_steps, args.steps, args.cfg, args.seed, progress=not args.json)
    if args.json:
        emit_json(page)
    else:
        print(f"{args.out}: {len(page['rows'])} architectures x {len(page['prompts'])} prompts")
    return 0
