"""`CompletionSettings`: the sampling parameters, declared once.

This one declaration feeds everything that deals with a parameter:

* the client's validation before sending (`check_params`), with the spec's ranges;
* ``%config CompleteMagics.temperature = 0.2`` and ``c.CompleteMagics...`` in ipython_config.py
  (`CompleteMagics` inherits these traits);
* the magic's argument defaults and help text;
* the panel's and explorer's slider bounds, steps and descriptions (`slider_spec`).

Ranges come from ``CompletionRequest`` in the published OpenAPI schema: temperature and top_p
in [0, 1], top_k >= 0, max_tokens_to_sample >= 1. The ``slider_max`` tags only bound the
widgets, not what the API accepts.
"""

from __future__ import annotations

import math
from typing import Any

from traitlets import Float, HasTraits, Int, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from .errors import InvalidParameterError


class CompletionSettings(Configurable):
    """Model and sampling parameters for a completion request."""

    model = Unicode(
        "",
        help="Model name. Empty: the backend's default (the built-in model offline, "
        "claude-2.1 on the Anthropic API).",
    ).tag(config=True)
    max_tokens = Int(
        256, min=1, help="Maximum number of tokens to generate (max_tokens_to_sample)."
    ).tag(config=True, slider_min=1, slider_max=2048, step=1, label="max tokens")
    temperature = Float(
        1.0,
        min=0.0,
        max=1.0,
        help="Randomness: 0 always picks the likeliest token, 1 samples the model's own "
        "distribution. API default 1.",
    ).tag(config=True, slider_min=0.0, slider_max=1.0, step=0.05, label="temperature")
    top_k = Int(
        None,
        allow_none=True,
        min=0,
        help="Sample only from the k likeliest tokens (unset or 0: no cut).",
    ).tag(config=True, slider_min=0, slider_max=200, step=1, label="top_k", default_on=40)
    top_p = Float(
        None,
        allow_none=True,
        min=0.0,
        max=1.0,
        help="Nucleus sampling: keep the smallest set of likeliest tokens whose probabilities "
        "add up to top_p (unset: 1, no cut).",
    ).tag(config=True, slider_min=0.0, slider_max=1.0, step=0.01, label="top_p", default_on=0.9)
    stop_sequences = List(
        Unicode(), default_value=[], help="Extra strings that end the completion."
    ).tag(config=True)
    system = Unicode("", help="System prompt: text placed before the first Human turn.").tag(
        config=True
    )

    #: The traits that are request parameters (in the order the UIs show them).
    PARAMS = ("model", "max_tokens", "temperature", "top_k", "top_p", "stop_sequences")

    @validate("temperature", "top_p")
    def _finite(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not math.isfinite(value):
            raise TraitError(f"{proposal['trait'].name} must be a finite number")
        return value

    def request_params(self) -> dict[str, Any]:
        """Keyword arguments for ``client.completions.create`` (unset values left out)."""
        params: dict[str, Any] = {"max_tokens_to_sample": self.max_tokens}
        if self.model:
            params["model"] = self.model
        params["temperature"] = self.temperature
        if self.top_k is not None:
            params["top_k"] = self.top_k
        if self.top_p is not None:
            params["top_p"] = self.top_p
        if self.stop_sequences:
            params["stop_sequences"] = list(self.stop_sequences)
        return params

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain data (history entries, output metadata)."""
        return {name: getattr(self, name) for name in (*self.PARAMS, "system")}


def slider_spec(name: str, cls: type[HasTraits] = CompletionSettings) -> dict[str, Any]:
    """min, max, step, description and tooltip for a widget bound to setting ``name``."""
    trait = cls.class_traits()[name]
    meta = trait.metadata
    return {
        "min": meta.get("slider_min", getattr(trait, "min", None)),
        "max": meta.get("slider_max", getattr(trait, "max", None)),
        "step": meta.get("step"),
        "description": meta.get("label", name),
        "tooltip": trait.help,
        "default_on": meta.get("default_on"),
    }


def _range_text(name: str) -> str:
    trait = CompletionSettings.class_traits()[name]
    lo, hi = getattr(trait, "min", None), getattr(trait, "max", None)
    kind = "an integer" if isinstance(trait, Int) else "a number"
    if lo is not None and hi is not None:
        return f"{kind} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{kind} >= {lo:g}"
    return kind


# Wire name -> settings trait carrying its range.
_WIRE_TO_TRAIT = {
    "max_tokens_to_sample": "max_tokens",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
}


def check_params(params: dict[str, Any]) -> None:
    """Raise `InvalidParameterError` for the first parameter outside the spec's range.

    ``params`` uses wire names (``max_tokens_to_sample``); None values count as unset.
    """
    prompt = params.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise InvalidParameterError("prompt", prompt, "a non-empty string")
    model = params.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidParameterError("model", model, "a non-empty string")
    for wire, trait_name in _WIRE_TO_TRAIT.items():
        value = params.get(wire)
        if value is None:
            continue
        trait = CompletionSettings.class_traits()[trait_name]
        integral = isinstance(trait, Int)
        ok = (
            isinstance(value, int) and not isinstance(value, bool)
            if integral
            else isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )
        lo, hi = getattr(trait, "min", None), getattr(trait, "max", None)
        if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            ok = False
        if not ok:
            raise InvalidParameterError(wire, value, _range_text(trait_name))
    stops = params.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, (list, tuple)) or not all(isinstance(s, str) and s for s in stops)
    ):
        raise InvalidParameterError("stop_sequences", stops, "a list of non-empty strings")
    metadata = params.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
            raise InvalidParameterError("metadata", metadata, 'a dict with only "user_id"')
        uid = metadata.get("user_id")
        if uid is not None and (not isinstance(uid, str) or len(uid) > 256):
            raise InvalidParameterError("metadata.user_id", uid, "a string of at most 256 chars")
