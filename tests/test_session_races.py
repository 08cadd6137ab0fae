"""Ending a session ends it, whatever runs concurrently: a stolen refresh token cannot outlive
a password change, a logout or the detection of its reuse.

The attack: a thief who holds a copy of a refresh token loops POST /auth/refresh as fast as it
can, each time with the newest token it got, while the owner ends the session. Afterwards the
thief's newest refresh token and the access token that came with it must both be refused. On
PostgreSQL a refresh used to insert its successor in a transaction that the owner's
revocation (one UPDATE) could not see; 9 of 20 such thefts survived a password change.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.live

TRIALS = 20


@dataclass
class Thief:
    """Refreshes a stolen refresh token in a loop, keeping the newest tokens it was given."""

    client: httpx.Client
    refresh_token: str
    access_token: str = ""
    refreshes: int = 0
    stop: threading.Event | None = None

    def run(self) -> None:
        assert self.stop is not None
        while not self.stop.is_set():
            response = self.client.post(
                "/api/v1/auth/refresh", json={"refresh_token": self.refresh_token}
            )
            if response.status_code != 200:
                return  # the session is over for the thief
            data = response.json()["data"]
            self.refresh_token, self.access_token = data["refresh_token"], data["token"]
            self.refreshes += 1


def change_password(client: httpx.Client, login: dict[str, str], email: str) -> None:
    response = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another-password-123"},
        headers={"Authorization": f"Bearer {login['token']}"},
    )
    assert response.status_code == 200, response.text


def log_out(client: httpx.Client, login: dict[str, str], email: str) -> None:
    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": login["refresh_token"]},
        headers={"Authorization": f"Bearer {login['token']}"},
    )
    assert response.status_code == 204, response.text


def replay(client: httpx.Client, login: dict[str, str], email: str) -> None:
    # The owner's copy was already used by the thief: presenting it again is a reuse.
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert response.status_code == 401, response.text


ENDINGS: dict[str, Callable[[httpx.Client, dict[str, str], str], None]] = {
    "password change": change_password,
    "logout": log_out,
    "reuse detected": replay,
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_stolen_session_ends_with_the_owners_session(live_server, ending):
    survived = []
    with (
        httpx.Client(base_url=live_server, timeout=10) as owner,
        httpx.Client(base_url=live_server, timeout=10) as thief_client,
    ):
        for trial in range(TRIALS):
            email = f"race-{uuid.uuid4().hex[:10]}@example.com"
            account = {"email": email, "password": PASSWORD, "name": "Racer"}
            registered = owner.post("/api/v1/auth/register", json=account)
            assert registered.status_code == 201, registered.text
            login = owner.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            login_data = login.json()["data"]
            thief = Thief(thief_client, login_data["refresh_token"], stop=threading.Event())
            looping = threading.Thread(target=thief.run)
            looping.start()
            while thief.refreshes < 2 and looping.is_alive():
                time.sleep(0.001)
            ENDINGS[ending](owner, login_data, email)
            time.sleep(0.05)
            assert thief.stop is not None
            thief.stop.set()
            looping.join(timeout=10)
            refreshed = thief_client.post(
                "/api/v1/auth/refresh", json={"refresh_token": thief.refresh_token}
            )
            me = thief_client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {thief.access_token}"}
            )
            if refreshed.status_code != 401 or me.status_code != 401:
                survived.append((trial, refreshed.status_code, me.status_code, thief.refreshes))
    assert not survived, f"{len(survived)} of {TRIALS} stolen sessions survived: {survived}"
