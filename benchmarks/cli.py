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


def format_listing(kinds: list[str]) -> str:
    """The text of ``salbench list``: per kind, each component, its description and parameters."""
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
            for p in entry.params:
                lines.append(f"      {p.describe()}")
        lines.append("")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    print(format_listing([args.kind] if args.kind else list(KINDS)))
    return 0


def _write_outputs(out_dir: Path, formats: tuple[str, ...]) -> str:
    """Leaderboards in ``formats`` from the store; returns the Markdown leaderboard."""
    from salbench.leaderboard import write_leaderboards
    from salbench.store import read_records

    records = read_records(out_dir)
    if records.empty:
        raise ValueError(f"no stored records under {out_dir}/store; run a suite first")
    return write_leaderboards(records, out_dir, formats=formats)


def _cmd_run(args: argparse.Namespace) -> int:
    from salbench.provenance import write_provenance
    from salbench.report import report
    from salbench.runner import run_suite
    from salbench.suite import load_suite

    started = time.perf_counter()
    suite = load_suite(args.suite, allow_plugins=not args.no_plugins)
    out_dir = Path(args.out) if args.out else Path("results") / suite.name
    summary = run_suite(
        suite, out_dir, jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
        fresh=args.fresh, limit=args.limit, progress=not args.quiet,
    )
    markdown = _write_outputs(out_dir, FORMATS)
    report(out_dir)
    write_provenance(out_dir, suite, summary, argv=["salbench", *args.argv], wall_s=time.perf_counter() - started)
    print(markdown)
    print(summary.describe())
    print(f"results: {out_dir}/ (leaderboard.md/.csv/.tex/.html, report.html, figures/, store/)")
    return 1 if summary.failed else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    formats = tuple(args.format or FORMATS)
    markdown = _write_outputs(Path(args.dir), formats)
    print(markdown)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from salbench.provenance import write_readme
    from salbench.report import report

    out_dir = Path(args.dir)
    _write_outputs(out_dir, FORMATS)
    print(report(out_dir))
    if (out_dir / "provenance.json").exists():
        print(write_readme(out_dir))
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
