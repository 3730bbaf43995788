"""`megarouter route-eval DATA --strong MODEL --weak MODEL [--json]`: judge the router on labelled data.

DATA is a CSV file, or a directory whose *.csv files are read in name order, with a `prompt` column and
one correctness column per model named exactly as the model (0/1 or true/false), the format of RouteLLM's
MMLU response files. The router (this package's classifier difficulty), the random baseline (its expected
value, so deterministic) and the prompt-length baseline are scored with `proxy.routing.evaluation`.

The lead's `proxy/cli.py` wires `add_route_eval_command` into its subcommands; `main` exists so the
command also runs as `python -m proxy.cli.route_eval`.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # The classifier and the evaluation load numpy and the model; `evaluate_route_data` imports them when
    # it runs, so registering this command with the `megarouter` parser stays cheap.
    from proxy.routing.evaluation import RouterEvaluation

__all__ = [
    "RouteEvalData",
    "RouteEvalError",
    "add_route_eval_command",
    "evaluate_route_data",
    "load_route_eval_data",
    "main",
    "run_route_eval",
]

PROMPT_COLUMN = "prompt"
CSV_FILE_COUNT_MAX = 10_000
EXIT_OK = 0
EXIT_BAD_DATA = 2
_TRUE_TEXTS = frozenset({"1", "true", "1.0"})
_FALSE_TEXTS = frozenset({"0", "false", "0.0"})


class RouteEvalError(ValueError):
    """The data set cannot be read as route-eval input (missing file or column, unparsable cell)."""

    code = "route_eval_invalid_data"


@dataclass(frozen=True, slots=True)
class RouteEvalData:
    prompts: tuple[str, ...]
    weak_correct: tuple[bool, ...]
    strong_correct: tuple[bool, ...]


def _parse_correct(text: str, *, location: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE_TEXTS:
        return True
    if lowered in _FALSE_TEXTS:
        return False
    raise RouteEvalError(f"{location}: expected 0/1 or true/false, got {text!r}")


def _csv_paths(data_path: Path) -> list[Path]:
    if data_path.is_dir():
        paths = sorted(data_path.glob("*.csv"))
        if not paths:
            raise RouteEvalError(f"{data_path}: directory holds no .csv files")
        if len(paths) > CSV_FILE_COUNT_MAX:
            raise RouteEvalError(f"{data_path}: more than {CSV_FILE_COUNT_MAX} .csv files")
        return paths
    if data_path.is_file():
        return [data_path]
    raise RouteEvalError(f"{data_path}: no such file or directory")


def load_route_eval_data(data_path: Path, *, strong_model: str, weak_model: str) -> RouteEvalData:
    """Read prompts and both models' correctness from a CSV file or a directory of them."""
    assert strong_model != weak_model, "strong and weak model must be different columns"
    prompts: list[str] = []
    weak_correct: list[bool] = []
    strong_correct: list[bool] = []
    for path in _csv_paths(data_path):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for column in (PROMPT_COLUMN, weak_model, strong_model):
                if column not in columns:
                    raise RouteEvalError(f"{path}: no column {column!r} (columns: {', '.join(columns)})")
            try:
                for line_number, record in enumerate(reader, start=2):
                    location = f"{path}:{line_number}"
                    prompts.append(record[PROMPT_COLUMN])
                    weak_correct.append(_parse_correct(record[weak_model], location=location))
                    strong_correct.append(_parse_correct(record[strong_model], location=location))
            except csv.Error as error:
                raise RouteEvalError(f"{path}: {error}") from error
    return RouteEvalData(tuple(prompts), tuple(weak_correct), tuple(strong_correct))


def evaluate_route_data(data: RouteEvalData) -> dict[str, RouterEvaluation]:
    """The router and both baselines on the same rows, keyed router / random / length."""
    from proxy.routing.classifier import classify_text, load_classifier_model
    from proxy.routing.evaluation import (
        EvaluationError,
        evaluate_length_baseline,
        evaluate_random_baseline,
        evaluate_router,
    )

    model = load_classifier_model()
    scores = [classify_text(prompt, model).difficulty for prompt in data.prompts]
    try:
        return {
            "router": evaluate_router(
                scores, weak_correct=data.weak_correct, strong_correct=data.strong_correct
            ),
            "random": evaluate_random_baseline(
                weak_correct=data.weak_correct, strong_correct=data.strong_correct
            ),
            "length": evaluate_length_baseline(
                data.prompts, weak_correct=data.weak_correct, strong_correct=data.strong_correct
            ),
        }
    except EvaluationError as error:
        raise RouteEvalError(str(error)) from error


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _render_table(results: dict[str, RouterEvaluation], *, strong_model: str, weak_model: str) -> str:
    first = results["router"]
    lines = [
        f"rows: {first.row_count}",
        f"weak   {weak_model}: accuracy {first.weak_accuracy:.3f}",
        f"strong {strong_model}: accuracy {first.strong_accuracy:.3f}",
        "",
        f"{'':<8} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9}   accuracy at 25% / 50% / 75% strong calls",
    ]
    for name, result in results.items():
        quarters = " / ".join(f"{_accuracy_at_share(result, share):.3f}" for share in (0.25, 0.5, 0.75))
        cpts = f"{_percent(result.cpt50):>9} {_percent(result.cpt80):>9}"
        lines.append(f"{name:<8} {result.apgr:>6.3f} {cpts}   {quarters}")
    return "\n".join(lines)


def _accuracy_at_share(result: RouterEvaluation, share: float) -> float:
    closest = min(result.curve, key=lambda point: abs(point.strong_share - share))
    return closest.accuracy


def add_route_eval_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `route-eval` on the caller's subcommands; the handler is stored as `func`."""
    parser = subparsers.add_parser(
        "route-eval",
        help="score the auto router against random and prompt-length baselines on labelled data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", type=Path, help="CSV file, or directory of CSV files")
    parser.add_argument("--strong", required=True, help="column of the strong (expensive) model")
    parser.add_argument("--weak", required=True, help="column of the weak (cheap) model")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    parser.set_defaults(func=run_route_eval)
    return parser


def run_route_eval(args: argparse.Namespace) -> int:
    """Handler of `route-eval`: 0 on success, 2 when the data cannot be evaluated (message on stderr)."""
    assert isinstance(args.data, Path)
    if args.strong == args.weak:
        print("route-eval: --strong and --weak name the same column", file=sys.stderr)
        return EXIT_BAD_DATA
    try:
        data = load_route_eval_data(args.data, strong_model=args.strong, weak_model=args.weak)
        results = evaluate_route_data(data)
    except RouteEvalError as error:
        print(f"route-eval: {error}", file=sys.stderr)
        return EXIT_BAD_DATA
    if args.json:
        print(json.dumps({name: result.to_json_dict() for name, result in results.items()}, indent=2))
    else:
        print(_render_table(results, strong_model=args.strong, weak_model=args.weak))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="megarouter")
    add_route_eval_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
