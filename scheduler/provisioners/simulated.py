"""The simulated cloud: a provisioner whose inventory lives in the gpuplan database.

It stands in for every provider (the embedded default, the demo and the fault test bed). Each call runs
in a transaction of its own, as a real cloud's side effects are independent of gpuplan's transactions:

- ``launch`` is find-or-create by the action's tag: instances already made for the action count toward
  the request, so a retry never makes more than asked; instance ids derive from the action key;
- capacity per offer comes from the offer's latest availability observation in the database (no
  observation: unlimited); a launch beyond it fails whole with ``InsufficientCapacityError``;
- ``terminate`` is idempotent; ``list_instances`` returns every instance carrying the tags, ended
  ones included with their state;
- faults and call latency come from a ``FaultConfig`` (scheduler.provisioners.faults); spot preemptions
  happen on command (``preempt``) or at random with a seed (``preempt_random``).

It implements the contract of ``scheduler.provisioners.base`` like the real adapters (tags with the
deployment, ``terminate`` refusing what is not this deployment's, listings filtered by tag). The real
adapters' registry refuses two adapters for one (provider, purchase option), so the simulated cloud has a
registry of its own (``simulated_registry``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import (
    AvailabilityObservationRow,
    OfferRow,
    ProviderRow,
    SimCallRow,
    SimInstanceRow,
)
from scheduler.db.session import Database
from scheduler.provisioners.base import (
    CloudInstance,
    Coverage,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    Operation,
    OutcomeUnknownError,
    ProvisionerError,
    Tag,
    ThrottledError,
    check_deployment,
    check_terminable,
    listing_filter,
    matches,
)
from scheduler.provisioners.faults import FaultConfig, FaultKind, FaultRule, Verb
from scheduler.provisioners.registry import ProvisionerRegistry
from solver.domain import AvailabilityStatus, PurchaseOption
from solver.problem import PLANNED_PURCHASE_OPTIONS

NAME = "simulated"
PROVIDER_LABEL = "simulated"

Capacity = Callable[[Session, str], int | None]
"""(session, offer key) -> instances the simulated provider has for the offer in all (None: unlimited)."""

_LIVE = (InstanceState.PENDING.value, InstanceState.RUNNING.value)


def availability_capacity(session: Session, offer_key: str) -> int | None:
    """The offer's latest availability observation: its own zone's, else its region's, else the sum of
    its region's zones for a regional offer; None (unlimited) without any."""
    offer = session.scalar(sa.select(OfferRow).where(OfferRow.key == offer_key))
    if offer is None:
        return None
    obs = AvailabilityObservationRow
    rows = session.execute(
        sa.select(obs.zone, obs.observed_at, obs.status, obs.available_instances).where(
            obs.instance_type_id == offer.instance_type_id, obs.region_id == offer.region_id
        )
    ).all()
    latest: dict[str, tuple[dt.datetime, int | None]] = {}
    for zone, observed_at, status, available in rows:
        value = available if status is AvailabilityStatus.OFFERED else 0
        if zone not in latest or observed_at > latest[zone][0]:
            latest[zone] = (observed_at, value)
        elif observed_at == latest[zone][0] and value is not None:
            previous = latest[zone][1]
            latest[zone] = (observed_at, value if previous is None else min(value, previous))
    for zone in (offer.zone, ""):
        if zone in latest:
            return latest[zone][1]
    if offer.zone == "" and latest:
        values = [value for _, value in latest.values()]
        return None if any(value is None for value in values) else sum(v for v in values if v is not None)
    return None


def _instance_id(action_key: str, index: int) -> str:
    return "sim-" + hashlib.sha256(f"{action_key}#{index}".encode()).hexdigest()[:16]


_VERB_OPERATION = {
    Verb.LAUNCH: Operation.LAUNCH,
    Verb.TERMINATE: Operation.TERMINATE,
    Verb.LIST: Operation.LIST,
}


