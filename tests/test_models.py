"""UNet, noisy classifier and presets: shapes for every knob, conditioning paths, memory formats,
parameter counts of the papers' CIFAR-10 models."""
import pytest
import torch

from lt_diffusion.models import (MODEL_PRESETS, ClassifierConfig, EncoderUNetModel, UNetConfig, UNetModel,
                                 count_parameters, get_model_config)



pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (conftest.py)

def _tiny(**kw) -> UNetConfig:
    base = dict(image_size=8, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                attention_resolutions=(8, 4), num_heads=2)
    base.update(kw)
    return UNetConfig(**base)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised layers random weights so outputs depend on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


KNOBS = ["learn_sigma", "use_scale_shift_norm", "resblock_updown", "resblock_rescale", "conv_resample"]


# All off, all on, each knob alone on and each alone off: every knob is seen in both states and next
# to every other knob in both states (12 models instead of 32).
KNOB_SETS = ([tuple([False] * len(KNOBS)), tuple([True] * len(KNOBS))]
             + [tuple(i == j for j in range(len(KNOBS))) for i in range(len(KNOBS))]
             + [tuple(i != j for j in range(len(KNOBS))) for i in range(len(KNOBS))])


@pytest.mark.parametrize("values", KNOB_SETS)
def test_unet_shapes_all_knobs(values):
    torch.manual_seed(0)
    knobs = dict(zip(KNOBS, values))
    cfg = _tiny(**knobs, num_head_channels=8 if knobs["resblock_rescale"] else -1, dropout=0.1)
    model = UNetModel(cfg).eval()
    x = torch.randn(2, 3, 8, 8)
    out = model(x, torch.tensor([0.0, 999.0]))
    assert out.shape == (2, 6 if knobs["learn_sigma"] else 3, 8, 8)
    assert cfg.output_channels == out.shape[1]
    assert torch.isfinite(out).all()
    # ADM initialisation: the head conv starts at zero, so the untrained output is exactly 0.
    assert out.abs().max() == 0


def test_zero_init_of_residual_branches():
    model = UNetModel(_tiny(use_scale_shift_norm=True, num_classes=3))
    from lt_diffusion.models.nn import AttentionBlock, ResBlock
    blocks = [m for m in model.modules() if isinstance(m, (ResBlock, AttentionBlock))]
    assert blocks
    for b in blocks:
        last = b.out_conv if isinstance(b, ResBlock) else b.proj
        assert last.weight.abs().sum() == 0 and last.bias.abs().sum() == 0
    assert model.out_conv.weight.abs().sum() == 0


def test_class_conditioning_and_null_label():
    torch.manual_seed(1)
    model = _randomise(UNetModel(_tiny(num_classes=5))).eval()
    assert model.label_emb.num_embeddings == 6  # 5 classes + null
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([10, 500, 900])
    out_null = model(x, t)  # y=None -> null label for all
    out_null2 = model(x, t, y=torch.full((3,), 5))
    torch.testing.assert_close(out_null, out_null2, rtol=0, atol=0)
    out_a = model(x, t, y=torch.tensor([0, 1, 2]))
    out_b = model(x, t, y=torch.tensor([3, 1, 4]))
    diff = (out_a - out_b).flatten(1).abs().amax(1)
    assert diff[0] > 1e-4 and diff[2] > 1e-4
    assert diff[1] < 1e-6  # same label -> same output (no cross-sample leakage)
    with pytest.raises(ValueError):
        UNetModel(_tiny())(x, t, y=torch.tensor([0, 1, 2]))


def test_cond_vector_path():
    torch.manual_seed(2)
    model = _randomise(UNetModel(_tiny(cond_dim=7, num_classes=4))).eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([100.0, 100.0])
    c = torch.randn(2, 7)
    out_c = model(x, t, cond=c)
    assert out_c.shape == (2, 3, 8, 8)
    assert (out_c - model(x, t, cond=c + 1.0)).abs().max() > 1e-4
    # cond replaces the label embedding: it must not be combined with y.
    with pytest.raises(ValueError):
        model(x, t, y=torch.tensor([0, 1]), cond=c)
    with pytest.raises(ValueError):
        UNetModel(_tiny())(x, t, cond=c)
    # Gradients reach the conditioning vector (Diffusion Inversion optimises it).
    c = c.clone().requires_grad_(True)
    model(x, t, cond=c).square().mean().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0


