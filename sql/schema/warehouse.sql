-- The warehouse: raw (as delivered, text), staged (typed, classified), reference snapshots,
-- marts (warnings) and the run ledger. Idempotent: safe to run on every connection.
-- Money is BIGINT fen everywhere past the raw layer.

create table if not exists raw_settlements (
    export_month varchar not null,      -- YYYY-MM folder the row arrived in
    source_file varchar not null,       -- path relative to the landing folder
    source_row integer not null,        -- row as a spreadsheet shows the file (header = 1)
    setl_id varchar, mdtrt_id varchar, psn_no varchar, certno varchar, insutype varchar,
    med_type varchar, setl_time varchar, medfee_sumamt varchar, fulamt_ownpay_amt varchar,
    overlmt_selfpay varchar, preselfpay_amt varchar, inscp_scp_amt varchar, hifp_pay varchar,
    hifmi_pay varchar, hifob_pay varchar, maf_pay varchar, oth_pay varchar,
    fund_pay_sumamt varchar, psn_part_amt varchar, hosp_part_amt varchar, acct_pay varchar,
    psn_cash_pay varchar, insu_admdvs varchar, refd_setl_flag varchar, init_setl_id varchar,
    vali_flag varchar,
    fixmedins_code varchar, fixmedins_name varchar, dise_codg varchar, dise_name varchar
);

