"""Attributions beyond gradient and leave-one-out, through captum: Integrated Gradients, DeepLIFT and LIME.

Every function takes a padded batch like `importance` does (token ids [B, T], 0 = padding; mask [B, T] bool,
True on the real tokens, which come first in each row) and returns one score per token [B, T], 0 on padding.
The conventions are those of `importance.gradient_importance`:

- the attributed output is the probability of the predicted class (p if p >= 0.5 else 1 - p, with the class
  chosen on the real input and kept fixed along IG's path and in LIME's perturbations; for C classes the
  largest softmax probability);
- a pair model's attributions are over the premise tokens, each row's hypothesis held fixed as its query
  [B, D] (`query`);
- a token's score is the attribution summed over the embedding dimension; `attribution_importance`
  returns its absolute value (Jain & Wallace rank by magnitude), the `signed_*` functions keep the sign;
- the baseline is the padding embedding (token id 0, the zero vector since `padding_idx=0`), under the same
  mask: "every real token replaced by padding".

The model runs in eval mode (its previous mode is restored), on its own device and dtype; no parameter
gradient is accumulated. `internal_batch_size` bounds the rows of one forward pass in every method.

DeepLIFT caveat: captum's DeepLift applies its rescale rule only to nonlinearities that are modules
(nn.Sigmoid, nn.Tanh, ...). It cannot see inside PyTorch's nn.LSTM (captum documents this), nor into the
functional softmax / sparsemax normalizers, so those get plain gradients. Here the rule reaches the output
sigmoid (or softmax) and the tanh of additive attention; for two classes with dot attention DeepLIFT is
therefore gradient x input of the logit times one factor per instance, and ranks tokens exactly as
`gradient_importance` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from trainables.importance import check_batch, eval_mode
from trainables.model import AttentionClassifier
from trainables.outputs import predicted_class as predicted_class_of
from trainables.registry import ATTRIBUTION_METHODS

if TYPE_CHECKING:
    from captum.attr import DeepLift, IntegratedGradients

# captum (and the matplotlib it imports) is imported by the functions that use it: most sweeps compute no
# attribution, and every trial worker would otherwise import it at start-up (a tenth of its import time).

DEFAULT_STEPS = 50  # captum's default number of IG steps
DEFAULT_SAMPLES = 500
DEFAULT_INTERNAL_BATCH_SIZE = 256
# LIME's surrogate: ridge regression with alpha 1, the default of the original `lime` package. captum's own
# default, Lasso with alpha 0.01, zeroes every token whose effect on the probability is below about 0.04
# (on a 7-token test sentence with effects up to 0.045: all of them), which turns rankings into ties.
LIME_RIDGE_ALPHA = 1.0


class ClassProbabilities(nn.Module):
    """The classifier from embeddings: [N, T, E] embeddings, [N, T] mask (a pair model: and the query
    [N, D]) -> [N, C] probabilities, (1 - p, p) for two classes.

    Column c is P(class c), so captum's `target` picks the predicted class per instance. The sigmoid and
    softmax are modules so DeepLift rescales them; 1 - p is computed as sigmoid(-logit), exact in floating
    point.
    """

    def __init__(self, model: AttentionClassifier) -> None:
        super().__init__()
        self.model = model
        self.sigmoid = nn.Sigmoid()
        self.softmax = nn.Softmax(dim=-1)

    def forward(
        self, embeddings: torch.Tensor, mask: torch.Tensor, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits, _ = self.model.forward_embeddings(embeddings, mask, query=query)
        if logits.ndim == 2:
            return self.softmax(logits)
        return self.sigmoid(torch.stack([-logits, logits], dim=-1))


def predicted_class(
    model: AttentionClassifier, tokens: torch.Tensor, mask: torch.Tensor, query: torch.Tensor | None = None
) -> torch.Tensor:
    """[B] long: the class whose probability is attributed (`outputs.predicted_class`)."""
    check_batch(tokens, mask)
    with eval_mode(model), torch.no_grad():
        logits, _ = model.forward_embeddings(model.embed(tokens), mask, query=query)
    return predicted_class_of(logits)


def padding_baseline(model: AttentionClassifier, tokens: torch.Tensor) -> torch.Tensor:
    """[B, T, E]: the padding embedding (token id 0) at every position, detached."""
    return model.embed(torch.zeros_like(tokens)).detach()


def signed_integrated_gradients(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrated Gradients from the padding baseline, summed over the embedding dimension: [B, T], signed.

    captum's `IntegratedGradients` with its default Gauss-Legendre path of `steps` points. Row sums
    approximate f(x) - f(baseline) for f the predicted-class probability (completeness). Instances go to
    captum in groups of internal_batch_size // steps, so one pass of (instances x steps) rows stays within
    internal_batch_size; with fewer rows than steps captum splits the steps of one instance.
    """
    check_batch(tokens, mask)
    _check_positive(steps=steps, internal_batch_size=internal_batch_size)
    from captum.attr import IntegratedGradients

    with eval_mode(model), torch.enable_grad():
        explainer = IntegratedGradients(ClassProbabilities(model))
        per_call = max(1, internal_batch_size // steps)
        return _attribute_in_groups(
            explainer,
            model,
            tokens,
            mask,
            query,
            per_call,
            n_steps=steps,
            internal_batch_size=internal_batch_size,
        )


def signed_deeplift(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    """DeepLIFT (rescale rule) from the padding baseline, summed over the embedding dimension: [B, T], signed.

    captum's `DeepLift` on `ClassProbabilities`. It runs input and baseline as one batch of 2 x instances
    rows, so instances go in groups of internal_batch_size // 2. See the module docstring for what the
    rescale rule reaches in this model; the rest (the LSTM, the normalizer) gets plain gradients, so rows do
    not sum exactly to f(x) - f(baseline).
    """
    check_batch(tokens, mask)
    _check_positive(internal_batch_size=internal_batch_size)
    from captum.attr import DeepLift

    with eval_mode(model), torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Setting forward, backward hooks", category=UserWarning)
        explainer = DeepLift(ClassProbabilities(model))
        return _attribute_in_groups(explainer, model, tokens, mask, query, max(1, internal_batch_size // 2))


def signed_lime(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    samples: int = DEFAULT_SAMPLES,
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
    seed: int = 0,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    """LIME coefficients on token presence: [B, T], signed.

    captum's `Lime` with a ridge surrogate (see LIME_RIDGE_ALPHA) and captum's default similarity (an
    exponential kernel of the cosine distance between the original and the perturbed embeddings); each
    real token is one interpretable feature (`feature_mask`) and is removed by replacing its embedding with
    the padding embedding. Each sample keeps
    every token with probability 1/2 (captum's default sampling), drawn from a generator seeded with `seed`
    afresh for every instance, so a row's result depends only on that row and the seed. captum fits one
    interpretable model per instance anyway, so instances run one at a time, without their padding; the
    `samples` perturbations of an instance run internal_batch_size per forward pass.
    """
    check_batch(tokens, mask)
    _check_positive(samples=samples, internal_batch_size=internal_batch_size)
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    coefficients = torch.zeros(mask.shape, dtype=model.dtype, device=tokens.device)
    with eval_mode(model), torch.no_grad():
        explainer = Lime(
            ClassProbabilities(model),
            interpretable_model=SkLearnRidge(alpha=LIME_RIDGE_ALPHA),
            perturb_func=_token_presence_sampler(seed, samples),
        )
        target = predicted_class(model, tokens, mask, query)
        for row, length in enumerate(mask.sum(1).tolist()):
            if length == 0:
                continue
            sentence = tokens[row : row + 1, :length]
            embeddings = model.embed(sentence)
            feature_mask = torch.arange(length, device=tokens.device).view(1, length, 1).expand_as(embeddings)
            weights = explainer.attribute(
                embeddings,
                baselines=padding_baseline(model, sentence),
                target=target[row : row + 1],
                additional_forward_args=_forward_args(mask[row : row + 1, :length], query, row, row + 1),
                feature_mask=feature_mask,
                n_samples=samples,
                perturbations_per_eval=min(internal_batch_size, samples),
                return_input_shape=False,
            )
            coefficients[row, :length] = weights.reshape(length).to(coefficients)
    return coefficients


def attribution_importance(
    method: str,
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    samples: int = DEFAULT_SAMPLES,
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
    seed: int = 0,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    """The non-negative per-token scores [B, T] of one of `ATTRIBUTION_METHODS`, by name: the absolute
    value of the signed attribution (Jain & Wallace rank by magnitude)."""
    if method == "integrated_gradients":
        signed = signed_integrated_gradients(model, tokens, mask, steps, internal_batch_size, query)
    elif method == "deeplift":
        signed = signed_deeplift(model, tokens, mask, internal_batch_size, query)
    elif method == "lime":
        signed = signed_lime(model, tokens, mask, samples, internal_batch_size, seed, query)
    else:
        raise ValueError(f"unknown attribution method {method!r}; allowed: {', '.join(ATTRIBUTION_METHODS)}")
    return signed.abs()


def _token_presence_sampler(seed: int, samples: int) -> Callable[..., Iterator[torch.Tensor]]:
    """A captum `perturb_func` (a generator function, restarted per instance): [1, F] 0/1 samples."""

    def sample(original: torch.Tensor, num_interp_features: int, **_: object) -> Iterator[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        draws = torch.rand(samples, num_interp_features, generator=generator) < 0.5
        for draw in draws.long().to(original.device):
            yield draw.unsqueeze(0)

    return sample


def _attribute_in_groups(
    explainer: IntegratedGradients | DeepLift,
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    query: torch.Tensor | None,
    group_size: int,
    **options: int,
) -> torch.Tensor:
    """`explainer` from the padding baseline for the predicted class, `group_size` instances per call,
    summed over the embedding dimension: [B, T], signed, 0 on padding."""
    target = predicted_class(model, tokens, mask, query)
    parts = []
    for rows in _row_groups(len(tokens), group_size, tokens.device):
        attributions = explainer.attribute(
            model.embed(tokens[rows]).detach().requires_grad_(True),
            baselines=padding_baseline(model, tokens[rows]),
            target=target[rows],
            additional_forward_args=_forward_args(mask[rows], query, int(rows[0]), int(rows[-1]) + 1),
            **options,
        )
        parts.append(attributions.sum(-1).detach())
    return torch.cat(parts) * mask


def _forward_args(
    mask: torch.Tensor, query: torch.Tensor | None, start: int, stop: int
) -> tuple[torch.Tensor, ...]:
    """captum's `additional_forward_args` of rows start..stop-1: their mask, and their query if any."""
    return (mask,) if query is None else (mask, query[start:stop])


def _row_groups(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Row indices 0..n-1 in consecutive groups of at most `size`."""
    return torch.arange(n, device=device).split(size)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
