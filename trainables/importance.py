"""Feature-importance measures that Jain & Wallace compare attention against: gradients and leave-one-out.

Both take a padded batch (token ids [B, T], 0 = padding; mask [B, T] bool, True on the real tokens, which
must come first in each row) and return one non-negative score per token [B, T], 0 on padding.
For a pair model (NLI) both rank the premise tokens: the hypothesis is held fixed, as its query [B, D]
(`AttentionClassifier.query`), which the caller passes as `query`.
Both run the model in eval mode and restore its previous mode afterwards, so callers need not care.
Both run the model on its device and in its dtype, but return float64 scores. A trained model's logits
reach tens, where sigmoid rounds to exactly 1 in float32 (from |logit| > 17) and even in float64 (from
|logit| > 37): scores taken through such a probability are all 0 (gradient) or tie at 0 (leave-one-out).
So the model's passes stop at the logit, and probabilities enter in float64 only, in the forms of
`trainables.outputs` that keep the small tail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from trainables import loo_bilstm
from trainables.data import Split
from trainables.model import AttentionClassifier, BiLSTMEncoder
from trainables.outputs import output_distance, predicted_probability_gradient

# Rows per forward pass. On one CPU thread, chunks that stay in cache win: LOO for the SST-2 test set took
# ~4.1 s with 256 rows, ~4.5 s with 64 or 512, ~5.5 s with 8192. A GPU likely prefers thousands.
DEFAULT_MAX_ROWS = 256


def gradient_importance(
    model: AttentionClassifier, tokens: torch.Tensor, mask: torch.Tensor, query: torch.Tensor | None = None
) -> torch.Tensor:
    """|gradient x input| of the predicted-class probability, summed over the embedding dimension: [B, T],
    float64.

    Two classes: the predicted-class probability is p if p >= 0.5 else 1 - p, with p = sigmoid(logit);
    C classes: the largest softmax probability. Jain & Wallace rank tokens by the absolute value, so the
    sign (which merely says which class a token pushes towards) is dropped here. As in their code, the
    attention weights are held fixed (detached): the gradient measures each input's effect through the
    encoder, not through the attention being compared with it. By the chain rule the gradient is a weighted
    sum of the logits' gradients times one factor per instance (`outputs.predicted_probability_gradient`;
    two classes: |gradient x input of the logit| * p (1 - p)): the model's backward pass never meets the
    sigmoid or softmax, and the factors are taken in float64 in forms that stay exact where p rounds to 1.
    Instances are independent, so one backward pass gives every instance's gradient; only the embeddings
    get a gradient, never the parameters.
    """
    check_batch(tokens, mask)
    with eval_mode(model), torch.enable_grad():
        embeddings = model.embed(tokens).detach().requires_grad_(True)
        logits, _ = model.forward_embeddings(embeddings, mask, detach_attention=True, query=query)
        weights, scale = predicted_probability_gradient(logits)
        if logits.ndim == 1:  # one logit: its weight is 1
            (gradient,) = torch.autograd.grad(logits.sum(), embeddings)
        else:
            (gradient,) = torch.autograd.grad(logits, embeddings, grad_outputs=weights.to(logits.dtype))
    return (gradient * embeddings).detach().sum(-1).double().abs() * scale.unsqueeze(1) * mask


def leave_one_out_importance(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    max_rows: int = DEFAULT_MAX_ROWS,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    """Total variation distance between the outputs with and without each real token t: [B, T], float64.

    Deleting t shortens the sequence by one (later tokens shift left), as in Jain & Wallace; it is not
    replaced by padding. For a binary output [1 - p, p] the TVD is |p - q|. Deleting the only token of a
    length-1 row leaves an empty input, for which the model outputs what its decoder gives a zero context
    (two classes: sigmoid(decoder bias)). All deletions of the batch run together, at most max_rows
    sequences per forward pass, in the model's dtype; their logits become probabilities in float64
    (`outputs.output_distance`). For the BiLSTM only the LSTM steps a deletion changes are rerun
    (`trainables.loo_bilstm`); other encoders rerun each shortened sequence, grouped by length. A pair
    model's deletions are of premise tokens, each with its instance's `query` [B, D].
    """
    check_batch(tokens, mask)
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    lengths = mask.sum(1)
    rows, positions = mask.nonzero(as_tuple=True)  # one deletion per real token, grouped by row
    with eval_mode(model), torch.no_grad():
        if isinstance(model.encoder, BiLSTMEncoder):
            full, deleted = loo_bilstm.leave_one_out_logits(
                model, tokens, mask, rows, positions, max_rows, query
            )
        else:
            full = _logits(model, tokens, lengths, max_rows, query)
            deleted_tokens = _delete_one(tokens, rows, positions, lengths)
            deleted = _logits(model, deleted_tokens, lengths[rows] - 1, max_rows, _rows_of(query, rows))
    importance = torch.zeros(mask.shape, dtype=torch.float64, device=full.device)
    importance[rows, positions] = output_distance(full[rows], deleted)
    return importance


def _rows_of(query: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    """The query of each of `rows` [N] (None without a query)."""
    return None if query is None else query[rows]


def _delete_one(
    tokens: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Row i is tokens[rows[i]] without position positions[i], shifted left and zero-padded: [N, T].

    The width stays T (one padding column more than needed) so a batch with T = 1 still has a column.
    """
    padded = torch.nn.functional.pad(tokens, (0, 1))
    columns = torch.arange(tokens.shape[1], device=tokens.device)
    source = columns + (columns >= positions.unsqueeze(1))  # skip the deleted position
    shortened = padded[rows].gather(1, source)
    return shortened * (columns < (lengths[rows] - 1).unsqueeze(1))


