"""Metrics against their reference implementations, on real CIFAR-10 test images.

Image sets (from the offline archive, CIFAR-10 *test* split, first files by name):
  airplane[:12] (folder A), airplane[12:24] (A2), automobile[:12] (folder B), all 32x32 PNGs.
Inception features of each set are computed once per module (CPU: ~0.2-0.4 s per image on 2 cores), and
every other network call uses 2-4 images, to keep the module around a minute of CPU time.
Small sets make FID heavily biased; the tests compare values only against each other and against
pytorch-fid on the same images.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

ASSETS = Path(os.environ.get("LT_DIFFUSION_ASSETS", "/work/shared/assets"))
ARCHIVE = ASSETS / "cifar10-png.tar.gz"
INCEPTION = ASSETS / "pt_inception-2015-12-05-nofc.pth"
BATCH = 50  # same batch size as the pytorch-fid reference call

pytestmark = pytest.mark.skipif(
    not (ARCHIVE.is_file() and INCEPTION.is_file()), reason=f"offline assets not found in {ASSETS}"
)


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    """Offline asset folder and a private cache for this module (restored afterwards); single-threaded
    BLAS, which cuts the CPU time of scipy's sqrtm (FID) threefold on a busy small machine."""
    from threadpoolctl import threadpool_limits

    saved = {k: os.environ.get(k) for k in ("LT_DIFFUSION_ASSETS", "LT_DIFFUSION_CACHE")}
    os.environ["LT_DIFFUSION_ASSETS"] = str(ASSETS)
    os.environ["LT_DIFFUSION_CACHE"] = str(tmp_path_factory.mktemp("lt_cache"))
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """Extract 24 airplane and 12 automobile test PNGs (streaming; stops after automobile)."""
    root = tmp_path_factory.mktemp("cifar")
    want = {"airplane": 24, "automobile": 12}
    got: dict[str, list[Path]] = {k: [] for k in want}
    with tarfile.open(ARCHIVE) as tf:
        for member in tf:
            parts = member.name.split("/")
            if len(parts) != 4 or parts[1] != "test" or not member.isfile():
                if len(parts) >= 3 and parts[1] == "test" and parts[2] > "automobile":
                    break
                continue
            cls = parts[2]
            if cls in want and len(got[cls]) < want[cls]:
                target = root / "all" / cls / parts[3]
                target.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                got[cls].append(target)
            if all(len(got[k]) == want[k] for k in want):
                break
    folders = {}
    for name, files in {"A": got["airplane"][:12], "A2": got["airplane"][12:24], "B": got["automobile"][:12]}.items():
        d = root / name
        d.mkdir()
        for f in files:
            shutil.copy(f, d / f.name)
        folders[name] = d
    return folders


@pytest.fixture(scope="module")
def images(cifar):
    from lt_diffusion.metrics.features import as_image_tensor

    return {k: as_image_tensor(v) for k, v in cifar.items()}  # uint8 (12, 3, 32, 32)


@pytest.fixture(scope="module")
def feats(cifar):
    from lt_diffusion.metrics import compute_features

    return {k: compute_features(v, device="cpu", batch_size=BATCH, progress=False) for k, v in cifar.items()}


# --------------------------------------------------------------------------------------------------
# features and input validation
# --------------------------------------------------------------------------------------------------
def test_features_shape_dtype_and_input_forms(feats, images):
    from lt_diffusion.metrics import compute_features
    from lt_diffusion.metrics.features import as_image_tensor

    f = feats["A"]
    assert f.shape == (12, 2048) and f.dtype == np.float64
    assert np.isfinite(f).all() and (f >= 0).all()  # pool3 after ReLU
    x = images["A"][:2]
    # every accepted form becomes the same NCHW tensor ...
    for form in (x.permute(0, 2, 3, 1).numpy(), x.numpy(), list(x), [im.permute(1, 2, 0) for im in x]):
        assert torch.equal(as_image_tensor(form), x)
    # ... and float input in [0, 1] gives the features of the uint8 images (uint8 -> /255 as ToTensor)
    out = compute_features(x.float() / 255, device="cpu", batch_size=2, progress=False)
    np.testing.assert_allclose(out, f[:2], rtol=1e-4, atol=1e-5)


