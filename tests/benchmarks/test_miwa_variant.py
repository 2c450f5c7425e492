"""The pieces of Miwa et al.'s own setup: the one-sigmoid-output CAM network, training blocks of
side d/4, and the permutation baselines as a grid metric."""

from __future__ import annotations

import pytest
import torch
from salbench import metrics
from salbench.datasets.synthetic_blocks import SyntheticBlocks
from salbench.metrics.base import Case
from salbench.metrics.selective import cam_saliency, permutation_test
from salbench.models.miwa_cnn import MiwaCNN
from torch import nn


def test_sigmoid_output_is_one_logit_seen_as_two_and_its_cam_is_half_the_authors():
    torch.manual_seed(0)
    net = MiwaCNN((1, 8, 8), 2, output="sigmoid").double().eval()
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    z = net.model(x)  # the authors' network: Dense(1) on the pooled features
    assert z.shape == (5, 1)
    torch.testing.assert_close(net(x), torch.cat([-z, z], 1) / 2, rtol=0, atol=1e-12)
    # softmax of (−z/2, z/2) is the sigmoid model's (1 − σ(z), σ(z))
    torch.testing.assert_close(net(x).softmax(1)[:, 1], torch.sigmoid(z[:, 0]), rtol=0, atol=1e-12)
    # the one linear layer's parameters are the only head parameters (the paired view adds none)
    assert [k for k in net.state_dict() if "classifier" in k] == ["model.classifier.weight", "model.classifier.bias"]
    # CAM of class 1, by hand: Σ_k w_k A_k / 2 over the upsampled features; class 0 is its negative
    by_hand = (net.model.features(x) * net.model.classifier.weight.view(1, -1, 1, 1)).sum(1, keepdim=True) / 2
    torch.testing.assert_close(cam_saliency(net, 1, (1, 8, 8))(x), by_hand, rtol=0, atol=1e-12)
    torch.testing.assert_close(cam_saliency(net, 0, (1, 8, 8))(x), -by_hand, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="num_classes=3"):
        MiwaCNN((1, 8, 8), 3, output="sigmoid")
    with pytest.raises(ValueError, match="output must be"):
        MiwaCNN((1, 8, 8), 2, output="tanh")


def test_train_block_sets_the_training_and_validation_blocks_only():
    data = SyntheticBlocks(size=16, delta=2.0, block=8, train_block=4, n_train=20, n_val=10, n_test=10).load()
    for split, side in ((data.train, 4), (data.val, 4), (data.test, 8)):
        positive = split.mask[split.y == 1]
        assert positive.shape[0] > 0
        assert (positive.flatten(1).sum(1) == side * side).all()  # one square of the given side per image
        rows, cols = positive.any(3)[:, 0], positive.any(2)[:, 0]
        assert (rows.sum(1) == side).all() and (cols.sum(1) == side).all()
    # the same noise and labels as without train_block: only the planted squares differ
    same = SyntheticBlocks(size=16, delta=2.0, block=8, n_train=20, n_val=10, n_test=10).load()
    assert torch.equal(same.train.y, data.train.y) and torch.equal(same.test.x, data.test.x)
    torch.testing.assert_close(data.train.x - 2.0 * data.train.mask.float(), same.train.x - 2.0 * same.train.mask.float())
    with pytest.raises(ValueError, match="train_block"):
        SyntheticBlocks(size=8, train_block=9)


def _case():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 2)).double()
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    reference = torch.randn(4, 2, 1, 6, 6, dtype=torch.float64)
    return Case(model=net, explainer=None, x=x, target=torch.tensor([1, 0, 1, 1]), attr=x, reference=reference)


@pytest.mark.parametrize("scheme,statistic", [("pixels", "mean"), ("pooled", "abs"), ("pixels", "back")])
def test_permutation_metric_is_the_permutation_test_of_each_class_cam(scheme, statistic):
    case = _case()
    out = metrics.get("permutation_pvalue", statistic=statistic, scheme=scheme, permutations=39, seed=5).evaluate(case)
    for c in (0, 1):
        rows = (case.target == c).nonzero().squeeze(1)
        ref = None if statistic == "back" else case.reference[rows]
        expected = permutation_test(cam_saliency(case.model, c, (1, 6, 6)), case.x[rows], x_ref=ref, threshold=0.0,
                                    statistic=statistic, scheme=scheme, permutations=39, seed=5)
        for row, result in zip(rows.tolist(), expected):
            if result.reason is None:
                assert out.values[row].item() == result.p_value and out.notes[row] is None
            else:
                assert out.values[row].isnan() and out.notes[row] == result.reason
    assert not out.values.isnan().all()


def test_permutation_metric_by_brute_force_on_a_linear_saliency():
    """A map that is the image itself: the region is {x > 0}, T the mean of x − ref over it; with
    B permutations of the positions, p counts the permuted T at least as extreme, by hand."""
    x = torch.tensor([[[[1.0, -2.0], [3.0, -0.5]]]], dtype=torch.float64)
    ref = torch.tensor([[[[0.5, 0.0], [1.0, 2.0]]]], dtype=torch.float64)
    identity = nn.Sequential(nn.Identity())
    (result,) = permutation_test(identity, x, x_ref=ref, threshold=0.0, statistic="mean", scheme="pixels",
                                 permutations=200, seed=0)
    observed = ((x - ref)[x > 0]).mean().item()  # (0.5 + 2.0) / 2
    assert result.statistic == pytest.approx(observed)
    # every permutation moves x and ref together: T_π is the mean of x − ref over the positive x values, the same
    # pairs, so every permuted T equals the observed one and p = 1
    assert result.p_value == 1.0 and result.valid_permutations == 200


def test_permutation_metric_checks_its_parameters():
    with pytest.raises(ValueError, match="pooled"):
        metrics.get("permutation_pvalue", statistic="back", scheme="pooled")
    with pytest.raises(ValueError, match="scheme"):
        metrics.get("permutation_pvalue", scheme="shuffle")
    with pytest.raises(ValueError, match="permutations"):
        metrics.get("permutation_pvalue", permutations=0)
