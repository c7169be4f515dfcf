import polars as pl

from pipeline.warnings.compute import warning_id_expr


def test_warning_id_is_year_type_and_person() -> None:
    # Contract (feedback): stable for a person, warning type and year — not for the month.
    frame = pl.DataFrame(
        {
            "month": ["2024-03", "2024-11", "2025-01", "2024-03"],
            "warning_type": ["relapse", "relapse", "relapse", "impoverish"],
            "psn_no": ["P1", "P1", "P1", "P1"],
        }
    )
    ids = frame.select(warning_id_expr())["warning_id"].to_list()
    assert ids == ["2024-R-P1", "2024-R-P1", "2025-R-P1", "2024-I-P1"]