def test_npz_input_and_channels_last(tmp_path, images, feats):
    from lt_diffusion.metrics import InceptionFeatureExtractor
    from lt_diffusion.sampling import save_npz

    save_npz(tmp_path / "a.npz", images["A"][:2])
    ex = InceptionFeatureExtractor("cpu", batch_size=2, channels_last=True)
    out = ex(tmp_path / "a.npz", progress=False)
    np.testing.assert_allclose(out, feats["A"][:2], rtol=1e-4, atol=1e-4)
    assert ex.net_id.startswith("pytorch-fid-inception-2015-12-05-pool3-") and len(ex.net_id.split("-")[-1]) == 12


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(4, 3, 8, 8) * 2 - 1, r"\[0, 1\]"),  # model output in [-1, 1]
        (torch.full((4, 3, 8, 8), float("nan")), r"\[0, 1\]"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "at least 2"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.uint8), "colour channels"),
        (torch.zeros(4, 3, 8, 8, dtype=torch.int64), "dtype"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), "shape"),
        ([torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 9, 9, dtype=torch.uint8)], "different shapes"),
        ("not/a/file.txt", None),
    ],
)
def test_invalid_images_raise(bad, match):
    from lt_diffusion.metrics.features import as_image_tensor

    if isinstance(bad, str):
        with pytest.raises(FileNotFoundError):
            as_image_tensor(bad)
    else:
        with pytest.raises(ValueError, match=match):
            as_image_tensor(bad)


def test_png_folder_with_mismatched_sizes_raises(tmp_path):
    from PIL import Image

    from lt_diffusion.metrics.features import as_image_tensor

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 9)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="different shapes"):
        as_image_tensor(tmp_path)


def test_missing_weights_raise_asset_error(tmp_path):
    from lt_diffusion.assets import AssetNotFoundError
    from lt_diffusion.metrics import compute_features

    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(AssetNotFoundError, match="pt_inception"):
        compute_features(x, device="cpu", data_root=tmp_path, progress=False)


# --------------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------------
def _lo(f: np.ndarray) -> np.ndarray:
    """First 256 feature dimensions. The Fréchet distance of 2048-d statistics costs ~15 s of CPU here
    (scipy sqrtm of a 2048x2048 matrix), so only the pytorch-fid agreement test pays for it (twice);
    the other FID tests check properties on 256-d slices (sqrtm ~0.1 s)."""
    return f[:, :256]


def test_frechet_distance_matches_pytorch_fid(feats):
    from pytorch_fid.fid_score import calculate_frechet_distance

    from lt_diffusion.metrics import feature_stats, fid_from_stats

    (m1, s1), (m2, s2) = feature_stats(feats["A"]), feature_stats(feats["B"])
    np.testing.assert_allclose(m1, feats["A"].mean(0))
    np.testing.assert_allclose(s1, np.cov(feats["A"], rowvar=False))
    (m1, s1), (m2, s2) = feature_stats(_lo(feats["A"])), feature_stats(_lo(feats["B"]))
    ours = fid_from_stats(m1, s1, m2, s2)
    ref = float(calculate_frechet_distance(m1, s1, m2, s2))
    assert ours == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        fid_from_stats(m1, s1, m2[:10], s2)


