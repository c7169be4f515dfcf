"""`povwatch policy simulate`: threshold calibration for localities that set their own standard.

"结合实际合理确定监测标准" (000 §五(七)), "由各统筹地区…分类明确…监测标准" (002 §四(九)): a
locality choosing its factor wants to see, for a range of factors, how many persons and
households each would warn, per county and warning type, and how many of them are already
known to the departments. The whole sweep is one set-based pass: persons × factors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError
from pipeline.labels import WARNING_TYPES, division_name, with_admdvs_name
from pipeline.money import fen_text
from pipeline.months import Month
from pipeline.policy.load import PolicySet, income_region, threshold_fen
from pipeline.store.warehouse import connect
from pipeline.warnings.burden import burden_as_of, loaded_rows
from pipeline.warnings.rules import (
    identities_by_month,
    in_population,
    income_in_force,
    measured_burden,
)

# When a document leaves the population to the locality too, the usual national split.
DEFAULT_POPULATION = {
    "relapse": ["dibao_edge", "monitor_unstable", "monitor_edge", "monitor_sudden"],
    "impoverish": "ordinary",
}


# The factor a sweep is centred on when the document leaves it to the locality: the common
# national practice (relapse ~50 %, impoverish ~100 % of the prior-year income).
LOCAL_CENTRE = {"relapse": Decimal("0.5"), "impoverish": Decimal("1")}


def default_factors(warning_type: str, in_force: Decimal | None) -> list[Decimal]:
    """The sweep for a rule when ``--factor`` is not given: 50 % to 150 % of the factor in
    force in 11 steps (Jining's impoverishment 1.5 → 0.75, 0.90, …, 2.25), or of the usual
    factor when the locality has not set one yet."""
    centre = in_force if in_force is not None else LOCAL_CENTRE[warning_type]
    return [(centre * k / 10).normalize() for k in range(5, 16)]


@dataclass(frozen=True)
class SimulationResult:
    table: pl.DataFrame  # factor, admdvs, county, warning_type, threshold, persons, households…
    csv: Path
    png: Path
    svg: Path


def parse_factors(text: str) -> list[Decimal]:
    """``0.3:0.8:0.05`` → 0.30, 0.35, …, 0.80 (both ends included); or ``0.4,0.5``."""
    try:
        if ":" in text:
            start, stop, step = (Decimal(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            out, f = [], start
            while f <= stop:
                out.append(f)
                f += step
        else:
            out = [Decimal(x) for x in text.split(",")]
    except (InvalidOperation, ValueError):
        raise PovwatchError(
            f"--factor {text!r}: expected START:STOP:STEP (e.g. 0.3:0.8:0.05) or a list"
        ) from None
    if not out or any(f <= 0 or f > 10 for f in out) or len(out) > 200:
        raise PovwatchError(f"--factor {text!r}: factors must lie in (0, 10], at most 200")
    return out


def simulate(
    db: Path,
    policies: PolicySet,
    month: Month,
    region: str,
    factors: list[Decimal] | None,
    income: tuple[str, str] | None,
    out_dir: Path,
) -> SimulationResult:
    """Persons and households warned per factor, county and warning type; ``factors`` None:
    each rule's own sweep around its factor in force (``default_factors``)."""
    con = connect(db, read_only=True)
    try:
        rows = loaded_rows(con, month)
        registry = con.execute(
            "select psn_no, hh_id, insuplc_admdvs as admdvs, insutype from ref_persons "
            "where starts_with(insuplc_admdvs, ?)",
            [region],
        ).pl()
        identities = con.sql(
            "select psn_no, identity, begin_date, end_date from ref_identities"
        ).pl()
        incomes = con.sql(
            "select admdvs, year, scope, amount_fen, published_on from ref_income"
        ).pl()
        known = [
            r[0]
            for r in con.execute(
                "select distinct left(insuplc_admdvs, 4) from ref_persons order by 1 limit 12"
            ).fetchall()
        ]
    finally:
        con.close()
    if registry.height == 0:
        raise PovwatchError(
            f"--region {region}: no insured person of the registry lives there "
            f"(the registry's regions: {', '.join(known) or 'none'})"
        )

    # One row per (county, warning type): the rule's population, measure and income.
    rule_rows = []
    for admdvs in sorted(registry["admdvs"].unique()):
        loaded = policies.for_region(admdvs)
        version = loaded.policy.version_at(month.last_day) if loaded else None
        if version is None:
            raise PovwatchError(f"region {admdvs}: no policy in force on {month.last_day}")
        for rule in version.monitoring:
            ref = rule.threshold.income
            if ref == "local" and income is None:
                raise PovwatchError(
                    f"region {admdvs}: policy {loaded.policy.policy_id} leaves the income "
                    "reference to the locality; pass --income LEVEL:SCOPE (e.g. province:rural)"
                )
            level, scope = income if income else (ref.level, ref.scope)
            ident = rule.population.identities
            if ident == "local":
                ident = DEFAULT_POPULATION[rule.warning_type]
            src = income_region(admdvs, level)
            found = income_in_force(incomes, src, scope, month)
            if found is None:
                raise PovwatchError(
                    f"reference income missing: no {scope} income of {src} in force in {month}"
                )
            in_force = rule.threshold.factor if rule.threshold.factor != "local" else None
            sweep = factors if factors is not None else default_factors(rule.warning_type, in_force)
            for f in sweep:
                rule_rows.append(
                    {
                        "admdvs": admdvs,
                        "warning_type": rule.warning_type,
                        "factor": float(f),
                        "factor_text": f"{f.normalize():f}",
                        "threshold_fen": threshold_fen(f, found["amount_fen"]),
                        "rule_ordinary": ident == "ordinary",
                        "rule_identities": [] if ident == "ordinary" else list(ident),
                        "rule_insutypes": rule.population.insutypes,
                        "burden_measure": rule.burden_measure,
                        "in_force": in_force is not None and f == in_force,
                    }
                )
    rules = pl.DataFrame(
        rule_rows,
        schema={
            "admdvs": pl.String,
            "warning_type": pl.String,
            "factor": pl.Float64,
            "factor_text": pl.String,
            "threshold_fen": pl.Int64,
            "rule_ordinary": pl.Boolean,
            "rule_identities": pl.List(pl.String),
            "rule_insutypes": pl.List(pl.String),
            "burden_measure": pl.String,
            "in_force": pl.Boolean,
        },
    )
    idents = identities_by_month(identities, [month]).drop("m")
    known_households = (
        registry.join(idents, on="psn_no", how="inner")
        .select("hh_id")
        .unique()
        .with_columns(pl.lit(True).alias("household_known"))
    )
    warned = (
        burden_as_of(rows, month)
        .lazy()
        .join(registry.lazy(), on="psn_no", how="inner")
        .join(idents.lazy(), on="psn_no", how="left")
        .with_columns(pl.col("identities").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .join(rules.lazy(), on="admdvs", how="inner")  # persons × factors, in one pass
        .filter(in_population() & (measured_burden() > pl.col("threshold_fen")))
        .join(known_households.lazy(), on="hh_id", how="left")
        .group_by("factor", "factor_text", "admdvs", "warning_type", "threshold_fen")
        .agg(
            pl.len().alias("persons"),
            pl.col("hh_id").n_unique().alias("households"),
            pl.col("household_known").fill_null(False).mean().alias("share_household_known"),
        )
        .collect()
    )
    grid = rules.select(
        "factor", "factor_text", "admdvs", "warning_type", "threshold_fen", "in_force"
    )
    table = (
        with_admdvs_name(grid)
        .join(
            warned,
            on=["factor", "factor_text", "admdvs", "warning_type", "threshold_fen"],
            how="left",
        )
        .with_columns(
            pl.col("persons").fill_null(0).cast(pl.Int64),
            pl.col("households").fill_null(0).cast(pl.Int64),
            pl.col("share_household_known").round(4),
        )
        .sort("factor", "admdvs", "warning_type")
        .select(
            pl.col("factor_text").alias("factor"),
            "admdvs",
            "county",
            "warning_type",
            fen_text(pl.col("threshold_fen")).alias("threshold"),
            "persons",
            "households",
            "share_household_known",
            "in_force",
        )
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"simulate_{region}_{month}"
    csv_path = out_dir / f"{stem}.csv"
    table.write_csv(csv_path)
    png, svg = _chart(table, out_dir / stem, region, month)
    return SimulationResult(table=table, csv=csv_path, png=png, svg=svg)


def totals(table: pl.DataFrame) -> pl.DataFrame:
    """The region's total per factor and warning type (households counted per county)."""
    return (
        table.group_by("factor", "warning_type")
        .agg(pl.col("persons").sum(), pl.col("households").sum())
        .sort(pl.col("factor").cast(pl.Float64), "warning_type")
    )


_CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC")
# Debian's fonts-wqy-microhei, registered by path when matplotlib's font cache predates it.
_CJK_FILES = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",)


def _cjk_font() -> str | None:
    """A font with Chinese glyphs, or None (then the chart's words are English)."""
    from matplotlib import font_manager

    for path in _CJK_FILES:
        if Path(path).is_file():
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                font_manager.fontManager.addfont(path)
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in _CJK_FONTS if n in names), None)


def _chart(table: pl.DataFrame, stem: Path, region: str, month: Month) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cjk = _cjk_font()
    plt.rcParams["font.family"] = [*([cjk] if cjk else []), "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["svg.hashsalt"] = "povwatch"
    sums = totals(table)
    in_force = (
        table.filter(pl.col("in_force"))
        .select(pl.col("factor").cast(pl.Float64), "warning_type")
        .unique()
        .sort("warning_type", "factor")
    )
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for wtype, style in (("relapse", "o-"), ("impoverish", "s-")):
        part = sums.filter(pl.col("warning_type") == wtype)
        if not part.height:
            continue
        label = WARNING_TYPES[wtype] if cjk else wtype
        (line,) = ax.plot(part["factor"].cast(pl.Float64), part["persons"], style, label=label)
        for f in in_force.filter(pl.col("warning_type") == wtype)["factor"].to_list():
            shown = f"{f * 100:g}%"
            ax.axvline(
                f,
                color=line.get_color(),
                linestyle="--",
                linewidth=1,
                label=(f"{label} 现行标准 {shown}" if cjk else f"{label} in force {shown}"),
            )
    name = division_name(region)
    if cjk:
        ax.set_xlabel("系数（× 上年人均可支配收入）")
        ax.set_ylabel("预警人数")
        ax.set_title(f"监测标准模拟：{name}（{region}），{month}")
    else:
        ax.set_xlabel("factor × prior-year per-capita disposable income")
        ax.set_ylabel("persons warned")
        ax.set_title(f"povwatch policy simulate — region {region}, {month}")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return png, svg


def render_table(table: pl.DataFrame) -> str:
    """The region totals as a small text table (factor rows, warning types as columns); ``*``
    marks the factor in force for that warning type."""
    sums = totals(table)
    current = set(
        table.filter(pl.col("in_force")).select("factor", "warning_type").unique().iter_rows()
    )
    lines = ["factor   返贫 relapse (persons/households)   致贫 impoverish (persons/households)"]
    for factor in sums["factor"].unique(maintain_order=True):
        cells = {
            r["warning_type"]: f"{r['persons']}/{r['households']}"
            + ("*" if (factor, r["warning_type"]) in current else " ")
            for r in sums.filter(pl.col("factor") == factor).iter_rows(named=True)
        }
        lines.append(
            f"{factor:<8} {cells.get('relapse', '- '):>35} {cells.get('impoverish', '- '):>37}"
        )
    if current:
        lines.append("* the factor in force (现行标准)")
    return "\n".join(lines) + "\n"