class SimulatedCloud:
    """The simulated cloud as a ``Provisioner`` (``scheduler.provisioners.base``)."""

    def __init__(
        self,
        database: Database,
        *,
        faults: FaultConfig | None = None,
        providers: Mapping[str, frozenset[PurchaseOption]] | None = None,
        capacity: Capacity = availability_capacity,
        deployment: str = "default",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.database = database
        self.faults = faults or FaultConfig()
        self._providers = providers
        self._capacity = capacity
        self._deployment = check_deployment(deployment)
        self._sleep = sleep
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    @property
    def name(self) -> str:
        return NAME

    @property
    def deployment(self) -> str:
        return self._deployment

    # ------------------------------------------------------------------------------------- contract

    def coverage(self) -> Coverage:
        """Every planned purchase option of the providers it stands in for (default: every provider in
        the database)."""
        if self._providers is None:
            with self.database.transaction() as session:
                names = session.scalars(sa.select(ProviderRow.name).order_by(ProviderRow.name)).all()
            self._providers = {name: PLANNED_PURCHASE_OPTIONS for name in names}
        covered = frozenset(
            (provider, option) for provider, options in self._providers.items() for option in options
        )
        return Coverage(adapter=NAME, covered=covered)

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        key = request.idempotency_key
        offer_key = request.offer_key
        self._wait()
        with self.database.transaction() as session:
            call, rule, index = self._fault(session, Verb.LAUNCH, request.provider, offer_key)
            if rule is not None and rule.kind is not FaultKind.LOST_ANSWER:
                self._record(session, Verb.LAUNCH, request.provider, key, rule, index)
                session.commit()
                self._raise(rule, Verb.LAUNCH, request.provider, key, f"{offer_key} (call {call})")
            existing = session.scalars(
                sa.select(SimInstanceRow)
                .where(
                    SimInstanceRow.action_key == key,
                    SimInstanceRow.state.in_(_LIVE),
                )
                .order_by(SimInstanceRow.id)
            ).all()
            existing = [row for row in existing if row.tags.get(Tag.DEPLOYMENT) == self._deployment]
            missing = request.count - len(existing)
            rows = list(existing)
            if missing > 0:
                limit = self._capacity(session, offer_key)
                if limit is not None:
                    live = session.scalar(
                        sa.select(sa.func.count())
                        .select_from(SimInstanceRow)
                        .where(SimInstanceRow.offer_key == offer_key, SimInstanceRow.state.in_(_LIVE))
                    )
                    if int(live or 0) + missing > limit:
                        self._record(
                            session,
                            Verb.LAUNCH,
                            request.provider,
                            key,
                            None,
                            None,
                            outcome="insufficient_capacity",
                        )
                        session.commit()
                        raise InsufficientCapacityError(
                            request.provider,
                            Operation.LAUNCH,
                            f"{offer_key}: {missing} more instances asked, "
                            f"{max(0, limit - int(live or 0))} left of {limit}",
                            action=key,
                        )
                now = self._clock()
                made = session.scalar(
                    sa.select(sa.func.count())
                    .select_from(SimInstanceRow)
                    .where(SimInstanceRow.action_key == key)
                )
                tags = request.tags(deployment=self._deployment)
                for position in range(int(made or 0), int(made or 0) + missing):
                    row = SimInstanceRow(
                        instance_id=_instance_id(key, position),
                        provider=request.provider,
                        region=request.region,
                        zone=request.zone or "",
                        instance_type=request.instance_type,
                        purchase_option=request.purchase_option,
                        offer_key=offer_key,
                        action_key=key,
                        state=InstanceState.RUNNING.value,
                        tags=dict(tags),
                        launched_at=now,
                    )
                    session.add(row)
                    rows.append(row)
            self._record(session, Verb.LAUNCH, request.provider, key, rule, index)
            session.flush()
            instances = [self._to_instance(row) for row in rows]
        if rule is not None:  # lost answer: the launch took effect, the caller never hears of it
            self._raise(rule, Verb.LAUNCH, request.provider, key, f"{offer_key} (call {call})")
        return instances

    def terminate(self, instances: Sequence[CloudInstance], *, action_key: str) -> None:
        if not instances:
            return
        provider = instances[0].provider
        for instance in instances:
            check_terminable(instance.provider, self._deployment, [instance], action_key)
        subject = ",".join(instance.instance_id for instance in instances)[:400]
        self._wait()
        with self.database.transaction() as session:
            call, rule, index = self._fault(session, Verb.TERMINATE, provider, None)
            if rule is not None and rule.kind is not FaultKind.LOST_ANSWER:
                self._record(session, Verb.TERMINATE, provider, subject, rule, index)
                session.commit()
                self._raise(rule, Verb.TERMINATE, provider, action_key, f"{subject} (call {call})")
            session.execute(
                sa.update(SimInstanceRow)
                .where(
                    SimInstanceRow.instance_id.in_([i.instance_id for i in instances]),
                    SimInstanceRow.state.in_(_LIVE),
                )
                .values(state=InstanceState.TERMINATED.value, ended_at=self._clock())
            )
            self._record(session, Verb.TERMINATE, provider, subject, rule, index)
        if rule is not None:
            self._raise(rule, Verb.TERMINATE, provider, action_key, f"{subject} (call {call})")

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        wanted = listing_filter(self._deployment, tags)
        self._wait()
        with self.database.transaction() as session:
            _call, rule, index = self._fault(session, Verb.LIST, "", None)
            if rule is not None and rule.kind is not FaultKind.LOST_ANSWER:
                self._record(session, Verb.LIST, "", "", rule, index)
                session.commit()
                self._raise(rule, Verb.LIST, PROVIDER_LABEL, None, "list")
            query = sa.select(SimInstanceRow).order_by(SimInstanceRow.id)
            if Tag.ACTION in wanted:
                query = query.where(SimInstanceRow.action_key == wanted[Tag.ACTION])
            if Tag.OFFER in wanted:
                query = query.where(SimInstanceRow.offer_key == wanted[Tag.OFFER])
            rows = session.scalars(query).all()
            found = [self._to_instance(row) for row in rows if matches(row.tags, wanted)]
            self._record(session, Verb.LIST, "", "", rule, index)
        if rule is not None:
            self._raise(rule, Verb.LIST, PROVIDER_LABEL, None, "list")
        return found

    # ------------------------------------------------------------------------ what the cloud does

    def preempt(self, instance_ids: Sequence[str]) -> list[CloudInstance]:
        """Reclaim these spot instances now (on-demand ones are left alone); returns those reclaimed."""
        with self.database.transaction() as session:
            rows = session.scalars(
                sa.select(SimInstanceRow).where(
                    SimInstanceRow.instance_id.in_(list(instance_ids)),
                    SimInstanceRow.state.in_(_LIVE),
                    SimInstanceRow.purchase_option == PurchaseOption.SPOT,
                )
            ).all()
            now = self._clock()
            for row in rows:
                row.state = InstanceState.PREEMPTED.value
                row.ended_at = now
            session.flush()
            return [self._to_instance(row) for row in rows]

    def preempt_random(self, *, share: float, seed: int) -> list[CloudInstance]:
        """Reclaim a share of the running spot instances, drawn with a seed (at least one if any run)."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        with self.database.transaction() as session:
            ids = session.scalars(
                sa.select(SimInstanceRow.instance_id)
                .where(
                    SimInstanceRow.state.in_(_LIVE),
                    SimInstanceRow.purchase_option == PurchaseOption.SPOT,
                )
                .order_by(SimInstanceRow.instance_id)
            ).all()
        if not ids:
            return []
        count = max(1, round(len(ids) * share))
        chosen = random.Random(seed).sample(list(ids), count)
        return self.preempt(chosen)

    def delete_by_hand(self, instance_ids: Sequence[str]) -> None:
        """An operator deletes instances outside gpuplan (they end without gpuplan asking)."""
        with self.database.transaction() as session:
            session.execute(
                sa.update(SimInstanceRow)
                .where(SimInstanceRow.instance_id.in_(list(instance_ids)), SimInstanceRow.state.in_(_LIVE))
                .values(state=InstanceState.TERMINATED.value, ended_at=self._clock())
            )

    def inventory(self) -> list[CloudInstance]:
        """Every instance the simulated cloud ever made, without faults or latency (for reports and tests)."""
        with self.database.transaction() as session:
            rows = session.scalars(sa.select(SimInstanceRow).order_by(SimInstanceRow.id)).all()
            return [self._to_instance(row) for row in rows]

    # ------------------------------------------------------------------------------------- helpers

    def _wait(self) -> None:
        if self.faults.latency_ms:
            self._sleep(self.faults.latency_ms / 1000)

    def _fault(
        self, session: Session, verb: Verb, provider: str, offer_key: str | None
    ) -> tuple[int, FaultRule | None, int | None]:
        if not self.faults.faults:
            return 0, None, None
        call = int(
            session.scalar(sa.select(sa.func.count()).select_from(SimCallRow).where(SimCallRow.verb == verb))
            or 0
        )
        call += 1
        for index, rule in enumerate(self.faults.faults):
            if not rule.matches(verb, call, provider=provider, offer_key=offer_key):
                continue
            if rule.max_times is not None:
                fired = session.scalar(
                    sa.select(sa.func.count())
                    .select_from(SimCallRow)
                    .where(SimCallRow.outcome.like(f"fault:{index}:%"))
                )
                if int(fired or 0) >= rule.max_times:
                    continue
            if self.faults.draw(index, verb, call):
                return call, rule, index
        return call, None, None

    def _record(
        self,
        session: Session,
        verb: Verb,
        provider: str,
        subject: str,
        rule: FaultRule | None,
        index: int | None,
        *,
        outcome: str = "ok",
    ) -> None:
        if rule is not None:
            outcome = f"fault:{index}:{rule.kind.value}"
        session.add(
            SimCallRow(at=self._clock(), verb=verb.value, provider=provider, subject=subject, outcome=outcome)
        )

    @staticmethod
    def _raise(rule: FaultRule, verb: Verb, provider: str, action: str | None, what: str) -> None:
        errors: dict[FaultKind, type[ProvisionerError]] = {
            FaultKind.INSUFFICIENT_CAPACITY: InsufficientCapacityError,
            FaultKind.THROTTLED: ThrottledError,
            FaultKind.TIMEOUT: OutcomeUnknownError,
            FaultKind.LOST_ANSWER: OutcomeUnknownError,
        }
        wording = {
            FaultKind.INSUFFICIENT_CAPACITY: "no capacity",
            FaultKind.THROTTLED: "request rate exceeded",
            FaultKind.TIMEOUT: "no answer in time",
            FaultKind.LOST_ANSWER: "no answer in time",
        }
        raise errors[rule.kind](
            provider or PROVIDER_LABEL,
            _VERB_OPERATION[verb],
            f"{what}: {wording[rule.kind]} (injected fault)",
            action=action,
        )

    @staticmethod
    def _to_instance(row: SimInstanceRow) -> CloudInstance:
        return CloudInstance(
            provider=row.provider,
            instance_id=row.instance_id,
            region=row.region,
            zone=row.zone or None,
            instance_type=row.instance_type,
            spot=row.purchase_option is PurchaseOption.SPOT,
            state=InstanceState(row.state),
            tags={str(k): str(v) for k, v in row.tags.items()},
            launched_at=row.launched_at,
        )


def simulated_registry(cloud: SimulatedCloud) -> ProvisionerRegistry:
    """A registry holding only the simulated cloud (it covers what the real adapters cover, so it cannot
    share their registry)."""
    registry = ProvisionerRegistry()
    registry.register(NAME, lambda: cloud, cloud.coverage)
    return registry
