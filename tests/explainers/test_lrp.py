"""LRP: agreement with Captum's LRP rule by rule, conservation, hand-worked rules, unsupported layers; the Zennit adapter's error."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LRP
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule
from salbench import explainers
from torch import nn

TOL = dict(rtol=1e-7, atol=1e-12)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class FlattenInForward(nn.Sequential):
    """Sequential whose 7th module gets its input flattened in forward (Captum's LRP has no rule for nn.Flatten)."""

    def forward(self, x):
        for i, module in enumerate(self):
            x = module(x.flatten(1) if i == 6 else x)
        return x


def conv_net(bias: bool) -> FlattenInForward:
    torch.manual_seed(0)
    return FlattenInForward(
        nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1, bias=bias), nn.ReLU(), nn.AvgPool2d(2),
        nn.Linear(20, 6, bias=bias), nn.ReLU(), nn.Linear(6, 3, bias=bias),
    ).double().eval()  # fmt: skip


# composite, Captum's rule for convolutions, for Linear layers, ε, with biases (Captum's γ and α1β0 rules
# treat biases otherwise: see the docstring)
CASES = [
    ("epsilon", lambda: EpsilonRule(0.1), lambda: EpsilonRule(0.1), 0.1, True),
    ("epsilon_gamma", lambda: GammaRule(0.25), lambda: EpsilonRule(1e-9), 1e-9, False),
    ("epsilon_plus", Alpha1_Beta0_Rule, lambda: EpsilonRule(1e-9), 1e-9, False),
    ("alpha1beta0", Alpha1_Beta0_Rule, Alpha1_Beta0_Rule, 1e-9, False),
]


@pytest.mark.parametrize("composite,conv_rule,dense_rule,epsilon,bias", CASES)
def test_lrp_matches_captum(composite, conv_rule, dense_rule, epsilon, bias):
    """Non-negative images (α1β0 on the first layer is Captum's w⁺ rule only for a >= 0)."""
    model = conv_net(bias)
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            layer.rule = conv_rule()
        elif isinstance(layer, nn.Linear):
            layer.rule = dense_rule()
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            layer.rule = EpsilonRule(epsilon)
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1, 0])
    theirs = LRP(model).attribute(x, target=t)
    ours = explainers.get("lrp", composite=composite, epsilon=epsilon)(model, x, t)
    assert theirs.abs().max() > 1e-5
    torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("composite", ["epsilon", "alpha1beta0", "epsilon_plus"])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_lrp_conserves_relevance_without_biases(composite, dims):
    """Bias-free ReLU network, ε → 0: Σ_i R_i = f_c(x), for Conv1d/2d/3d, on inputs of both signs."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dims]
    torch.manual_seed(dims)
    model = nn.Sequential(
        conv(2, 4, 3, padding=1, bias=False), nn.ReLU(inplace=True), conv(4, 5, 3, padding=1, bias=False), nn.ReLU(),
        pool(1), nn.Flatten(), nn.Linear(5, 3, bias=False),
    ).double().eval()  # fmt: skip
    x = torch.randn(6, 2, *(5,) * dims, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    logits = model(x).detach()
    t = logits.argmax(1)
    relevance = explainers.get("lrp", composite=composite, epsilon=1e-12)(model, x, t)
    torch.testing.assert_close(relevance.flatten(1).sum(1), logits.gather(1, t[:, None])[:, 0], rtol=1e-8, atol=1e-10)
    assert model[1].inplace and all(not m._forward_hooks for m in model.modules())


def test_lrp_rules_hand_worked():
    """One layer, a = (1, −2), w_c = (2, 1), b = 1, so z = 1:
    α1β0: z' = Σ(a w)⁺ + b⁺ = 2 + 1 = 3, R = (a w)⁺ · z/z' = (2/3, 0);
    ε → 0: R = a ⊙ w · z/z = (2, −2) (the bias keeps the rest of z);
    γ = 1 (a convolution): z' = a·(w + w⁺) + b + b⁺ = 0 + 2, R = a ⊙ (w + w⁺) · z/z' = (4, −4)/2 = (2, −2)."""
    layer = nn.Linear(2, 1).double()
    conv = nn.Conv1d(1, 1, 2).double()
    with torch.no_grad():
        for module in (layer, conv):
            module.weight.copy_(torch.tensor([2.0, 1.0]).view_as(module.weight))
            module.bias.fill_(1.0)
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    alpha1beta0 = explainers.get("lrp", composite="alpha1beta0", epsilon=1e-12)(layer, x, 0)
    torch.testing.assert_close(alpha1beta0, torch.tensor([[2 / 3, 0.0]], dtype=torch.float64), **TOL)
    epsilon = explainers.get("lrp", composite="epsilon", epsilon=1e-12)(layer, x, 0)
    torch.testing.assert_close(epsilon, torch.tensor([[2.0, -2.0]], dtype=torch.float64), **TOL)
    gamma = explainers.get("lrp", composite="epsilon_gamma", gamma=1.0, epsilon=1e-12)
    relevance = gamma(nn.Sequential(conv, nn.Flatten()), x[:, None], 0)
    torch.testing.assert_close(relevance, torch.tensor([[[2.0, -2.0]]], dtype=torch.float64), **TOL)


def test_lrp_refuses_unsupported_layers_and_bad_parameters(image_batch):
    x, t = image_batch
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)).double().eval()
    with pytest.raises(ValueError, match=r"lrp does not support module '1' \(BatchNorm2d\); supported leaf modules: Linear, Conv1d"):
        explainers.get("lrp")(model, x, t)
    with pytest.raises(ValueError, match="parameter 'composite' of explainer 'lrp': got 'zplus'"):
        explainers.get("lrp", composite="zplus")
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        explainers.get("lrp", epsilon=0.0)


def test_zennit_adapter_names_the_package_it_cannot_import():
    try:
        import zennit.composites  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("zennit imports here; the error path is not reachable")
    with pytest.raises(ImportError, match=r"the 'zennit' explainer needs the Python package 'zennit' .* could not be imported: "):
        explainers.get("zennit:EpsilonPlus")
