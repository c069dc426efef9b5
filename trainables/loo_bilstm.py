"""Leave-one-out logits of the BiLSTM classifier without recomputing what a deletion leaves unchanged.

Deleting token i of a length-n sentence leaves the forward LSTM's states before i, and the backward
LSTM's states after i, as they were in the full sentence. Only n - 1 - i forward steps and i backward
steps change, each run on from a state of the full sentence. The input projections W_ih x_t + b of the
tokens are the same in every deletion, so they are computed once per sentence. Per deletion that is n - 1
steps of one direction's recurrent product instead of 2 (n - 1) steps of both directions' full products:
about 7x fewer multiply-adds for the J&W sizes (embedding 300, hidden 128).

Shapes: B sentences, T padded length, N deletions, H hidden size per direction, G = 4 H gate values.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.model import AttentionClassifier


def leave_one_out_logits(
    model: AttentionClassifier,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    max_rows: int,
    query: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B] of the full sentences and [N] of sentence rows[r] without token positions[r] ([B, C]
    and [N, C] for a C-class model).

    `model.encoder` must be the BiLSTM; tokens [B, T] with a left-aligned mask [B, T]; deletions run
    at most max_rows at a time; a pair model's `query` [B, D] goes with every deletion of its row. Both
    logits come from the same recurrence, so a deletion that changes nothing gives exactly the full
    sentence's logit.
    """
    rnn = model.encoder.rnn
    lengths = mask.sum(1)
    batch, width = tokens.shape
    embeddings = model.embed(tokens)
    forward, backward = _Direction(rnn, ""), _Direction(rnn, "_reverse")
    projected_f, projected_b = forward.project(embeddings), backward.project(embeddings)  # [B T, G]
    steps = torch.arange(width, device=tokens.device)
    token = torch.arange(batch, device=tokens.device)[:, None] * width  # row b's tokens start at b T
    # States of the full sentences, flat [B (T + 1), H]: row b's position t at slot b (T + 1) + t; slot
    # b (T + 1) + T stays zero, the state before a first step.
    slot = torch.arange(batch, device=tokens.device)[:, None] * (width + 1)
    h_f, c_f, h_b, c_b = (embeddings.new_zeros(batch * (width + 1), rnn.hidden_size) for _ in range(4))
    zero = embeddings.new_zeros(batch, rnn.hidden_size)
    forward.run(projected_f, token + steps, zero, zero, lengths, h_f, slot + steps, c_f)
    backward_order = (lengths[:, None] - 1 - steps).clamp(min=0)  # x_{n-1} .. x_0
    backward.run(projected_b, token + backward_order, zero, zero, lengths, h_b, slot + backward_order, c_b)
    # Padding states need no zeroing: the normalizer gives padding zero weight, so they never reach a logit.
    full = _decode(model, torch.cat([h_f, h_b], -1).view(batch, width + 1, -1)[:, :width], mask, query)

    deleted = full.new_empty(len(rows), *full.shape[1:])
    size = rnn.hidden_size
    for chunk in torch.arange(len(rows), device=rows.device).split(max_rows):
        row, i, n = rows[chunk], positions[chunk].unsqueeze(1), lengths[rows[chunk]].unsqueeze(1)
        j = steps[: max(int(n.max()) - 1, 1)]  # positions of the shortened sequences
        # Start from the full sentence's states, shifted left after i: forward h_j, backward h_{j+1}.
        hidden = torch.cat([h_f[slot[row] + j], h_b[slot[row] + j + 1]], -1)  # [N, W, 2 H]
        new_f, new_b = hidden.view(-1, 2 * size).split(size, 1)  # views: the runs write into hidden
        here = torch.arange(len(chunk), device=rows.device).unsqueeze(1) * len(j)  # row r starts at r W
        # Forward: from the state before i (zero if i = 0) over x_{i+1} .. x_{n-1} into positions i ...
        before = (slot[row] + torch.where(i > 0, i - 1, width)).squeeze(1)
        later = i + steps
        forward.run(
            projected_f,
            token[row] + later + 1,
            h_f[before],
            c_f[before],
            (n - 1 - i).squeeze(1),
            new_f,
            here + later,
        )
        # Backward: from the state after i (zero if i = n - 1) over x_{i-1} .. x_0 into positions i - 1 ...
        after = (slot[row] + torch.where(i < n - 1, i + 1, width)).squeeze(1)
        earlier = (i - 1 - steps).clamp(min=0)
        backward.run(
            projected_b, token[row] + earlier, h_b[after], c_b[after], i.squeeze(1), new_b, here + earlier
        )
        deleted[chunk] = _decode(model, hidden, j < n - 1, None if query is None else query[row])
    return full, deleted


