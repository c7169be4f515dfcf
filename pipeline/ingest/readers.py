"""Read one landing file of any delivered shape into a frame of text columns.

CSV (UTF-8, UTF-8 with BOM, GB18030), Parquet and XLSX all come out the same way: canonical
lower-case column names (platform aliases mapped), every value as text, money rendered with
at most two decimals, date-times as ``YYYY-MM-DD HH:MM:SS``, and ``source_row`` numbered as
a spreadsheet shows the file (the header is row 1). Interpreting the text is staging's job.
A file that cannot be used at all raises :class:`PovwatchError` naming file and reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import PovwatchError
from pipeline.money import fen_text

SUPPORTED = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".xlsx": "xlsx"}
_HEADER_SEARCH_ROWS = 20
_ROW_NUMBER = "__source_row"  # a reader that drops rows numbers them itself


@dataclass(frozen=True)
class FileSpec:
    """What a kind of landing file must and may hold."""

    kind: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    money: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


@dataclass(frozen=True)
class ReadResult:
    path: Path
    rel: str
    format: str
    encoding: str | None
    sha256: str
    bytes: int
    frame: pl.DataFrame  # source_row + every column of the spec (text, null when absent)
    extra_columns: tuple[str, ...]

    @property
    def rows(self) -> int:
        return self.frame.height


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_files(folder: Path) -> list[Path]:
    """Data files of a folder (recursively), sorted; hidden and temp files are ignored, and so
    is the export job's ``_SUCCESS`` marker (contract: it says the folder is complete)."""
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith((".", "~$")) and p.name != "_SUCCESS"
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def read_file(path: Path, spec: FileSpec, landing: Path, sha256: str | None = None) -> ReadResult:
    """Read ``path`` as ``spec`` says; ``sha256``: the file's digest when already known."""
    rel = path.relative_to(landing).as_posix() if path.is_relative_to(landing) else str(path)
    fmt = SUPPORTED.get(path.suffix.lower())
    if fmt is None:
        raise PovwatchError(
            f"{rel}: unsupported file type {path.suffix or '(none)'!r} "
            "(expected .csv, .parquet or .xlsx)"
        )
    size = path.stat().st_size
    if size == 0:
        raise PovwatchError(f"{rel}: the file is empty (0 bytes)")
    encoding = None
    if fmt == "csv":
        frame, encoding, header_row = _read_csv(path, rel, spec)
    elif fmt == "parquet":
        frame, header_row = _read_parquet(path, rel), 1
    else:
        frame, header_row = _read_xlsx(path, rel, spec)
    # Only spreadsheet cells carry money as binary floats; CSV text is taken as written.
    frame, extra = _conform(frame, spec, rel, header_row, floats=fmt == "xlsx")
    return ReadResult(
        path=path,
        rel=rel,
        format=fmt,
        encoding=encoding,
        sha256=sha256 or sha256_of(path),
        bytes=size,
        frame=frame,
        extra_columns=extra,
    )


def _decode(data: bytes, rel: str) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            _raise_encoding(data, exc, rel, 3)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        _raise_encoding(data, exc, rel, 0)
    raise AssertionError("unreachable")


def _raise_encoding(data: bytes, exc: UnicodeDecodeError, rel: str, offset: int) -> None:
    pos = exc.start + offset
    # The row as a spreadsheet shows it: a quoted field may hold line breaks.
    before = data[offset:pos].decode(exc.encoding, errors="replace")
    row = _record_of(before + "x") or data.count(b"\n", 0, pos) + 1
    raise PovwatchError(
        f"{rel} row {row}: unknown text encoding (byte 0x{data[pos]:02x} at offset {pos} "
        "is neither UTF-8 nor GB18030)"
    ) from None


def _read_csv(path: Path, rel: str, spec: FileSpec) -> tuple[pl.DataFrame, str, int]:
    data = path.read_bytes()
    text, encoding = _decode(data, rel)
    if not text or text.isspace():  # (not text.strip(): no copy of the whole text)
        raise PovwatchError(f"{rel}: the file has no header row")
    # UTF-8 goes to the parser as delivered (without its BOM); other text re-encoded.
    utf8 = data[3:] if encoding == "utf-8-sig" else data if encoding == "utf-8" else None
    skip, header_row = _csv_title_lines(text, spec)
    try:
        frame = pl.read_csv(
            io.BytesIO(utf8 if utf8 is not None else text.encode("utf-8")),
            infer_schema=False,
            raise_if_empty=False,
            quote_char='"',
            skip_rows=skip,
        )
    except pl.exceptions.PolarsError:
        # polars quotes the offending field in its message: names and resident ids never
        # reach a message, so say where and why from our own reading of the text.
        raise PovwatchError(f"{rel}: not a readable CSV file ({_csv_problem(text)})") from None
    return frame, encoding, header_row


