"""The public-content guard: what a published dataset may not carry (local absolute paths,
tokens, signed URLs), for rows, run settings and error texts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fsmodel.schema import LABEL_META, REVIEW, SAMPLE_ID, VIDEO, VIDEO_ID

_SECRET_KEY = re.compile(r"(^|_)(api_?key|key|token|secret|password|authorization)$", re.I)
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(/[^\s:'\"]+/)+([^\s/:'\"]+)")
_LOCAL = "<local>"


def public_value(value: Any, local: set[str]) -> Any:
    """Local absolute paths → ``<local>/name``; secret-looking keys → ``<redacted>``."""
    if isinstance(value, Mapping):
        return {
            k: ("<redacted>" if _SECRET_KEY.search(str(k)) and v else public_value(v, local))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [public_value(v, local) for v in value]
    if isinstance(value, str) and (
        value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:\\", value)
    ):
        name = f"{_LOCAL}/{Path(value).name}"
        local.add(name)
        return name
    return value


def public_text(text: str, roots: Sequence[str] = ()) -> str:
    """Error messages for a card: the videos root stripped, other absolute paths cut to names."""
    for root in roots:
        if root:
            text = text.replace(root.rstrip("/") + "/", "")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(2), text)


_SIGNED_URL = re.compile(
    r"[?&](x-amz-signature|x-goog-signature|x-amz-security-token|sig|signature|token|"
    r"access_token|api_key|key)=",
    re.IGNORECASE,
)


def check_public_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse rows whose text columns would publish a local absolute path, a token or a signed
    URL (the card checks cover only the card and the JSON/YAML files)."""
    from hub_cards import CardError, check_public

    for row in rows:
        for column in (VIDEO, VIDEO_ID, LABEL_META, REVIEW):
            value = str(row.get(column) or "")
            if column == VIDEO and _SIGNED_URL.search(value):
                raise CardError(
                    f"row {row.get(SAMPLE_ID)}: {column} is a signed URL (its query carries a "
                    "credential); publish the path or an unsigned URL instead"
                )
            try:
                check_public(value)
            except CardError as err:
                raise CardError(f"row {row.get(SAMPLE_ID)}: {column}: {err}") from None