@pytest.mark.slow   # Inception features of 2 x 100 images on CPU (~35 s)
def test_fid_end_to_end_matches_pytorch_fid_paths(cifar, feats):
    """FID of two PNG folders (12 + 12 images) equals pytorch-fid's calculate_fid_given_paths.

    pytorch-fid is pointed at the offline weights with the assets README's patch; batch size 50 on both
    sides, dims 2048, CPU, num_workers 0. Its per-folder statistics (recorded on the way through) equal ours
    from ``compute_features`` bit for bit, so both sides feed the Fréchet distance the same numbers. Our
    distance takes the exact low-rank route (``fid_features_to_stats``, N - 1 < D), equal to the SciPy
    ``sqrtm`` form (tested against pytorch-fid below), which saves a second 2048 x 2048 matrix square root.
    """
    import pytorch_fid.fid_score as pfs
    import pytorch_fid.inception as pfi

    from lt_diffusion.assets import fid_inception_state_dict
    from lt_diffusion.metrics import feature_stats, fid_features_to_stats

    sd = dict(fid_inception_state_dict())
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    seen = []
    original_load, original_stats = pfi.load_state_dict_from_url, pfs.compute_statistics_of_path

    def recording_stats(*args, **kwargs):
        seen.append(original_stats(*args, **kwargs))
        return seen[-1]

    pfi.load_state_dict_from_url = lambda *a, **k: sd
    pfs.compute_statistics_of_path = recording_stats
    try:
        ref = float(pfs.calculate_fid_given_paths([str(cifar["A"]), str(cifar["B"])], BATCH, "cpu", 2048, num_workers=0))
    finally:
        pfi.load_state_dict_from_url, pfs.compute_statistics_of_path = original_load, original_stats
    assert len(seen) == 2
    for (mu_ref, sigma_ref), ours in zip(seen, (feature_stats(feats["A"]), feature_stats(feats["B"]))):
        np.testing.assert_array_equal(ours.mu, mu_ref)
        np.testing.assert_array_equal(ours.sigma, sigma_ref)
    fid_ab = fid_features_to_stats(feats["A"], *feature_stats(feats["B"]))  # airplane 12 vs automobile 12, 2048-d
    assert fid_ab == pytest.approx(ref, abs=1e-3)
    assert ref > 100  # airplanes vs cars


def test_fid_halves_much_closer_than_other_class(feats):
    from lt_diffusion.metrics import fid

    same = fid(_lo(feats["A"]), _lo(feats["A2"]))  # airplane 12 vs the next airplane 12
    other = fid(_lo(feats["A"]), _lo(feats["B"]))  # airplane 12 vs automobile 12
    assert same < 0.6 * other, (same, other)


def test_fid_symmetric_zero_on_itself_and_accepts_stats(feats):
    from lt_diffusion.metrics import feature_stats, fid

    a, a2, b = _lo(feats["A"]), _lo(feats["A2"]), _lo(feats["B"])
    for x, y in ((a, a2), (a, b)):
        assert fid(x, y) == pytest.approx(fid(y, x), rel=1e-6)
    assert abs(fid(a, a)) < 1e-6 * fid(a, b)
    assert fid(a, feature_stats(b)) == pytest.approx(fid(a, b), rel=1e-12)  # FIDStats accepted
    assert fid(torch.from_numpy(a), b) == pytest.approx(fid(a, b), rel=1e-12)  # 2-D tensors are features


