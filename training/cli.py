"""``lnrisk``: one subcommand per user job, thin over plain functions.

Research screening support for NCT05585671 — not a diagnostic device.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


class _LnriskApp(typer.Typer):
    """The CLI app; a tracking server's refusal or absence ends in a clear error."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            from training.registry.tracking import server_error_message

            message = server_error_message(exc)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(3)


app = _LnriskApp(
    help="2-year lupus nephritis risk: synthetic cohorts, training, model hand-off. "
    "Research screening support, not a diagnostic device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

DateFormat = Annotated[
    str | None,
    typer.Option(
        help="strftime format of the file's dates, e.g. %d/%m/%Y (default: ISO 8601 "
        "YYYY-MM-DD only; dates are never guessed)."
    ),
]
Readings = Annotated[
    Path | None,
    typer.Option(
        help="Overlay YAML pinning readings of ambiguous criteria, e.g. "
        "'readings: {b-cell-history: washout}'."
    ),
]


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.command()
def cohort(
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    n: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 20_000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    incidence: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="Target 2-year LN incidence.")
    ] = 0.10,
    shift: Annotated[
        str,
        typer.Option(help="Population: 'none' or an external-validation shift."),
    ] = "none",
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="'table' (by --out's suffix: .parquet or .csv) or 'fhir-ndjson' "
            "(--out is a folder: a FHIR Bulk Data export, one ndjson per type).",
        ),
    ] = "table",
) -> None:
    """Generate a synthetic cohort (the data-generating process of clinical.md §8)."""
    from synthetic import SHIFTS, generate_cohort

    if shift not in SHIFTS:
        _fail(f"unknown shift {shift!r}; choose one of {sorted(SHIFTS)}")
    if output_format not in {"table", "fhir-ndjson"}:
        _fail(f"--format {output_format!r}: choose table or fhir-ndjson")
    if output_format == "table" and out.suffix.lower() not in {".parquet", ".csv"}:
        _fail("--out must end in .parquet or .csv")
    df = generate_cohort(n=n, seed=seed, incidence=incidence, shift=shift)
    if output_format == "fhir-ndjson":
        _write_fhir(df, out, seed)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)
    events = int(df["ln_within_2y"].sum())
    console.print(
        f"wrote {len(df):,} patients to {out} ({events:,} events, "
        f"{events / len(df):.1%}; mean true risk {df['true_risk_2y'].mean():.1%})"
    )


def _write_fhir(df, out: Path, seed: int) -> None:  # df: DataFrame
    from datetime import date

    from synthetic.fhir import write_bulk

    day = date.fromisoformat(df.attrs["dgp_reference_date"])
    counts = write_bulk(df, out, day, seed=seed)
    listed = ", ".join(f"{n:,} {t}" for t, n in counts.items())
    console.print(
        f"wrote {len(df):,} patients to {out} as FHIR Bulk Data ({listed}); "
        f"screen them with --screening-date {day}"
    )


