"""The simulated cloud's fault configuration: which calls fail, how, and how slow every call is.

A YAML (or JSON) document, refused as a whole with every bad field named when malformed
(docs/operations.md, "Fault configuration")::

    seed: 7                      # random faults and random preemptions draw from this
    latency_ms: 20               # every call waits this long first
    faults:
      - kind: insufficient_capacity   # insufficient_capacity | throttled | timeout | lost_answer
        verbs: [launch]               # launch, terminate, list (default: launch and terminate)
        offers: ["aws/*/p5.48xlarge/spot"]   # shell patterns on the offer key (launch only); default all
        providers: [aws]              # default: every provider
        calls: [1, 2]                 # only these calls of each verb, counted from 1; default: every call
        probability: 0.5              # default 1
        max_times: 3                  # at most this many times in all; default: no limit

``insufficient_capacity``, ``throttled`` and ``timeout`` fail the call before it takes effect;
``lost_answer`` lets it take effect and then fails it as a time-out, as when a response is lost on the way
back. Calls are counted in the database (``sim_calls``), so a rule holds across processes and restarts.
"""

from __future__ import annotations

import fnmatch
import random
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from solver.errors import SpecError, describe_validation_error


class FaultKind(StrEnum):
    INSUFFICIENT_CAPACITY = "insufficient_capacity"
    THROTTLED = "throttled"
    TIMEOUT = "timeout"
    LOST_ANSWER = "lost_answer"


class Verb(StrEnum):
    LAUNCH = "launch"
    TERMINATE = "terminate"
    LIST = "list"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultRule(_Strict):
    kind: FaultKind
    verbs: frozenset[Verb] = frozenset({Verb.LAUNCH, Verb.TERMINATE})
    offers: tuple[str, ...] = ()
    providers: frozenset[str] = frozenset()
    calls: frozenset[int] = frozenset()
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    max_times: int | None = Field(default=None, ge=1)

    def matches(self, verb: Verb, call: int, *, provider: str, offer_key: str | None) -> bool:
        if verb not in self.verbs:
            return False
        if self.calls and call not in self.calls:
            return False
        if self.providers and provider not in self.providers:
            return False
        if self.offers:
            if offer_key is None:
                return False
            return any(fnmatch.fnmatchcase(offer_key, pattern) for pattern in self.offers)
        return True


class FaultConfig(_Strict):
    seed: int = 0
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    faults: tuple[FaultRule, ...] = ()

    def draw(self, rule_index: int, verb: Verb, call: int) -> bool:
        """Does a rule with a probability fire on this call? The same answer for the same call, always."""
        probability = self.faults[rule_index].probability
        if probability >= 1.0:
            return True
        return random.Random(f"{self.seed}:{rule_index}:{verb}:{call}").random() < probability


def parse_fault_config(document: Any, *, source: str) -> FaultConfig:
    if document is None:
        return FaultConfig()
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): expected a mapping, got {type(document).__name__}"])
    try:
        return FaultConfig.model_validate(document)
    except ValidationError as exc:
        raise SpecError(source, describe_validation_error(exc)) from exc


def read_fault_config(path: Path) -> FaultConfig:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, [f"cannot read the fault configuration: {exc.strerror or exc}"]) from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise SpecError(source, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    return parse_fault_config(document, source=source)
