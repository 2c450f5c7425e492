"""KernelSHAP and LIME: equal to Captum per sample under the documented seed; patches, batch invariance, exact cases."""

from __future__ import annotations

import pytest
import torch
from captum._utils.models.linear_model import SkLearnLasso
from captum.attr import KernelShap, Lime
from salbench import explainers
from salbench.core.seeding import sample_seed
from salbench.explainers.surrogate import patch_mask
from torch import nn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ALPHA = 1e-4  # LIME's Lasso penalty: Captum's 0.01 sets every coefficient of these small models to 0
CAPTUM = {"kernel_shap": KernelShap, "lime": lambda model: Lime(model, interpretable_model=SkLearnLasso(alpha=ALPHA))}
PARAMS = {"kernel_shap": {}, "lime": {"alpha": ALPHA}}
# ours solves KernelSHAP's fit in float64, Captum returns float32 coefficients; LIME is Captum's own fit
TOL = {"kernel_shap": dict(rtol=1e-4, atol=1e-6), "lime": dict(rtol=1e-6, atol=1e-8)}


def captum_per_sample(name, model, x, t, mask, seed, **kwargs):
    """Captum called directly on each sample after seeding torch with the sample's documented seed."""
    maps = []
    for row, label in zip(x, t):
        torch.manual_seed(sample_seed(seed, row))
        maps.append(CAPTUM[name](model).attribute(row[None], target=int(label), feature_mask=mask[None], **kwargs))
    return torch.cat(maps)


@pytest.mark.parametrize("name", ["kernel_shap", "lime"])
@pytest.mark.parametrize("patch,baseline,per_eval", [((4, 4), 0.0, 7), ((3, 2), 0.4, 50)])
def test_surrogates_match_captum_per_sample_on_images(name, cnn, image_batch, patch, baseline, per_eval):
    x, t = image_batch
    ours = explainers.get(
        name, n_samples=40, patch=patch, baseline=baseline, perturbations_per_eval=per_eval, seed=5, **PARAMS[name]
    )
    mask = patch_mask(x.shape[1:], patch)
    theirs = captum_per_sample(
        name, cnn, x, t, mask, 5, baselines=baseline, n_samples=40, perturbations_per_eval=per_eval
    )
    attr = ours(cnn, x, t)
    torch.testing.assert_close(attr, theirs.to(x.dtype), **TOL[name])
    assert all(0 < len(a.unique()) <= mask.max() + 1 and a.abs().max() > 0 for a in attr)  # a value per patch


@pytest.mark.parametrize("name", ["kernel_shap", "lime"])
def test_surrogates_match_captum_per_sample_on_tables(name, mlp, table_batch):
    x, t = table_batch
    ours = explainers.get(name, n_samples=30, perturbations_per_eval=4, seed=2, **PARAMS[name])(mlp, x, t)
    assert (ours != 0).any()
    mask = torch.arange(6)
    theirs = captum_per_sample(name, mlp, x, t, mask, 2, baselines=0.0, n_samples=30, perturbations_per_eval=4)
    torch.testing.assert_close(ours, theirs.to(x.dtype), **TOL[name])


@pytest.mark.parametrize("name", ["kernel_shap", "lime"])
def test_a_sample_gets_the_same_map_in_any_batch_and_the_global_generator_is_untouched(name, cnn, image_batch):
    x, t = image_batch
    explainer = explainers.get(name, n_samples=20, patch=(4, 4), **PARAMS[name])
    state = torch.get_rng_state()
    full = explainer(cnn, x, t)
    assert torch.equal(state, torch.get_rng_state())
    torch.testing.assert_close(explainer(cnn, x[[3, 0]], t[[3, 0]]), full[[3, 0]], rtol=0, atol=0)
    assert not torch.equal(full, explainers.get(name, n_samples=20, patch=(4, 4), seed=1, **PARAMS[name])(cnn, x, t))


def test_kernel_shap_of_a_linear_model_is_exact():
    """f linear: f(x_z) = f(b) + Σ_m z_m w_m (x_m − b), so the weighted fit recovers φ = w ⊙ (x − b)."""
    model = nn.Linear(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0])
    attr = explainers.get("kernel_shap", n_samples=60, baseline=0.5)(model, x, t)
    torch.testing.assert_close(attr, model.weight[t].detach() * (x - 0.5), rtol=1e-4, atol=1e-5)  # Captum fits in float32


def test_kernel_shap_is_efficient(mlp, table_batch):
    """Σ φ = f_c(x) − f_c(baseline) (Captum enforces it with weights 10^6 on the full and empty coalitions)."""
    x, t = table_batch
    attr = explainers.get("kernel_shap", n_samples=80)(mlp, x, t)
    gap = (mlp(x) - mlp(torch.zeros_like(x))).gather(1, t[:, None])[:, 0].detach()
    torch.testing.assert_close(attr.sum(1), gap, rtol=1e-4, atol=1e-4)


def test_patch_mask_and_its_errors():
    torch.testing.assert_close(patch_mask(torch.Size([5]), (2,)), torch.tensor([0, 0, 1, 1, 2]))
    mask = patch_mask(torch.Size([2, 3, 3]), (2, 2))
    assert torch.equal(mask[0], mask[1]) and mask[0].tolist() == [[0, 0, 1], [0, 0, 1], [2, 2, 3]]
    torch.testing.assert_close(patch_mask(torch.Size([2, 2]), None), torch.tensor([[0, 1], [2, 3]]))
    with pytest.raises(ValueError, match=r"patch \(4,\) does not fit a sample of shape \(3,\)"):
        patch_mask(torch.Size([3]), (4,))
    with pytest.raises(ValueError, match="patch must name a size"):
        explainers.get("lime", patch=())
    with pytest.raises(ValueError, match="perturbations_per_eval must be an integer >= 1"):
        explainers.get("kernel_shap", perturbations_per_eval=0)


def test_kernel_shap_packs_the_samples_into_each_forward_pass(cnn, image_batch):
    """N = 5 samples, 40 coalitions, 7 per pass: 6 forward passes of 5 × 7 rows (the last 5 × 5); the
    chunking does not change the map."""
    x, t = image_batch
    rows = []
    handle = cnn.register_forward_hook(lambda module, inputs, output: rows.append(len(inputs[0])))
    try:
        chunked = explainers.get("kernel_shap", n_samples=40, patch=(4, 4), perturbations_per_eval=7)(cnn, x, t)
    finally:
        handle.remove()
    assert rows == [35] * 5 + [25]
    whole = explainers.get("kernel_shap", n_samples=40, patch=(4, 4), perturbations_per_eval=40)(cnn, x, t)
    torch.testing.assert_close(chunked, whole, rtol=1e-9, atol=1e-12)
