"""Jain & Wallace's binary attention classifier: embedding, encoder, attention, sigmoid decoder.

The forward pass is split into steps (`embed`, `encode`, `attend`, `decode`) so explanation code can start
from the embeddings (gradient importance) or from frozen hidden states (counterfactual attention).
Shapes: B batch, T padded length, E embedding size, D hidden size (2 x 128 for the BiLSTM).
"""

from __future__ import annotations

import math

import torch
from entmax import sparsemax
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ENCODERS = ("lstm",)
ATTENTIONS = ("tanh", "dot")
NORMALIZERS = ("softmax", "sparsemax")
MASK_VALUE = -1e9  # finite: a fully masked row (an empty input) must not produce NaN or an index error


class BiLSTMEncoder(nn.Module):
    """One-layer bidirectional LSTM over packed sequences, so padding never reaches the backward pass."""

    def __init__(self, embed_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(embed_dim, hidden_size, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden_size

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E], [B, T] -> [B, T, D]; rows of length 0 give zero states."""
        lengths = mask.sum(1)
        packed = pack_padded_sequence(
            embeddings, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        output, _ = self.rnn(packed)
        hidden, _ = pad_packed_sequence(output, batch_first=True, total_length=embeddings.shape[1])
        return hidden * mask.unsqueeze(-1)


class AdditiveAttention(nn.Module):
    """Bahdanau (tanh) scores: v^T tanh(W h_t + b).

    The tanh is a module (no parameters, same numbers as torch.tanh) so that captum's DeepLift, which only
    sees nonlinearities that are modules, applies its rescale rule to it.
    """

    def __init__(self, input_size: int, attention_size: int = 128) -> None:
        super().__init__()
        self.project = nn.Linear(input_size, attention_size)
        self.activation = nn.Tanh()
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.score(self.activation(self.project(hidden))).squeeze(-1)


class ScaledDotAttention(nn.Module):
    """Scaled dot-product scores with a learned query vector: q^T h_t / sqrt(D)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(input_size) / math.sqrt(input_size))
        self.scale = math.sqrt(input_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.query / self.scale


def normalize(scores: torch.Tensor, mask: torch.Tensor, normalizer: str) -> torch.Tensor:
    """Masked attention distribution [B, T]: zero on padding, sums to 1 over real tokens (0 if none)."""
    masked = scores.masked_fill(~mask, MASK_VALUE)
    if normalizer == "softmax":
        weights = torch.softmax(masked, dim=-1)
    elif normalizer == "sparsemax":
        weights = sparsemax(masked, dim=-1)
    else:
        raise ValueError(f"unknown normalizer {normalizer!r}; allowed: {', '.join(NORMALIZERS)}")
    return weights * mask


class AttentionClassifier(nn.Module):
    """Embedding -> encoder -> attention -> linear decoder giving one logit (sigmoid = P(label 1))."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 300,
        hidden_size: int = 128,
        encoder: str = "lstm",
        attention: str = "tanh",
        normalizer: str = "softmax",
        pretrained: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("encoder", encoder, ENCODERS),
            ("attention", attention, ATTENTIONS),
            ("normalizer", normalizer, NORMALIZERS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        if pretrained is not None:
            self.embedding.weight.data.copy_(pretrained)
        self.encoder = BiLSTMEncoder(embed_dim, hidden_size)
        size = self.encoder.output_size
        self.attention = AdditiveAttention(size) if attention == "tanh" else ScaledDotAttention(size)
        self.normalizer = normalizer
        self.decoder = nn.Linear(size, 1)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, E]."""
        return self.embedding(tokens)

    def encode(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E] -> hidden states [B, T, D]."""
        return self.encoder(embeddings, mask)

    def attend(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> attention weights [B, T]."""
        return normalize(self.attention(hidden), mask, self.normalizer)

    def decode(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Logit [B] of the attention-weighted context vector sum_t weights_t * hidden_t."""
        context = torch.einsum("bt,btd->bd", weights, hidden)
        return self.decoder(context).squeeze(-1)

    def forward_embeddings(
        self, embeddings: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B] and attention [B, T] from embeddings [B, T, E]."""
        hidden = self.encode(embeddings, mask)
        weights = self.attend(hidden, mask)
        return self.decode(hidden, weights), weights

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B] and attention [B, T] from token ids [B, T] (0 = padding) and mask [B, T]."""
        return self.forward_embeddings(self.embed(tokens), mask)
