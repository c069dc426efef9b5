"""Jain & Wallace's attention classifier: embedding, encoder, attention, decoder; for two classes one
sigmoid logit, for C classes a softmax over C logits (`trainables.outputs`).

Encoders: BiLSTM, CNN, a context-free projection, a Transformer trained from scratch, or pretrained
DistilBERT; attention: additive (tanh) or scaled dot product; normalizers: softmax and the sparse entmax
family (Peters et al. 2019, via the `entmax` package). Whatever the encoder, the attention under study is
the same pooling layer over its token states.

The forward pass is split into steps (`embed`, `encode`, `attend`, `decode`) so explanation code can start
from the embeddings (gradient importance) or from frozen hidden states (counterfactual attention).

Pair tasks (NLI) follow Jain & Wallace's model for premise and hypothesis: each is encoded by its own
encoder of the same kind, the attention over the premise tokens is conditioned on a query, the
hypothesis's final state (`query`), and the decoder reads the attended premise and the query. Every
explanation is over the premise, with the hypothesis (so the query) held fixed: callers compute the
query once and pass it to `forward_embeddings`, `attend` and `decode`.
Shapes: B batch, T padded length, E embedding size, D hidden size (2 x 128 for the BiLSTM), C logits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from entmax import entmax15, entmax_bisect, sparsemax
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainables.outputs import output_size
from trainables.settings import (
    ATTENTIONS,
    ENCODERS,
    NORMALIZERS,
    POSITIONS,
    PRETRAINED_ENCODERS,
    TrainSettings,
)

MASK_VALUE = -1e9  # finite: with -inf, sparsemax and entmax15 raise and softmax gives NaN on an empty row
CNN_WIDTHS = (1, 3, 5, 7)
MAX_LEARNED_POSITIONS = 1024  # the learned position table of the transformer: above every dataset's token cap


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


def sinusoidal_positions(length: int, size: int) -> torch.Tensor:
    """Vaswani et al.'s fixed position encodings [length, size]: sin and cos of position / 10000^(2i/size)
    in alternate columns."""
    positions = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, size, 2, dtype=torch.float64) * (-math.log(10000.0) / size))
    table = torch.zeros(length, size, dtype=torch.float64)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies[: size // 2])
    return table


class TransformerEncoder(nn.Module):
    """A Transformer encoder trained from scratch (Vaswani et al. 2017; PyTorch's `nn.TransformerEncoder`):
    the embeddings projected to hidden_size, plus sinusoidal or learned positions, then `layers` pre-norm
    self-attention layers with `heads` heads and a 4 x hidden_size feed-forward, and a final LayerNorm.

    Padding is masked out of every self-attention, so a row's states do not depend on the padding after
    it. A row with no real token (leave-one-out of a one-token input) may attend to its first position so
    that no softmax sees only masked keys (NaN); its states are zeroed like all padding.
    """

    def __init__(
        self,
        embed_dim: int,
        hidden_size: int,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        positions: str = "sinusoidal",
    ) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(
                f"transformer hidden_size must be a multiple of its {heads} heads, got {hidden_size}"
            )
        if positions not in POSITIONS:
            raise ValueError(f"unknown positions {positions!r}; allowed: {', '.join(POSITIONS)}")
        self.project = nn.Linear(embed_dim, hidden_size)
        self.learned = nn.Embedding(MAX_LEARNED_POSITIONS, hidden_size) if positions == "learned" else None
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            hidden_size, heads, 4 * hidden_size, dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(hidden_size), enable_nested_tensor=False
        )
        self.output_size = hidden_size

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E], [B, T] -> [B, T, D]."""
        length = embeddings.shape[1]
        if self.learned is None:
            positions = sinusoidal_positions(length, self.output_size).to(embeddings)
        elif length > MAX_LEARNED_POSITIONS:
            raise ValueError(
                f"the transformer's learned positions cover {MAX_LEARNED_POSITIONS} tokens, got {length}; "
                "set train.transformer_positions: sinusoidal or a lower data.max_tokens"
            )
        else:
            positions = self.learned.weight[:length]
        states = self.dropout(self.project(embeddings) + positions)
        keys = mask.clone()
        keys[:, 0] |= ~mask.any(1)  # an empty row keeps one key (see the class docstring)
        return self.layers(states, src_key_padding_mask=~keys) * mask.unsqueeze(-1)


class DistilBertEncoder(nn.Module):
    """Pretrained DistilBERT (Sanh et al. 2019) over word pieces, fine-tuned with the classifier.

    Each row's real pieces go between [CLS] and [SEP], as in pre-training (the encoder adds them: the data
    and every explanation hold only the row's own pieces); the pieces' final states go to the pooling
    attention, [CLS] and [SEP] do not. Embeddings are the model's input word-piece embeddings (before its
    position embeddings and LayerNorm), so gradient x input and deletion are over word pieces.
    `special`: the tokenizer's ids of "cls" and "sep" (`pretrained.special_ids`).
    """

    def __init__(self, embed_dim: int, hidden_size: int, source: str, special: dict[str, int]) -> None:
        super().__init__()
        from trainables.pretrained import load_model

        self.bert = load_model(source)
        self.cls_id, self.sep_id = special["cls"], special["sep"]
        self.output_size = self.bert.config.dim
        self.max_pieces = self.bert.config.max_position_embeddings - 2

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T] word-piece ids -> [B, T, E] input embeddings."""
        return self.bert.embeddings.word_embeddings(tokens)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E], [B, T] -> [B, T, D]: rows become [CLS] pieces [SEP] padding, masked past [SEP]."""
        batch, length, size = embeddings.shape
        if length > self.max_pieces:
            raise ValueError(f"DistilBERT reads at most {self.max_pieces} word pieces per row, got {length}")
        ids = torch.tensor([self.cls_id, self.sep_id], device=embeddings.device)
        cls, sep = self.embed(ids).to(embeddings.dtype)
        inputs = torch.cat([cls.expand(batch, 1, size), embeddings, embeddings.new_zeros(batch, 1, size)], 1)
        positions = torch.arange(length + 2, device=embeddings.device)
        last = mask.sum(1, keepdim=True) + 1  # the position of [SEP]
        inputs = torch.where((positions == last).unsqueeze(-1), sep, inputs)
        states = self.bert(inputs_embeds=inputs, attention_mask=(positions <= last).long()).last_hidden_state
        return states[:, 1 : length + 1] * mask.unsqueeze(-1)


