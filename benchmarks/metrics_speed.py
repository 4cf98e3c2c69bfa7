"""How fast are the metrics here, and how much does float16 transport of the Inception weights move FID?

Measures, on the current device (GPU if visible, else CPU):

1. Inception pool3 features per second for ``--num-images`` CIFAR-10 test images (after a warm-up batch);
2. wall time of FID for ``--num-images`` "generated" images against cached reference statistics
   = that feature pass + reading the cached statistics, the set's mean/covariance and the Fréchet distance;
3. the FID deviation between the float32 weights and the same weights round-tripped through float16
   (``state_dict`` half -> float), on the first ``--fp16-images`` images (first half vs second half).

Every image passes the network at most twice (once, plus once more for the first ``--fp16-images``), so the
10k measurement is affordable on a CPU. With the float16 transport copy of the weights (the GPU bundle),
``weights_are_fp16_transport_copy`` is true and step 3 measures nothing.

Images come from the offline CIFAR-10 archive (``LT_DIFFUSION_ASSETS``) or from ``--npz`` (key
``images``). Example::

    LT_DIFFUSION_ASSETS=/path/to/assets python benchmarks/metrics_speed.py --num-images 64 --batch-size 32
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
    p.add_argument("--reference-images", type=int, default=500,
                   help="images behind the cached reference statistics (only fills the cache; default 500)")
    p.add_argument("--fp16-images", type=int, default=2000,
                   help="images for the float16 round-trip check (two halves; default 2000, capped at n)")
    p.add_argument("--progress", action="store_true", help="tqdm bars for the feature passes")
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
    m = min(args.fp16_images or n, n)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    # 1. features per second (one pass over the n images, after a warm-up batch)
    t0 = time.perf_counter()
    ex = InceptionFeatureExtractor(device, bs, channels_last=args.channels_last, data_root=args.data_root)
    ex(images[: min(bs, n)], progress=False)  # warm-up (cuDNN autotune, allocator)
    sync()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = ex(images, progress=args.progress)
    sync()
    feat_s = time.perf_counter() - t0

    # 2. FID of the n images against cached reference statistics = one feature pass (timed above) plus reading
    #    the cached (2048, 2048) statistics, the images' mean/covariance and the Frechet distance (timed here).
    #    The cost of step 2 does not depend on how many images made the reference, so a small reference set
    #    (filled into the cache first, untimed) stands in for the 50k training images.
    ref_images = images[: min(args.reference_images, n)]
    key = f"bench-{'npz' if args.npz else 'cifar10-test'}-first{len(ref_images)}"
    reference_stats(key, lambda: ref_images, device=device, batch_size=bs, data_root=args.data_root, progress=False)
    t0 = time.perf_counter()
    ref = reference_stats(key, lambda: ref_images, device=device, batch_size=bs, data_root=args.data_root,
                          progress=False)
    fid_value = fid_from_stats(*feature_stats(feats), *ref)
    stats_s = time.perf_counter() - t0

    # 3. float16 round trip of the weights on the first m images (two halves of m/2), against the float32
    #    features of the same images from step 1
    half = m // 2
    sd = fid_state_dict(args.data_root)
    sd16 = {k: (v.half().float() if v.is_floating_point() else v) for k, v in sd.items()}
    ex16 = InceptionFeatureExtractor(device, bs, channels_last=args.channels_last, state_dict=sd16)
    feats16 = ex16(images[:m], progress=args.progress)
    fid32 = fid_from_stats(*feature_stats(feats[:half]), *feature_stats(feats[half:m]))
    fid16 = fid_from_stats(*feature_stats(feats16[:half]), *feature_stats(feats16[half:m]))
    rel_feat = float(np.linalg.norm(feats16 - feats[:m]) / np.linalg.norm(feats[:m]))

    out = {
        "device": device_name() if device.type == "cuda" else f"cpu ({device_name()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "num_images": n,
        "batch_size": bs,
        "channels_last": args.channels_last,
        "network_build_and_warmup_s": round(build_s, 3),
        "features_s": round(feat_s, 3),
        "features_per_s": round(n / feat_s, 2),
        "stats_and_frechet_vs_cached_s": round(stats_s, 3),
        "fid_wall_s": round(feat_s + stats_s, 3),
        "reference_images": len(ref_images),
        "fid_vs_reference": round(fid_value, 6),
        "fp16_images": m,
        "fid_halves_fp32": fid32,
        "fid_halves_fp16_roundtrip": fid16,
        "fid_abs_diff": abs(fid16 - fid32),
        "fid_rel_diff": abs(fid16 - fid32) / abs(fid32),
        "feature_rel_l2_diff": rel_feat,
        "net_id_fp32": ex.net_id,
        "net_id_fp16": ex16.net_id,
        "weights_are_fp16_transport_copy": ex.net_id == ex16.net_id,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
