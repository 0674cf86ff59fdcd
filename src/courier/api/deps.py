"""The API's request dependencies: the shared ones (courier.web.deps) and the secret box.

ConnDep      an autocommit connection from the app's pool, returned after the request
SettingsDep  the Settings create_app was built with
BoxDep       the SecretBox of COURIER_SECRET_KEY (503 when the key is not configured)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from courier.api.problems import ProblemError
from courier.crypto import SecretBox
from courier.web.deps import POOL_TIMEOUT, ConnDep, SettingsDep, get_conn, get_settings

__all__ = [
    "POOL_TIMEOUT",
    "BoxDep",
    "ConnDep",
    "SettingsDep",
    "get_box",
    "get_conn",
    "get_settings",
]


def get_box(request: Request) -> SecretBox:
    box: SecretBox | None = request.app.state.secret_box
    if box is None:
        raise ProblemError(
            503, "COURIER_SECRET_KEY is not configured on this server.", slug="not-configured"
        )
    return box


BoxDep = Annotated[SecretBox, Depends(get_box)]
