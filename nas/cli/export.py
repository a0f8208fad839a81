"""``hwnas export``: a trained model folder to Core ML or ONNX, with the checks that run here."""
from __future__ import annotations

from nas.cli.common import emit_json


def register(sub) -> None:
    p = sub.add_parser("export", help="export a trained model folder (whole video UNet) to Core ML or ONNX")
    p.add_argument("model", help="model folder written by `hwnas train`")
    p.add_argument("--format", required=True, choices=("coreml", "onnx"))
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--parts", type=int, default=1, help="split into N programs of about equal weight size")
    p.add_argument("--steps", type=int, default=4, help="sampler steps whose timestep embeddings are precomputed")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime / op-listing checks")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from nas.export import export_model

    report = export_model(args.model, args.format, args.out, args.parts, args.steps, check=not args.no_check)
    if args.json:
        emit_json(report)
        return 0
    print(f"{report['arch']} -> {args.out} ({report['format']}, {len(report['parts'])} part(s), "
          f"{report['total_bytes'] / 2**20:.2f} MiB; timestep embeddings for {args.steps} steps)")
    for p in report["parts"]:
        line = f"  {p['path']}: {p['bytes'] / 2**20:.2f} MiB, stages {p['stages'][0]}..{p['stages'][-1]}"
        if "onnxruntime" in p:
            o = p["onnxruntime"]
            line += (f", ONNX Runtime vs torch max abs error {o['max_abs_error']:.3g}" if o["status"] == "ok"
                     else f", ONNX Runtime check {o['status']}: {o['reason']}")
        if "macos_check" in p and p["macos_check"]["status"] != "ok":
            line += f", Core ML numerical check {p['macos_check']['status']}: {p['macos_check'].get('reason', '')}"
        print(line)
    check = report.get("op_check")
    if check:
        print(f"  op check: {'ok' if check['ok'] else 'FAILED'} ({check['temporal_layers']} temporal layers; "
              f"signature ops {check['signature_ops']}; missing {check['missing'] or 'none'}; "
              f"unsupported ops {check['unsupported'] or 'none'})")
    return 0
