"""``hwnas data synth|encode|show``: the built-in captioned set, real videos through a real VAE and
text encoder, and a dataset's summary."""
from __future__ import annotations

import time

from nas.cli.common import CliError, emit_json, load_experiment


def register(sub) -> None:
    data = sub.add_parser("data", help="video-latent datasets").add_subparsers(dest="action", required=True)
    p = data.add_parser("synth", help="write the built-in captioned video-latent dataset")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--config", help="experiment YAML whose video size and text tokens to use (default: tiny)")
    p.add_argument("--videos", type=int, default=512, help="clips in all (default 512)")
    p.add_argument("--val-videos", type=int, default=64, help="clips held out for validation (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text-encoder", choices=("builtin", "minilm"), default="builtin")
    p.add_argument("--set", choices=("shapes", "realistic"), default="shapes",
                   help="shapes: coloured shapes as RGB pixels (default); realistic: pans, zooms and cut-outs over "
                        "bundled photos through a small VAE (4-channel latents)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_synth)

    p = data.add_parser("encode", help="encode captioned videos with a local VAE and text encoder")
    p.add_argument("videos", metavar="VIDEOS", help="folder of mp4/webm/gif/mkv/mov files or folders of frames")
    p.add_argument("--captions", required=True, help="CSV (header row) or JSONL: video and caption columns")
    p.add_argument("--vae", required=True, help="local diffusers AutoencoderKL folder (or a pipeline with vae/)")
    p.add_argument("--text-encoder", required=True,
                   help="local CLIP text model folder (or a pipeline with text_encoder/ and tokenizer/), "
                        "or minilm, or builtin")
    p.add_argument("--frames", type=int, required=True, help="frames T per clip")
    p.add_argument("--size", required=True, help="HxW in pixels (resize to cover, then centre-crop)")
    p.add_argument("--fps", type=float, help="sample frames at this rate (default: the clip's own frames)")
    p.add_argument("--device", default="cpu", help="torch device for the VAE and text encoder (default cpu)")
    p.add_argument("--batch", type=int, default=8, help="clips per VAE call (default 8)")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.add_argument("--val-fraction", type=float, default=0.1, help="clips held out for validation (default 0.1)")
    p.add_argument("--val-videos", type=int, help="clips held out for validation (overrides --val-fraction)")
    p.add_argument("--shard-size", type=int, default=64, help="clips per shard (default 64)")
    p.add_argument("--tokens", type=int, help="text tokens L (default: the tokenizer's max length; 77 otherwise)")
    p.add_argument("--text-dim", type=int, help="text width D for builtin/minilm")
    p.add_argument("--config", help="experiment YAML to check against (UNet in_channels, cross_attention_dim, "
                                    "space.video, space.text.tokens) before any work")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_encode)

    p = data.add_parser("show", help="check a dataset directory and summarise it")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_show)


def _dataset_summary(data) -> dict:
    report = data.meta.get("report") or {}
    skipped = report.get("skipped", [])
    return {"dir": str(data.root), "clips": len(data), "train_videos": data.count("train"),
            "val_videos": data.count("val"), "frames": data.latent_shape[0],
            "latent_shape": list(data.latent_shape), "text_shape": list(data.text_shape),
            "text_width": data.text_shape[1], "encoder": data.meta.get("encoder"),
            "transform": data.meta.get("transform"), "skipped_clips": len(skipped),
            "skipped": [f"{s['video']}: {s['reason']}" for s in skipped]}


def _print_summary(title: str, info: dict) -> None:
    print(title)
    for key, value in info.items():
        if key == "skipped":
            for line in value[:20]:
                print(f"    skipped {line}")
            if len(value) > 20:
                print(f"    ... and {len(value) - 20} more (meta.json report)")
        else:
            print(f"  {key}: {value}")


def run_synth(args) -> int:
    from evaluators.data import LatentDataset
    from evaluators.synth import synthesise

    if args.videos < 2 or not 1 <= args.val_videos < args.videos:
        raise CliError(f"--videos {args.videos} / --val-videos {args.val_videos}: need 1 <= val-videos < videos")
    frames, height, width, tokens, dim = 8, 16, 16, 8, 32
    want = 4 if args.set == "realistic" else 3
    if args.config:
        from search_spaces.space import SearchSpace

        space = SearchSpace(load_experiment(args.config).space)
        _, frames, channels, height, width = space.video_shape
        _, tokens, dim = space.text_shape
        if channels != want:
            what = "4-channel VAE latents" if want == 4 else "RGB pixels (3 channels)"
            raise CliError(f"{args.config}: the {args.set} set is {what}; the backbone takes {channels}")
    start = time.perf_counter()
    if args.set == "realistic":
        from pathlib import Path

        from evaluators.realistic import synthesise_realistic

        synthesise_realistic(args.out, args.videos, args.val_videos, frames, height, width, tokens, dim, args.seed,
                             args.text_encoder, cache_dir=Path(args.out).parent / ".hwnas-cache")
    else:
        synthesise(args.out, args.videos, args.val_videos, frames, height, width, tokens, dim, args.seed,
                   args.text_encoder)
    info = _dataset_summary(LatentDataset(args.out)) | {"seconds": round(time.perf_counter() - start, 3)}
    if args.json:
        emit_json(info)
    else:
        _print_summary(f"wrote {args.out}", info)
    return 0


def run_encode(args) -> int:
    from core.progress import Progress
    from evaluators.data import LatentDataset
    from evaluators.encode import EncodeSettings, encode_dataset, parse_size

    height, width = parse_size(args.size)
    settings = EncodeSettings(args.frames, height, width, args.fps, args.val_fraction, args.val_videos,
                              args.shard_size, args.batch, args.seed, args.tokens, args.text_dim)
    unet_config = None
    if args.config:
        from evaluators.encode import check_against_space
        from search_spaces.space import SearchSpace

        space = SearchSpace(load_experiment(args.config).space)
        unet_config = space.unet_config
        settings = check_against_space(space, settings, args.vae, args.config)
    start = time.perf_counter()
    with Progress() as progress:
        encode_dataset(args.videos, args.captions, args.vae, args.text_encoder, args.out, settings, args.device,
                       unet_config, progress)
    info = _dataset_summary(LatentDataset(args.out)) | {"seconds": round(time.perf_counter() - start, 3)}
    emit_json(info) if args.json else _print_summary(f"wrote {args.out}", info)
    return 0


def run_show(args) -> int:
    from evaluators.data import LatentDataset

    data = LatentDataset(args.dir)
    for split in ("train", "val"):
        data.load(split)  # reads every shard: corrupt ones fail here
    info = _dataset_summary(data) | {"shards": len(data.meta["shards"])}
    emit_json(info) if args.json else _print_summary(f"dataset {args.dir}", info)
    return 0
