"""What `gridflow demo` prints (issue 16, point 6): one time zone, the terminal's
width, and ``--lang zh`` entirely in Chinese; and the demo's actors are scoped as
the people of the stories would be (0.2: scope fails closed)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

import gridflow
from gridflow import _demo
from gridflow.cli import EXIT_OK, main


def width(text: str) -> int:
    """Terminal columns (CJK characters take two), counted here rather than with
    gridflow's own function, so the test does not trust what it tests."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def demo(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[str, str]:
    db = tmp_path / "d.db"
    for leftover in tmp_path.glob("d.db*"):
        leftover.unlink()
    code = main(["demo", "--db", str(db), *argv])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    return out, err


# -- one time zone ----------------------------------------------------------------------

ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def test_every_time_is_shown_in_shanghai_time(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    out, _ = demo(capsys, tmp_path, "-q")
    # No instant is shown raw (ISO 8601 with its own offset): every one is converted.
    assert not ISO_INSTANT.search(out), ISO_INSTANT.search(out)
    assert "+00:00" not in out and "UTC" not in out
    # The timer starts the look-back 30 days after closing (9 March, 15:00 Shanghai):
    # the deadline it names is 15:00 on 8 April in Shanghai, not 07:00 UTC.
    assert "deadline 2026-04-08 15:00 passed in state Closed" in out
    # The passed check records the deadline in force: shown in the same zone; so is
    # the 签收 limit an acknowledgement records.
    assert "deadline_at=2026-03-11 00:00; on_time=true" in out
    assert "due_at=2026-03-03 16:00; on_time=false" in out
    # The timer urges the late department; its note repeats the reason: said once.
    assert "deadline 2026-03-03 16:00 passed in state Joint action; departments=清运单位" in out
    # The agreement's performance date was given in +08:00: shown the same way.
    assert "performance_due=2026-04-30 18:00" in out


def test_another_zone_applies_to_every_time(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    out, _ = demo(capsys, tmp_path, "-q", "--tz", "UTC")
    assert "deadline 2026-04-08 07:00 passed" in out
    assert "2026-03-02 02:00  Opened" in out


# -- the terminal's width ---------------------------------------------------------------

#: The longest texts of the stories: shown whole, wrapped if need be, never clipped.
LONG = ["网格党建联席会议制定联合整治工作方案:清理堆物、拆除私装地锁、清运垃圾",
        "火锅店炭炉锅底未做完全防护,消费者腿部烫伤,双方就赔偿数额发生矛盾"]


def _overflowing(out: str, columns: int) -> list[str]:
    """Lines wider than the terminal. A database URL (``://``) is never broken, so
    that it can be copied: its line may overflow."""
    return [line for line in out.splitlines() if width(line) > columns and "://" not in line]


@pytest.mark.parametrize("columns", [60, 160])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_columns_fit_the_terminal(columns: int, lang: str, capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out, _ = demo(capsys, tmp_path, "-q", "--lang", lang)
    assert _overflowing(out, columns) == []
    # Nothing is cut off: the long texts are all there once wrapping is undone.
    flat = re.sub(r"\s+", "", out)
    for text in LONG:
        assert text in flat, text
    assert "…" not in out
    timeline = [line for line in out.splitlines() if line.startswith("  2026-")]
    assert len(timeline) == 48  # every event starts a line of its own
    widest = max(width(line) for line in out.splitlines() if "://" not in line)
    if columns == 160:
        assert widest > 120  # the room is used, not a fixed width
        assert any(LONG[1] in line for line in out.splitlines())  # wide enough: one line


def test_width_defaults_without_a_terminal(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out, _ = demo(capsys, tmp_path, "-q")
    # Not a terminal (pytest captures the output): a fixed, generous width.
    assert _overflowing(out, 120) == []
    assert "…" not in out


# -- --lang zh: entirely in Chinese -----------------------------------------------------

#: What may be written in ASCII letters in the Chinese demo, matched and removed
#: before looking for ASCII words; anything else in Latin letters is English that
#: should have been translated. In order:
ALLOWED = [
    # 1. a command line the reader can type (indented, starting with the command's
    #    name), with its continuation lines (after a trailing backslash);
    re.compile(r"^  gridflow [a-z]+ .*?(?:\\\n.*?)*$", re.MULTILINE),
    # 2. the program's own prefix on its stderr lines ("gridflow demo："), and the
    #    product's name "gridflow";
    re.compile(r"\bgridflow(?: demo)?\b"),
    # 3. URLs (the database, here a sqlite:/// URL) and file paths;
    re.compile(r"\b[a-z][a-z0-9+]*://\S+"),
    re.compile(r"(?:/[A-Za-z0-9_.\-]+){2,}"),
    # 4. identifiers: workflow keys (name@version) and names, case ids, actor ids, and
    #    anything in `code font` (trigger names, options);
    re.compile(r"\b[a-z_]+@\d+\b"),
    re.compile(r"`[^`]+`"),
    # 5. numbers, dates and times (digits are not words).
]


def _identifiers() -> list[str]:
    engine = gridflow.Engine(entry_points=False)
    actors = [value for value in vars(_demo).values() if isinstance(value, gridflow.Actor)]
    actors += list(_demo.DEPARTMENTS.values())
    return sorted({*_demo.CASE_IDS, *(a.id for a in actors), "system",
                   *(s.name for s in engine.workflows)}, key=len, reverse=True)


def english_words(text: str) -> list[str]:
    """The ASCII words of ``text`` that no rule of `ALLOWED` and no identifier covers.

    Example:
        >>> english_words("2026-03-02 10:00  新建  grid-worker-huasan (网格员) → 已上报")
        []
        >>> english_words("分类：违规堆物；priority=normal")
        ['priority', 'normal']
    """
    for rule in ALLOWED:
        text = rule.sub(" ", text)
    for name in _identifiers():
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", " ", text)
    return re.findall(r"[A-Za-z]+", text)


def test_the_rule_catches_english() -> None:
    assert english_words("  2026-03-02 10:00  新建  grid-worker-huasan (网格员)") == []
    assert english_words("deadline 2026-04-05 07:00 passed in state 'closed'") == \
        ["deadline", "passed", "in", "state", "closed"]
    assert english_words("gridflow demo: the alley") == ["the", "alley"]


def test_zh_demo_has_no_english(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out, err = demo(capsys, tmp_path, "--lang", "zh")
    assert english_words(out) == []
    assert english_words(err) == []  # the progress lines too
    # The payload keys are shown as Chinese labels, values translated where they are codes.
    assert "分类：违规堆物" in out and "优先级：一般" in out and "优先级：紧急" in out
    # Personal values are masked: names to 谢**, in the consent (each party's own) too.
    assert "当事人同意：谢** 同意、某*** 同意" in out and "签字方：谢**、某***" in out
    assert "谢女士" not in out and "某火锅店" not in out
    # The timer's reason, in Chinese, in Shanghai time.
    assert "已过时限 2026-04-08 15:00" in out
    # The figures are named in Chinese.
    assert "按期结案率" in out and "化解成功率" in out


def test_zh_demo_without_sqlalchemy_says_so_in_chinese(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from gridflow import cli

    monkeypatch.setattr(cli, "DEMO_DB", tmp_path / "gridflow-demo.db")
    monkeypatch.setitem(sys.modules, "gridflow.store.sql", None)
    assert main(["demo", "--lang", "zh"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "内存" in err and english_words(err) == []
    assert english_words(out) == []


# -- the demo's actors are scoped ----------------------------------------------------

STREET_LEVEL = {"department", "judicial_office", "police", "lawyer", "inspector", "street"}


def test_demo_actors_are_scoped_like_the_people_of_the_stories() -> None:
    actors = [value for value in vars(_demo).values() if isinstance(value, gridflow.Actor)]
    actors += list(_demo.DEPARTMENTS.values())
    assert len(actors) >= 10
    for actor in actors:
        if set(actor.roles) & STREET_LEVEL:
            assert actor.grids is gridflow.ALL_GRIDS, actor  # street level: every grid
        else:
            # People of a grid (worker, secretary, volunteer, mediator): their grid only.
            assert list(actor.grids) in ([_demo.GRID_1], [_demo.GRID_2]), actor


# -- the commands the demo suggests ------------------------------------------------------


def test_the_commands_the_demo_suggests_run_as_printed(tmp_path: Path) -> None:
    # `make demo` runs `python -m gridflow demo` (no `gridflow` script on the PATH):
    # the suggestions must run as printed, not with a `gridflow` that is not there.
    import os
    import shlex
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(gridflow.__file__).parents[1]),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "gridflow", "demo", "--db", "d.db", "-q"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.replace("\\\n", " ").splitlines()  # undo the line continuations
    line = next(line for line in commands if " history demo-alley-324 " in line)
    assert " -m gridflow history" in line
    again = subprocess.run(shlex.split(line), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    assert "✓ history verified: 25 events" in again.stdout
