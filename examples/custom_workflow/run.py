"""Load the YAML workflow next to this file, register it, and run one case through it.

Run: ``python examples/custom_workflow/run.py`` (needs ``gridflow[yaml]`` for PyYAML).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import gridflow

SPEC_FILE = Path(__file__).with_name("legal_consultation.yaml")
GRID = "第一综合网格"


def main() -> gridflow.Case:
    spec = gridflow.WorkflowSpec.load(SPEC_FILE)  # validated; raises SpecError listing problems
    clock = gridflow.FixedClock(datetime(2026, 3, 9, 1, 0, tzinfo=UTC))
    engine = gridflow.Engine(clock=clock, entry_points=False)
    engine.register_workflow(spec)  # checks its roles, guards and effects are registered

    resident = gridflow.Actor("resident-zhou", ["resident"], [GRID])
    secretary = gridflow.Actor("secretary-huasan", ["coordinator"], [GRID])
    lawyer = gridflow.Actor("lawyer-li", ["lawyer"], grids=gridflow.ALL_GRIDS)

    case = engine.open("legal_consultation", case_id="legal-001", actor=resident, grid=GRID,
                       data={"question": "租房押金不退,该怎么办?", "level": "网格"})
    clock.advance(timedelta(hours=3))
    engine.fire(case.id, "assign", actor=secretary, payload={"lawyer": lawyer.id})
    clock.advance(timedelta(days=1))
    engine.fire(case.id, "answer", actor=lawyer,
                payload={"advice": "保留租赁合同和付款凭证,先协商,协商不成可申请调解或起诉"})
    clock.advance(timedelta(days=2))
    case = engine.fire(case.id, "close", actor=resident, payload={"satisfied": "满意"})

    print(f"{spec.label('zh')} / {spec.label('en')} ({spec.key}), case {case.id}:")
    for event in engine.history(case.id):
        print(f"  {event.seq}. {event.trigger:<8} {event.source or '':>9} -> "
              f"{event.dest or '(stays)':<9} by {event.actor.id}")
    print(f"now {case.state}: {spec.state(case.state).label('zh')}")
    return case


if __name__ == "__main__":
    main()
