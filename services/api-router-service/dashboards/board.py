"""The few shapes every dashboard is made of: a Prometheus datasource variable, label
variables, rows of time series and stat panels whose queries name the datasource variable.

A panel is declared as a title, a unit and its queries; ids, query ref ids and the grid
are filled in here, so the dashboard modules read as lists of what is shown."""

from __future__ import annotations

from dataclasses import dataclass, field

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query's rate window: Grafana widens it to at least four scrape intervals.
RATE = "$__rate_interval"


def rate_by(by: str, metric: str, selector: str = "") -> str:
    """Per-second rate of a counter, summed by the labels ``by``."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"


def quantile(q: float, histogram: str, by: str, selector: str = "") -> str:
    """The ``q`` quantile of a histogram (its name without ``_bucket``), per ``by``."""
    buckets = f"rate({histogram}_bucket{{{selector}}}[{RATE}])"
    return f"histogram_quantile({q}, sum by (le, {by}) ({buckets}))"


def max_by(by: str, metric: str, selector: str = "") -> str:
    """A gauge's worst value across the replicas (or workers) that report it, per ``by``."""
    return f"max by ({by}) ({metric}{{{selector}}})"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""
    kind: str = "timeseries"  # or "stat": the latest value, large
    width: int = 8


def series(title: str, unit: str, *queries: Query, description: str = "", width: int = 8) -> Panel:
    return Panel(title, unit, queries, description, "timeseries", width)


def stat(title: str, unit: str, *queries: Query, description: str = "", width: int = 6) -> Panel:
    return Panel(title, unit, queries, description, "stat", width)


@dataclass(frozen=True)
class Variable:
    """A label to filter by, with its values read from ``metric``; ``All`` matches any."""

    name: str
    label: str
    metric: str


@dataclass
class Board:
    title: str
    uid: str
    description: str
    variables: tuple[Variable, ...] = ()
    rows: list[tuple[str, tuple[Panel, ...]]] = field(default_factory=list)

    def row(self, title: str, *panels: Panel) -> Board:
        self.rows.append((title, panels))
        return self

    def panels(self) -> list[Panel]:
        return [panel for _, panels in self.rows for panel in panels]

    def build(self) -> Dashboard:
        dashboard = (
            Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags(["api-router"])
            .refresh("30s")
            .time("now-3h", "now")
            .timezone("utc")
            .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        )
        for variable in self.variables:
            dashboard = dashboard.with_variable(_label_variable(variable))
        ids = iter(range(1, 1000))
        for title, panels in self.rows:
            dashboard = dashboard.with_row(Row(title).id(next(ids)))
            for panel in panels:
                dashboard = dashboard.with_panel(_panel(panel, next(ids)))
        return dashboard

    def to_json(self) -> str:
        return JSONEncoder(sort_keys=True, indent=2).encode(self.build().build()) + "\n"


def _label_variable(variable: Variable) -> QueryVariable:
    return (
        QueryVariable(variable.name)
        .label(variable.label)
        .datasource(DATASOURCE)
        .query(f"label_values({variable.metric}, {variable.name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def _panel(panel: Panel, panel_id: int) -> TimeseriesPanel | StatPanel:
    built: TimeseriesPanel | StatPanel = (
        TimeseriesPanel() if panel.kind == "timeseries" else StatPanel()
    )
    built = (
        built.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .span(panel.width)
        .height(8)
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        built = built.with_target(
            Dataquery().expr(query.expr).legend_format(query.legend or "__auto").ref_id(ref)
        )
    return built