@app.command()
def train(
    cohort: Annotated[
        Path | None,
        typer.Option(help="Cohort file (.parquet/.csv). Default: synthetic cohort."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML training profile (default profile).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Override the config's seed.")
    ] = None,
    if_no_champion: Annotated[
        bool,
        typer.Option(
            "--if-no-champion", help="Do nothing when a champion is already registered."
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    date_format: DateFormat = None,
) -> None:
    """Fit, evaluate and log the calibrated XGBoost model; register it in MLflow.

    The new version must pass the registration gate (calibration, AUROC over the
    published baseline); the first one becomes @champion, later ones @challenger.
    """
    from data_schema import CohortValidationError
    from training.data import read_cohort
    from training.pipeline import train as run_training
    from training.registry import tracking
    from training.registry.gate import RegistrationRefusedError

    cfg = _config(config, seed=seed)
    uri = tracking.configure()
    if if_no_champion:
        current = tracking.champion_version(
            cfg.tracking.registered_model, cfg.tracking.champion_alias
        )
        if current is not None:
            console.print(
                f"champion exists: {cfg.tracking.registered_model} version "
                f"{current.version} ({uri}); not training"
            )
            return
    try:
        if cohort is None:
            data, source = _synthetic_cohort(cfg)
        else:
            data, source = read_cohort(cohort, date_format), str(cohort.resolve())
        result = run_training(
            cfg, data, source, show_progress=progress, date_format=date_format
        )
    except (CohortValidationError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    except RegistrationRefusedError as refusal:
        _refused(refusal)
    _metrics_table(f"held-out test set — run {result.run_id[:8]}", result.metrics)
    console.print(
        f"registered {cfg.tracking.registered_model} version {result.model_version} "
        f"as @{result.alias} in {result.seconds:.1f} s — store: {uri}"
    )
    if result.alias != cfg.tracking.champion_alias:
        console.print("the champion is unchanged: `lnrisk promote` applies the gate")
    print(json.dumps({"run_id": result.run_id, "model_version": result.model_version}))


def _config(path: Path | None, **overrides: object):  # -> TrainingConfig
    """The training profile, or a clear error naming every invalid setting."""
    from pydantic import ValidationError

    from eligibility import CriteriaError
    from training.config import load_config

    try:
        cfg = load_config(path, **overrides)
        cfg.trial_criteria  # noqa: B018 - the gate's file must load too
    except ValidationError as exc:
        _fail(f"invalid training config:\n{exc}")
    except (CriteriaError, OSError) as exc:
        _fail(f"the config's criteria file cannot be read: {exc}")
    return cfg


def _synthetic_cohort(cfg):  # -> tuple[pd.DataFrame, str]
    """The config's synthetic cohort and its source: the CLI's generate step."""
    from synthetic import cohort_source, generate_cohort

    c = cfg.cohort
    return (
        generate_cohort(n=c.n, seed=c.seed, incidence=c.incidence, shift=c.shift),
        cohort_source(c.n, c.seed, c.incidence, c.shift),
    )


def _readers():  # -> dict[str, SourceReader]
    """Readers of recorded data sources other than files (the synthetic generator)."""
    from synthetic import cohort_from_source
    from synthetic.generator import SOURCE_SCHEME

    return {SOURCE_SCHEME: cohort_from_source}


def _refused(refusal) -> None:
    """Print the registration gate's checks and exit 1."""
    console.print(
        f"[red]not registered[/red]: the registration gate refused the model "
        f"(run {refusal.run_id[:8]}, evidence logged)"
    )
    for check in refusal.checks:
        console.print(f"  {check}", markup=False)
    raise typer.Exit(1)


def _metrics_table(
    title: str, metrics: dict[str, float], before: dict[str, float] | None = None
) -> None:
    """Model beside the true risk (oracle) when known, or before/after.

    The rows are the ``cli`` view of :data:`training.evaluation.metrics.METRICS`.
    """
    # Imported here, like every heavy module of this CLI: metrics loads numpy,
    # pandas and scikit-learn, and `lnrisk --help` should not wait for them.
    from training.evaluation.metrics import view_keys

    table = Table(title=title)
    table.add_column("metric")
    if before is not None:
        table.add_column("before", justify="right")
    table.add_column("model" if before is None else "after", justify="right")
    has_oracle = metrics.get("oracle_auroc") == metrics.get("oracle_auroc")  # not NaN
    if has_oracle and before is None:
        table.add_column("true risk (oracle)", justify="right")
    for key in view_keys("cli"):
        row = [key]
        if before is not None:
            row.append(f"{before[key]:.4g}")
        row.append(f"{metrics[key]:.4g}")
        if has_oracle and before is None:
            row.append(f"{metrics['oracle_' + key]:.4g}")
        table.add_row(*row)
    console.print(table)


@app.command()
def evaluate(
    cohort: Annotated[Path, typer.Option(help="Cohort file with ln_within_2y.")],
    model: Annotated[
        str, typer.Option(help="Registered alias or version number.")
    ] = "champion",
    config: Annotated[Path | None, typer.Option(help="YAML training profile.")] = None,
    date_format: DateFormat = None,
) -> None:
    """Externally validate a registered model on a cohort; logged as its own run."""
    from data_schema import CohortValidationError
    from training.registry.validation import evaluate_registered

    cfg = _config(config)
    try:
        result = evaluate_registered(cfg, model, cohort, date_format)
    except (CohortValidationError, FileNotFoundError, ValueError, LookupError) as exc:
        _fail(str(exc))
    _metrics_table(
        f"{cfg.tracking.registered_model} v{result.model_version} on {cohort.name}",
        result.metrics,
    )
    console.print(f"logged as run {result.run_id}")


@app.command()
def recalibrate(
    cohort: Annotated[Path, typer.Option(help="Local sample with ln_within_2y.")],
    model: Annotated[
        str, typer.Option(help="Registered alias or version to adapt.")
    ] = "champion",
    method: Annotated[
        str, typer.Option(help="intercept | logistic (intercept+slope) | isotonic")
    ] = "logistic",
    fit_fraction: Annotated[
        float, typer.Option(min=0.1, max=0.9, help="Share of the sample fitted on.")
    ] = 0.5,
    config: Annotated[Path | None, typer.Option(help="YAML training profile.")] = None,
) -> None:
    """Refit the calibration on a local sample; register it as a new version."""
    from data_schema import CohortValidationError
    from training.registry.gate import RegistrationRefusedError
    from training.registry.validation import recalibrate_registered

    if method not in ("intercept", "logistic", "isotonic"):
        _fail("--method must be intercept, logistic or isotonic")
    cfg = _config(config)
    try:
        result = recalibrate_registered(
            cfg,
            model,
            cohort,
            method,
            fit_fraction=fit_fraction,  # type: ignore[arg-type]
        )
    except (CohortValidationError, FileNotFoundError, ValueError, LookupError) as exc:
        _fail(str(exc))
    except RegistrationRefusedError as refusal:
        _refused(refusal)
    _metrics_table(
        f"recalibrated v{result.model_version} ({method}), on the held-back part",
        result.metrics,
        before=result.before,
    )
    console.print(
        f"registered version {result.new_version} as @{result.alias} "
        f"(run {result.run_id[:8]})"
    )


@app.command()
def promote(
    cohort: Annotated[
        Path | None,
        typer.Option(
            help="Evaluate on this file instead of the challenger's test set."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and log, but move no alias.")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="YAML training profile.")] = None,
    date_format: DateFormat = None,
) -> None:
    """Move @champion to @challenger only if the challenger passes the gate."""
    from training.registry.promote import promote as run_promotion

    cfg = _config(config)
    try:
        decision = run_promotion(
            cfg,
            cohort_path=cohort,
            dry_run=dry_run,
            readers=_readers(),
            date_format=date_format,
        )
    except (LookupError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    console.print(
        f"challenger v{decision.challenger_version} vs champion "
        f"v{decision.champion_version} on {decision.n_patients:,} patients "
        f"({decision.evaluated_on})"
    )
    for check in decision.checks:
        console.print(f"  {check}", markup=False)
    verdict = "PROMOTED" if decision.promote else "REFUSED (champion unchanged)"
    if dry_run:
        verdict = "dry run: " + (
            "would promote"
            if all(c.passed for c in decision.checks)
            else "would refuse"
        )
    console.print(f"{verdict} — decision logged as run {decision.run_id[:8]}")
    if not decision.promote and not dry_run:
        raise typer.Exit(1)


@app.command()
def compare(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Run ids (or unique prefixes of 6+ characters), in order A B.",
            show_default=False,
        ),
    ] = None,
    champion: Annotated[
        bool, typer.Option("--champion", help="Take the @champion version's run.")
    ] = False,
    challenger: Annotated[
        bool,
        typer.Option("--challenger", help="Take the @challenger version's run."),
    ] = False,
    only_diff: Annotated[
        bool, typer.Option("--only-diff", help="Show only the rows that differ.")
    ] = False,
    section: Annotated[
        list[str] | None,
        typer.Option(help="tags, params or metrics (repeat; default: all three)."),
    ] = None,
    ui_url: Annotated[
        str, typer.Option(help="Base URL of the MLflow UI, for the compare link.")
    ] = "http://127.0.0.1:5000",
    config: Annotated[
        Path | None, typer.Option(help="YAML training profile (MLflow names).")
    ] = None,
) -> None:
    """Print two runs side by side (tags, params, metrics), differences marked.

    `lnrisk compare RUN_A RUN_B`, or `lnrisk compare --champion --challenger`
    (the runs that logged the versions behind the two aliases). Rows that differ
    start with `*`; Δ is B − A.
    """
    from training.registry import tracking
    from training.registry.compare import (
        SECTIONS,
        compare_page_url,
        compare_table,
        resolve_run,
        run_artifact_url,
        run_of_alias,
        snapshot,
    )

    cfg = _config(config)
    names = cfg.tracking
    tracking.configure()
    sides: list[tuple[str, str]] = []  # (how it was named, run id)
    try:
        for wanted, alias in ((champion, names.champion_alias),
                              (challenger, names.challenger_alias)):  # fmt: skip
            if wanted:
                run_id = run_of_alias(names.registered_model, alias)
                sides.append((f"@{alias}", run_id))
        for ref in runs or []:
            sides.append((ref, resolve_run(ref, names.experiment)))
    except LookupError as exc:
        _fail(str(exc))
    if len(sides) != 2:
        _fail(
            f"compare needs exactly two runs, got {len(sides)}: give RUN_A RUN_B, "
            "or --champion --challenger (or one flag and one run)"
        )
    if section and set(section) - set(SECTIONS):
        _fail(f"--section must be one of {', '.join(SECTIONS)}")
    (name_a, id_a), (name_b, id_b) = sides
    a, b = snapshot(id_a), snapshot(id_b)
    table = compare_table(
        a, b, sections=section or SECTIONS, only_differences=only_diff
    )
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(f"A = {name_a}: {a.label}")
    out.print(f"B = {name_b}: {b.label}")
    _print_comparison(out, table, section or SECTIONS)
    url = compare_page_url(
        ui_url, [a.run_id, b.run_id], [a.experiment_id, b.experiment_id]
    )
    out.print(f"MLflow UI (make ui): {url}", soft_wrap=True)
    for side, run in (("A", a), ("B", b)):
        if run.tags.get("run_kind") != "promotion":  # promotions log no report
            report = run_artifact_url(ui_url, run.experiment_id, run.run_id)
            out.print(f"evaluation report of {side}: {report}", soft_wrap=True)


def _print_comparison(out: Console, table, sections) -> None:  # table: DataFrame
    """One grid per section: key, A, B, Δ; rows that differ start with ``*``."""
    from training.registry.compare import format_delta, format_value

    for part in sections:
        rows = table[table["section"] == part]
        if rows.empty:
            continue
        grid = Table(title=part, title_justify="left")
        grid.add_column("")
        grid.add_column("key")
        grid.add_column("A", overflow="fold")
        grid.add_column("B", overflow="fold")
        grid.add_column("Δ (B − A)", justify="right")
        for row in rows.itertuples():
            grid.add_row(
                "*" if row.differs else "",
                row.key,
                format_value(row.a),
                format_value(row.b),
                format_delta(row.delta),
                style="bold" if row.differs else None,
            )
        out.print(grid)
    out.print(
        f"* = differs ({int(table['differs'].sum())} of {len(table)} rows); "
        "Δ = B − A for numbers"
    )


@app.command()
def screen(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            help="Patients (.parquet/.csv), or a folder of FHIR Bulk Data ndjson.",
        ),
    ],
    screening_date: Annotated[
        str, typer.Option(help="Day 0 for ages and wash-outs, YYYY-MM-DD.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for screening.csv, attrition.csv.")],
    model: Annotated[
        str, typer.Option(help="Registered alias or version giving the risk.")
    ] = "champion",
    criteria: Annotated[
        Path | None, typer.Option(help="Criteria YAML (default: NCT05585671).")
    ] = None,
    readings: Readings = None,
    date_format: DateFormat = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Score risk with a registered model, apply the trial's rules, write results."""
    from datetime import date

    from rich.progress import Progress

    from data_schema import CohortValidationError, validate_cohort
    from eligibility import DEFAULT_CRITERIA_PATH, CriteriaError, load_criteria
    from eligibility.screen import screen_population, write_results
    from training.data import read_cohort
    from training.registry import tracking

    try:
        day = date.fromisoformat(screening_date)
    except ValueError:
        _fail(f"--screening-date {screening_date!r} is not YYYY-MM-DD")
    problems = None
    try:
        rules = load_criteria(criteria or DEFAULT_CRITERIA_PATH, readings)
        if input_path.is_dir():
            table, problems = _read_fhir(input_path, day, progress)
        else:
            table = read_cohort(input_path, date_format)
        cohort = validate_cohort(table)
    except (CriteriaError, CohortValidationError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    tracking.configure()
    cfg = _config(None)
    try:
        risk_model, version = tracking.load_registered(
            cfg.tracking.registered_model, model
        )
    except LookupError as exc:
        _fail(str(exc))
    with Progress(disable=not progress, console=console) as bar:
        task = bar.add_task("screening", total=len(cohort))
        result = screen_population(
            risk_model,
            cohort,
            day,
            rules,
            progress=lambda k: bar.update(task, advance=k),
        )
    paths = write_results(result, out)
    if problems is not None:
        paths.append(out / "fhir_problems.csv")
        problems.to_csv(paths[-1], index=False)
    counts = result.per_patient["status"].value_counts().to_dict()
    console.print(
        f"{len(cohort):,} patients screened with {cfg.tracking.registered_model} "
        f"v{version.version} and {rules.criteria_version}: {counts}"
    )
    console.print(f"wrote {', '.join(str(p) for p in paths)}")


def _read_fhir(folder: Path, day, progress: bool):  # -> (DataFrame, DataFrame)
    """A Bulk Data export as a cohort table, with a progress bar over its bytes."""
    from rich.progress import Progress

    from data_schema.fhir.bulk import bulk_files, read_bulk

    total = sum(path.stat().st_size for _, path in bulk_files(folder))
    with Progress(disable=not progress, console=console) as bar:
        task = bar.add_task("reading FHIR", total=total)
        reading = read_bulk(folder, day, progress=lambda k: bar.update(task, advance=k))
    counts = ", ".join(f"{n:,} {t}" for t, n in reading.resources.items())
    console.print(
        f"read {len(reading.cohort):,} patients from {counts}; "
        f"{len(reading.problems):,} resources or values not used "
        "(fhir_problems.csv says which and why)"
    )
    return reading.cohort, reading.problems


@app.command("criteria")
def criteria_sheet(
    criteria: Annotated[
        Path | None, typer.Option(help="Criteria YAML (default: NCT05585671).")
    ] = None,
    readings: Readings = None,
    html: Annotated[
        Path | None,
        typer.Option(help="Also write the criteria sheet as an HTML page here."),
    ] = None,
) -> None:
    """List the criteria, the readings of ambiguous sentences (alternatives, default,
    what is pinned) and the version string; optionally render the criteria sheet."""
    from eligibility import DEFAULT_CRITERIA_PATH, CriteriaError, load_criteria
    from eligibility.sheet import render_sheet

    try:
        rules = load_criteria(criteria or DEFAULT_CRITERIA_PATH, readings)
    except CriteriaError as exc:
        _fail(str(exc))
    out = Console()
    out.print(
        f"[bold]{rules.criteria_version}[/bold]  ({len(rules.criteria)} criteria)"
    )
    table = Table(title="readings")
    for column in ("reading", "alternatives", "default", "applied"):
        table.add_column(column, overflow="fold")
    for r in rules.readings:
        pinned = r.id in rules.pinned
        applied = rules.applied(r.id) + (" (pinned)" if pinned else " (default)")
        table.add_row(r.id, ", ".join(r.alternative_ids), r.default, applied)
    out.print(table)
    listing = Table(title="criteria")
    for column in ("id", "kind", "reading applied"):
        listing.add_column(column, overflow="fold")
    for c in rules.criteria:
        listing.add_row(c.id, c.kind, c.applied or "")
    out.print(listing)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_sheet(rules), encoding="utf-8")
        console.print(f"wrote {html}")


@app.command("import-model")
def import_model(
    name: Annotated[
        str, typer.Option(help="Registered MLflow model name.")
    ] = "ln-risk",
    alias: Annotated[str, typer.Option(help="Alias to import.")] = "champion",
    force: Annotated[
        bool, typer.Option(help="Import again even if this version was imported.")
    ] = False,
) -> None:
    """Copy models:/NAME@ALIAS into the BentoML model store for serving."""
    from serving.import_model import ModelImportError, import_registered_model
    from training.registry import tracking

    tracking.configure()
    try:
        imported = import_registered_model(name, alias, force=force)
    except ModelImportError as exc:
        _fail(str(exc))
    verb = "already imported as" if imported.reused else "imported as"
    console.print(
        f"{name} version {imported.mlflow_version} (run {imported.run_id[:8]}, data "
        f"{imported.data_digest}) {verb} BentoML model {imported.tag}"
    )


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