def _logits(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    max_rows: int,
    query: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits [N] or [N, C], in the model's dtype, of left-aligned sequences [N, T] with the given lengths
    [N] (a pair model: and the query [N, D] of each).

    Rows are grouped by length and run at most max_rows at a time, so no chunk mixes lengths: each is a
    dense [rows, length] block with no padding, which is also the fast path of the CPU LSTM (~10% faster
    than length-sorted chunks that straddle two lengths). Empty rows keep one fully masked column.
    """
    order = lengths.argsort()
    _, counts = torch.unique_consecutive(lengths[order], return_counts=True)
    logits = None
    for group in order.split(counts.tolist()):
        width = max(int(lengths[group[0]]), 1)
        group_mask = torch.arange(width, device=tokens.device) < lengths[group].unsqueeze(1)
        for chunk, chunk_mask in zip(group.split(max_rows), group_mask.split(max_rows), strict=True):
            embeddings = model.embed(tokens[chunk, :width])
            chunk_logits, _ = model.forward_embeddings(embeddings, chunk_mask, query=_rows_of(query, chunk))
            if logits is None:
                logits = chunk_logits.new_empty(len(order), *chunk_logits.shape[1:])
            logits[chunk] = chunk_logits
    return logits


def premise_batch(
    model: AttentionClassifier, split: Split, indices: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The instances `indices` of `split` as the measures take them: token ids [B, T], mask [B, T] and,
    for a pair task, the query [B, D] of each hypothesis (computed once, no gradient; None otherwise)."""
    tokens, mask, *hypothesis = split.batch(indices, device)
    if not hypothesis:
        return tokens, mask, None
    with eval_mode(model), torch.no_grad():
        return tokens, mask, model.query(*hypothesis)


@contextmanager
def eval_mode(model: AttentionClassifier) -> Iterator[None]:
    """Run the model in eval mode, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def check_batch(tokens: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise ValueError unless tokens and mask are [B, T] with a boolean, left-aligned mask."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [B, T], got shape {tuple(tokens.shape)}")
    if mask.shape != tokens.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from tokens shape {tuple(tokens.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"tokens must be non-empty, got shape {tuple(tokens.shape)}")
    left_aligned = torch.arange(mask.shape[1], device=mask.device) < mask.sum(1, keepdim=True)
    if not torch.equal(mask, left_aligned):
        raise ValueError("mask must be left-aligned: real tokens first, padding after")