def test_reference_stats_cached_on_disk(images, feats):
    from lt_diffusion.metrics import dataset_reference_stats, feature_stats
    from lt_diffusion.paths import cache_dir

    calls = []

    def load():
        calls.append(1)
        return images["B"][:4]

    s1 = dataset_reference_stats("cifar10", "test", load, subset="automobile4", device="cpu", progress=False)
    s2 = dataset_reference_stats("cifar10", "test", load, subset="automobile4", device="cpu", progress=False)
    assert len(calls) == 1
    files = list((cache_dir() / "fid_stats").glob("cifar10-test-automobile4__pytorch-fid-inception-*.npz"))
    assert len(files) == 1
    ref = feature_stats(feats["B"][:4])
    np.testing.assert_allclose(s2.mu, ref.mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(s1.sigma, s2.sigma)


def test_per_class_and_group_fid(feats):
    from lt_diffusion.metrics import fid_from_features, group_fid, per_class_fid

    real = np.concatenate([_lo(feats["A"]), _lo(feats["B"])])
    gen = np.concatenate([_lo(feats["A2"]), _lo(feats["B"])])
    y = np.repeat([0, 1], 12)
    pcf = per_class_fid(gen, y, real, y, classes=[0, 1])
    assert pcf[0] == pytest.approx(fid_from_features(_lo(feats["A2"]), _lo(feats["A"])), rel=1e-9)
    assert abs(pcf[1]) < 1e-3  # identical images
    grp = group_fid(pcf, {"head": [0], "tail": [1], "all": [0, 1]}, gen_images=gen, gen_labels=y,
                    real_images=real, real_labels=y)
    assert grp["head"]["mean_class_fid"] == pytest.approx(pcf[0])
    assert grp["head"]["union_fid"] == pytest.approx(pcf[0], rel=1e-9)
    assert grp["all"]["mean_class_fid"] == pytest.approx((pcf[0] + pcf[1]) / 2)
    assert grp["all"]["union_fid"] == pytest.approx(fid_from_features(gen, real), rel=1e-9)
    assert "union_fid" not in group_fid(pcf, {"head": [0]})["head"]
    with pytest.raises(ValueError, match="FID needs >= 2"):
        per_class_fid(gen, y, real, y, classes=[2])


# --------------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------------
def test_kid_matches_torchmetrics_poly_mmd(feats):
    from torchmetrics.image.kid import poly_mmd

    from lt_diffusion.metrics import kid, polynomial_mmd2

    a, b = torch.from_numpy(feats["A"]), torch.from_numpy(feats["B"])
    ref = float(poly_mmd(a, b))
    # subset_size = N: every subset is the whole set, and unbiased MMD^2 does not depend on the order
    mean, std = kid(feats["A"], feats["B"], subset_size=12, num_subsets=3)
    assert mean == pytest.approx(ref, rel=1e-9) and std < 1e-9 * abs(ref)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 40, 16, generator=g, dtype=torch.float64), torch.randn(3, 40, 16, generator=g, dtype=torch.float64) + 0.3
    ours = polynomial_mmd2(x, y)
    for i in range(3):
        assert float(ours[i]) == pytest.approx(float(poly_mmd(x[i], y[i])), rel=1e-10)


def test_kid_self_near_zero_shift_positive_and_seeded():
    from lt_diffusion.metrics import kid

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 64))
    x2 = rng.normal(size=(600, 64))
    same = kid(x, x2, subset_size=200, num_subsets=20, seed=1)
    itself = kid(x, x, subset_size=200, num_subsets=20, seed=1)
    shifted = kid(x, x2 + 0.5, subset_size=200, num_subsets=20, seed=1)
    # two samples of one distribution: zero within the spread over subsets
    assert abs(same[0]) < 3 * same[1]
    # a set against itself: subsets drawn independently share points, which biases the estimate slightly
    # negative (here -0.023); still ~0 next to a real difference (0.94 for a 0.5 shift in 64-d)
    assert abs(itself[0]) < 0.05 * shifted[0]
    assert shifted[0] > 10 * max(abs(same[0]), same[1], abs(itself[0])) and shifted[0] > 20 * shifted[1]
    assert kid(x, x2, subset_size=200, num_subsets=20, seed=1) == same  # seeded
    assert kid(x, x2, subset_size=200, num_subsets=20, seed=2) != same


def test_kid_real_features(feats):
    from lt_diffusion.metrics import kid

    # with 12 images the unbiased estimate of a set against itself is not 0 (it is -2/m times the mean
    # gap between k(x, x) and k(x, y)); the same-distribution check is in the Gaussian test above
    other, _ = kid(feats["A"], feats["B"], num_subsets=10)
    same_class, _ = kid(feats["A"], feats["A2"], num_subsets=10)
    assert other > 0 and same_class < 0.6 * other, (same_class, other)


