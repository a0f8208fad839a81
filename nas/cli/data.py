"""``hwnas data synth|show``: the built-in captioned video-latent set, and a dataset's summary."""
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
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_synth)

    p = data.add_parser("show", help="check a dataset directory and summarise it")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_show)


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