def _csv_title_lines(text: str, spec: FileSpec) -> tuple[int, int]:
    """(lines to skip, the header's row) of a CSV file: a title row may stand above the
    header, as in a spreadsheet saved as CSV. The header is the first of the first records
    naming every required column; without one, the first record (``_conform`` names the
    missing column)."""
    aliases = dict(spec.aliases)
    head = io.StringIO(text[: 1 << 16], newline="")
    reader = csv.reader(head)
    line = 0
    try:
        for row, record in enumerate(reader, start=1):
            if row > _HEADER_SEARCH_ROWS:
                break
            if _names_required(_header_names(record, aliases), spec):
                return (line, row) if row > 1 else (0, 1)
            line = reader.line_num
    except csv.Error:
        pass
    return 0, 1


def _record_of(text: str) -> int | None:
    """How many CSV records (the header is the first) ``text`` starts; None if unparseable."""
    try:
        return sum(1 for _ in csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        return None


def _csv_problem(text: str) -> str:
    """Where and why a CSV text does not parse, without quoting any of its values."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row = 0
    width = None
    try:
        for record in reader:
            row += 1
            if width is None:
                width = len(record)
            elif len(record) > width:
                return f"row {row} has {len(record)} fields, the header {width}"
    except csv.Error as exc:
        return f"row {row + 1}: {exc}"
    return "malformed CSV"


def _read_parquet(path: Path, rel: str) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars/pyarrow raise several types for damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PovwatchError(f"{rel}: not a readable Parquet file ({first})") from None
    return frame.with_columns(_as_text(name, dtype) for name, dtype in frame.schema.items())


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
        return col.dt.strftime("%Y-%m-%d %H:%M:%S").alias(name)
    if dtype == pl.Date:
        return col.dt.strftime("%Y-%m-%d").alias(name)
    if dtype == pl.Boolean:
        # a 0/1 flag written as a Parquet boolean (refd_setl_flag, vali_flag, rural)
        return col.cast(pl.Int8).cast(pl.String).alias(name)
    if dtype.is_float():
        # a float column (money written as double): exact cents when it is a whole fen
        return pl.coalesce(_float_money_text(col), col.cast(pl.String)).alias(name)
    return col.cast(pl.String).alias(name)


def _float_money_text(value: pl.Expr) -> pl.Expr:
    """Money text → exact two-decimal text, when it is a whole number of fen.

    Spreadsheets and some Parquet writers store money as binary floats (918.17 arrives as
    918.1699999…); a value within 1e-4 fen of a whole fen is that fen. Anything else (more
    precision than a fen, too large, not a number) stays as delivered, so staging quarantines
    it rather than rounding it silently.
    """
    fen = _whole_fen(value)
    return pl.when(fen.is_not_null()).then(fen_text(fen))


def _whole_fen(value: pl.Expr) -> pl.Expr:
    """A float amount in yuan → its whole number of fen (Int64), null when it is not one."""
    fen_f = (value * 100).round(0)
    exact = (value * 100 - fen_f).abs() < 1e-4
    return pl.when(exact & (fen_f.abs() < 1e15)).then(fen_f).otherwise(None).cast(pl.Int64)


def _read_xlsx(path: Path, rel: str, spec: FileSpec) -> tuple[pl.DataFrame, int]:
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        # skip_rows=0: keep leading empty rows, so grid row i is spreadsheet row i + 1.
        # The data is on the first sheet, or on the first one whose header names the
        # required columns (a workbook with a cover or notes sheet in front).
        aliases = dict(spec.aliases)
        grid = first_sheet = None
        for i in range(len(reader.sheet_names)):
            sheet = reader.load_sheet(i, header_row=None, dtypes="string", skip_rows=0)
            grid = sheet.to_polars()
            first_sheet = grid if first_sheet is None else first_sheet
            if _header_index(grid, spec, aliases) is not None:
                break
        else:
            grid = first_sheet
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PovwatchError(f"{rel}: not a readable XLSX file ({first})") from None
    if grid is None:
        raise PovwatchError(f"{rel}: the workbook has no sheet")
    if grid.height == 0:
        raise PovwatchError(f"{rel}: the sheet is empty")
    # A title row may stand above the header: the header is the first row naming the
    # required columns (checked in _conform), or the first non-empty row.
    header_idx = None
    first_nonempty = None
    for i, row in enumerate(grid.head(_HEADER_SEARCH_ROWS).iter_rows()):
        cells = _header_names(row, aliases)
        if not cells:
            continue
        if first_nonempty is None:
            first_nonempty = i
        if _names_required(cells, spec):
            header_idx = i
            break
    if header_idx is None:
        header_idx = first_nonempty if first_nonempty is not None else 0
    header = [str(c).strip() if c is not None else "" for c in grid.row(header_idx)]
    body = grid.slice(header_idx + 1)
    names = []
    for j, name in enumerate(header):
        names.append(name if name else f"__blank_{j}")
    body = body.rename(dict(zip(body.columns, names, strict=True)))
    # Number the rows before dropping empty ones, so later rows keep their spreadsheet number.
    cells = pl.exclude(_ROW_NUMBER)
    body = body.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int32) + header_idx + 2).alias(_ROW_NUMBER)
    ).filter(~pl.all_horizontal(cells.is_null() | (cells.str.strip_chars() == "")))
    return body, header_idx + 1


def _header_index(grid: pl.DataFrame, spec: FileSpec, aliases: dict[str, str]) -> int | None:
    for i, row in enumerate(grid.head(_HEADER_SEARCH_ROWS).iter_rows()):
        if _names_required(_header_names(row, aliases), spec):
            return i
    return None


def _header_names(row, aliases: dict[str, str]) -> list[str]:
    """The canonical names of a row's non-empty cells (a candidate header row)."""
    return [_norm_name(c, aliases) for c in row if c is not None and str(c).strip()]


def _names_required(names: list[str], spec: FileSpec) -> bool:
    """Whether a candidate header row names every required column of ``spec``."""
    return bool(names) and all(r in names for r in spec.required)


def _norm_name(name: object, aliases: dict[str, str]) -> str:
    key = str(name).strip().strip('"').strip("\ufeff").strip().lower()
    return _alias(key, aliases)


_NOTE = re.compile(r"[（(【\[][^）)】\]]*[）)】\]]")


def _alias(key: str, aliases: dict[str, str]) -> str:
    """The canonical name of a column; a label with a note (``核实结论（必填）``, ``*备注``)
    is known by its bare label."""
    if key in aliases:
        return aliases[key]
    bare = _NOTE.sub("", key).strip().strip("*＊").strip()
    return aliases.get(bare, key)


def _conform(
    frame: pl.DataFrame, spec: FileSpec, rel: str, header_row: int, *, floats: bool = False
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    aliases = dict(spec.aliases)
    renamed: dict[str, str] = {}
    seen: set[str] = set()
    canonical_present = {_norm_name(c, {}) for c in frame.columns}
    for col in frame.columns:
        key = _norm_name(col, {})
        target = _alias(key, aliases)
        if key != target and target in canonical_present:
            continue  # both spellings delivered: the contract's own name wins
        if target in seen:
            continue
        seen.add(target)
        renamed[col] = target
    missing = [c for c in spec.required if c not in seen]
    if missing:
        raise PovwatchError(
            f"{rel}: required column {missing[0]!r} is missing"
            + (f" (also {', '.join(missing[1:])})" if missing[1:] else "")
        )
    frame = frame.select([pl.col(src).alias(dst) for src, dst in renamed.items()])
    extra = tuple(c for c in frame.columns if c not in spec.columns and not c.startswith("__"))
    frame = frame.with_columns(pl.all().cast(pl.String))
    exprs = []
    for col in spec.columns:
        if col not in frame.columns:
            exprs.append(pl.lit(None, dtype=pl.String).alias(col))
            continue
        e = pl.col(col).str.strip_chars()
        exprs.append(pl.when(e == "").then(None).otherwise(e).alias(col))
    if _ROW_NUMBER in frame.columns:
        row = pl.col(_ROW_NUMBER).cast(pl.Int32)
    else:
        row = pl.int_range(pl.len(), dtype=pl.Int32) + header_row + 1
    out = (
        frame.lazy()
        .select(row.alias("source_row"), *exprs)
        # a record with no value at all (a blank line, ",,,,") is not a row of data
        .filter(~pl.all_horizontal(pl.exclude("source_row").is_null()))
    )
    money = [c for c in spec.money if c in frame.columns] if floats else []
    if money:
        # in steps, each value computed once (one nested expression evaluates the text
        # many times over): the float, then its whole fen (or null), then the text.
        out = (
            out.with_columns(pl.col(money).cast(pl.Float64, strict=False).name.prefix("__v_"))
            .with_columns(_whole_fen(pl.col(f"__v_{c}")).alias(f"__f_{c}") for c in money)
            .with_columns(
                pl.coalesce(
                    pl.when(pl.col(f"__f_{c}").is_not_null()).then(fen_text(pl.col(f"__f_{c}"))),
                    pl.col(c),
                ).alias(c)
                for c in money
            )
            .drop(*(f"__{p}_{c}" for c in money for p in "vf"))
        )
    return out.collect(), extra
