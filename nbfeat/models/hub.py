"""Reaching the Hugging Face hub: tokens from the environment, fast failure when offline."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import urlparse

from nbfeat.errors import OfflineError


def hf_token() -> str | None:
    """The token for gated models: `HF_TOKEN`, else `HF_ACCESS_TOKEN`. Never stored anywhere."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HF_ACCESS_TOKEN") or None


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the hub answers at all (without it, hub clients retry for ~45 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def offline_unless_reachable() -> Iterator[None]:
    """Use only the local cache when the hub cannot be reached (fails fast instead of retrying)."""
    if hub_reachable():
        yield
        return
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def offline_error(model_id: str, cause: BaseException | None = None) -> OfflineError:
    detail = f" ({type(cause).__name__})" if cause else ""
    return OfflineError(
        f"Could not get pretrained weights for '{model_id}': not in the local cache and the "
        f"download failed{detail}. Use pretrained=False for random weights, or "
        "weights='path/to/checkpoint' (a file, or a local Hugging Face directory)."
    )
