"""Pretrained Hugging Face encoders (the `distilbert` axis value): where the model comes from, and loading
its configuration, tokenizer and weights safely, with one-line errors.

`train.pretrained` names a Hub model (`distilbert-base-uncased`, `org/name`) or a local folder holding
what `save_pretrained` writes (config.json, model.safetensors and the tokenizer's files). Weights load from
safetensors only (never a pickled `pytorch_model.bin`) and no remote code runs. Before the Hub is asked,
one quick request checks that it answers: without it an unreachable Hub costs about 50 s of logged retries
(measured here) before the loader gives up. Nothing heavy is imported at module level: `transformers`
loads only where a pretrained encoder is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HUB_PROBE_TIMEOUT_S = 5.0
MODEL_TYPES = ("distilbert",)  # the Hugging Face `model_type`s the encoder implements
SPECIAL_TOKENS = ("cls", "sep")  # added around each row's word pieces by the model, never in the data
# Hub model ids: a name, or an owner and a name (letters, digits, '-', '_', '.'; no leading '.' or '-')
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_LOCAL_FOLDER = (
    "set train.pretrained to a local folder holding its save_pretrained files (config.json, "
    "model.safetensors and the tokenizer's files)"
)
T = TypeVar("T")


class PretrainedError(ValueError):
    """A pretrained model or tokenizer that cannot be found, loaded or used, as one line."""


def parse_pretrained(text: Any) -> str:
    """`train.pretrained`: an existing folder (made absolute: Ray workers' working directory differs) or a
    Hub model name; a path that is not a folder, or a name the Hub cannot hold, raises PretrainedError."""
    if not isinstance(text, str) or not text:
        raise PretrainedError(f"{text!r} is not a Hugging Face Hub model name or a local folder")
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise PretrainedError(f"{text!r} is a file; give the folder that save_pretrained wrote")
    if path.is_absolute() or text.startswith((".", "~")):
        raise PretrainedError(f"folder {text!r} does not exist")
    if not _HUB_NAME.fullmatch(text):
        raise PretrainedError(
            f"{text!r} is neither a local folder nor a Hugging Face Hub model name "
            "(such as distilbert-base-uncased or owner/name)"
        )
    return text


def load_config(source: str) -> Any:
    """The model's `PretrainedConfig`, refused unless its `model_type` is one of `MODEL_TYPES`."""
    from transformers import AutoConfig

    config = _load(source, "configuration", AutoConfig.from_pretrained)
    if config.model_type not in MODEL_TYPES:
        raise PretrainedError(
            f"train.pretrained {source!r} is a {config.model_type!r} model; the distilbert encoder needs a "
            f"model of type {' or '.join(MODEL_TYPES)}"
        )
    return config


def load_tokenizer(source: str) -> Any:
    """The model's tokenizer, refused unless it pads with id 0 (the data's padding id, `data.PAD`) and
    has the [CLS] and [SEP] tokens the encoder adds around each row."""
    from transformers import AutoTokenizer

    tokenizer = _load(source, "tokenizer", AutoTokenizer.from_pretrained)
    if tokenizer.pad_token_id != 0:
        raise PretrainedError(
            f"the tokenizer of {source!r} pads with id {tokenizer.pad_token_id}; ane-sweep pads with id 0"
        )
    missing = [name for name in SPECIAL_TOKENS if getattr(tokenizer, f"{name}_token_id") is None]
    if missing:
        raise PretrainedError(f"the tokenizer of {source!r} has no {' or '.join(missing)} token")
    return tokenizer


def special_ids(tokenizer: Any) -> dict[str, int]:
    """The ids of the tokens the encoder adds around each row: {"cls": ..., "sep": ...}."""
    return {name: int(getattr(tokenizer, f"{name}_token_id")) for name in SPECIAL_TOKENS}


def load_model(source: str) -> Any:
    """The pretrained encoder (`DistilBertModel`, without its pre-training head), weights from safetensors."""
    from transformers import AutoModel

    config = load_config(source)
    return _load(
        source,
        "weights",
        lambda name: AutoModel.from_pretrained(name, config=config, use_safetensors=True),
    )


def _load(source: str, what: str, load: Callable[[str], T]) -> T:
    """`load(source)` with the loaders quiet, the Hub probed first (unless `source` is a folder or offline
    mode is on), and any failure as one PretrainedError line naming the source."""
    from huggingface_hub import constants
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    logging.set_verbosity_error()  # no "weights not used" lines for the pre-training head left out
    logging.disable_progress_bar()
    disable_progress_bars()
    local = Path(source).is_dir()
    if local:
        where, hint = f"folder {source}", ""
    elif constants.HF_HUB_OFFLINE:
        where = f"the Hugging Face Hub ({source!r})"
        hint = f"; HF_HUB_OFFLINE is set and it is not in the Hugging Face cache; {_LOCAL_FOLDER}"
    else:
        where = f"the Hugging Face Hub ({source!r})"
        hint = f"; {_LOCAL_FOLDER}, or set HF_HUB_OFFLINE=1 to use the Hugging Face cache"
        try:
            _probe_hub(source)
        except Exception as error:  # httpx transport errors: no DNS, refused, timed out, proxy failure
            raise PretrainedError(
                f"could not load {source!r} from the Hugging Face Hub: no answer ({type(error).__name__})"
                f"{hint}"
            ) from None
    try:
        return load(source)
    except Exception as error:  # the loaders raise OSError, ValueError, HTTP errors...: all "not here"
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise PretrainedError(f"could not load the {what} from {where}: {reason}{hint}") from None


def _probe_hub(name: str) -> None:
    """One request for the model's Hub page, no retries: raises if the Hub does not answer within
    `HUB_PROBE_TIMEOUT_S` (any HTTP status, 404 included, is an answer). Uses the Hub client's own session
    and endpoint, so HF_ENDPOINT and proxy settings apply as they do to the loaders."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    get_session().head(f"{constants.ENDPOINT}/api/models/{name}", timeout=HUB_PROBE_TIMEOUT_S)
