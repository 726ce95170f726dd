"""The ``gridflow diff`` and ``gridflow migrate`` commands (registered by `gridflow.cli`).

``gridflow diff OLD NEW`` prints what changed between two specs (files, or
``NAME@VERSION`` of registered workflows), each change marked safe for running
cases or needing a mapping; exit code 1 when a change needs a mapping.

``gridflow migrate PLAN --dry-run`` checks a plan file (JSON or YAML, see
docs/migration.md) and prints how many cases would move where and every case
that cannot; without ``--dry-run`` it moves them. Exit code 1 when the plan
is refused, or a case could not be moved or was skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any, TextIO

from gridflow._errors import InvalidArgument
from gridflow._session import EXIT_PROBLEMS, UsageError, open_session, spec_arg
from gridflow.migrate import DataEffect, MigrationReport, load_plan, read_plan_data
from gridflow.model import ALL_GRIDS, Actor
from gridflow.spec_diff import diff

__all__ = ["add_commands", "cmd_diff", "cmd_migrate"]

EXIT_OK = 0


def cmd_diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``gridflow diff OLD NEW``."""
    session = open_session(args)
    old, new = spec_arg(args.old, session), spec_arg(args.new, session)
    found = diff(old, new)
    if args.json:
        out.write(json.dumps(found.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(str(found) + "\n")
    return EXIT_OK if found.safe else EXIT_PROBLEMS


def _effects(path: Path) -> dict[str, DataEffect]:
    """Resolve the plan file's effect names: each is ``module:function``."""
    try:
        raw = read_plan_data(path)
    except InvalidArgument as exc:
        raise UsageError(str(exc)) from None
    names = raw.get("effects") if isinstance(raw, dict) else None
    if isinstance(names, str):
        names = [names]
    out: dict[str, DataEffect] = {}
    for name in names if isinstance(names, list) else ():
        if not isinstance(name, str) or ":" not in name:
            raise UsageError(f"plan effect {name!r}: name it MODULE:FUNCTION (an importable "
                             "Python function taking (case, target_state))")
        module, _, attr = name.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"plan effect {name!r} cannot be imported: {exc}") from None
        if not callable(found):
            raise UsageError(f"plan effect {name!r} is not callable")
        out[name] = found
    return out


def cmd_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``gridflow migrate PLAN [--dry-run]``."""
    path = Path(args.plan)
    import sys

    if "" not in sys.path:
        sys.path.insert(0, "")  # effects may live in the current directory, like plugins
    try:
        plan = load_plan(path, _effects(path))
    except InvalidArgument as exc:
        raise UsageError(str(exc)) from None
    session = open_session(args, database=True)
    actor = Actor(args.actor, ["system"], ALL_GRIDS)
    cases = args.case or None
    report: MigrationReport
    if args.dry_run:
        report = session.engine.plan_migration(plan, actor=actor, cases=cases)
    else:
        report = session.engine.migrate(plan, actor=actor, cases=cases, retries=args.retries)
    if args.json:
        out.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(str(report) + "\n")
    return EXIT_PROBLEMS if report.refused or report.skipped else EXIT_OK


def add_commands(sub: Any, *, project: argparse.ArgumentParser,
                 db: argparse.ArgumentParser) -> None:
    """Add ``diff`` and ``migrate`` to the ``gridflow`` parser's subcommands."""
    p = sub.add_parser(
        "diff", parents=[project],
        help="what changed between two workflow specs, and what needs a mapping",
        description="Lists the states, transitions, roles, guards, effects, deadlines and "
                    "labels added, removed and changed from OLD to NEW (spec files, or "
                    "NAME@VERSION of registered workflows), each marked safe for running "
                    "cases or NEEDS MAPPING. Exit code 1 if a change needs a mapping.")
    p.add_argument("old", metavar="OLD", help="a spec file or NAME@VERSION")
    p.add_argument("new", metavar="NEW", help="a spec file or NAME@VERSION")
    p.add_argument("--json", action="store_true", help="print the changes as JSON")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "migrate", parents=[db, project],
        help="move running cases to another version of their workflow (a plan file)",
        description="Checks the migration plan PLAN (JSON or YAML: workflow, "
                    "source_version, target_version, states, set, unset, effects, name; see "
                    "docs/migration.md) against both specs and the database. With --dry-run, "
                    "prints per source state how many cases would move where and every case "
                    "that cannot, and changes nothing; without, moves each case in its own "
                    "step (a 'migrate' event). Running it again moves only the cases left. "
                    "Exit code 1 if the plan is refused, or a case could not be moved.")
    p.add_argument("plan", metavar="PLAN", help="the plan file (.json, .yaml, .yml)")
    p.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    p.add_argument("--actor", default="system", metavar="ID",
                   help="the actor recorded in each migrate event (default: system)")
    p.add_argument("--case", action="append", metavar="CASE_ID",
                   help="migrate only this case (repeatable)")
    p.add_argument("--retries", type=int, default=3, metavar="N",
                   help="times a case changed meanwhile is re-read and retried (default 3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_migrate)
