"""Run by the crash test in a subprocess: apply (or resume) a plan and end the process, without any
clean-up, at the N-th step of the apply (``python -m tests.scheduler.crash_apply URL PLAN STEP``)."""

from __future__ import annotations

import os
import sys

from scheduler.db.models import PlanStatus
from scheduler.db.session import Database
from scheduler.services.apply import apply_plan
from scheduler.services.plans import get_plan
from scheduler.settings import Settings
from tests.scheduler.loop_helpers import context

CRASH_EXIT = 86


def main() -> None:
    url, plan_id, crash_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    database = Database.from_url(url)
    settings = Settings(apply_lease_s=0.5, apply_backoff_s=0.0, apply_backoff_max_s=0.0)
    ctx, _cloud = context(database, settings=settings, holder=f"crash-{os.getpid()}")
    steps = 0

    def on_step(name: str) -> None:
        nonlocal steps
        steps += 1
        if steps == crash_at:
            sys.stdout.write(f"crashing at step {steps}: {name}\n")
            sys.stdout.flush()
            os._exit(CRASH_EXIT)

    ctx.on_step = on_step
    with database.transaction() as session:
        status = get_plan(session, plan_id).status
    apply_plan(ctx, plan_id, actor="crash", resume=status is not PlanStatus.APPROVED)
    sys.stdout.write(f"finished after {steps} steps\n")


if __name__ == "__main__":
    main()
