"""``hwnas sample``: a video from a trained model folder (``hwnas train``'s output)."""
from __future__ import annotations

import sys
import warnings

from nas.cli.common import emit_json


def register(sub) -> None:
    p = sub.add_parser("sample", help="sample a video from a trained model folder")
    p.add_argument("model", help="model folder written by `hwnas train`")
    p.add_argument("--prompt", required=True, help="the caption to follow")
    p.add_argument("--out", required=True, help="FILE.gif, FILE.mp4 or FILE.png (frames side by side)")
    p.add_argument("--frames", type=int, help="latent frames T (default: the experiment's)")
    p.add_argument("--steps", type=int, default=16, help="Euler steps (default 16)")
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--scale", type=int, default=8, help="pixel upscaling of the written frames (nearest)")
    p.add_argument("--vae", help="local diffusers AutoencoderKL that decodes the latents (default: the data "
                                 "set's own, e.g. the realistic set's small VAE; pixel latents need none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_sample)


def run_sample(args) -> int:
    from evaluators.model_dir import load_model
    from evaluators.sample import PromptTruncated, sample_to_file

    trained = load_model(args.model, args.device)
    if args.frames is not None and args.frames < 1:
        from nas.cli.common import CliError

        raise CliError(f"--frames {args.frames}: must be at least 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptTruncated)
        out = sample_to_file(trained, args.prompt, args.out, args.frames, args.steps, args.cfg, args.seed,
                             args.fps, args.scale, args.vae)
    notes = [str(w.message) for w in caught if issubclass(w.category, PromptTruncated)]
    for note in notes:
        print(f"hwnas: warning: {note}", file=sys.stderr)
    out["warnings"] = notes
    if args.json:
        emit_json(out)
    else:
        print(f"{out['out']}: {out['frames']} frames of {out['size'][0]}x{out['size'][1]}, {args.steps} Euler steps, "
              f"cfg {args.cfg}, seed {args.seed}, {out['arch']}")
    return 0
