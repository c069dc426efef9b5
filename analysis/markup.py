"""Formatted tables as Markdown (written here: pandas needs `tabulate` for it) and LaTeX (pandas)."""

from __future__ import annotations

import pandas as pd

from analysis.tables import make_index

LATEX_SPECIAL = {c: f"\\{c}" for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}"}
LATEX_SYMBOLS = {"±": r"$\pm$", "τ": r"$\tau$", "≥": r"$\geq$", "<": r"$<$", "—": "--", "ε": r"$\varepsilon$"}


def _keys(index: pd.Index) -> list[tuple]:
    return [key if isinstance(key, tuple) else (key,) for key in index]


def to_markdown(table: pd.DataFrame, caption: str) -> str:
    """A pipe table: one header row (column levels joined by " · "), row labels as leading columns."""
    header = [*table.index.names, *(" · ".join(map(str, key)) for key in _keys(table.columns))]
    lines = [f"**{caption}**", "", _md_row(header), _md_row(["---"] * len(header))]
    lines += [_md_row([*key, *row]) for key, row in zip(_keys(table.index), table.itertuples(index=False))]
    return "\n".join(lines) + "\n"


def _md_row(cells: list) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def latex_text(text: str) -> str:
    """Plain text (with ±, τ, ≥, <, —, ε) as LaTeX source."""
    escaped = "".join(LATEX_SPECIAL.get(c, c) for c in str(text))
    return "".join(LATEX_SYMBOLS.get(c, c) for c in escaped)


def _latex_index(index: pd.Index) -> pd.Index:
    keys = [tuple(map(latex_text, key)) for key in _keys(index)]
    return make_index(keys, [latex_text(name) for name in index.names])


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs `table` environment with multi-column headers; every string escaped for LaTeX."""
    escaped = table.map(latex_text)
    escaped.index = _latex_index(table.index)
    escaped.columns = _latex_index(table.columns)
    return escaped.to_latex(
        escape=False,
        multicolumn=True,
        multicolumn_format="c",
        multirow=False,
        caption=latex_text(caption),
        label=f"tab:{label}",
    )