class _Direction:
    """One direction of a one-layer nn.LSTM, run step by step from given states."""

    def __init__(self, rnn: nn.LSTM, suffix: str) -> None:
        if rnn.num_layers != 1 or rnn.proj_size or not rnn.bias:
            raise ValueError("leave_one_out_logits needs a one-layer LSTM with biases and no projection")
        size = self.hidden_size = rnn.hidden_size
        # Gate rows reordered from PyTorch's (i, f, g, o) to (i, f, o, g): one sigmoid over the first three.
        order = torch.cat(
            [torch.arange(2 * size), torch.arange(3 * size, 4 * size), torch.arange(2 * size, 3 * size)]
        )
        self.weight_ih = getattr(rnn, f"weight_ih_l0{suffix}")[order]
        self.weight_hh_t = getattr(rnn, f"weight_hh_l0{suffix}")[order].t().contiguous()
        self.bias = (getattr(rnn, f"bias_ih_l0{suffix}") + getattr(rnn, f"bias_hh_l0{suffix}"))[order]

    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        """W_ih x_t + b_ih + b_hh of every token: [B, T, E] -> [B T, G]."""
        return torch.addmm(self.bias, embeddings.flatten(0, 1), self.weight_ih.t())

    def run(
        self,
        projected: torch.Tensor,
        inputs: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        steps: torch.Tensor,
        hidden_out: torch.Tensor,
        out_index: torch.Tensor,
        cell_out: torch.Tensor | None = None,
    ) -> None:
        """Run row r for steps[r] steps from (h[r], c[r]) [N, H], step s reading projected[inputs[r, s]]
        ([M, G], inputs [N, S]) and writing its hidden state to hidden_out[out_index[r, s]] ([K, H]),
        and its cell state to cell_out likewise if given.

        Rows are sorted by their number of steps, so the rows still running are a prefix at every step.
        """
        order = steps.argsort(descending=True)
        steps, h, c = steps[order], h[order], c[order]
        inputs, out_index = inputs[order].t().contiguous(), out_index[order].t().contiguous()  # [S, N]
        total = int(steps[0]) if len(steps) else 0
        running = (steps.unsqueeze(1) > torch.arange(total, device=steps.device)).sum(0).tolist()
        size = self.hidden_size
        for step, active in enumerate(running):
            gates = torch.addmm(projected[inputs[step, :active]], h[:active], self.weight_hh_t)
            gates[:, : 3 * size].sigmoid_()
            gates[:, 3 * size :].tanh_()
            i, f, o, g = gates.split(size, 1)
            c = torch.addcmul(f * c[:active], i, g)
            h = o * torch.tanh(c)
            hidden_out[out_index[step, :active]] = h
            if cell_out is not None:
                cell_out[out_index[step, :active]] = c


def _decode(
    model: AttentionClassifier, hidden: torch.Tensor, mask: torch.Tensor, query: torch.Tensor | None
) -> torch.Tensor:
    """Logits [N] or [N, C] from hidden states [N, T, D] (and a pair model's query [N, D]) through the
    model's attention and decoder."""
    return model.decode(hidden, model.attend(hidden, mask, query), query)