ENCODER_CLASSES = {
    "lstm": BiLSTMEncoder,
    "cnn": CNNEncoder,
    "average": AverageEncoder,
    "transformer": TransformerEncoder,
    "distilbert": DistilBertEncoder,
}


def encoder_options(encoder: str, train: TrainSettings, special: dict[str, int]) -> dict[str, Any]:
    """The keyword arguments of an encoder class beyond (embed_dim, hidden_size), from the train settings;
    `special`: the word-piece dataset's special token ids (`PreparedDataset.special`)."""
    if encoder == "transformer":
        return {
            "layers": train.transformer_layers,
            "heads": train.transformer_heads,
            "dropout": train.transformer_dropout,
            "positions": train.transformer_positions,
        }
    if encoder == "distilbert":
        return {"source": train.pretrained, "special": special}
    return {}


class AdditiveAttention(nn.Module):
    """Bahdanau (tanh) scores: v^T tanh(W h_t + b), or v^T tanh(W h_t + W_q q + b) with a query q [B, D]
    (`conditioned`, pair tasks).

    The tanh is a module (no parameters, same numbers as torch.tanh) so that captum's DeepLift, which only
    sees nonlinearities that are modules, applies its rescale rule to it.
    """

    def __init__(self, input_size: int, attention_size: int = 128, conditioned: bool = False) -> None:
        super().__init__()
        self.project = nn.Linear(input_size, attention_size)
        self.project_query = nn.Linear(input_size, attention_size, bias=False) if conditioned else None
        self.activation = nn.Tanh()
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, hidden: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, D] (and query [B, D] if conditioned) -> scores [B, T]."""
        projected = self.project(hidden)
        if self.project_query is not None:
            projected = projected + self.project_query(query).unsqueeze(1)
        return self.score(self.activation(projected)).squeeze(-1)


class ScaledDotAttention(nn.Module):
    """Scaled dot-product scores q^T h_t / sqrt(D): with a learned query vector q, or (`conditioned`,
    pair tasks) with each instance's query q [B, D]."""

    def __init__(self, input_size: int, conditioned: bool = False) -> None:
        super().__init__()
        self.query = None if conditioned else nn.Parameter(torch.randn(input_size) / math.sqrt(input_size))
        self.scale = math.sqrt(input_size)

    def forward(self, hidden: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, D] (and query [B, D] if conditioned) -> scores [B, T]."""
        if self.query is not None:
            return hidden @ self.query / self.scale
        return torch.einsum("btd,bd->bt", hidden, query) / self.scale


class PairDecoder(nn.Module):
    """Jain & Wallace's decoder for pairs: logits W_o tanh(W_c c + W_q q + b) + b_o of the attended premise
    c [B, D] and the query q [B, D]."""

    def __init__(self, size: int, outputs: int) -> None:
        super().__init__()
        self.context = nn.Linear(size, size)
        self.query = nn.Linear(size, size, bias=False)
        self.output = nn.Linear(size, outputs)

    def forward(self, context: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.output(torch.tanh(self.context(context) + self.query(query)))


def final_state(encoder: nn.Module, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One vector [B, D] per row of encoder states [B, T, D]: for the BiLSTM its final states (the forward
    direction's at the last real token, the backward direction's at the first); for encoders with no final
    state (CNN, projection, transformer) the mean of the real tokens' states."""
    lengths = mask.sum(1)
    if isinstance(encoder, BiLSTMEncoder):
        half = states.shape[-1] // 2
        rows = torch.arange(states.shape[0], device=states.device)
        last = (lengths - 1).clamp(min=0)
        return torch.cat([states[rows, last, :half], states[:, 0, half:]], dim=-1)
    return states.sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(states.dtype)


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
        if scores.dtype in (torch.float16, torch.bfloat16):  # mixed precision: normalise in float32
            scores = scores.float()
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
    """Embedding -> encoder -> attention -> linear decoder giving one logit (sigmoid = P(label 1)) for
    `num_classes` = 2, else `num_classes` logits (softmax).

    `pair`: a premise-hypothesis model (see the module docstring): a second encoder for the hypothesis,
    attention conditioned on its final state, `PairDecoder`. `encoder_options` go to the encoder class
    (see `encoder_options`). A pretrained encoder (DistilBERT) brings its own embeddings (its `embed`):
    then `vocab_size`, `embed_dim` and `pretrained` (word vectors) do not apply and `self.embedding` is
    None; it reads single texts only.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 300,
        hidden_size: int = 128,
        encoder: str = "lstm",
        attention: str = "tanh",
        normalizer: str = "softmax",
        pretrained: torch.Tensor | None = None,
        num_classes: int = 2,
        pair: bool = False,
        **encoder_options: Any,
    ) -> None:
        super().__init__()
        for name, value, allowed in (("encoder", encoder, ENCODERS), ("attention", attention, ATTENTIONS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        self.embedding = None
        if encoder not in PRETRAINED_ENCODERS:
            self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
            if pretrained is not None:
                self.embedding.weight.data.copy_(pretrained)
        elif pretrained is not None:
            raise ValueError(f"the {encoder} encoder has its own embeddings; word vectors do not apply")
        if pair and encoder in PRETRAINED_ENCODERS:
            raise ValueError(f"the {encoder} encoder reads single texts; pair tasks need another encoder")
        self.num_classes, self.pair = num_classes, pair
        outputs = output_size(num_classes)
        self.encoder = ENCODER_CLASSES[encoder](embed_dim, hidden_size, **encoder_options)
        size = self.encoder.output_size
        if attention == "tanh":
            self.attention = AdditiveAttention(size, conditioned=pair)
        else:
            self.attention = ScaledDotAttention(size, conditioned=pair)
        self.normalizer = Normalizer(normalizer)
        if pair:
            self.hypothesis_encoder = ENCODER_CLASSES[encoder](embed_dim, hidden_size, **encoder_options)
            self.decoder = PairDecoder(size, outputs)
        else:
            self.hypothesis_encoder = None
            self.decoder = nn.Linear(size, outputs)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's outputs: its decoder's parameters'."""
        return next(self.decoder.parameters()).dtype

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, E]."""
        return self.encoder.embed(tokens) if self.embedding is None else self.embedding(tokens)

    def encode(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, E] -> hidden states [B, T, D]."""
        return self.encoder(embeddings, mask)

    def query(self, hypothesis: torch.Tensor, hypothesis_mask: torch.Tensor) -> torch.Tensor:
        """A pair model's query [B, D]: the final state of the hypothesis token ids [B, S] (mask [B, S])."""
        if not self.pair:
            raise ValueError("only a pair model (pair=True) has a query")
        states = self.hypothesis_encoder(self.embed(hypothesis), hypothesis_mask)
        return final_state(self.hypothesis_encoder, states, hypothesis_mask)

    def attend(
        self, hidden: torch.Tensor, mask: torch.Tensor, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, T, D] (a pair model: and its query [B, D]) -> attention weights [B, T]."""
        return self.normalizer(self.attention(hidden, self._checked(query, hidden)), mask)

    def decode(
        self, hidden: torch.Tensor, weights: torch.Tensor, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits [B] (two classes) or [B, C] of the attention-weighted context vector sum_t weights_t *
        hidden_t (a pair model: and its query [B, D])."""
        context = torch.einsum("bt,btd->bd", weights, hidden)
        if self.pair:
            return self.decoder(context, self._checked(query, hidden))
        logits = self.decoder(context)
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits

    def forward_embeddings(
        self,
        embeddings: torch.Tensor,
        mask: torch.Tensor,
        detach_attention: bool = False,
        query: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B] or [B, C] and attention [B, T] from embeddings [B, T, E] (a pair model: and the query
        [B, D] of each row's hypothesis, see `query`).

        `detach_attention` holds the weights fixed for autograd (Jain & Wallace's gradient importance).
        """
        hidden = self.encode(embeddings, mask)
        weights = self.attend(hidden, mask, query)
        return self.decode(hidden, weights.detach() if detach_attention else weights, query), weights

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        hypothesis: torch.Tensor | None = None,
        hypothesis_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B] or [B, C] and attention [B, T] from token ids [B, T] (0 = padding) and mask [B, T];
        a pair model also takes the hypothesis token ids [B, S] and mask [B, S]."""
        if (hypothesis is None) != (hypothesis_mask is None):
            raise ValueError("pass the hypothesis with its mask, or neither")
        query = None if hypothesis is None else self.query(hypothesis, hypothesis_mask)
        return self.forward_embeddings(self.embed(tokens), mask, query=query)

    def _checked(self, query: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor | None:
        """`query` if the model takes one ([B, D] for hidden [B, T, D]) and None if it does not, else
        ValueError: a pair model needs its hypothesis, a single-text model has none."""
        if not self.pair:
            if query is not None:
                raise ValueError("a single-text model takes no hypothesis or query")
            return None
        if query is None:
            raise ValueError("a pair model needs the hypothesis (or its query) of every row")
        if query.shape != (hidden.shape[0], hidden.shape[-1]):
            raise ValueError(
                f"query must be [B, D] = {[hidden.shape[0], hidden.shape[-1]]}, got {list(query.shape)}"
            )
        return query
