"""Validation sweep of the regularisation strengths of the r2et2024 suite (validation split only).

For each data set (seed 0) and each candidate strength of each recipe: train/fine-tune the model
through the model cache, then on 64 correctly classified VALIDATION samples attack the
gradient explanation with er_attack (the suite's k, eps, 50 steps) and record P@k (top-k
intersection) and the validation accuracy. Rule: per recipe, the strength with the highest
validation P@k among those whose validation accuracy is at most 2 points below the standard
model's; if none qualifies, the weakest strength.

Run: SALBENCH_CACHE_DIR=... python sweep_lambda.py [dataset ...]
"""
import json, sys, time
import torch
import attacks, explainers, metrics
from benchmarks.datasets import load_dataset
from benchmarks.model_cache import trained_model
from benchmarks.runner import select_samples

torch.set_num_threads(1)
SETS = {  # data set, its params, architecture, its params, standard params (the base), k, fine-tuning settings
    "wdbc": ("wdbc", {}, "mlp", {}, {}, 8, {"epochs": 30}),
    "pneumoniamnist": ("pneumoniamnist", {}, "small_cnn", {}, {}, 50, {}),
    "synthetic_blocks": ("synthetic_blocks", {"size": 16}, "small_cnn", {}, {"epochs": 10}, 50, {}),
}
LAMS = [0.001, 0.01, 0.1, 1.0]


def candidates(base, k, tune):
    out = [("standard", base, None)]
    out += [("weight_decay", {**base, "weight_decay": wd}, wd) for wd in (1e-4, 1e-3, 1e-2)]
    out += [("softplus", {**base, "beta": b}, b) for b in (0.5, 2.0, 10.0)]
    out += [("adversarial", {"eps": 0.5, "norm": "l2", "steps": 5, "base": base, **tune}, 0.5)]
    out += [("est_hessian", {"lam": l, "base": base, **tune}, l) for l in LAMS]
    for variant, extra in [("r2et", {}), ("r2et_mm", {"mm_terms": 1}), ("r2et_noh", {"hessian": False})]:
        out += [(variant, {"k": k, "lam": l, "base": base, **extra, **tune}, l) for l in LAMS]
    return out


def main(names):
    rows = []
    for name in names:
        ds, dsp, model, mp, base, k, tune = SETS[name]
        data = load_dataset(ds, dsp)
        for label, params, strength in candidates(base, k, tune):
            recipe = label.split("_mm")[0].split("_noh")[0] if label.startswith("r2et") else label
            t = time.perf_counter()
            net, meta = trained_model(ds, dsp, model, mp, recipe, params, 0)
            train_s = time.perf_counter() - t
            try:
                chosen = select_samples(net, data.val, 64, 0, 64)
            except ValueError:  # too few correct validation samples: the strength is disqualified anyway
                rows.append(dict(dataset=name, recipe=label, strength=strength, val_accuracy=meta["val_accuracy"], val_pk=None))
                print(json.dumps(rows[-1]), flush=True)
                continue
            x, y = data.val.x[chosen], data.val.y[chosen]
            explainer = explainers.get("gradient")
            surrogate = None if recipe == "softplus" else 10.0
            result = attacks.get("er_attack", k=k, steps=50, surrogate_beta=surrogate)(net, explainer, x, y, bounds=data.bounds)
            pk = metrics.get("topk_intersection", k=k)(explainer(net, x, y), explainer(net, result.x_adv, y)).mean().item()
            row = dict(dataset=name, recipe=label, strength=strength, val_accuracy=meta["val_accuracy"], val_pk=pk,
                       train_s=round(train_s, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:] or list(SETS))
