#!/usr/bin/env bash
# A new user's first hour, as CI checks it (issue 16): from the built wheel, in a
# fresh virtual environment, outside the checkout, write a workflow of one's own
# (with its own role) and a project file, then validate, draw, open and fire
# cases into SQLite through the command, run the timer, read a history
# (verified) and the report. Every step must exit 0, print no traceback, and
# say what a person would expect to read.
#
# Usage: tests/new_user.sh dist/gridflow-VERSION-py3-none-any.whl [VENV]
set -euo pipefail

wheel=$(realpath "${1:?usage: tests/new_user.sh WHEEL [VENV]}")
venv=${2:-/tmp/gridflow-new-user-venv}
python=${PYTHON:-python3}

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "${wheel}[sql,yaml]"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

n=0
# run NAME ARGS...: gridflow ARGS, which must exit 0 without a traceback.
run() {
    local name=$1
    shift
    n=$((n + 1))
    printf '%2d. gridflow %s\n' "$n" "$*"
    set +e
    "$venv/bin/gridflow" "$@" >"$name.out" 2>"$name.err"
    local code=$?
    set -e
    if [ "$code" -ne 0 ] || grep -q "Traceback" "$name.err"; then
        echo "new user: 'gridflow $*' exited $code"
        cat "$name.out" "$name.err"
        exit 1
    fi
}
# expect NAME TEXT: the output of step NAME says TEXT.
expect() {
    if ! grep -qF -- "$2" "$1.out"; then
        echo "new user: expected '$2' in the output of $1:"
        cat "$1.out" "$1.err"
        exit 1
    fi
}

cat >streetlight.yaml <<'YAML'
# Our own workflow: a broken streetlight, fixed by the sub-district's electrician.
name: streetlight
version: 1
initial: reported
labels: {zh: 路灯报修, en: Streetlight repair}
roles:
  - {name: electrician, label_zh: 电工, label_en: Electrician}
open_roles: [resident, grid_worker]
open_requires: [title]
states:
  - {name: reported, label_zh: 已报修, label_en: Reported, deadline: 2d, on_breach: escalate}
  - {name: escalated, label_zh: 已上报街道, label_en: Escalated}
  - {name: fixed, label_zh: 已修复, label_en: Fixed, terminal: true}
transitions:
  - {trigger: fix, source: [reported, escalated], dest: fixed, roles: [electrician],
     requires: [result], label_zh: 修复, label_en: Fix}
  - {trigger: escalate, source: reported, dest: escalated, roles: [system],
     label_zh: 上报街道, label_en: Escalate}
  - {trigger: note, source: "*", dest: null, requires: [text], label_zh: 备注, label_en: Note}
YAML

cat >gridflow.toml <<'TOML'
database = "cases.db"
specs = ["streetlight.yaml"]
tz = "Asia/Shanghai"
TOML

worker=(--actor w-1 --roles grid_worker --grids 华三-1)
electrician=(--actor e-1 --roles electrician --grids '*')

run validate validate
expect validate "streetlight.yaml: ok: streetlight@1 (3 states, 3 transitions)"

run diagram diagram streetlight --lang zh
expect diagram "stateDiagram-v2"
expect diagram "已报修"
run dot diagram streetlight.yaml --format dot
expect dot 'digraph "streetlight"'

run open1 open streetlight --id lamp-1 "${worker[@]}" --now 2026-03-02T09:00 \
    --data '{"title": "路灯不亮", "address": "长宁支路324弄"}'
expect open1 "opened lamp-1 · Streetlight repair (streetlight@1) · grid 华三-1 · state: Reported"
run open2 open streetlight --id lamp-2 "${worker[@]}" --now 2026-03-02T09:30 \
    --data '{"title": "路灯闪烁"}'
run fix fire lamp-2 fix "${electrician[@]}" --now 2026-03-02T15:30 --data '{"result": "更换镇流器"}'
expect fix "Fix lamp-2 · Streetlight repair (streetlight@1) · grid 华三-1 · state: Fixed"

run dry tick --now 2026-03-05T09:00 --dry-run
expect dry "lamp-1"
run tick tick --now 2026-03-05T09:00
expect tick "lamp-1  Escalate  Reported → Escalated"

run history history lamp-1
expect history "2026-03-02 09:00  Opened"
expect history "system (System (timer))"
expect history "✓ history verified: 2 events"
run history_zh history lamp-2 --lang zh
expect history_zh "e-1 (电工)"
expect history_zh "✓ 历史已验证:2 条事件"
run explicit history lamp-2 --no-project --db cases.db --spec streetlight.yaml
expect explicit "✓ history verified: 2 events"

run report report --by grid
expect report "Streetlight repair (streetlight): no supervision figures are defined"
expect report "Escalated"
expect report "Median time in each state"
run report_json report --json -q
"$venv/bin/python" - report_json.out <<'PY'
import json, sys

data = json.load(open(sys.argv[1], encoding="utf-8"))
assert data["workflows"] == {"streetlight": {"figures": None, "cases": 2}}, data["workflows"]
states = {r["state"]: r["cases"] for r in data["cases_by_state"]}
assert states == {"escalated": 1, "fixed": 1}, states
PY

echo "new user: all $n steps passed"