def test_timestep_float_long_and_scalar():
    torch.manual_seed(3)
    model = _randomise(UNetModel(_tiny())).eval()
    x = torch.randn(2, 3, 8, 8)
    a = model(x, torch.tensor([7, 7]))
    b = model(x, torch.tensor([7.0, 7.0]))
    c = model(x, torch.tensor(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_channels_last_matches_contiguous():
    torch.manual_seed(4)
    model = _randomise(UNetModel(_tiny(num_classes=3, use_scale_shift_norm=True, resblock_updown=True))).eval()
    x, t, y = torch.randn(2, 3, 8, 8), torch.tensor([3.0, 800.0]), torch.tensor([0, 2])
    ref = model(x, t, y)
    model_cl = model.to(memory_format=torch.channels_last)
    out = model_cl(x.contiguous(memory_format=torch.channels_last), t, y)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_attention_heads_match_manual_computation():
    """SDPA multi-head attention equals the written-out softmax(QK^T / sqrt(d)) V."""
    from lt_diffusion.models.nn import AttentionBlock
    torch.manual_seed(5)
    blk = _randomise(AttentionBlock(16, num_head_channels=4))
    assert blk.num_heads == 4
    x = torch.randn(2, 16, 3, 5)
    B, C, H, W = x.shape
    h = torch.nn.functional.group_norm(x, blk.norm.num_groups, blk.norm.weight, blk.norm.bias, blk.norm.eps)
    tok = h.flatten(2).transpose(1, 2)  # (B, L, C)
    q, k, v = blk.qkv(tok).chunk(3, dim=-1)
    out = []
    for i in range(4):
        sl = slice(4 * i, 4 * i + 4)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        out.append(w @ v[..., sl])
    ref = x + blk.proj(torch.cat(out, -1)).transpose(1, 2).reshape(B, C, H, W)
    torch.testing.assert_close(blk(x), ref, rtol=1e-5, atol=1e-5)


def test_presets_and_unknown_name():
    assert set(MODEL_PRESETS) >= {"iddpm_cifar10", "ddpm_cifar10", "book", "smoke"}
    cfg = get_model_config("smoke", num_classes=10)
    assert cfg.num_classes == 10 and MODEL_PRESETS["smoke"].num_classes is None
    with pytest.raises(ValueError, match="iddpm_cifar10"):
        get_model_config("nope")
    model = UNetModel(get_model_config("smoke"))
    assert model(torch.randn(1, 3, 32, 32), torch.tensor([1.0])).shape == (1, 3, 32, 32)


def test_iddpm_cifar10_parameter_count():
    # openai/improved-diffusion cifar10_uncond_50M_500K.pt: 52,546,438 parameters.
    n = count_parameters(UNetModel(get_model_config("iddpm_cifar10")))
    assert abs(n - 52.5e6) / 52.5e6 < 0.005, n
    assert n == 52_546_438


def test_ddpm_cifar10_parameter_count_matches_diffusers():
    n = count_parameters(UNetModel(get_model_config("ddpm_cifar10")))
    assert abs(n - 35.7e6) / 35.7e6 < 0.01, n
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
        layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=32,
        attention_head_dim=None, dropout=0.1)
    n_ref = count_parameters(ref)
    assert abs(n - n_ref) / n_ref < 0.01, (n, n_ref)
    assert n == n_ref  # same layer inventory (attention as one qkv matrix = q, k, v matrices)


@pytest.mark.parametrize("pool", ["attention", "adaptive"])
def test_classifier_logits_and_input_gradient(pool):
    torch.manual_seed(6)
    cfg = ClassifierConfig(num_classes=7, image_size=16, model_channels=16, channel_mult=(1, 2),
                           num_res_blocks=1, attention_resolutions=(8,), num_head_channels=8, pool=pool)
    clf = _randomise(EncoderUNetModel(cfg))
    x = torch.randn(3, 3, 16, 16, requires_grad=True)
    logits = clf(x, torch.tensor([0, 10, 999]))
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    # Classifier guidance differentiates log p(y | x_t) with respect to x_t.
    torch.log_softmax(logits, -1)[:, 2].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Per-sample independence: changing sample 0 leaves the logits of samples 1, 2 unchanged.
    x2 = x.detach().clone()
    x2[0] += 1.0
    logits2 = clf(x2, torch.tensor([0, 10, 999]))
    torch.testing.assert_close(logits2[1:], logits[1:].detach(), rtol=0, atol=1e-6)


def test_classifier_default_is_adm_config():
    cfg = ClassifierConfig()
    assert (cfg.model_channels, cfg.num_res_blocks, cfg.attention_resolutions, cfg.pool) == (128, 2, (32, 16, 8),
                                                                                             "attention")
    with pytest.raises(ValueError):
        ClassifierConfig(pool="max")


def test_bf16_autocast_forward_cpu():
    """The model runs under bf16 autocast (CPU here; CUDA in training) and keeps GroupNorm in float32."""
    torch.manual_seed(7)
    model = _randomise(UNetModel(_tiny(num_classes=2, use_scale_shift_norm=True))).eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([5.0, 50.0])
    ref = model(x, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


@pytest.mark.parametrize("regional", [False, True])
def test_compile_model_traces_without_graph_breaks(regional):
    """compile_model with fullgraph=True (dynamo's 'eager' backend: tracing only, no code generation)."""
    from lt_diffusion.models import compile_model
    torch._dynamo.reset()
    model = _randomise(UNetModel(_tiny(num_classes=3, use_scale_shift_norm=True))).eval()
    x, t, y = torch.randn(2, 3, 8, 8), torch.tensor([1.0, 2.0]), torch.tensor([0, 3])
    ref = model(x, t, y)
    compiled = compile_model(model, regional=regional, fullgraph=True, backend="eager")
    assert (compiled is model) == regional
    torch.testing.assert_close(compiled(x, t, y), ref, rtol=1e-6, atol=1e-6)
    torch._dynamo.reset()


# --------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("x, match", [
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), r"uint8.*to_model_range"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int64), "floating-point"),
    (torch.zeros(2, 3, 16, 16), r"\(2, 3, 16, 16\) but the model was built for \(B, 3, 8, 8\).*image_size"),
    (torch.zeros(2, 3, 7, 7), r"built for \(B, 3, 8, 8\)"),
    (torch.zeros(2, 1, 8, 8), "in_channels=3"),
    (torch.zeros(2, 8, 8, 3), "NHWC"),
    (torch.zeros(3, 8, 8), r"built for \(B, 3, 8, 8\)"),
])
def test_unet_refuses_input_it_was_not_built_for(x, match):
    model = UNetModel(_tiny(num_classes=4)).eval()
    with pytest.raises(ValueError, match=match):
        model(x, torch.zeros(x.shape[0]))