# --------------------------------------------------------------------------------------------------
# precision / recall, rarity
# --------------------------------------------------------------------------------------------------
def _brute_prdc(real, gen, k):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_gg = np.linalg.norm(gen[:, None] - gen[None], axis=-1)
    d_gr = np.linalg.norm(gen[:, None] - real[None], axis=-1)
    r_r = np.sort(d_rr, axis=1)[:, k]
    r_g = np.sort(d_gg, axis=1)[:, k]
    inside = d_gr <= r_r[None]
    return {
        "precision": inside.any(1).mean(),
        "recall": (d_gr <= r_g[:, None]).any(0).mean(),
        "density": inside.sum() / (k * len(gen)),
        "coverage": (d_gr.min(0) <= r_r).mean(),
    }


def test_prdc_matches_brute_force_and_identical_sets(feats):
    from lt_diffusion.metrics import prdc, precision_recall

    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 8))
    gen = rng.normal(size=(90, 8)) * 1.3 + 0.4
    ours = prdc(real, gen, k=3, chunk=32)
    ref = _brute_prdc(real, gen, 3)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1
    assert precision_recall(feats["A"], feats["A"]) == (1.0, 1.0)
    assert prdc(feats["A"], feats["A"])["coverage"] == 1.0


def test_rarity_metrics(feats):
    from sklearn.neighbors import NearestNeighbors

    from lt_diffusion.metrics import avg_knn_distance, local_outlier_factor, rarity_score

    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 5))
    gen = np.concatenate([rng.normal(size=(20, 5)) * 0.5, np.full((2, 5), 8.0)])  # 2 far outliers
    akd = avg_knn_distance(gen, real, k=5, chunk=7)
    ref = NearestNeighbors(n_neighbors=5).fit(real).kneighbors(gen)[0].mean(1)
    np.testing.assert_allclose(akd, ref, rtol=1e-10)
    lof = local_outlier_factor(gen, real, k=20)
    assert lof.shape == (22,) and np.median(lof[:20]) < 1.3 and lof[20:].min() > 3
    rs = rarity_score(gen, real, k=3)
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    radii = np.sort(d_rr, axis=1)[:, 3]
    d = np.linalg.norm(gen[:, None] - real[None], axis=-1)
    ref_scores = np.where(d <= radii[None], radii[None], np.inf).min(1)
    inside = np.isfinite(ref_scores)
    assert rs.num_outside == (~inside).sum() >= 2 and not rs.inside[20:].any()
    np.testing.assert_allclose(rs.scores[inside], ref_scores[inside], rtol=1e-10)
    assert np.isnan(rs.scores[~inside]).all() and np.isfinite(rs.mean)
    # Inception space: a set is never outside its own manifold
    assert rarity_score(feats["A"], feats["A"]).num_outside == 0


# --------------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------------
def test_inception_score_known_values():
    from lt_diffusion.metrics import inception_score

    assert inception_score(torch.zeros(100, 10), splits=10) == pytest.approx((1.0, 0.0), abs=1e-12)
    confident = torch.full((100, 10), -1e4)
    confident[torch.arange(100), torch.arange(100) % 10] = 0.0  # each split holds all 10 classes once
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-9) and std < 1e-9
    # direct formula on random logits, one split
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = logits.softmax(1)
    expected = torch.exp((p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean())
    assert inception_score(logits, splits=1)[0] == pytest.approx(float(expected), rel=1e-10)
    # classifier callable on images
    clf = lambda x: x.mean((2, 3)) * 10  # noqa: E731  (B, 3) logits
    imgs = torch.rand(20, 3, 4, 4)
    via_fn = inception_score(clf, splits=2, images=imgs, device="cpu")
    assert via_fn[0] == pytest.approx(inception_score(clf(imgs), splits=2)[0], rel=1e-6)
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.zeros(5, 10), splits=10)


