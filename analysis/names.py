"""Human-readable names and the one colour palette shared by every table and figure."""

from __future__ import annotations

from trainables.tracking import AXES

SETTING = AXES[:-1]  # the grid axes but the seed: a setting's results are averaged over its seeds

PAIRS = {
    "attn_grad": "attention vs gradient",
    "attn_loo": "attention vs leave-one-out",
    "grad_loo": "gradient vs leave-one-out",
}
MEASURES = {
    "kendall": "Kendall τ (all tokens)",
    "topk_avg": "top-k Kendall τ, k = mean test length",
    "topk_nz": "top-k Kendall τ, k = non-zero attention weights",
}
SHORT_MEASURES = {
    "kendall": "Kendall τ",
    "topk_avg": "top-k τ, k = mean length",
    "topk_nz": "top-k τ, k = non-zero",
}
CLASSES = {"all": "all", "0": "negative (0)", "1": "positive (1)"}

# Okabe-Ito / Tol colours: distinguishable with colour-blindness, and no colour means two things at once.
PALETTE = {
    "pair": {"attn_grad": "#0072B2", "attn_loo": "#E69F00", "grad_loo": "#009E73"},
    "normalizer": {
        "softmax": "#882255",
        "sparsemax": "#332288",
        "entmax15": "#117733",
        "alpha_entmax": "#999933",
        "uniform": "#888888",
    },
    "class": {"0": "#D55E00", "1": "#56B4E9"},
    "infeasible": "#7F7F7F",
}


def setting_name(setting: dict) -> str:
    """`sst2-lstm-tanh-softmax`: a trial's run name without the seed."""
    return "-".join(str(setting[axis]) for axis in SETTING)


def setting_title(setting: dict) -> str:
    """`sst2 · lstm encoder · tanh attention · softmax`."""
    return (
        f"{setting['dataset']} · {setting['encoder']} encoder · {setting['attention']} attention · "
        f"{setting['normalizer']}"
    )
