"""classify.py: the 32x32 ResNet-18, GPU-side augmentation, the official LR schedule, training through the
Trainer (an arm of kind "classifier") and metrics."""
import math

import pytest
import torch

from lt_diffusion import classify
from lt_diffusion.data import ImageDataset
from lt_diffusion.experiments import Arm, train_model
from lt_diffusion.train import TrainConfig, warmup_cosine_lr


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


def test_the_recipe_lr_schedule():
    # the official train_net.py schedule: warm-up from 0.001·lr, cosine back down to 0.001·lr (TrainConfig cosine)
    lr = 0.1
    assert warmup_cosine_lr(0, 1000, lr, 100) == pytest.approx(1e-4)
    assert warmup_cosine_lr(100, 1000, lr, 100) == pytest.approx(lr)
    assert warmup_cosine_lr(1000, 1000, lr, 100) == pytest.approx(1e-4)
    assert warmup_cosine_lr(550, 1000, lr, 100) == pytest.approx(1e-4 + 0.5 * (lr - 1e-4))   # cos(π/2) = 0


def _brightness_set(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 4
    x[y == 1] //= 4   # make classes separable by brightness
    x[y == 2] = 255 - x[y == 2] // 4
    return ImageDataset(x, y, [str(c) for c in range(4)])


def test_mixed_batch_loader_draws_each_source_and_augments():
    ds = _brightness_set()
    loader = classify.MixedBatchLoader([(ds.images, ds.labels, 6), (ds.images[:4], ds.labels[:4], 2),
                                        (ds.images, ds.labels, 0)], seed=0)
    x, y = next(loader)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and set(y[6:].tolist()) <= set(range(4))
    state = loader.state_dict()
    a = next(loader)[0]
    loader.load_state_dict(state)
    assert torch.equal(next(loader)[0], a)   # the generator state is the whole position
    plain = next(classify.MixedBatchLoader([(ds.images, ds.labels, 8)], random_crop=False, flip=False, seed=0))[0]
    assert plain.abs().max() < 3.0            # normalised with the CIFAR mean / std, no zero padding
    with pytest.raises(ValueError, match="uint8"):
        classify.MixedBatchLoader([(ds.images.float(), ds.labels, 8)])


def test_train_through_the_trainer_and_evaluate_tiny():
    ds = _brightness_set()
    arm = Arm("classifier", "tiny_cnn", TrainConfig(steps=3, batch_size=8, lr=0.05, warmup_steps=1, optimizer="sgd",
                                                    lr_schedule="cosine", num_classes=4, log_every=1, data_range=None),
              random_crop=True)
    run = train_model(arm, data=ds, device="cpu")
    assert [h["step"] for h in run.history] == [1, 2, 3] and all(math.isfinite(h["loss"]) for h in run.history)
    assert run.history[0]["lr"] == pytest.approx(0.05 * 1e-3)   # the cosine recipe starts its warm-up at the floor
    net = run.model
    out = classify.evaluate_classifier(net, ds.images, ds.labels, num_classes=5)
    assert len(out["per_class"]) == 5 and math.isnan(out["per_class"][4])
    assert 0.0 <= out["balanced_accuracy"] <= 1.0
    assert classify.predict(net, ds.images).shape == (40,)
    with pytest.raises(ValueError, match="sum to"):
        train_model(arm, data=[(ds, 3)], device="cpu")


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
