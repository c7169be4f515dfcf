-- quality_results: one row per batch expectation evaluated in a run (Great Expectations suites
-- under expectations/). Grain: (run_id, seq). A run's rows are replaced when stored again.
-- Row-level checks are not here: they quarantine rows in staging (reason codes).
create table if not exists quality_results (
    run_id varchar not null,
    month varchar not null,             -- YYYY-MM of the run
    seq integer not null,               -- order of evaluation within the run
    suite varchar not null,             -- suite = table guarded (stg_settlements, mart_warnings, …)
    check_name varchar not null,        -- expectation type and its columns
    success boolean not null,
    observed varchar,                   -- what was seen (counts, values; never ids or names)
    level varchar not null              -- batch
);

-- Results of the reference suites by what they validated (the reference tables' inputs
-- digest, the suite and the gate code): unchanged reference data is not validated again.
create table if not exists quality_ref_cache (
    suite varchar not null,
    inputs_digest varchar not null,
    results varchar not null            -- JSON list of the suite's check results
);
