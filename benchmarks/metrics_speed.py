"""How fast are the metrics here, and how much does float16 transport of the Inception weights move FID?

Measures, on the current device (GPU if visible, else CPU):

1. Inception pool3 features per second for ``--num-images`` CIFAR-10 test images (after a warm-up batch);
2. wall time of FID for ``--num-images`` "generated" images against cached reference statistics
   (features + Fréchet distance; the reference statistics are computed once, then read from the cache);
3. the FID deviation between the float32 weights and the same weights round-tripped through float16
   (``state_dict`` half -> float), on the same two image sets (first half vs second half of the images).

Images come from the offline CIFAR-10 archive (``LT_DIFFUSION_ASSETS``) or from ``--npz`` (key
``images``). Example::

    LT_DIFFUSION_ASSETS=../shared/assets python benchmarks/metrics_speed.py --num-images 64 --batch-size 32
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch


def cifar_test_images(n: int, data_root: str | None) -> torch.Tensor:
    """First ``n`` images of the CIFAR-10 test split, spread over the classes: uint8 ``(n, 3, 32, 32)``."""
    from PIL import Image

    from lt_diffusion.assets import CIFAR10_ARCHIVE, find_asset

    archive = find_asset(CIFAR10_ARCHIVE, data_root)
    per_class = -(-n // 10)
    counts: dict[str, int] = {}
    out = []
    with tarfile.open(archive) as tf:
        for member in tf:
            parts = member.name.split("/")
            if len(parts) == 4 and parts[1] == "test" and member.isfile() and counts.get(parts[2], 0) < per_class:
                counts[parts[2]] = counts.get(parts[2], 0) + 1
                with tf.extractfile(member) as fh:
                    out.append(np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB")))
            if len(parts) >= 2 and parts[1] == "train":
                break
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]


def main(argv=None) -> dict:
    from lt_diffusion.metrics import InceptionFeatureExtractor, feature_stats, fid_from_stats, reference_stats
    from lt_diffusion.metrics.features import default_device, fid_state_dict
    from lt_diffusion.provenance import device_name

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-images", type=int, default=1000, help="images per measurement (>= 4)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 500 on GPU, 50 on CPU")
    p.add_argument("--device", default=None, help="default: cuda if available else cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--npz", default=None, help="images (.npz, key 'images') instead of CIFAR-10 test images")
    p.add_argument("--data-root", default=None, help="asset folder (default: LT_DIFFUSION_ASSETS)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    device = torch.device(args.device) if args.device else default_device()
    bs = args.batch_size or (500 if device.type == "cuda" else 50)
    n = args.num_images
    if n < 4:
        p.error("--num-images must be >= 4")
    if args.npz:
        from lt_diffusion.sampling import load_npz

        images = load_npz(args.npz)[0][:n]
    else:
        images = cifar_test_images(n, args.data_root)
    n = len(images)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    # 1. features per second
    t0 = time.perf_counter()
    ex = InceptionFeatureExtractor(device, bs, channels_last=args.channels_last, data_root=args.data_root)
    ex(images[: min(bs, n)], progress=False)  # warm-up (cuDNN autotune, allocator)
    build_s = time.perf_counter() - t0
    sync()
    t0 = time.perf_counter()
    feats = ex(images, progress=False)
    sync()
    feat_s = time.perf_counter() - t0

    # 2. FID of n images against cached reference stats (the first call fills the cache)
    key = f"bench-{'npz' if args.npz else 'cifar10-test'}-{n}"
    ref = reference_stats(key, lambda: images, device=device, batch_size=bs, data_root=args.data_root, progress=False)
    sync()
    t0 = time.perf_counter()
    ref = reference_stats(key, lambda: images, device=device, batch_size=bs, data_root=args.data_root, progress=False)
    fid_value = fid_from_stats(*feature_stats(ex(images, progress=False)), *ref)
    sync()
    fid_s = time.perf_counter() - t0

    # 3. float16 round trip of the weights, same two image sets (halves)
    half = n // 2
    sd = fid_state_dict(args.data_root)
    sd16 = {k: (v.half().float() if v.is_floating_point() else v) for k, v in sd.items()}
    ex16 = InceptionFeatureExtractor(device, bs, channels_last=args.channels_last, state_dict=sd16)
    feats16 = ex16(images, progress=False)
    fid32 = fid_from_stats(*feature_stats(feats[:half]), *feature_stats(feats[half:]))
    fid16 = fid_from_stats(*feature_stats(feats16[:half]), *feature_stats(feats16[half:]))
    rel_feat = float(np.linalg.norm(feats16 - feats) / np.linalg.norm(feats))

    out = {
        "device": device_name() if device.type == "cuda" else f"cpu ({device_name()}, {torch.get_num_threads()} threads)",
        "num_images": n,
        "batch_size": bs,
        "channels_last": args.channels_last,
        "network_build_and_warmup_s": round(build_s, 3),
        "features_per_s": round(n / feat_s, 2),
        "fid_vs_cached_stats_s": round(fid_s, 3),
        "fid_self_check": round(fid_value, 6),  # same images as the reference: ~0
        "fid_halves_fp32": fid32,
        "fid_halves_fp16_roundtrip": fid16,
        "fid_abs_diff": abs(fid16 - fid32),
        "fid_rel_diff": abs(fid16 - fid32) / abs(fid32),
        "feature_rel_l2_diff": rel_feat,
        "net_id_fp32": ex.net_id,
        "net_id_fp16": ex16.net_id,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
