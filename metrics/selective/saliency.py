"""Class activation maps (CAM) as a network the line propagation can pass through."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from salbench.metrics.selective.piecewise import LinePropagator
from torch import Tensor, fx, nn

__all__ = ["cam_saliency", "gradcam_saliency", "GradCAMCore"]

_HEAD_ACTIVATIONS = (nn.Sigmoid, nn.Softmax, nn.LogSoftmax, nn.Identity)


def cam_saliency(
    classifier: nn.Module,
    target: int,
    input_shape: tuple[int, int, int],
    *,
    upsample: Literal["bilinear", "nearest"] = "bilinear",
) -> nn.Sequential:
    """The class activation map of ``classifier`` for class ``target`` as an ``nn.Sequential``.

    CAM (Zhou, Khosla, Lapedriza, Oliva, Torralba, CVPR 2016) of a CNN that ends in global
    average pooling and a linear layer: CAM_c(x) = Σ_k w_{c,k} A_k(x), A = the feature maps
    entering the pooling, upsampled to the input size. The result is
    ``Sequential(features=<the layers before the pooling>, cam=Conv2d(K, 1, 1) holding w_c,
    [resize=...], [upsample=Upsample(size=(H, W), mode)])`` and returns maps of shape
    (N, 1, H, W), a network :class:`~salbench.metrics.selective.piecewise.LinePropagator` accepts when the
    features are made of supported modules (the registered ``cam`` explainer computes the same
    map by hooks, for any architecture); the
    upsampling is left out when the features already have the input's size (as in Miwa et
    al.'s CNN, which upsamples before pooling). Because upsampling is linear and acts per
    channel, upsampling the weighted sum equals the weighted sum of upsampled maps; so
    upsampling layers at the end of the features are moved behind the sum (``resize``), where
    they resize one map instead of K.

    Departures: the class bias is left out (it is constant over pixels, as in Zhou et al.);
    Miwa et al.'s authors' code computes the same weighted sum on their upsampled features.
    The classifier is not modified (its layers are deep-copied) and the result is in eval mode.

    Args:
        classifier: ``nn.Sequential(*features, AdaptiveAvgPool2d(1), Flatten(), Linear(K, classes)
            [, Sigmoid | Softmax | LogSoftmax | Identity])``; a module with attributes
            ``features`` and ``classifier`` (an ``nn.Linear``) whose logits are
            classifier(global average pool(features(x))) (checked on a random probe), such as
            ``salbench.models.small_cnn.SmallCNN``; or any module whose ``torch.fx`` graph ends
            in a global average pool, a flatten and one ``nn.Linear`` (torchvision's ResNet and
            DenseNet layout ``avgpool``/``fc``, timm's ``global_pool``/``fc``): the features are
            then the traced graph up to the pool's input.
        target: the class whose map is built, in [0, classes).
        input_shape: (C, H, W) of the classifier's inputs.
        upsample: interpolation used to bring the map to (H, W) when needed.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> cam_saliency(net, 1, (1, 8, 8))(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """
    features, linear = _split(classifier)
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < linear.out_features:
        raise ValueError(f"target must be a class index in [0, {linear.out_features}), got {target!r}")
    if len(input_shape) != 3 or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive ints, got {input_shape!r}")
    if upsample not in ("bilinear", "nearest"):
        raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {upsample!r}")
    if type(classifier) is not nn.Sequential and getattr(classifier, "classifier", None) is linear:
        _check_head(copy.deepcopy(classifier).eval(), input_shape)  # attributes say nothing of forward
    features = copy.deepcopy(features).eval()
    weight = linear.weight.detach()
    with torch.no_grad():
        probe = features(torch.zeros(1, *input_shape, dtype=weight.dtype, device=weight.device))
    if probe.dim() != 4 or probe.shape[1] != linear.in_features:
        raise ValueError(
            f"the layers before the pooling must return (N, {linear.in_features}, h, w) feature maps for "
            f"inputs of shape {input_shape}, got {tuple(probe.shape)}"
        )
    cam = nn.Conv2d(linear.in_features, 1, 1, bias=False).to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        cam.weight.copy_(weight[target].view(1, -1, 1, 1))
    features, resize = _trailing_upsampling(features)
    parts: OrderedDict[str, nn.Module] = OrderedDict(features=features, cam=cam)
    if resize:
        parts["resize"] = nn.Sequential(*resize)
    size = tuple(input_shape[1:])
    if tuple(probe.shape[2:]) != size:
        parts["upsample"] = nn.Upsample(size=size, mode=upsample, align_corners=False if upsample == "bilinear" else None)
    return nn.Sequential(parts).eval()


def _trailing_upsampling(features: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """Split the upsampling layers off the end of a Sequential of features.

    Upsampling acts per channel and linearly, so it commutes with the channel sum of the CAM:
    moved behind it, it resizes one map instead of K (cheaper to evaluate and to propagate).
    """
    if type(features) is not nn.Sequential:
        return features, []
    layers = list(features.children())
    resize: list[nn.Module] = []
    while layers and type(layers[-1]) in (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d):
        resize.insert(0, layers.pop())
    return (nn.Sequential(*layers) if resize else features), resize


def _split(classifier: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """The feature layers and the final linear layer of a GAP-linear classifier."""
    expected = (
        "nn.Sequential(*features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(K, classes)[, activation]), "
        "a module with `features` (a module) and `classifier` (nn.Linear) computing "
        "classifier(global_average_pool(features(x))), or any module whose traced graph ends in global "
        "average pooling, flattening and one nn.Linear (torchvision's avgpool/fc, timm's global_pool/fc)"
    )
    paired = _paired_head(classifier)
    if paired is not None:
        return paired
    if type(classifier) is not nn.Sequential:
        features, linear = getattr(classifier, "features", None), getattr(classifier, "classifier", None)
        if isinstance(features, nn.Module) and type(linear) is nn.Linear:
            return features, linear
        return _graph_split(classifier, expected)
    layers = list(classifier.children())
    while layers and isinstance(layers[-1], _HEAD_ACTIVATIONS):
        layers.pop()
    if len(layers) < 4:
        raise ValueError(f"classifier must be {expected}; it has too few layers")
    pool, flatten, linear = layers[-3:]
    pool_ok = type(pool) is nn.AdaptiveAvgPool2d and pool.output_size in (1, (1, 1))
    if not (pool_ok and type(flatten) is nn.Flatten and type(linear) is nn.Linear):
        raise ValueError(
            f"classifier must be {expected}; it ends in {type(pool).__name__}, {type(flatten).__name__}, "
            f"{type(linear).__name__}"
        )
    return nn.Sequential(*layers[:-3]), linear


def _paired_head(classifier: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """Features and two-class head of a one-logit classifier seen as two classes, else None.

    Such a module (:class:`salbench.models.external.TwoLogits`) has ``model``, the one-logit
    GAP-linear classifier, and ``head``, an ``nn.Linear`` whose ``layer`` is that classifier's
    linear layer and whose weights are its two-class view (logits (−z/2, z/2)): the features
    are the wrapped classifier's, the head is the view.
    """
    inner, head = getattr(classifier, "model", None), getattr(classifier, "head", None)
    if not (isinstance(inner, nn.Module) and isinstance(head, nn.Linear) and isinstance(getattr(head, "layer", None), nn.Linear)):
        return None
    features, layer = _split(inner)
    return (features, head) if layer is head.layer else None


_ACTIVATION_FUNCTIONS = (torch.sigmoid, torch.softmax, torch.log_softmax, F.softmax, F.log_softmax, F.sigmoid)
_RESHAPES = ("flatten", "view", "reshape", "squeeze")


def _graph_split(classifier: nn.Module, expected: str) -> tuple[nn.Module, nn.Linear]:
    """Features and linear head of any GAP-linear classifier, found in its ``torch.fx`` graph.

    From the output back: optional activations (Sigmoid, Softmax, LogSoftmax), one ``nn.Linear``,
    flatten/view/squeeze, a global average pool (``AdaptiveAvgPool2d(1)``, its functional form,
    or a mean over the two spatial dims); the features are the graph up to the pool's input.
    """
    try:
        graph = fx.Tracer().trace(classifier)
    except Exception as err:  # torch.fx raises many types; the cause is kept
        raise TypeError(f"classifier must be {expected}; {type(classifier).__name__} cannot be traced ({err})") from err
    modules = dict(classifier.named_modules())
    output = next(n for n in graph.nodes if n.op == "output")
    node = output.args[0]
    while _is(node, modules, _HEAD_ACTIVATIONS) or (node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS):
        node = node.args[0]
    if not _is(node, modules, (nn.Linear,)):
        raise TypeError(f"classifier must be {expected}; its output is not computed by an nn.Linear")
    linear = modules[node.target]
    node = node.args[0]
    while _reshape(node):
        node = node.args[0]
    if not _global_pool(node, modules):
        raise TypeError(f"classifier must be {expected}; the input of its last nn.Linear is not a global average pool")
    features = node.args[0]
    output.args = (features,)
    module = fx.GraphModule(classifier, graph)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module, linear


def _is(node: fx.Node, modules: dict[str, nn.Module], kinds: tuple[type, ...]) -> bool:
    return node.op == "call_module" and type(modules[node.target]) in kinds


def _reshape(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _RESHAPES
    if node.op == "call_function":
        return node.target in (torch.flatten, torch.reshape, torch.squeeze)
    return False


def _global_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        pool = modules[node.target]
        return type(pool) is nn.AdaptiveAvgPool2d and pool.output_size in (1, (1, 1))
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        return node.args[1:2] in ((1,), ((1, 1),)) or node.kwargs.get("output_size") in (1, (1, 1))
    if (node.op == "call_method" and node.target == "mean") or (node.op == "call_function" and node.target is torch.mean):
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return isinstance(dims, (tuple, list)) and sorted(d % 4 for d in dims) == [2, 3]
    return False


def _check_head(classifier: nn.Module, input_shape: tuple[int, int, int]) -> None:
    """The classifier's logits are its linear layer applied to the spatial mean of its features (a probe)."""
    weight = classifier.classifier.weight.detach()
    probe = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    probe = probe.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        logits = classifier(probe)
        pooled = classifier.classifier(classifier.features(probe).flatten(2).mean(2))
    if logits.shape != pooled.shape or not torch.allclose(logits, pooled, rtol=1e-4, atol=1e-5):
        raise ValueError(
            "classifier(x) differs from classifier.classifier(mean over positions of classifier.features(x)); "
            "CAM needs a network that ends in global average pooling and one linear layer"
        )


# -- Grad-CAM ------------------------------------------------------------------------------------------
class GradCAMCore(nn.Module):
    """Σ_k α_k(x) A_k(x) with α_k = mean over positions of ∂y_c/∂A_k: Grad-CAM before its ReLU.

    ``features`` maps inputs to the layer's activations A (N, K, *s); ``head`` maps A to the
    logits. Its forward computes α by autograd, as Grad-CAM does; the line propagation treats it
    as one piecewise-linear step (see :func:`gradcam_saliency` for why that is exact).
    """

    def __init__(self, features: nn.Module, head: nn.Module, target: int):
        super().__init__()
        self.features, self.head, self.target = features, head, target

    def forward(self, x: Tensor) -> Tensor:
        activation = self.features(x)
        return (_pooled_gradient(self.head, self.target, activation) * activation).sum(1, keepdim=True)

    def line_step(self, path: str):
        """The propagation step (see :class:`~salbench.metrics.selective.piecewise.LinePropagator`):
        A along the line with the bounds of its pattern, the bounds of the head's pattern at A, and
        Σ α_k A_k with α from autograd at the line's point (constant on the piece)."""
        features, head = LinePropagator(self.features), LinePropagator(self.head)
        if features.final_sigmoid or head.final_sigmoid:
            raise ValueError(f"{path}: Grad-CAM's layer and head must not end in a Sigmoid")
        head64 = copy.deepcopy(self.head).double()  # α in float64, like every other quantity on the line

        def step(stacked: Tensor, batch: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
            value, slope, lo, hi = features(stacked[:batch], stacked[batch:])
            _, _, head_lo, head_hi = head(value, slope)
            alpha = _pooled_gradient(head64, self.target, value)
            out = torch.cat([(alpha * value).sum(1, keepdim=True), (alpha * slope).sum(1, keepdim=True)])
            return out, (torch.maximum(lo, head_lo), torch.minimum(hi, head_hi))

        return step


def _pooled_gradient(head: nn.Module, target: int, activation: Tensor) -> Tensor:
    """α (N, K, 1, ...): the mean over positions of ∂head(A)_target/∂A at A = ``activation``."""
    with torch.enable_grad():
        a = activation.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(head(a)[:, target].sum(), a)
    return grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True)


def gradcam_saliency(
    classifier: nn.Module,
    target: int,
    input_shape: tuple[int, ...],
    layer: str,
    *,
    upsample: Literal["bilinear", "nearest"] = "bilinear",
) -> nn.Sequential:
    """The Grad-CAM map of ``classifier`` for class ``target`` at ``layer``, as a network whose
    salient regions :func:`~salbench.metrics.selective.salient_region_test` can test.

    Grad-CAM (Selvaraju et al., ICCV 2017): with A = the output of ``layer`` (K channels, |s|
    positions) and y_c the class logit, α_k = (1/|s|) Σ_s ∂y_c/∂A_k,s and
    L = ReLU(Σ_k α_k A_k), upsampled to the input size (as :class:`salbench.explainers.gradcam.GradCAM`).

    **Why the map is piecewise linear along a line.** Let the network be y = h(A(x)) with A (the
    layers up to ``layer``) and h (the layers after it) both built from affine maps, ReLU/LeakyReLU
    and max-pooling. Along a line x(z) = a + b·z, A(z) is piecewise linear: on each interval where
    the activation pattern and the max-pool arg-maxes of A are fixed, A(z) = A₀ + A₁·z. On that
    interval h is evaluated at the points A(z) of a segment; where the pattern of h at A(z) is fixed
    too, h is affine there, h(A) = W·A + c, so ∂y_c/∂A = W_c is constant and α is constant. Hence
    on the intersection of the two families of intervals Σ_k α_k A_k(z) = Σ_k α_k (A₀,k + A₁,k·z)
    is affine in z; the ReLU, the upsampling (linear) and the threshold then cut the line into
    further pieces as for any network. The propagation therefore intersects three interval
    families — A's pattern, h's pattern at A(z), and the map's own ReLU/threshold decisions — and
    takes α from autograd at one point inside the piece. ``tests/metrics/test_selective_graph.py``
    checks the resulting truncation sets against a brute-force scan of the line.

    Args:
        classifier: a network ``torch.fx`` can trace; ``layer`` must cut it in two: every path
            from the input to the logits passes through the layer's output, and nothing computed
            before it is used after it (true of ResNet stages, VGG/DenseNet blocks).
        target: the class index.
        input_shape: (C, *S) of the inputs.
        layer: the submodule (e.g. ``"layer3"``) whose output is A.
        upsample: interpolation to the input size (1-D: linear, 3-D: trilinear for "bilinear").

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
        >>> gradcam_saliency(net, 1, (1, 8, 8), layer="1")(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """
    if not isinstance(input_shape, tuple) or not 2 <= len(input_shape) <= 4:
        raise ValueError(f"input_shape must be (C, *S) with one to three spatial dims, got {input_shape!r}")
    if upsample not in ("bilinear", "nearest"):
        raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {upsample!r}")
    features, head = _split_at_layer(copy.deepcopy(classifier).eval(), layer)
    weight = next(classifier.parameters())
    with torch.no_grad():
        logits = classifier.eval()(torch.zeros(1, *input_shape, dtype=weight.dtype, device=weight.device))
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < logits.shape[1]:
        raise ValueError(f"target must be a class index in [0, {logits.shape[1]}), got {target!r}")
    spatial = tuple(input_shape[1:])
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)] if upsample == "bilinear" else "nearest"
    resize = nn.Upsample(size=spatial, mode=mode, align_corners=False if mode != "nearest" else None)
    return nn.Sequential(OrderedDict(gradcam=GradCAMCore(features, head, target), relu=nn.ReLU(), upsample=resize)).eval()


