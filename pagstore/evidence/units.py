"""Units of the evidence experiment: train one (method, seed), evaluate it, APGD-probe it, distill a store.

Every unit writes one JSON under ``<work>/units/`` atomically and records its wall and CPU seconds; a
rerun skips a unit whose JSON exists with the same configuration key (the experiment resumes after an
interruption, and a changed setting redoes exactly the units it affects).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pagstore.atomic import write_json


def config_key(obj: Any) -> str:
    """A short stable hash of a JSON-able configuration (dataclasses are turned into dicts)."""
    def plain(o: Any) -> Any:
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        raise TypeError(f"not JSON-able: {type(o).__name__}")

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=plain).encode()).hexdigest()[:16]


class UnitCache:
    """``<work>/units/<name>.json`` = {"key", "seconds", "cpu_seconds", "result"}; reused when ``key`` matches."""

    def __init__(self, work: Path) -> None:
        self.dir = Path(work) / "units"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ran: list[str] = []

    def path(self, name: str) -> Path:
        return self.dir / (name.replace("/", "_").replace("@", "_at_") + ".json")

    def get(self, name: str, key: Any, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached result of unit ``name`` with configuration ``key``, or run ``fn`` and record it."""
        k = config_key(key)
        p = self.path(name)
        if p.is_file():
            rec = json.loads(p.read_text())
            if rec.get("key") == k:
                return rec
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        rec = {"name": name, "key": k, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
               "result": result}
        write_json(p, rec)
        self.ran.append(name)
        return json.loads(p.read_text())  # as a rerun will see it (JSON types, key order)

    def all_records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json"))]
