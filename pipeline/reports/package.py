"""The month's packages: one per department × county, plus the city summary and manifests.

Layout under ``outbox/<month>/``::

    <department>/<admdvs>/预警台账_<部门>_<县区>_<month>.xlsx   full ids: the department's own list
    <department>/<admdvs>/预警报告_<部门>_<县区>_<month>.html   masked ids, inline CSS and SVG
    <department>/<admdvs>/预警报告_<部门>_<县区>_<month>.pdf    the same report, printed
    <department>/<admdvs>/manifest.json                        the package's files
    summary_<month>.xlsx / .html / .pdf                        city summary (counts only)
    manifest.json                                              every file: sha256, bytes, rows

A package holds only its own department's and county's warnings; file names are built from
validated codes only; everything is staged in a hidden folder inside the outbox and moved into
place, so nothing is written outside the outbox and a re-run leaves nothing stale. The same
input gives the same bytes (manifests also name the run id).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError
from pipeline.labels import DECISIONS, DEPARTMENTS
from pipeline.months import Month
from pipeline.reports import html as html_report
from pipeline.reports import pdf, xlsx
from pipeline.reports.frame import HISTORY_SCHEMA, ReportData, with_explained_columns
from pipeline.reports.pdf import PdfJobs
from pipeline.reports.summary import summary_context

REPORT_PREFIX = "预警报告"
UNDERPAID_DEPARTMENT = "civil_affairs"  # medical assistance is civil affairs' (民政) to pay
FORMATS = ("xlsx", "html", "pdf")


@dataclass(frozen=True)
class _Written:
    rel: str  # posix path relative to outbox/<month>/
    rows: int


def _with_decisions(df: pl.DataFrame, decisions: pl.DataFrame | None, m: Month) -> pl.DataFrame:
    """上次决定 / 等待天数 once decisions come back (issue 10 passes them; empty otherwise).

    上次决定: the latest decision with decided_on ≤ the month's last day; 等待天数: days from
    the end of the warning's first month to the end of this month while none has come back.
    """
    if decisions is None:
        return df
    last = decisions.filter(pl.col("decided_on") <= m.last_day).sort("decided_on")
    latest = last.group_by("warning_id").agg(pl.col("decision").last().alias("_decision"))
    first_end = (pl.col("first_month") + pl.lit("-01")).str.to_date().dt.month_end()
    return (
        df.drop("prev_decision", "wait_days")
        .join(latest, on="warning_id", how="left")
        .with_columns(
            pl.col("_decision")
            .replace_strict(DECISIONS, default=pl.col("_decision"), return_dtype=pl.String)
            .alias("prev_decision"),
            pl.when(pl.col("_decision").is_null())
            .then((pl.lit(m.last_day) - first_end).dt.total_days())
            .cast(pl.Int64)
            .alias("wait_days"),
        )
        .drop("_decision")
    )


def report_counties(routed: pl.DataFrame) -> list[str]:
    """The counties that get a package this month, sorted."""
    return sorted(routed.get_column("admdvs").unique().to_list())


@dataclass(frozen=True)
class _Month:
    m: Month
    label: str
    df: pl.DataFrame
    ledger: pl.DataFrame
    history: pl.DataFrame
    formats: tuple[str, ...]


def _prepare(data: ReportData, month: str, formats: tuple[str, ...]) -> _Month:
    if os.environ.get("POVWATCH_PDF") == "off":  # tests of other things: no PDF rendering
        formats = tuple(f for f in formats if f != "pdf")
    try:
        m = Month.parse(month)
    except ValueError as err:
        raise PovwatchError(f"report: {err}") from err
    label = str(m)
    df = xlsx.checked(data.routed, label)
    if "hh_size" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Int32).alias("hh_size"))
    df = _with_decisions(with_explained_columns(df), data.decisions, m)
    history = data.history if data.history is not None else pl.DataFrame(schema=HISTORY_SCHEMA)
    return _Month(m, label, df, xlsx.ledger_rows(df), history, formats)


def _as_data(data: ReportData | pl.DataFrame) -> ReportData:
    return ReportData(routed=data) if isinstance(data, pl.DataFrame) else data


def write_reports(
    data: ReportData | pl.DataFrame,
    month: str,
    outbox: Path,
    formats: tuple[str, ...] = FORMATS,
) -> list[Path]:
    """Write this month's packages, city summary and manifests under ``outbox/<month>/``:
    ``write_county_packages`` for every county, then ``finish_packages`` (how the scheduler
    runs it: one task per county, then one to finish). Returns every path, sorted."""
    data = _as_data(data)
    xlsx.checked(data.routed, _month_label(month))
    with pdf.workers_kept():
        for county in report_counties(data.routed):
            write_county_packages(data, month, outbox, county, formats)
        return finish_packages(data, month, outbox, formats)


def _month_label(month: str) -> str:
    try:
        return str(Month.parse(month))
    except ValueError as err:
        raise PovwatchError(f"report: {err}") from err


def write_county_packages(
    data: ReportData | pl.DataFrame,
    month: str,
    outbox: Path,
    admdvs: str,
    formats: tuple[str, ...] = FORMATS,
) -> list[Path]:
    """One county's packages (one per department): 台账, HTML, PDF, manifest, each replaced
    atomically. Returns the paths."""
    data = _as_data(data)
    mo = _prepare(data, month, formats)
    parts = [(k, part) for k, part in xlsx.partitions(mo.ledger) if k[1] == admdvs]
    month_dir = Path(outbox) / mo.label
    month_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{mo.label}.{admdvs}.staging.", dir=month_dir))
    try:
        written: list[_Written] = []
        n_pdf = len(parts) if "pdf" in mo.formats else 0
        with PdfJobs(n_pdf) as pdfs:  # rendered by workers while the 台账 are written
            for (dept, county), part in parts:
                written += _write_package(
                    staging, data, part, mo.history, mo.m, dept, county, mo.formats, pdfs
                )
        written += [
            _package_manifest(staging, package, files, data.run_id, mo.label)
            for package, files in _by_package(written).items()
        ]
        rels = [w.rel for w in written]
        _move_into_place(staging, month_dir, rels)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        pdf.release()
    return sorted(month_dir / rel for rel in rels)


def finish_packages(
    data: ReportData | pl.DataFrame,
    month: str,
    outbox: Path,
    formats: tuple[str, ...] = FORMATS,
) -> list[Path]:
    """After every county's packages: the city summary, stale files dropped, the month's
    manifest last. Stops with one line when a county's package is missing (its county step
    has not run). Returns every path of the month's delivery, sorted."""
    data = _as_data(data)
    mo = _prepare(data, month, formats)
    label = mo.label
    month_dir = Path(outbox) / label
    written: list[_Written] = []
    for (dept, county), part in xlsx.partitions(mo.ledger):
        rels = [xlsx.ledger_rel(dept, county, label)]
        stem = xlsx.ledger_rel(dept, county, label, REPORT_PREFIX, "html")[: -len(".html")]
        rels += [f"{stem}.{ext}" for ext in ("html", "pdf") if ext in mo.formats]
        for rel in rels:
            if not (month_dir / rel).is_file():
                raise PovwatchError(
                    f"report: {month_dir / rel} missing (its county step has not run)"
                )
        written += [_Written(rel, part.height) for rel in rels]
        written.append(_Written(f"{dept}/{county}/manifest.json", len(rels)))
    month_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{label}.staging.", dir=month_dir))
    try:
        summary: list[_Written] = []
        rel = f"summary_{label}.xlsx"
        summary.append(_Written(rel, xlsx.write_summary(staging / rel, mo.df, mo.m)))
        if "html" in mo.formats or "pdf" in mo.formats:
            ctx = summary_context(mo.history, mo.m, data.followup)
            page = html_report.render("summary.html.j2", ctx)
            with PdfJobs(1) as pdfs:
                summary += _write_html_pdf(staging, f"summary_{label}", page, 0, mo.formats, pdfs)
        _move_into_place(staging, month_dir, [w.rel for w in summary])
        written += summary
        written.sort(key=lambda w: w.rel)
        manifest = _manifest(month_dir, label, written, data.run_id)
        paths = _publish(staging, month_dir, label, [w.rel for w in written], manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        pdf.release()
    return sorted(paths)


def _write_package(
    staging: Path,
    data: ReportData,
    part: pl.DataFrame,
    history: pl.DataFrame,
    m: Month,
    dept: str,
    admdvs: str,
    formats: tuple[str, ...],
    pdfs: PdfJobs,
) -> list[_Written]:
    """One package: the report first (its PDF goes to a worker), then the 台账."""
    label = str(m)
    in_package = pl.col("hh_id").is_in(part["hh_id"].implode())
    members = hh_settlements = None
    if data.members is not None:
        members = data.members.filter(in_package)
        if data.settlements is not None:  # every member's costs: the household's largest
            hh_settlements = data.settlements.join(
                members.select("psn_no", "hh_id"), on="psn_no", how="inner"
            )
    households = xlsx.household_rows(part, hh_settlements, members)
    rel = xlsx.ledger_rel(dept, admdvs, label)
    files = [_Written(rel, part.height)]
    if "html" in formats or "pdf" in formats:
        county = xlsx.county_name(admdvs)
        ctx = html_report.package_context(part, households, history, m, dept, admdvs, county)
        ctx["followup"] = html_report.followup_of(data.followup, dept, admdvs)
        page = html_report.render("package.html.j2", ctx)
        stem = xlsx.ledger_rel(dept, admdvs, label, REPORT_PREFIX, "html")[: -len(".html")]
        files += _write_html_pdf(staging, stem, page, part.height, formats, pdfs)
    costs = xlsx.cost_rows(part, data.settlements)
    rules = xlsx.rule_rows(data.rules, part)
    underpaid = None  # the assistance audit's under-payments: the 民政 台账 only (full ids)
    if dept == UNDERPAID_DEPARTMENT and data.underpaid is not None:
        underpaid = data.underpaid.filter(pl.col("admdvs") == admdvs)
    xlsx.write_ledger(staging / rel, part, households, costs, rules, m, dept, admdvs, underpaid)
    return files


def _by_package(written: list[_Written]) -> dict[str, list[_Written]]:
    """Files of each package folder (<department>/<admdvs>), for its manifest."""
    out: dict[str, list[_Written]] = {}
    for w in written:
        if w.rel.count("/") == 2:
            out.setdefault(w.rel.rsplit("/", 1)[0], []).append(w)
    return out


def _write_html_pdf(
    staging: Path, stem: str, page: str, rows: int, formats: tuple[str, ...], pdfs: PdfJobs
) -> list[_Written]:
    """The HTML page, and its PDF (submitted to ``pdfs``: written once they are waited for)."""
    out = []
    (staging / stem).parent.mkdir(parents=True, exist_ok=True)
    if "html" in formats:
        (staging / f"{stem}.html").write_text(page, encoding="utf-8")
        out.append(_Written(f"{stem}.html", rows))
    if "pdf" in formats:
        pdfs.submit(page, staging / f"{stem}.pdf")
        out.append(_Written(f"{stem}.pdf", rows))
    return out


# =============================================================================================
# Manifests and publishing
# =============================================================================================


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entries(root: Path, written: list[_Written], strip: str = "") -> list[dict]:
    return [
        {
            "path": w.rel[len(strip) :],
            "sha256": _sha256(root / w.rel),
            "bytes": (root / w.rel).stat().st_size,
            "rows": w.rows,
        }
        for w in sorted(written, key=lambda w: w.rel)
    ]


def _package_manifest(
    staging: Path, package_dir: str, files: list[_Written], run_id: str, month: str
) -> _Written:
    dept, admdvs = package_dir.split("/")
    doc = {
        "month": month,
        "department": dept,
        "admdvs": admdvs,
        "run_id": run_id,
        "files": _entries(staging, files, package_dir + "/"),
    }
    rel = f"{package_dir}/manifest.json"
    text = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    (staging / rel).write_text(text, encoding="utf-8")
    return _Written(rel, len(files))


def _manifest(root: Path, month: str, written: list[_Written], run_id: str) -> str:
    """Every report file of the month (the package manifests, which name the run, aside)."""
    files = [w for w in written if not w.rel.endswith("manifest.json")]
    doc = {"month": month, "run_id": run_id, "files": _entries(root, files)}
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _owned(month_dir: Path, month: str) -> list[Path]:
    """Files in a month folder that this module wrote (and may therefore replace)."""
    found = [month_dir / "manifest.json"]
    found += [month_dir / f"summary_{month}.{ext}" for ext in FORMATS]
    for dept in DEPARTMENTS:
        found += (month_dir / dept).glob(f"*/{xlsx.FILE_PREFIX}_*_{month}.xlsx")
        for ext in ("html", "pdf"):
            found += (month_dir / dept).glob(f"*/{REPORT_PREFIX}_*_{month}.{ext}")
        found += (month_dir / dept).glob("*/manifest.json")
    return [p for p in found if p.is_file()]


def _move_into_place(staging: Path, month_dir: Path, rels: list[str]) -> None:
    for rel in rels:
        target = month_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.name == "manifest.json" and _same_files(target, staging / rel):
            continue  # same files: the manifest keeps naming the run that produced them
        os.replace(staging / rel, target)


def _publish(
    staging: Path, month_dir: Path, month: str, rels: list[str], manifest: str
) -> list[Path]:
    """Drop stale owned files (every file in ``rels`` is in place), write the manifest last."""
    new = {month_dir / rel for rel in rels}
    stale = [
        p for p in _owned(month_dir, month) if p not in new and p != month_dir / "manifest.json"
    ]
    for p in stale:
        p.unlink()
        for parent in (p.parent, p.parent.parent):  # county dir, then department dir
            if parent != month_dir and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    manifest_path = month_dir / "manifest.json"
    tmp = staging / "manifest.json"
    tmp.write_text(manifest, encoding="utf-8")
    if not _same_files(manifest_path, tmp):
        os.replace(tmp, manifest_path)
    return [*new, manifest_path]


def _same_files(old: Path, new: Path) -> bool:
    """Two manifests listing the same files with the same bytes (whichever run wrote them).

    A re-run that produces the same reports leaves the manifest as it was, so every file of
    the month — manifests included — is byte-identical, and the run id still names the run
    that first produced these bytes.
    """
    try:
        a = json.loads(old.read_text(encoding="utf-8"))
        b = json.loads(new.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    a.pop("run_id", None)
    b.pop("run_id", None)
    return a == b
