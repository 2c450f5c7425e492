"""The ``salbench`` command line.

    salbench list [KIND]                 every component with its parameters
    salbench run SUITE [--out DIR] [--jobs N] [--backend B --scheduler ADDR] [--fresh] [--limit N] [--no-plugins]
    salbench leaderboard DIR [--format F ...]
    salbench report DIR                  HTML report with figures
    salbench data fetch NAME [--data-dir DIR]   the only command that downloads
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

__all__ = ["main", "KINDS"]

# kind name on the command line -> module holding its registry
KINDS = {
    "explainers": "salbench.explainers",
    "attacks": "salbench.attacks",
    "metrics": "salbench.metrics",
    "datasets": "salbench.datasets",
    "models": "salbench.models",
    "recipes": "salbench.recipes",
    "candidate_sources": "salbench.attacks.candidates",
}
FORMATS = ("markdown", "csv", "latex", "html")


def _registry(kind: str):
    return importlib.import_module(KINDS[kind]).registry


_DIRECTION = ("category", "higher_is_better")  # a metric's, shown beside its name


def format_listing(kinds: list[str]) -> str:
    """The text of ``salbench list``: per kind, each component, its description, its declarations
    (what it applies to: :mod:`salbench.core.applicability`) and its parameters."""
    lines: list[str] = []
    for kind in kinds:
        reg = _registry(kind)
        lines.append(f"{kind}:")
        for name in reg.names():
            entry = reg.entry(name)
            extra = ""
            if "category" in entry.attrs:
                arrow = "↑ higher is better" if entry.attrs["higher_is_better"] else "↓ lower is better"
                extra = f" [{entry.attrs['category']}, {arrow}]"
            lines.append(f"  {name}{extra}: {entry.description}")
            declared = {k: v for k, v in entry.attrs.items() if k not in _DIRECTION}
            if declared:
                lines.append(f"      ({'; '.join(f'{k}: {_declared(v)}' for k, v in declared.items())})")
            for p in entry.params:
                lines.append(f"      {p.describe()}")
        lines.append("")
    return "\n".join(lines)


def _declared(value: object) -> str:
    if value is None:  # a data set's masks: known only once its files are loaded
        return "if the files have them"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list, frozenset, set)):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _cmd_list(args: argparse.Namespace) -> int:
    print(format_listing([args.kind] if args.kind else list(KINDS)))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    """Run the suite and publish its results; the run summary (with every failure's cause) comes
    last, and the exit status is 1 when a cell of the suite stands failed (or nothing is stored)."""
    from salbench.publish import Run, publish
    from salbench.runner import run_suite
    from salbench.store import stored_cell_ids
    from salbench.suite import load_suite

    started = time.perf_counter()
    suite = load_suite(args.suite, allow_plugins=not args.no_plugins, device=args.device)
    for cell, reason in suite.dropped:  # what the components' declarations rule out, before any work
        print(f"dropped {cell}: {reason}")
    out_dir = Path(args.out) if args.out else Path("results") / suite.name
    summary = run_suite(
        suite, out_dir, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
        fresh=args.fresh, limit=args.limit, progress=not args.quiet,
    )
    if not stored_cell_ids(out_dir):  # every cell failed (or none ran): nothing to publish, only the causes
        print(summary.describe())
        print(f"nothing to publish: no cell is stored under {out_dir}/store")
        return 1
    published = publish(out_dir, Run(suite, summary, argv=["salbench", *args.argv], started=started))
    print(published.markdown)
    print(summary.describe())
    print(f"results: {out_dir}/ (leaderboard.md/.csv/.tex/.html, report.html, figures/, store/)")
    return 1 if summary.failures else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from salbench.publish import write_leaderboards
    from salbench.results import load_results

    out_dir = Path(args.dir)
    print(write_leaderboards(load_results(out_dir), out_dir, tuple(args.format or FORMATS)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from salbench.publish import publish

    published = publish(Path(args.dir))
    print(published.report)
    if published.readme is not None:
        print(published.readme)
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from salbench.datasets.fetch import fetch

    print(fetch(args.name, args.data_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salbench", description="Benchmark the trustworthiness of saliency maps.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered components and their parameters")
    p.add_argument("kind", nargs="?", choices=sorted(KINDS))
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", help="run a suite (a name in benchmarks/suites or a TOML path)")
    p.add_argument("suite")
    p.add_argument("--out", help="output directory (default: results/<suite name>)")
    p.add_argument("--jobs", type=int, default=1, help="parallel workers (default 1)")
    p.add_argument("--backend", default="loky", choices=["loky", "sequential", "dask", "ray"])
    p.add_argument("--scheduler", help="scheduler address for --backend dask (e.g. tcp://host:8786)")
    p.add_argument("--fresh", action="store_true", help="delete stored records first and recompute everything")
    p.add_argument(
        "--device", help="cpu, cuda, cuda:<i> or auto (a GPU where torch sees one); default: the suite's device, else cpu"
    )
    p.add_argument("--limit", type=int, help="run at most N pending cells now (the rest stay pending)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-plugins", action="store_true", help="refuse a suite that names plugins (files or modules it would import)"
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("leaderboard", help="write leaderboards from a results directory")
    p.add_argument("dir")
    p.add_argument("--format", action="append", choices=FORMATS, help="repeatable; default: all")
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser("report", help="write report.html with leaderboard and figures")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("data", help="data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    f = data_sub.add_parser("fetch", help="download a data set (the only command that downloads)")
    f.add_argument("name")
    f.add_argument("--data-dir", default=".", help="directory to write into (default: current directory)")
    f.set_defaults(func=_cmd_data_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as err:  # user errors: one clear line
        print(f"salbench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
