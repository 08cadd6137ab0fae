"""Client threads that send requests until stopped: the load under the live tests.

A subclass says what one thread does (`_run(k)`, looping until `stopped`); this class starts
the threads on `with`, stops and joins them at its end, and fails the test there with any
exception a thread recorded in `failures`.
"""

from __future__ import annotations

import threading
from typing import Self


class ClientThreads:
    def __init__(self, *, threads: int, pause: float) -> None:
        self.pause = pause
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not self.failures, self.failures

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def rest(self) -> None:
        """The pause between two requests of a thread; ends early when the load stops."""
        self._stop.wait(self.pause)

    def _run(self, k: int) -> None:
        raise NotImplementedError