def test_inception_score_from_images_offline_unavailable_and_with_fc(images):
    from lt_diffusion.assets import fid_inception_state_dict
    from lt_diffusion.metrics import InceptionScoreUnavailable, inception_score_from_images

    with pytest.raises(InceptionScoreUnavailable, match="no 'fc'"):
        inception_score_from_images(images["A"][:2], splits=1, device="cpu")
    sd = dict(fid_inception_state_dict())
    g = torch.Generator().manual_seed(0)
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1008, 2048, generator=g) * 0.05, torch.zeros(1008)
    mean, _ = inception_score_from_images(images["A"][:2], splits=1, device="cpu", state_dict=sd)
    assert 1.0 < mean <= 2.0 + 1e-9  # 2 images in the split -> IS <= 2


# --------------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------------
def test_lpips_equals_package_and_zero_for_identical(images):
    import lpips
    import torch.nn.functional as F

    from lt_diffusion.assets import alexnet_features_state_dict
    from lt_diffusion.metrics import LPIPS_RESOLUTION, lpips_distance

    a = images["A"][:6].float() / 127.5 - 1
    b = images["B"][:6].float() / 127.5 - 1
    ours = lpips_distance(a, b, device="cpu")
    assert ours.shape == (6,) and ours.dtype == torch.float32
    # the lpips package itself, set up independently with the README recipe
    sd = alexnet_features_state_dict()
    ref_fn = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for name, m in ref_fn.net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            i = name.split(".")[-1]
            m.weight.data.copy_(sd[f"features.{i}.weight"])
            m.bias.data.copy_(sd[f"features.{i}.bias"])
    ref_fn.eval()
    up = lambda x: F.interpolate(x, size=(LPIPS_RESOLUTION,) * 2, mode="bilinear", align_corners=False)  # noqa: E731
    with torch.no_grad():
        ref = ref_fn(up(a), up(b)).flatten()
    assert torch.equal(ours, ref)
    assert 0.2 < float(ours.mean()) < 1.0  # README: 0.50 mean at 64x64 for different CIFAR pairs
    assert torch.all(lpips_distance(a, a, device="cpu") == 0)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        lpips_distance(images["A"][:2].float(), images["A"][:2].float(), device="cpu")


def test_frechet_backends_agree():
    """torchmetrics' eigenvalue form (the fast GPU path) equals pytorch-fid's sqrtm form to 1e-6 relative."""
    from lt_diffusion.metrics import fid_from_stats

    rng = np.random.default_rng(0)
    d = 256
    a, b = rng.standard_normal((2 * d, d)), rng.standard_normal((2 * d, d)) @ rng.standard_normal((d, d)) * 0.3 + 0.5
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = fid_from_stats(mu1, s1, mu2, s2, backend="pytorch-fid")
    fast = fid_from_stats(mu1, s1, mu2, s2, backend="torchmetrics")
    assert ref > 1.0
    assert abs(fast - ref) / ref < 1e-6
    with pytest.raises(ValueError, match="backend"):
        fid_from_stats(mu1, s1, mu2, s2, backend="nope")


@pytest.mark.parametrize("n_gen,n_real,d", [(10, 40, 64), (30, 300, 64), (20, 30, 256), (100, 50, 32)])
def test_fid_features_to_stats_equals_pytorch_fid(n_gen, n_real, d):
    """The low-rank route (N - 1 < D) and the delegation (N - 1 >= D) give pytorch-fid's distance."""
    from lt_diffusion.metrics import feature_stats, fid_features_to_stats, fid_from_stats

    rng = np.random.default_rng(n_gen + d)
    a = rng.normal(size=(n_gen, d)) + 0.3
    b = rng.normal(size=(n_real, d)) * 1.2
    ref, gen = feature_stats(b), feature_stats(a)
    expected = fid_from_stats(gen.mu, gen.sigma, ref.mu, ref.sigma, backend="pytorch-fid")
    assert fid_features_to_stats(a, ref.mu, ref.sigma) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        fid_features_to_stats(a, ref.mu[:-1], ref.sigma)


