"""Chapter 08 lab (Diffusion Inversion): classifiers trained on a frozen generator's inverted data.

Design. The paper freezes a generator pretrained on far more data than the target task (Stable Diffusion) and
learns one conditioning vector per target image. The lab's analogue:

* **Pretraining corpus**: 1,000 points per class from the world (balanced), seen by a class-table generator (the
  shared base network: its label table plays the text encoder, with a null row for dropout), trained with the base
  recipe and then frozen. It knows every class well, as Stable Diffusion knows CIFAR-10's concepts.
* **Target tasks** (the labels are never shown to the inversion): (a) *scarce data*, 10 real points per class;
  (b) *the long tail*, the run's CIFAR-10-LT-sized training set.
* **Inversion** (:func:`lt_diffusion.inversion.learn_embeddings`): one 32-d vector per target point, 400 AdamW
  steps at lr 3e-2 (the official recipe's optimiser and rate), starting from the mean class vector (label-free).
* **Generation** (the official ``interpolation_sample``): c = (1 - s) c_i + s c_j + lambda eps with j of the same
  class, s = 0.1, lambda = 0.1 (:func:`lt_diffusion.inversion.variation_conditions`), DDIM eta = 1, 50 steps,
  without guidance (g = 1). The official sampler adds CFG in the "g" convention, g = 2, with the mean learned
  vector as the unconditional input; our generator never saw that vector during pretraining (Stable Diffusion's
  text-embedding space is far richer), and with it the samples leave the data (their mean exact log-density is
  far below the true points'). The scarce-data arm is run both ways and both verdicts are reported.
* **Downstream classifiers**: 2x64 MLPs on clean points (the engine's classifier trainer with ``noised=False``,
  800 steps at batch 128), scored by balanced accuracy on 250 fresh points per class (the Bayes classifier
  reaches 0.895: the two classes of a pair overlap).

Arms: (a) real points only at 5, 10, 20, 50 and 100 per class (the real-data-size curve) and 10 real per class +
100 generated per class, with g = 1 and with the official g = 2; (b) the long-tailed set as it is, with its tail rows repeated up to 500 per class
(oversampling), and with generated points up to 500 per class (the long-tail arm is our extension: the paper has
no long-tail experiment).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from ..guidance import cfg_model_fn
from ..inversion import learn_embeddings, mean_embedding, variation_conditions
from .common import BASE_RECIPE, Timer, lab_world, sampling_diffusion
from .engine import make_diffusion, sample, train_classifiers, train_denoisers
from .evaluate import reference_set
from .result import LabResult, claim

REAL_SIZES = (5, 10, 20, 50, 100)
SCARCE = 10
GENERATED_PER_CLASS = 100
TOP_UP = 500
PRETRAIN_PER_CLASS = 1000
INVERSION_STEPS = 400
OFFICIAL_GUIDANCE = 2.0
CLASSIFIER = dict(steps=800, batch_size=128, hidden=64, depth=2)
QUESTION = ("How much real data is a frozen generator's inverted data worth to a classifier, in the scarce regime "
            "and on the long tail?")


def generator(seeds: Sequence[int]):
    """The frozen class-table generator pretrained on the balanced corpus (cached)."""
    world = lab_world()
    corpus = [world.training_set(10_000 + s, [PRETRAIN_PER_CLASS] * world.num_classes) for s in seeds]
    return train_denoisers(BASE_RECIPE, world, seeds, data=corpus, data_tag=f"balanced-{PRETRAIN_PER_CLASS}")


def invert_and_generate(gen, m: int, x_uint8: torch.Tensor, y: torch.Tensor, wanted: torch.Tensor, seed: int,
                        guidance: float = 1.0):
    """Invert member ``m``'s target points ``x_uint8 (N, d)`` and draw one sample per entry of ``wanted``
    (class labels), conditioned on within-class variations of the learned vectors; ``guidance`` is g of CFG with
    the mean learned vector as the unconditional input (1: no guidance). Returns ``(len(wanted), d)``."""
    world = lab_world()
    net = gen.model.member(m)
    init = net.label_emb[0, :world.num_classes].mean(0, keepdim=True).expand(x_uint8.shape[0], -1).clone()
    inv = learn_embeddings(net, gen.diffusion, x_uint8, init, steps=INVERSION_STEPS, group_size=x_uint8.shape[0],
                           bf16=False, device="cpu", seed=seed)
    cond, _ = variation_conditions(inv.embeddings, y, wanted, strength=0.1, noise=0.1, seed=seed)
    guided = net if guidance == 1.0 else cfg_model_fn(net, guidance, null_cond=mean_embedding(inv.embeddings),
                                                      convention="g")
    d = sampling_diffusion(BASE_RECIPE, ddim=True)
    xs = sample(guided, d, 1, wanted.numel(), world.dim, model_kwargs={"cond": cond[None]}, method="ddim", eta=1.0,
                seed=seed)[0]
    return xs.clamp(-1, 1)


def balanced_accuracy(clf, seeds: Sequence[int]) -> Dict[str, List[float]]:
    """Per-member balanced accuracy on fresh test points (all, head, tail): ``{group: [per seed]}``."""
    world = lab_world()
    out = {"all": [], "head": [], "tail": []}
    M = len(seeds)
    tests = [reference_set(world, 4_000_000 + s) for s in seeds]
    from .denoiser import deinterleave, interleave
    x = interleave(torch.stack([t[0] for t in tests]))
    with torch.no_grad():
        pred = deinterleave(clf(x, torch.zeros(x.shape[0], dtype=torch.long)).argmax(1), M)
    for m, (_, y) in enumerate(tests):
        per_class = torch.stack([(pred[m][y == c] == c).double().mean() for c in range(world.num_classes)])
        out["all"].append(float(per_class.mean()))
        out["head"].append(float(per_class[world.groups["head"]].mean()))
        out["tail"].append(float(per_class[world.groups["tail"]].mean()))
    return out


def fit(data, seeds, tag):
    world = lab_world()
    return train_classifiers(world, seeds, make_diffusion(BASE_RECIPE), num_labels=world.num_classes, data=data,
                             data_tag=tag, noised=False, **CLASSIFIER)


def run(seeds: Sequence[int]) -> LabResult:
    timer = Timer()
    world = lab_world()
    seeds = list(seeds)
    C = world.num_classes
    gen = generator(seeds)
    # (a) the scarce regime: the real-data-size curve, and 10 real + generated per class
    curve = {}
    for n in REAL_SIZES:
        data = [world.training_set(20_000 + s, [n] * C) for s in seeds]
        curve[n] = balanced_accuracy(fit(data, seeds, f"real-{n}"), seeds)["all"]
    scarce_aug = {}
    for g in (1.0, OFFICIAL_GUIDANCE):
        aug = []
        for m, s in enumerate(seeds):
            x, y = world.training_set(20_000 + s, [SCARCE] * C)
            wanted = torch.arange(C).repeat_interleave(GENERATED_PER_CLASS)
            xg = invert_and_generate(gen, m, x, y, wanted, seed=s, guidance=g)
            aug.append((torch.cat([world.to_model_range(x), xg]), torch.cat([y, wanted])))
        scarce_aug[g] = balanced_accuracy(fit(aug, seeds, None), seeds)["all"]
    # (b) the long tail: as is, oversampled, topped up with generated points
    lt = [world.training_set(s) for s in seeds]
    over, topped = [], []
    for m, (s, (x, y)) in enumerate(zip(seeds, lt)):
        xf = world.to_model_range(x)
        counts = torch.bincount(y, minlength=C)
        short = [c for c in range(C) if counts[c] < TOP_UP]
        reps = [xf[y == c][torch.arange(TOP_UP - int(counts[c])) % int(counts[c])] for c in short]
        over.append((torch.cat([xf] + reps), torch.cat([y] + [torch.full((TOP_UP - int(counts[c]),), c) for c in short])))
        keep = torch.isin(y, torch.tensor(short))
        wanted = torch.cat([torch.full((TOP_UP - int(counts[c]),), c) for c in short])
        xg = invert_and_generate(gen, m, x[keep], y[keep], wanted, seed=s + 1)
        topped.append((torch.cat([xf, xg]), torch.cat([y, wanted])))
    lt_acc = {"as is": balanced_accuracy(fit(lt, seeds, "training_set"), seeds),
              "oversampled": balanced_accuracy(fit(over, seeds, None), seeds),
              "+ generated": balanced_accuracy(fit(topped, seeds, None), seeds)}
    wall = timer.elapsed
    real, aug1, aug2 = (f"{SCARCE} real per class", f"{SCARCE} real + {GENERATED_PER_CLASS} generated",
                        f"{SCARCE} real + {GENERATED_PER_CLASS} generated, g = {OFFICIAL_GUIDANCE:g}")
    claims = [
        claim("Training data generated by inverting a frozen generator on a few real images improves the classifier "
              "over those real images alone (Zhou et al. 2023: 2-3x better sample complexity).",
              "balanced accuracy on fresh points (higher is better)",
              {real: curve[SCARCE], aug1: scarce_aug[1.0]}, aug1, real, False, wall,
              "inverted data helps the scarce-data classifier", note="sampled without guidance (g = 1)"),
        claim("The same with the official sampler: CFG g = 2 with the mean learned vector as the unconditional input "
              "(Zhou et al. 2023).", "balanced accuracy on fresh points (higher is better)",
              {real: curve[SCARCE], aug2: scarce_aug[OFFICIAL_GUIDANCE]}, aug2, real, False, wall,
              "inverted data helps with the official guided sampler"),
        claim("Our extension (the paper has no long-tail experiment): topping the tail classes up with generated "
              "points raises the tail's accuracy.", "balanced accuracy on the tail classes 7-9 (higher is better)",
              {"long-tailed, as is": lt_acc["as is"]["tail"], "+ generated": lt_acc["+ generated"]["tail"]},
              "+ generated", "long-tailed, as is", False, wall, "generated tail data raises tail accuracy"),
        claim("Our extension: generated tail points beat repeating the real tail points (oversampling).",
              "balanced accuracy on the tail classes 7-9 (higher is better)",
              {"oversampled": lt_acc["oversampled"]["tail"], "+ generated": lt_acc["+ generated"]["tail"]},
              "+ generated", "oversampled", False, wall, "generated tail data beats oversampling"),
    ]
    fig = {"real_sizes": list(REAL_SIZES), "real_curve": [curve[n] for n in REAL_SIZES], "scarce": SCARCE,
           "scarce_augmented": scarce_aug[1.0], "scarce_augmented_official": scarce_aug[OFFICIAL_GUIDANCE],
           "longtail": lt_acc}
    design = ("A 3x128 MLP class-table generator pretrained on 1,000 points per class and frozen; per-point 32-d "
              "vectors learned by the engine's learn_embeddings (400 steps, lr 3e-2); within-class variations "
              "(s = 0.1, lambda = 0.1), DDIM eta = 1, 50 steps, without guidance and with the official CFG g = 2 "
              "(mean vector as the unconditional input); 2x64 MLP classifiers on clean points (800 steps).")
    return LabResult("diffusion_inversion", "Diffusion Inversion: data from a frozen generator", QUESTION, design,
                     claims, fig, seeds, wall)
