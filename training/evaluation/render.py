"""The one renderer of the evaluation documents: Jinja2 templates and number formats.

The HTML evaluation report (:mod:`.html_report`) and the model card in Markdown and
HTML (:mod:`.model_card`) are the Jinja2 templates of ``templates/``. Their content
is written against a few block macros (headings, paragraphs, lists, tables,
figures) that exist in two dialects, ``_html.j2`` and ``_markdown.j2``; each
environment imports its own as ``dialect``, so the model card is written once and
its Markdown and HTML cannot disagree.

Escaping: the HTML environment autoescapes every value; the Markdown dialect passes
every value through :func:`md_text` or :func:`md_cell`, so no raw HTML tag, line
break or table pipe gets through. Templates only format: every number they show is
in the report of :func:`.report.build_report`.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from training.evaluation.metrics import METRICS, metric_view

NONE_TEXT = "—"
"""How a missing or undefined number is shown."""

_TAG_OPENER = re.compile(r"<(?=[A-Za-z/!?])")
_BLANK_LINES = re.compile(r"\n{3,}")


# ── numbers ──────────────────────────────────────────────────────────────────


def _missing(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, jinja2.Undefined)
        or (isinstance(value, float) and not math.isfinite(value))
    )


def fmt_num(value: Any) -> str:
    """A number to 3 significant digits; counts with thousands separators.

    None, NaN and ±inf are "—"; strings (e.g. a suppressed "<10") pass through.
    """
    if _missing(value):
        return NONE_TEXT
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    x = float(value)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) < 1e-12:
        return "0"  # floating-point residue of a difference, e.g. a net benefit
    return f"{x:.3g}"


def fmt_pct(value: Any) -> str:
    """A proportion as a percentage with one decimal ("12.3%"); None is "—"."""
    if _missing(value):
        return NONE_TEXT
    if isinstance(value, str):
        return value
    return f"{100.0 * float(value):.1f}%"


def fmt_count(value: Any, total: Any = None) -> str:
    """A count, with its share of ``total`` when given ("1,234 (5.6%)")."""
    if _missing(value):
        return NONE_TEXT
    if isinstance(value, str):
        return value
    text = f"{int(value):,}"
    if not _missing(total) and not isinstance(total, str) and float(total) > 0:
        text += f" ({fmt_pct(float(value) / float(total))})"
    return text


_FORMATS = {"num": fmt_num, "pct": fmt_pct, "count": fmt_count}


def fmt_value(value: Any, fmt: str) -> str:
    """A value in one of the metric formats (``num``, ``pct``, ``count``)."""
    return _FORMATS[fmt](value)


def fmt_gate(threshold: float) -> str:
    """The gate as a reader writes it: 0.5, not 0.500."""
    return f"{float(threshold):g}"


def with_gate(text: str, threshold: float) -> str:
    """A label with its ``{gate}`` placeholder filled ("n > {gate:g}" → "n > 0.5")."""
    return text.format(gate=threshold)


def metric_cells(
    specs: tuple[Any, ...], values: Any, hidden: str | None = None
) -> list[str]:
    """One formatted cell per metric spec of a row (a subgroup row: by row key).

    Args:
        specs: :class:`.metrics.MetricSpec` rows of a view.
        values: the row, a mapping with each spec's ``row_key``.
        hidden: text shown instead of every value (a suppressed row), or None.
    """
    if hidden is not None:
        return [hidden for _ in specs]
    return [fmt_value(values.get(spec.row_key), spec.fmt) for spec in specs]


# ── text ─────────────────────────────────────────────────────────────────────


def md_text(text: Any) -> str:
    """Markdown-safe text: no raw HTML tags, no line breaks.

    A "<" that could open a tag, comment or processing instruction becomes
    "&lt;", so "<script>" cannot run in a renderer that passes HTML through;
    "<10" stays readable.
    """
    return _TAG_OPENER.sub("&lt;", " ".join(str(text).split()))


def md_cell(text: Any) -> str:
    """:func:`md_text` for a table cell: a pipe is escaped, not a column break."""
    return md_text(text).replace("|", "\\|")


def squash(text: Any) -> Any:
    """Runs of white space as one space; HTML-safe text stays safe."""
    joined = " ".join(str(text).split())
    return Markup(joined) if isinstance(text, Markup) else joined


# ── figures ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Figure:
    """A plot as both documents show it.

    Attributes:
        name: plot name (file stem: roc, calibration, ...).
        caption: the caption under the plot.
        path: the PNG file.
        link: where the Markdown card links the file (prefix + file name).
        uri: the PNG as a base64 ``data:`` URI; None when the file is missing.
    """

    name: str
    caption: str
    path: Path
    link: str
    uri: str | None


def figure(name: str, path: Path, caption: str, link_prefix: str = "") -> Figure:
    """A :class:`Figure` of a PNG file, its bytes embedded when the file exists."""
    path = Path(path)
    uri = None
    if path.is_file():
        uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode(
            "ascii"
        )
    return Figure(name, caption, path, f"{link_prefix}{path.name}", uri)


# ── environments ─────────────────────────────────────────────────────────────


def _close_to(value: Any, other: Any) -> bool:
    return math.isclose(float(value), float(other))


def _finite(value: Any) -> bool:
    return not _missing(value) and not isinstance(value, str)


@functools.cache
def environment(markdown: bool) -> jinja2.Environment:
    """The Jinja2 environment of one output format (cached).

    Args:
        markdown: True for Markdown (no autoescape; the dialect escapes), False
            for HTML (every value autoescaped).
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("training.evaluation", "templates"),
        autoescape=not markdown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=fmt_num,
        pct=fmt_pct,
        count=fmt_count,
        value=fmt_value,
        gate=fmt_gate,
        md=md_text,
        md_cell=md_cell,
        squash=squash,
        metric_cells=metric_cells,
        with_gate=with_gate,
    )
    env.tests.update(close_to=_close_to, finite=_finite)
    env.globals.update(
        dialect="_markdown.j2" if markdown else "_html.j2",
        metric={spec.key: spec for spec in METRICS},
        metric_view=metric_view,
        none_text=NONE_TEXT,
    )
    return env


def render_html(template: str, /, **context: Any) -> str:
    """Render an HTML template (values autoescaped)."""
    return environment(markdown=False).get_template(template).render(**context)


def render_markdown(template: str, /, **context: Any) -> str:
    """Render a Markdown template: blocks one blank line apart, one final newline."""
    text = environment(markdown=True).get_template(template).render(**context)
    return _BLANK_LINES.sub("\n\n", text).strip("\n") + "\n"


__all__ = [
    "NONE_TEXT",
    "Figure",
    "environment",
    "figure",
    "fmt_count",
    "fmt_gate",
    "fmt_num",
    "fmt_pct",
    "fmt_value",
    "md_cell",
    "md_text",
    "metric_cells",
    "render_html",
    "render_markdown",
    "squash",
    "with_gate",
]
