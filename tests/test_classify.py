"""classify.py: the 32x32 ResNet-18, GPU-side augmentation, the official LR schedule, training and metrics."""
import math

import pytest
import torch

from lt_diffusion import classify


def test_resnet18_cifar_shape():
    net = classify.resnet18_cifar(10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert 11.0e6 < sum(p.numel() for p in net.parameters()) < 11.3e6


def test_build_classifier_rejects_unknown_arch():
    with pytest.raises(ValueError, match="resnet18"):
        classify.build_classifier("vgg")


def test_random_crop_flip_is_a_shifted_window():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    g = torch.Generator().manual_seed(0)
    y = classify.random_crop_flip(x, padding=1, flip=False, generator=g)
    assert y.shape == x.shape
    for b in range(2):  # every output is a window of the zero-padded input
        xp = torch.nn.functional.pad(x[b], (1, 1, 1, 1))
        assert any(torch.equal(xp[:, i:i + 8, j:j + 8], y[b]) for i in range(3) for j in range(3))
    z = classify.random_crop_flip(x, padding=0, flip=True, generator=torch.Generator().manual_seed(1))
    for b in range(2):
        assert torch.equal(z[b], x[b]) or torch.equal(z[b], x[b].flip(-1))


def test_warmup_cosine_lr():
    lr = 0.1
    assert classify.warmup_cosine_lr(0, 1000, lr, 100) == pytest.approx(1e-4)
    assert classify.warmup_cosine_lr(100, 1000, lr, 100) == pytest.approx(lr)
    assert classify.warmup_cosine_lr(1000, 1000, lr, 100) == pytest.approx(1e-4)
    mid = classify.warmup_cosine_lr(550, 1000, lr, 100)
    assert mid == pytest.approx(1e-4 + 0.5 * (lr - 1e-4) * (1 + math.cos(math.pi * 0.5)))


def test_train_and_evaluate_tiny():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(40) % 4
    x[y == 1] //= 4   # make classes separable by brightness
    x[y == 2] = 255 - x[y == 2] // 4
    net = classify.build_classifier("tiny_cnn", 4, seed=0)
    run = classify.train_classifier(net, [(x, y, 8), (x[:8], y[:8], 0)], steps=3, lr=0.05, warmup_steps=1,
                                    log_every=1)
    assert run.steps == 3 and len(run.history["loss"]) == 3 and all(math.isfinite(v) for v in run.history["loss"])
    out = classify.evaluate_classifier(net, x, y, num_classes=5)
    assert len(out["per_class"]) == 5 and math.isnan(out["per_class"][4])
    assert 0.0 <= out["balanced_accuracy"] <= 1.0
    assert classify.predict(net, x).shape == (40,)
    with pytest.raises(ValueError):
        classify.train_classifier(net, [(x.float(), y, 8)], steps=1)


def test_equivalent_real_size_log_interpolation():
    sizes, acc = [1000, 2000, 4000], [0.40, 0.50, 0.60]
    n, where = classify.equivalent_real_size(sizes, acc, 0.55)
    assert where == "inside" and n == pytest.approx(2000 * 2 ** 0.5)   # halfway in log size
    assert classify.equivalent_real_size(sizes, acc, 0.50) == (pytest.approx(2000.0), "inside")
    assert classify.equivalent_real_size(sizes, acc, 0.40) == (1000.0, "inside")
    assert classify.equivalent_real_size(sizes, acc, 0.30) == (1000.0, "below")
    assert classify.equivalent_real_size(sizes, acc, 0.70) == (4000.0, "above")
    # a non-monotone curve: the first crossing counts
    n, where = classify.equivalent_real_size([10, 100, 1000], [0.2, 0.6, 0.5], 0.4)
    assert where == "inside" and n == pytest.approx(10 ** 1.5)
    with pytest.raises(ValueError, match="increasing"):
        classify.equivalent_real_size([2000, 1000], [0.5, 0.4], 0.45)
