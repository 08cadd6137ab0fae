"""The change feed's guarantee, under concurrent writers, against a live server.

A client that syncs without `since`, then keeps polling with each `next_since` (following
`has_more`) and applies each page in order, holds exactly what GET /api/v1/tasks lists once the
writers stop (tests/change_feed_load.py). Here against `taskapi serve --workers 2` on each
database; tests/test_scaleout.py runs the same against three replicas.
"""

from __future__ import annotations

import pytest

from tests.change_feed_load import check_sync_under_writers

pytestmark = pytest.mark.live


def test_a_syncing_client_ends_up_with_exactly_the_listed_tasks(live_server):
    check_sync_under_writers([live_server])
