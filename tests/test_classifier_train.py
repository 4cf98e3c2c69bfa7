"""Noisy-classifier training (ADM Sec. 4): noised inputs, original-scale t, generic labels."""
import torch
from torch import nn

from lt_diffusion.classifier_train import accuracy_vs_t, default_eval_timesteps, train_noisy_classifier
from lt_diffusion.data import ImageDataset
from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.models import ClassifierConfig, EncoderUNetModel


def _brightness_dataset(n=256, size=8, seed=0):
    """Two 'classes' told apart by mean brightness: easy when clean, impossible at pure noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = torch.where(y[:, None, None, None] == 1, 200.0, 55.0)
    x = (base + 20 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 255).to(torch.uint8)
    return ImageDataset(x, y, ["dark", "bright"])


def _tiny_classifier(num_classes=2, size=8):
    cfg = ClassifierConfig(num_classes=num_classes, image_size=size, model_channels=16, num_res_blocks=1,
                           attention_resolutions=(), channel_mult=(1, 2), num_head_channels=16,
                           pool="adaptive")
    return EncoderUNetModel(cfg)


class _RecordingClassifier(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.lin = nn.Linear(1, k)
        self.seen_t = []

    def forward(self, x, t):
        self.seen_t.append(t.detach().clone())
        return self.lin(x.mean(dim=(1, 2, 3))[:, None])


def test_classifier_learns_and_accuracy_falls_with_t():
    torch.manual_seed(0)
    ds = _brightness_dataset()
    diffusion = create_diffusion(steps=100, noise_schedule="linear")
    clf = _RecordingClassifier(2)
    res = train_noisy_classifier(clf, diffusion, ds, steps=150, batch_size=32, lr=5e-2, log_every=5, seed=0)
    assert res.steps == 150 and res.wall_s > 0 and len(res.history["loss"]) >= 30
    held = _brightness_dataset(n=200, seed=1)
    acc = accuracy_vs_t(clf, diffusion, held.images, held.labels, timesteps=[0, 99], batch_size=64)
    assert acc["t"] == [0, 99]
    assert acc["accuracy"][0] > 0.9           # clean: brightness is obvious
    assert acc["accuracy"][1] < 0.75          # x_T is almost pure noise
    assert acc["alpha_bar"][0] > acc["alpha_bar"][1]


def test_encoder_unet_classifier_step():
    ds = _brightness_dataset(n=16)
    clf = _tiny_classifier()
    res = train_noisy_classifier(clf, create_diffusion(steps=50), ds, steps=1, batch_size=8, seed=0)
    assert res.steps == 1 and res.history["loss"][0] > 0


def test_spaced_diffusion_passes_original_timesteps_and_ordinal_labels():
    ds = _brightness_dataset(n=64)
    diffusion = create_diffusion(steps=100, noise_schedule="linear", timestep_respacing="10")
    clf = _RecordingClassifier(2)
    train_noisy_classifier(clf, diffusion, ds, steps=3, batch_size=16, lr=1e-3, seed=0)
    seen = torch.cat(clf.seen_t)
    assert set(seen.tolist()) <= set(diffusion.timestep_map.tolist())
    out = accuracy_vs_t(clf, diffusion, ds.images, ds.labels, timesteps=[0, 9], ordinal=True)
    assert out["t"] == [0, 99] and len(out["mae"]) == 2


def test_clean_training_and_time_budget_and_iterator_input():
    diffusion = create_diffusion(steps=50)
    clf = _RecordingClassifier(3)
    batches = iter([(torch.rand(4, 3, 8, 8) * 2 - 1, torch.randint(0, 3, (4,))) for _ in range(100)])
    res = train_noisy_classifier(clf, diffusion, batches, steps=100, batch_size=4, noised=False,
                                 time_budget_s=0.0, seed=0)
    assert res.steps == 1                      # the budget stops it at the first check
    assert int(torch.cat(clf.seen_t).max()) == 0
    assert default_eval_timesteps(1000, 5) == [0, 250, 500, 749, 999]
