"""Validation sweep of ID-ExpO's λ₁ for the idexpo2024 suite (validation split only).

For PneumoniaMNIST (`pneu`) or 16×16 synthetic blocks (any other argument): fine-tune with each
candidate λ₁ through the model cache and print validation accuracy, insertion and deletion on 64
correctly classified validation samples; the suite takes the λ₁ with the best
2·accuracy + insertion + (1 − deletion), the authors' checkpoint score.

Run: SALBENCH_CACHE_DIR=... python -m benchmarks.tuning.idexpo2024_strengths pneu
"""
import sys, time, torch
import explainers, metrics
from benchmarks.datasets import load_dataset
from benchmarks.model_cache import trained_model
from benchmarks.runner import select_samples
torch.set_num_threads(1)
ds, dsp, base = ("pneumoniamnist", {}, {}) if sys.argv[1] == "pneu" else ("synthetic_blocks", {"size": 16}, {"epochs": 10})
data = load_dataset(ds, dsp)
def report(net, meta, label):
    chosen = select_samples(net, data.val, 64, 0, 64)
    x, y = data.val.x[chosen], data.val.y[chosen]
    out = [label, f"val_acc {meta['val_accuracy']:.3f}", f"train {meta['train_seconds']:.0f}s"]
    for ex in ["gradient", "gradcam", "integrated_gradients"]:
        e = explainers.get(ex); attr = e(net, x, y)
        ins = metrics.get("insertion", fraction=0.5, baseline="mean")(net, x, attr, y).mean().item()
        dele = metrics.get("deletion", fraction=0.5, baseline="mean")(net, x, attr, y).mean().item()
        out.append(f"{ex}: ins {ins:.3f} del {dele:.3f}")
    print(" | ".join(out), flush=True)
net, meta = trained_model(ds, dsp, "small_cnn", {}, "standard", base, 0); report(net, meta, "standard")
for spec in sys.argv[2:]:
    ex, epochs, steps, lam = spec.split(",")
    net, meta = trained_model(ds, dsp, "small_cnn", {}, "idexpo", {"explainer": ex, "epochs": int(epochs), "steps": int(steps), "lam_insdel": float(lam), "base": base}, 0)
    report(net, meta, spec)
