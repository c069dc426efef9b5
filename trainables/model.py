"""Jain & Wallace's binary attention classifier: embedding, encoder, attention, sigmoid decoder.

Encoders: BiLSTM, CNN, or a context-free projection; attention: additive (tanh) or scaled dot product;
normalizers: softmax and the sparse entmax family (Peters et al. 2019, via the `entmax` package).

The forward pass is split into steps (`embed`, `encode`, `attend`, `decode`) so explanation code can start
from the embeddings (gradient importance) or from frozen hidden states (counterfactual attention).
Shapes: B batch, T padded length, E embedding size, D hidden size (2 x 128 for the BiLSTM).
"""

from __future__ import annotations

import math

import torch
from entmax import entmax15, entmax_bisect, sparsemax
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainables.settings import ATTENTIONS, ENCODERS, NORMALIZERS

MASK_VALUE = -1e9  # finite: with -inf, sparsemax and entmax15 raise and softmax gives NaN on an empty row
CNN_WIDTHS = (1, 3, 5, 7)


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


class CNNEncoder(nn.Module):
    """Jain & Wallace's CNN: convolutions of widths 1, 3, 5, 7 (hidden_size channels in all), ReLU.

    Padding positions are zeroed before the convolutions, so a row's states do not depend on how much
    padding follows it.
    """

    def __init__(self, embed_dim: int, hidden_size: int) -> None:
        super().__init__()
        if hidden_size % len(CNN_WIDTHS):
            raise ValueError(f"cnn hidden_size must be a multiple of {len(CNN_WIDTHS)}, got {hidden_size}")
        channels = hidden_size // len(CNN_WIDTHS)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(embed_dim, channels, width, padding=width // 2) for width in CNN_WIDTHS
        )
        self.output_size = hidden_size

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E], [B, T] -> [B, T, D]."""
        inputs = (embeddings * mask.unsqueeze(-1)).transpose(1, 2)  # [B, E, T]
        hidden = torch.cat([torch.relu(conv(inputs)) for conv in self.convolutions], dim=1)
        return hidden.transpose(1, 2) * mask.unsqueeze(-1)


class AverageEncoder(nn.Module):
    """Jain & Wallace's context-free encoder: a tanh projection of each embedding on its own."""

    def __init__(self, embed_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(embed_dim, hidden_size)
        self.output_size = hidden_size

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E], [B, T] -> [B, T, D]."""
        return torch.tanh(self.project(embeddings)) * mask.unsqueeze(-1)


ENCODER_CLASSES = {"lstm": BiLSTMEncoder, "cnn": CNNEncoder, "average": AverageEncoder}


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


class Normalizer(nn.Module):
    """Scores [B, T] -> attention [B, T]: zero on padding, sums to 1 over real tokens (all 0 if none).

    `alpha_entmax` learns its α per model as 1 + sigmoid(θ), so α stays in (1, 2) (softmax to sparsemax)
    and starts at 1.5 (θ = 0). `uniform` ignores the scores: equal weight on every real token.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in NORMALIZERS:
            raise ValueError(f"unknown normalizer {kind!r}; allowed: {', '.join(NORMALIZERS)}")
        self.kind = kind
        self.alpha_logit = nn.Parameter(torch.zeros(())) if kind == "alpha_entmax" else None

    @property
    def alpha(self) -> float | None:
        """The learned α of `alpha_entmax`, else None."""
        return None if self.alpha_logit is None else 1.0 + torch.sigmoid(self.alpha_logit).item()

    def forward(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "uniform":
            return mask / mask.sum(-1, keepdim=True).clamp(min=1)
        masked = scores.masked_fill(~mask, MASK_VALUE)
        masked = masked.masked_fill(~mask.any(-1, keepdim=True), 0.0)  # empty rows: no NaN, no index error
        if self.kind == "softmax":
            weights = torch.softmax(masked, dim=-1)
        elif self.kind == "sparsemax":
            weights = sparsemax(masked, dim=-1)
        elif self.kind == "entmax15":
            weights = entmax15(masked, dim=-1)
        else:
            weights = entmax_bisect(masked, 1.0 + torch.sigmoid(self.alpha_logit), dim=-1)
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
        for name, value, allowed in (("encoder", encoder, ENCODERS), ("attention", attention, ATTENTIONS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        if pretrained is not None:
            self.embedding.weight.data.copy_(pretrained)
        self.encoder = ENCODER_CLASSES[encoder](embed_dim, hidden_size)
        size = self.encoder.output_size
        self.attention = AdditiveAttention(size) if attention == "tanh" else ScaledDotAttention(size)
        self.normalizer = Normalizer(normalizer)
        self.decoder = nn.Linear(size, 1)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, E]."""
        return self.embedding(tokens)

    def encode(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E] -> hidden states [B, T, D]."""
        return self.encoder(embeddings, mask)

    def attend(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> attention weights [B, T]."""
        return self.normalizer(self.attention(hidden), mask)

    def decode(self, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Logit [B] of the attention-weighted context vector sum_t weights_t * hidden_t."""
        context = torch.einsum("bt,btd->bd", weights, hidden)
        return self.decoder(context).squeeze(-1)

    def forward_embeddings(
        self, embeddings: torch.Tensor, mask: torch.Tensor, detach_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B] and attention [B, T] from embeddings [B, T, E].

        `detach_attention` holds the weights fixed for autograd (Jain & Wallace's gradient importance).
        """
        hidden = self.encode(embeddings, mask)
        weights = self.attend(hidden, mask)
        return self.decode(hidden, weights.detach() if detach_attention else weights), weights

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B] and attention [B, T] from token ids [B, T] (0 = padding) and mask [B, T]."""
        return self.forward_embeddings(self.embed(tokens), mask)