def test_unet_refuses_bad_timesteps_and_labels():
    model = UNetModel(_tiny(num_classes=4)).eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(2,\)"):
        model(x, torch.zeros(3))
    with pytest.raises(ValueError, match="integer"):
        model(x, torch.zeros(2), y=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model(x, torch.zeros(2), y=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=r"labels lie in \[0, 5\].*\[0, 4\].*null label"):
        model(x, torch.zeros(2), y=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"labels lie in \[-1, 0\]"):
        model(x, torch.zeros(2), y=torch.tensor([-1, 0]))
    assert model(x, torch.zeros(2), y=torch.tensor([4, 0])).shape == (2, 3, 8, 8)  # 4 = null label is fine
    cond_model = UNetModel(_tiny(cond_dim=5)).eval()
    with pytest.raises(ValueError, match=r"cond must have shape \(2, 5\)"):
        cond_model(x, torch.zeros(2), cond=torch.zeros(2, 4))


def test_classifier_refuses_wrong_size_and_dtype():
    cfg = ClassifierConfig(num_classes=3, image_size=16, model_channels=16, channel_mult=(1, 2),
                           num_res_blocks=1, attention_resolutions=(8,), num_head_channels=8)
    clf = EncoderUNetModel(cfg).eval()
    with pytest.raises(ValueError, match=r"EncoderUNetModel: x has shape \(2, 3, 32, 32\).*\(B, 3, 16, 16\)"):
        clf(torch.zeros(2, 3, 32, 32), torch.zeros(2))
    with pytest.raises(ValueError, match="uint8"):
        clf(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(2))
