"""The synthetic SLE cohort: a data-generating process with a known 2-year LN risk.

It stands in for real data, which this project does not have: the generator follows
the published epidemiology (clinical.md §8), knows each patient's true risk (the
*oracle*), and its literature targets are data (``targets.yaml``) measured by
:mod:`synthetic.checks`.

Nothing a site runs on real data imports this package: only the CLI's "generate a
cohort" step, the notebooks, the benchmarks and the tests do. The true risk measures
a model; it never fits anything that ships.
"""

from synthetic.generator import (
    SHIFTS,
    PopulationShift,
    cohort_from_source,
    cohort_source,
    generate_cohort,
)

__all__ = [
    "SHIFTS",
    "PopulationShift",
    "cohort_from_source",
    "cohort_source",
    "generate_cohort",
]
