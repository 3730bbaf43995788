"""Goal: `route-eval` reads the MMLU format and scores the shipped router and both baselines.

The shipped difficulty model is trained on the project's everyday requests, never on MMLU: on these rows
it beats random but not the prompt-length baseline (figures in tests/data/routing/README.md); what this
file checks is the command's interface and arithmetic, unchanged from before.

Method: the held-out rows in tests/data/routing (never used in training) through the library functions
and once through the command entry with --json; small CSVs in tmp_path for the input error paths.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from proxy.cli.route_eval import (
    RouteEvalError,
    add_route_eval_command,
    evaluate_route_data,
    load_route_eval_data,
    main,
    run_route_eval,
)

HELDOUT_DIR = Path(__file__).resolve().parents[3] / "data" / "routing"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


def test_router_and_baselines_are_scored_on_heldout_rows() -> None:
    data = load_route_eval_data(HELDOUT_DIR, strong_model=STRONG, weak_model=WEAK)
    results = evaluate_route_data(data)
    assert len(data.prompts) > 2500
    assert results["random"].apgr == pytest.approx(0.5)
    assert results["router"].apgr > results["random"].apgr + 0.05
    assert results["length"].apgr > results["random"].apgr
    assert results["router"].cpt50 < results["random"].cpt50


def test_cli_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = main(["route-eval", str(HELDOUT_DIR), "--strong", STRONG, "--weak", WEAK, "--json"])
    output = json.loads(capsys.readouterr().out)
    assert exit_code == 0
    assert set(output) == {"router", "random", "length"}
    assert output["router"]["apgr"] > output["random"]["apgr"]
    assert output["length"]["apgr"] > output["random"]["apgr"]
    curve = output["router"]["curve"]
    assert (curve[0]["strong_share"], curve[-1]["strong_share"]) == (0.0, 1.0)
    assert {"cpt50", "cpt80"} <= set(output["router"])


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_route_eval_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_table_output_and_number_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_csv(
        tmp_path / "set.csv", 'prompt,w,s\n"a, long prompt",0,1\nb,true,TRUE\nc,1,false\nd,0.0,1.0\n'
    )
    exit_code = run_route_eval(parse(["route-eval", str(data), "--strong", "s", "--weak", "w"]))
    table = capsys.readouterr().out
    assert exit_code == 0
    assert "rows: 4" in table
    assert "random    0.500" in table


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt,w\na,1\n", "no column 's'"),
        ("prompt,w,s\na,1,maybe\n", "expected 0/1 or true/false"),
        ("prompt,w,s\na,1,0\n", "not more accurate"),
    ],
)
def test_bad_data_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    data = write_csv(tmp_path / "bad.csv", text)
    exit_code = run_route_eval(parse(["route-eval", str(data), "--strong", "s", "--weak", "w"]))
    assert exit_code == 2
    assert message in capsys.readouterr().err


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RouteEvalError, match="no such file"):
        load_route_eval_data(tmp_path / "absent.csv", strong_model="s", weak_model="w")
    with pytest.raises(RouteEvalError, match=r"no \.csv files"):
        load_route_eval_data(tmp_path, strong_model="s", weak_model="w")
