"""The server's API layer: request rules, the endpoints' encoders, the exchange, backends.

Nothing here sees an HTTP object: `jupyter_complete.local.http` reads requests off the
wire and gives the exchange a `Peer`; the text comes from a `Backend` (the built-in model,
`jupyter_complete.local.builtin.ModelBackend`, or an upstream engine).
"""

from __future__ import annotations

from .backend import Backend, BackendError, Final, Job, ModelCard, StopReason
from .encoders import CompleteEncoder, Encoder, MessagesEncoder, new_id, sse_event
from .exchange import ClientGone, Exchange, Outcome, Peer
from .rules import RequestLimits

__all__ = [
    "Backend",
    "BackendError",
    "ClientGone",
    "CompleteEncoder",
    "Encoder",
    "Exchange",
    "Final",
    "Job",
    "MessagesEncoder",
    "ModelCard",
    "Outcome",
    "Peer",
    "RequestLimits",
    "StopReason",
    "new_id",
    "sse_event",
]