# --------------------------------------------------------------------------------------------------
# bad input: refused with the tensor's name, or handled correctly
# --------------------------------------------------------------------------------------------------
def test_lpips_input_forms_and_ranges(images):
    from lt_diffusion.metrics import lpips_distance

    a8, b8 = images["A"][:4], images["B"][:4]
    pm1 = lambda x: x.float() / 127.5 - 1  # noqa: E731
    ref = lpips_distance(pm1(a8), pm1(b8), device="cpu")
    # uint8, as every metric here accepts, is the same computation as its [-1, 1] form
    assert torch.equal(lpips_distance(a8, b8, device="cpu"), ref)
    # [0, 1] images with their range declared give the same distances (up to float rounding)
    unit = lpips_distance(a8.float() / 255, b8.float() / 255, value_range=(0, 1), device="cpu")
    torch.testing.assert_close(unit, ref, rtol=1e-4, atol=1e-5)
    # undeclared [0, 1] input cannot be told from [-1, 1] input: refused, because taken as [-1, 1] it changes
    # LPIPS (what the explicit, wrong declaration below computes)
    with pytest.raises(ValueError, match=r"cannot be told: pass value_range=\(0, 1\)"):
        lpips_distance(a8.float() / 255, b8.float() / 255, device="cpu")
    wrong = lpips_distance(a8.float() / 255, b8.float() / 255, value_range=(-1, 1), device="cpu")
    assert (wrong - ref).abs().max() > 0.02
    # [-1, 1] input declared as [0, 1] is told apart by its negative values
    with pytest.raises(ValueError, match=r"look like model-range images: pass value_range=\(-1, 1\)"):
        lpips_distance(pm1(a8), pm1(b8), value_range=(0, 1), device="cpu")
    nan = pm1(b8)
    nan[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"^b: 1 non-finite value"):
        lpips_distance(pm1(a8), nan, device="cpu")
    with pytest.raises(ValueError, match="NHWC"):
        lpips_distance(a8.permute(0, 2, 3, 1), b8.permute(0, 2, 3, 1), device="cpu")


def test_nonfinite_features_are_refused_by_every_metric(feats):
    from lt_diffusion.metrics import (feature_stats, fid, fid_features_to_stats, fid_from_stats, kid, prdc,
                                      rarity_score)

    good, bad = _lo(feats["A"]), _lo(feats["B"]).copy()
    bad[3, 7] = np.nan
    bad[5, 0] = np.inf
    rows = r"2 of 12 feature rows hold NaN/inf \(rows \[3, 5\]\)"
    with pytest.raises(ValueError, match=rows):
        fid(good, bad)
    with pytest.raises(ValueError, match="feats_b: " + rows):
        kid(good, bad, subset_size=6, num_subsets=2)
    with pytest.raises(ValueError, match="gen_feats: " + rows):
        prdc(good, bad)
    with pytest.raises(ValueError, match="gen_feats: " + rows):
        rarity_score(bad, good)
    with pytest.raises(ValueError, match="gen_feats: " + rows):
        fid_features_to_stats(bad, *feature_stats(good))
    mu, sigma = feature_stats(good)
    with pytest.raises(ValueError, match="mu2 holds 1 NaN/inf"):
        fid_from_stats(mu, sigma, np.where(np.arange(mu.size) == 4, np.nan, mu), sigma)
    with pytest.raises(ValueError, match=r"float images must be finite"):
        fid(torch.full((4, 3, 8, 8), float("nan")), good)


def test_damaged_stats_cache_names_the_file(images):
    import re

    from lt_diffusion.metrics import dataset_reference_stats
    from lt_diffusion.paths import cache_dir

    kw = dict(subset="automobile2", device="cpu", progress=False)
    first = dataset_reference_stats("cifar10", "test", images["B"][:2], **kw)
    (path,) = (cache_dir() / "fid_stats").glob("cifar10-test-automobile2__*.npz")
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a full disk
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": unreadable FID statistics cache.*refresh=True"):
        dataset_reference_stats("cifar10", "test", images["B"][:2], **kw)
    again = dataset_reference_stats("cifar10", "test", images["B"][:2], refresh=True, **kw)
    np.testing.assert_array_equal(again.sigma, first.sigma)