def _split_at_layer(classifier: nn.Module, layer: str) -> tuple[fx.GraphModule, fx.GraphModule]:
    """(features, head): the traced graph up to the output of ``layer`` and from there to the output."""
    try:
        graph = fx.Tracer().trace(classifier)
    except Exception as err:  # torch.fx raises many types; the cause is kept
        raise TypeError(f"{type(classifier).__name__} cannot be traced by torch.fx ({err}); Grad-CAM regions need a traced graph") from err
    nodes = list(graph.nodes)
    inside = [i for i, n in enumerate(nodes) if n.op == "call_module" and (n.target == layer or n.target.startswith(layer + "."))]
    inside += [i for i, n in enumerate(nodes) if layer in (n.meta.get("nn_module_stack") or {}) and i not in inside]
    if not inside:
        names = sorted({n.target.split(".")[0] for n in nodes if n.op == "call_module"})
        raise ValueError(f"layer {layer!r} is not a submodule used in the forward; top-level submodules used: {', '.join(names)}")
    cut = nodes[max(inside)]
    later = nodes[max(inside) + 1 :]
    crossing = [p.name for n in later for p in n.all_input_nodes if p is not cut and nodes.index(p) < nodes.index(cut) and p.op != "get_attr"]
    if crossing:
        raise ValueError(
            f"layer {layer!r} does not cut the network in two: {', '.join(sorted(set(crossing)))} computed before its "
            "output is used after it (a skip connection around the layer); choose the output of a whole block or stage"
        )
    head_graph = fx.Graph()
    env = {cut: head_graph.placeholder("activation")}
    for node in later:
        if node.op == "output":
            head_graph.output(env[node.args[0]])
        else:
            env[node] = head_graph.node_copy(node, lambda n: env[n] if n in env else head_graph.get_attr(n.target) if n.op == "get_attr" else env[n])
    output = next(n for n in nodes if n.op == "output")
    output.args = (cut,)
    features = fx.GraphModule(classifier, graph)
    features.graph.eliminate_dead_code()
    features.recompile()
    return features, fx.GraphModule(classifier, head_graph)
