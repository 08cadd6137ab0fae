"""bcrypt admission: password checks beyond the process's slots wait briefly, then get a 503."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import pytest
import sqlalchemy as sa

from taskapi.storage.schema import USERS
from taskapi.web.middleware.admission import Admission, Overloaded, available_cores, default_slots
from tests.conftest import PASSWORD, assert_problem, services_of


def test_free_slots_are_taken_at_once_and_a_freed_one_goes_to_the_first_waiter():
    async def main() -> list[str]:
        admission = Admission(slots=1, queue=2, max_wait=1.0)
        order: list[str] = []
        await admission.acquire()

        async def waiter(name: str) -> None:
            await admission.acquire()
            order.append(name)
            admission.release()

        tasks = [asyncio.create_task(waiter(n)) for n in ("first", "second")]
        await asyncio.sleep(0.01)
        assert (admission.busy, admission.waiting) == (1, 2)
        admission.release()
        await asyncio.gather(*tasks)
        assert (admission.busy, admission.waiting) == (0, 0)
        return order

    assert asyncio.run(main()) == ["first", "second"]


def test_a_full_queue_is_refused_at_once_and_a_long_wait_in_time():
    async def main() -> tuple[float, float]:
        admission = Admission(slots=1, queue=1, max_wait=0.2)
        await admission.acquire()
        waiting = asyncio.create_task(admission.acquire())
        await asyncio.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(Overloaded):
            await admission.acquire()  # the queue is full
        refused_after = time.monotonic() - started
        with pytest.raises(Overloaded):
            await waiting  # nobody released the slot in time
        return refused_after, time.monotonic() - started

    refused_after, waited = asyncio.run(main())
    assert refused_after < 0.05
    assert 0.15 < waited < 0.5


def test_default_slots_share_the_cores_among_workers():
    cores = available_cores()
    assert default_slots(1) == cores
    assert default_slots(cores * 4) == 1


def test_logins_beyond_the_slots_are_503_before_any_hashing(make_app, settings, monkeypatch):
    # Cost-12 hashes (~0.2 s each) against one slot and no queue.
    app = make_app(settings, bcrypt_rounds=12, bcrypt_concurrency=1, bcrypt_queue=0)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    checks = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: checks.append(1) or real_checkpw(*a))
    with app.test_client() as client:
        body = {"email": "slow@example.com", "password": PASSWORD, "name": "Slow"}
        assert client.post("/api/v1/auth/register", json=body).status_code == 201
        with services_of(app).db.transaction() as s:
            # Make its check cost 12.
            s.execute(sa.update(USERS).where(USERS.c.id == 1).values(password_hash=hashed))

        def log_in(_: int):
            return client.post("/api/v1/auth/login", json=body)

        with ThreadPoolExecutor(max_workers=4) as pool:
            responses = list(pool.map(log_in, range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1
    refused = [r for r in responses if r.status_code == 503]
    assert refused, statuses
    for response in refused:
        assert_problem(response, 503, "overloaded")
        assert response.headers["retry-after"] == "1"
    assert len(checks) == statuses.count(200)  # the refused ones never reached bcrypt
    metrics = services_of(app).metrics.render().decode()
    assert f"taskapi_bcrypt_refused_total {float(len(refused))}" in metrics