create table if not exists stg_settlements (
    export_month varchar not null,
    source_file varchar not null,
    source_row integer not null,
    setl_id varchar,
    psn_no varchar,
    insutype varchar,
    med_type varchar,
    med_class varchar,                  -- outpatient_chronic | inpatient | outpatient | pharmacy | other
    setl_time timestamp,
    cost_year integer,                  -- year the cost counts in (a reversal: its original's)
    medfee_sumamt bigint, fulamt_ownpay_amt bigint, overlmt_selfpay bigint,
    preselfpay_amt bigint, inscp_scp_amt bigint, hifp_pay bigint, hifmi_pay bigint,
    hifob_pay bigint, maf_pay bigint, oth_pay bigint, fund_pay_sumamt bigint,
    psn_part_amt bigint, hosp_part_amt bigint,
    refd_setl_flag integer,
    init_setl_id varchar,
    status varchar not null,            -- loaded | duplicate | skipped | quarantined
    reason varchar,                     -- reason code when not loaded
    reason_column varchar,
    fixmedins_code varchar,             -- hospital / pharmacy and main diagnosis (optional,
    fixmedins_name varchar,             -- shown when a warning is explained)
    dise_codg varchar,
    dise_name varchar
);

-- Warehouses created before the hospital and diagnosis columns were kept.
alter table raw_settlements add column if not exists fixmedins_code varchar;
alter table raw_settlements add column if not exists fixmedins_name varchar;
alter table raw_settlements add column if not exists dise_codg varchar;
alter table raw_settlements add column if not exists dise_name varchar;
alter table stg_settlements add column if not exists fixmedins_code varchar;
alter table stg_settlements add column if not exists fixmedins_name varchar;
alter table stg_settlements add column if not exists dise_codg varchar;
alter table stg_settlements add column if not exists dise_name varchar;

create table if not exists ingested_files (
    export_month varchar not null,
    source_file varchar not null,
    sha256 varchar not null,
    bytes bigint not null,
    format varchar not null,
    encoding varchar,
    rows_read bigint not null
);

create table if not exists ref_persons (
    psn_no varchar, certno varchar, psn_name varchar, gend varchar, brdy varchar,
    hh_id varchar, insuplc_admdvs varchar, insutype varchar, rural integer,
    source_file varchar, source_row integer
);

-- The registry as it was in force in the earlier months of the run month's year, where it
-- differs from ref_persons (a later snapshot changed a person's region, insurance type, rural
-- flag or household, or added the person): from each break (January, then every snapshot
-- month up to the run month) until the next one. `present` false: not yet in the registry.
-- A month's first flags are those of the registry then in force (status/first_month).
create table if not exists ref_persons_past (
    from_month varchar not null, psn_no varchar not null, present boolean not null,
    hh_id varchar, insuplc_admdvs varchar, insutype varchar, rural integer
);
create table if not exists ref_persons_breaks (from_month varchar not null);

create table if not exists ref_identities (
    psn_no varchar, identity varchar, begin_date date, end_date date, source_dept varchar,
    source_file varchar, source_row integer
);

create table if not exists ref_income (
    admdvs varchar, year integer, scope varchar, amount_fen bigint, published_on date,
    source_file varchar, source_row integer
);

create table if not exists mart_warnings (
    month varchar not null,
    psn_no varchar not null,
    hh_id varchar,
    admdvs varchar,
    warning_type varchar not null,
    rule_id varchar not null,
    burden_ytd_fen bigint not null,
    threshold_fen bigint not null,
    first_month varchar not null,
    status varchar not null,
    policy_id varchar not null,
    policy_version varchar not null,
    income_admdvs varchar not null,
    income_year integer not null,
    income_scope varchar not null,
    identities varchar not null
);

create table if not exists mart_warning_routes (
    month varchar not null,
    psn_no varchar not null,
    warning_type varchar not null,
    department varchar not null
);

create table if not exists run_ledger (
    run_id varchar primary key,
    month varchar not null,
    started_at timestamp not null,
    finished_at timestamp,
    outcome varchar not null,           -- running | publishing | success | failed | dry_run
    code_version varchar not null,
    policies varchar,                   -- JSON: policy files with sha256 and versions used
    reference varchar,                  -- JSON: income figures in force
    inputs varchar,                     -- JSON: registry / identity / income files with sha256
    warnings bigint,
    message varchar
);
-- Who ran it, when Airflow did: dag id, dag run id and the try of the computing task.
-- (Added by ALTER so that warehouses made before these columns existed gain them.)
alter table run_ledger add column if not exists airflow_dag_id varchar;
alter table run_ledger add column if not exists airflow_run_id varchar;
alter table run_ledger add column if not exists airflow_try_number integer;

create table if not exists ledger_files (
    run_id varchar not null,
    month varchar not null,
    export_month varchar not null,
    source_file varchar not null,
    sha256 varchar not null,
    rows_read bigint not null,
    loaded bigint not null,
    duplicate bigint not null,
    skipped bigint not null,
    quarantined bigint not null,
    medfee_read_fen bigint,
    medfee_loaded_fen bigint,
    burden_loaded_fen bigint
);

create table if not exists ref_rejects (
    kind varchar not null,              -- persons | identities | income
    source_file varchar not null,
    source_row integer not null,
    reason varchar not null,
    reason_column varchar
);
-- A rejected resident id that looks like a spreadsheet number (3.70811E+17): the cause to
-- name when most of a file is rejected (the id itself is never kept here).
alter table ref_rejects add column if not exists numeric_id boolean;

create table if not exists ref_files (
    kind varchar not null,
    source_file varchar not null,
    sha256 varchar not null,
    rows_read bigint not null,
    rows_rejected bigint not null
);

-- Every row set aside, with its reason: settlements and reference rows alike.
create or replace view quarantine as
    select 'settlements' as kind, export_month, source_file, source_row, setl_id,
           reason, reason_column
    from stg_settlements where status = 'quarantined'
    union all
    select kind, null, source_file, source_row, null, reason, reason_column from ref_rejects;

-- What each staged export month was classified from: its files and the registry in force.
-- A month whose inputs are unchanged is not classified again.
create table if not exists stg_state (
    export_month varchar primary key,
    inputs_digest varchar not null
);

-- Per staged file: rows by status and money totals (the run's reconciliation), kept with the
-- staging of its export month, so that a month's run does not re-read the year's rows.
create table if not exists stg_file_totals (
    export_month varchar not null,
    source_file varchar not null,
    staged bigint not null,
    loaded bigint not null,
    duplicate bigint not null,
    skipped bigint not null,
    quarantined bigint not null,
    medfee_read_fen hugeint,
    medfee_loaded_fen hugeint,
    burden_loaded_fen hugeint
);

-- The warning history: one row per person, warning type and year, from the monthly marts.
create or replace view warning_history as
    select
        psn_no,
        warning_type,
        cast(substr(month, 1, 4) as integer) as year,
        min(first_month) as first_month,
        max(month) as last_month,
        count(*) as months_warned,
        arg_max(burden_ytd_fen, month) as latest_burden_ytd_fen,
        arg_max(threshold_fen, month) as latest_threshold_fen
    from mart_warnings
    group by all;

-- Decisions returned by the departments (feedback/<department>/…), as known to the run of
-- `month`: the rows with decided_on ≤ the month's last day that name a warning routed to that
-- department. One partition per run month, replaced by a re-run (key: month, source_file,
-- source_row), so re-reading the same file never adds a row twice.
create table if not exists feedback_decisions (
    month varchar not null,
    run_id varchar not null,
    department varchar not null,
    warning_id varchar not null,
    psn_no varchar not null,
    warning_type varchar not null,
    decision varchar not null,          -- identity code | not_eligible | already_assisted | unreachable
    decided_on date not null,
    note varchar,
    source_file varchar not null,
    source_row integer not null,
    sha256 varchar
);

-- Feedback rows set aside by the run of `month`, with file, row, column and reason.
create table if not exists feedback_rejects (
    month varchar not null,
    run_id varchar not null,
    department varchar,
    source_file varchar not null,
    source_row integer not null,
    reason varchar not null,
    reason_column varchar
);

-- Feedback files read by the run of `month`: rows read, blank (unanswered), accepted,
-- rejected, and decided after the month (left for a later month's run).
create table if not exists feedback_files (
    month varchar not null,
    run_id varchar not null,
    department varchar,
    source_file varchar not null,
    sha256 varchar,
    rows_read bigint not null,
    blank bigint not null,
    accepted bigint not null,
    rejected bigint not null,
    later bigint not null
);

-- Decisions not yet answered, overdue, and not yet reflected in the identities feed, per
-- department and county, as of the run of `month` (for the reports).
create table if not exists mart_decision_followup (
    month varchar not null,
    department varchar not null,
    admdvs varchar not null,
    warnings bigint not null,
    decided bigint not null,
    pending bigint not null,
    overdue bigint not null,
    not_reflected bigint not null
);

-- Every package delivery attempt: package, destination, sha256, time, outcome.
create table if not exists delivery_log (
    run_id varchar,
    month varchar not null,
    department varchar not null,
    admdvs varchar not null,
    package varchar not null,           -- outbox/<month>/<department>/<county>
    destination varchar not null,       -- name of the configured destination
    kind varchar not null,              -- outbox | folder | sftp | smtp
    sha256 varchar not null,            -- of the package (its files' paths and sha256)
    attempted_at timestamp not null,
    attempt integer not null,           -- 1, 2, … (0: unchanged, not sent)
    outcome varchar not null,           -- delivered | unchanged | failed
    message varchar
);

-- What each run delivered where (JSON: one entry per destination with its counts).
alter table run_ledger add column if not exists deliveries varchar;

-- sha256 of landing files by path, size, modification time, ctime and inode: a file with
-- all of these unchanged is not hashed again.
create table if not exists file_digests (
    path varchar primary key,           -- absolute path
    bytes bigint not null,
    mtime_ns bigint not null,
    sha256 varchar not null
);
-- A file rewritten in place with its old mtime put back: its ctime and inode tell
-- (ingest/digests.py). Rows of older warehouses have none, so their files are hashed once.
alter table file_digests add column if not exists ctime_ns bigint;
alter table file_digests add column if not exists inode bigint;

-- What the reference tables were loaded from (files' sha256, identity codes, loader code):
-- the same digest again means the tables are kept as they are, not reloaded.
create table if not exists ref_state (
    inputs_digest varchar not null
);

-- Medical-assistance entitlement and audit: one row per person and month (year to date) for
-- every person who held an assistance category in the year up to the month or was paid
-- maf_pay. entitled_fen / difference_fen are null when not computed (reason says why).
create table if not exists mart_assistance (
    month varchar not null,
    psn_no varchar not null,
    admdvs varchar,
    category varchar,                   -- the policy's category id (highest held); null: none
    category_label varchar,
    policy_id varchar,
    policy_version varchar,
    eligible_cost_fen bigint not null,
    entitled_fen bigint,
    paid_fen bigint not null,
    difference_fen bigint,              -- entitled − paid
    status varchar not null,            -- under | over | ok | not_computed (tolerance 1 fen)
    reason varchar
);

-- Running totals kept from month to month (pipeline/warnings/state.py): every person's burden
-- measures as of a month, and every (person, warning type) flagged in the year so far with its
-- first month. A store is used for the next month only when its fingerprint (what it was
-- computed from) still holds; only the latest two months are kept.
create table if not exists state_burden (
    through_month varchar not null,
    psn_key integer not null,           -- state_keys
    burden__after_insurance bigint,
    burden__after_insurance_and_assistance bigint,
    burden__after_insurance_in_catalogue bigint,
    burden__after_insurance_and_assistance_in_catalogue bigint
);

-- A person's key in state_burden: given once, in psn_no order among the persons new to it,
-- and kept (the totals of 5M persons are written every month: integers, not their text).
create table if not exists state_keys (
    psn_no varchar not null,
    psn_key integer not null
);

create table if not exists state_first (
    through_month varchar not null,
    psn_no varchar not null,
    warning_type varchar not null,
    first_month varchar not null
);

create table if not exists state_meta (
    kind varchar not null,              -- burden | first | assistance (the store: mart_assistance)
    through_month varchar not null,
    fingerprint varchar not null,
    primary key (kind, through_month)
);
