"""``gridflow erase`` and ``gridflow restrict``: personal data of one data subject (PIPL).

Registered from `gridflow.cli.build_parser`. Both need the database (``--db``)
and its master key (``GRIDFLOW_MASTER_KEY`` or ``GRIDFLOW_MASTER_KEY_FILE``);
both print the ids of the cases that held the subject's values.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from gridflow._session import open_session
from gridflow.model import ALL_GRIDS, Actor

__all__ = ["add_parsers", "cmd_erase", "cmd_restrict"]


def _actor(args: argparse.Namespace) -> Actor:
    if args.actor in (None, "system"):
        return Actor.system()
    return Actor(args.actor, ["operator"], grids=ALL_GRIDS)


def _report(cases: list[str], what: str, subject: str, out: TextIO, lang: str) -> None:
    for case_id in cases:
        out.write(f"{case_id}\n")
    if lang == "zh":
        out.write(f"{what}：主体 {subject!r}，涉及 {len(cases)} 个案件\n")
    else:
        out.write(f"{what}: subject {subject!r}, {len(cases)} case(s)\n")


def cmd_erase(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``gridflow erase SUBJECT --reason TEXT [--scrub]``.

    Example:
        >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
        >>> add_parsers(sub, [])
        >>> parser.parse_args(["erase", "p-17", "--reason", "art. 47"]).scrub
        False
    """
    session = open_session(args, database=True)
    engine = session.engine
    cases = engine.erase(args.subject, actor=_actor(args), reason=args.reason)
    if args.scrub:
        engine.privacy.scrub()
    lang = session.settings.lang
    _report(cases, "已删除" if lang == "zh" else "erased", args.subject, out, lang)
    return 0


def cmd_restrict(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``gridflow restrict SUBJECT --reason TEXT``.

    Example:
        >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
        >>> add_parsers(sub, [])
        >>> parser.parse_args(["restrict", "p-17", "--reason", "诉讼保全"]).subject
        'p-17'
    """
    session = open_session(args, database=True)
    engine = session.engine
    cases = engine.restrict(args.subject, actor=_actor(args), reason=args.reason)
    lang = session.settings.lang
    _report(cases, "已限制" if lang == "zh" else "restricted", args.subject, out, lang)
    return 0


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``erase`` and ``restrict`` to the ``gridflow`` subcommands.

    Example:
        >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
        >>> add_parsers(sub, [])
        >>> parser.parse_args(["erase", "p-1", "--reason", "r"]).func.__name__
        'cmd_erase'
    """
    for name, func, text in (
        ("erase", cmd_erase,
         "erase a data subject: destroy their key and values, record an 'erased' event on "
         "each of their cases (PIPL art. 47)"),
        ("restrict", cmd_restrict,
         "restrict a data subject: keep their values, readable only by auditors, each read "
         "recorded (PIPL art. 47(2))"),
    ):
        p = sub.add_parser(name, parents=parents, help=text, description=text + ". Needs "
                           "the master key: GRIDFLOW_MASTER_KEY (hex or base64) or "
                           "GRIDFLOW_MASTER_KEY_FILE.")
        p.add_argument("subject", metavar="SUBJECT",
                       help="the data subject's pseudonymous id (p-17), or case:CASE_ID")
        p.add_argument("--reason", required=True, metavar="TEXT",
                       help="the legal ground, recorded in each case's history")
        p.add_argument("--actor", metavar="ID", default=None,
                       help="who acts (default: system)")
        if name == "erase":
            p.add_argument("--scrub", action="store_true",
                           help="then reclaim the freed pages (SQLite VACUUM, PostgreSQL "
                                "VACUUM FULL of the vault tables)")
        p.set_defaults(func=func)
