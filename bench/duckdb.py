#!/usr/bin/env python3
"""`amend aggregate` beside the same job written in DuckDB: batch time, memory, corrections.

Usage: python3 bench/duckdb.py [--events 1000000 10000000] [--runs 5] [--injections 200]
           [--amend PATH] [--clean-only]
       python3 bench/duckdb.py --smoke [--amend target/debug/amend]

The first run makes a virtualenv in bench/.venv, installs the duckdb that
bench/requirements.txt pins (PyPI must be reachable once) and re-executes itself there. Without
--amend the release binary is built. Each dataset is generated once, as bench/aggregate.py
does (`amend gen --events N --keys 10000 --span 1d --corrections 0.01 --seed 1`), into
bench/data/N/; add 30000000 to --events for the largest size. The job, per (tumbling 1-minute
window, key): count, sum, min, max and mean of the current, non-deleted record of each id
(docs/format.md sections 1-5), the table written to a file and its docs/format.md section 7 digest computed.
RUNS rounds per size; within a round the configurations run one after another, in an order
that rotates from round to round:

- amend: `amend aggregate --input events.jsonl --corrections corrections.jsonl --window
  tumbling:1m --workers W --quiet --out DIR`, W = 1 and 2;
- DuckDB strict and DuckDB plain (below), each a child process `duckdb.py --run-duckdb
  VARIANT` with DuckDB's default threads (one per core);
- minimal (below), with amend at 1 and 2 workers beside it, on the same dataset generated
  without bad lines (`--bad 0`, into bench/data/N-clean); `--clean-only` runs only these
  three;
- correction: `amend aggregate --follow --workers 2` loaded with events.jsonl and an empty
  corrections file, then all of corrections.jsonl appended in one write: the time from the
  write to the epoch of its last byte in epochs.jsonl (written after that epoch's changelog
  is flushed), against DuckDB recomputing everything (its full run). The process is loaded
  anew in every round, at every size, and must then hold the batch run's table. In the first
  round it then takes INJECTIONS single corrections, one write each (bench/follow.py's
  injections): p50/p99/max latency.

Every process is timed with its wall time, CPU time and peak RSS (/usr/bin/time -f '%U %S
%M'). Printed as
Markdown tables (median, min and max; ratios pair by pair within a round, and the ratio of the
medians), with the machine, versions and commands; the raw figures go to
bench/data/duckdb-results.json.

The DuckDB variants load events.jsonl, then corrections.jsonl, into one table, so that its
rowid is the record's position (DuckDB keeps insertion order).

- strict: each file read as raw lines (DuckDB's CSV reader, one VARCHAR column, no quoting),
  every line checked and converted with DuckDB's JSON and string functions as docs/format.md sections 1
  and 5 say, the value read from its own text into a DECIMAL(38,6) (never a DOUBLE); the
  current record by arg_max over (version, rowid). Its bad-line count must equal amend's
  records_dead_lettered and its table digest amend's, or the run stops. It still differs from
  amend on input that generated data never holds: a value of 10^32 or more (DECIMAL(38,6)
  holds 32 integer digits, amend's 128-bit fixed point up to 1.7e32) is bad; a lone UTF-16
  surrogate escape makes a line bad even in a field amend ignores; a line holding the byte
  0x01, or a CR that does not end the line, is cut or split by the CSV reader; JSON nested
  deeper than 128 levels is not rejected; a line longer than 2 MB, invalid UTF-8, or a `value`
  whose field name is written with escapes (the number's text is found by a regular
  expression) stops the run.
- plain: what a DuckDB user writes: read_json with ignore_errors and column types (value
  DECIMAL(38,6), ts TIMESTAMPTZ, version UBIGINT), required fields not null, op null, upsert
  or delete, then QUALIFY row_number() OVER (PARTITION BY id ORDER BY version DESC, rowid
  DESC) = 1. Its digest differs from amend's on generated data, because the JSON reader
  accepts three kinds of bad line: a value written as a JSON string ("12.5") is cast to
  DECIMAL, a value with 7 fractional digits is rounded to 6, and a timestamp without an offset
  is read as UTC. No formulation that reads value as a DECIMAL can tell those apart; that
  takes the number's text, which is the strict variant. The run reports which dead letters
  plain accepts, and the smoke check fails if one is of another kind.

- minimal: the few lines a DuckDB user would write (MINIMAL below): read_json with typed
  columns, QUALIFY row_number() over (version, file, line), one GROUP BY, the table written
  once as CSV with two threads and no digest. It has no dead-letter handling, so it is only
  run on data without bad lines; its table digest is computed afterwards from table.csv,
  outside the timed process, and the run stops unless it equals amend's.

Strict and plain write the table with COPY (JSON lines in amend's snapshot format, mean exact)
and compute the table digest in SQL (sha256 and string_agg, keys in byte order), inside the
timed child process.

Smoke (CI): --smoke generates 20,000 events into a temporary directory, runs amend and both
variants once, and a file of edge cases through amend and strict. It fails unless strict
gives amend's digest, dead-letter count and snapshot.jsonl byte for byte, and plain gives
amend's digest or differs only by the three kinds above. No timings are checked.
"""
import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
VENV = os.path.join(HERE, ".venv")
REQUIREMENTS = os.path.join(HERE, "requirements.txt")
RESULTS = os.path.join(DATA, "duckdb-results.json")
AMEND = os.path.join(ROOT, "target", "release", "amend")
WINDOW_MS = 60_000
# When the command started, before any re-execution in the virtualenv.
STARTED = float(os.environ.get("AMEND_BENCH_STARTED", time.time()))

# This file is bench/duckdb.py: with bench/ first on sys.path, `import duckdb` would import the
# file itself. Look for the package without bench/, then add bench/ back (last) for its helpers.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
try:
    import duckdb
except ImportError:
    duckdb = None
sys.path.append(HERE)
import follow  # noqa: E402  (dataset, Epochs, Ids, MIX, inject, percentile)
import reconcile  # noqa: E402  (timed_cpu)


def pinned_version():
    """The duckdb version that bench/requirements.txt pins."""
    with open(REQUIREMENTS) as f:
        for line in f:
            if line.startswith("duckdb=="):
                return line.split("==", 1)[1].strip()
    sys.exit(f"{REQUIREMENTS} pins no duckdb version")


def ensure_duckdb():
    """Re-executes this script in bench/.venv unless the pinned duckdb is importable here."""
    want = pinned_version()
    if duckdb is not None and duckdb.__version__ == want:
        return
    if os.environ.get("AMEND_BENCH_VENV") == "1":
        sys.exit(f"duckdb {want} is still not importable inside {VENV}")
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {VENV}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([python, "-c", "import duckdb; print(duckdb.__version__)"],
                           capture_output=True, text=True, cwd=ROOT)
    if probe.stdout.strip() != want:
        print(f"installing duckdb {want} into {VENV}", file=sys.stderr, flush=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", REQUIREMENTS], check=True)
    env = dict(os.environ, AMEND_BENCH_VENV="1", AMEND_BENCH_STARTED=str(STARTED))
    os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


# ---------------------------------------------------------------------------------------------
# The DuckDB job. Both variants fill a table `records(key, ts, value)` of current, non-deleted
# records (ts in epoch milliseconds); the aggregation, output and digest below are shared.

MACROS = r"""
-- Canonical decimal text (docs/format.md section 6) of a DECIMAL(38,6).
CREATE MACRO canon(d) AS
    CASE WHEN d = 0 THEN '0' ELSE rtrim(rtrim(CAST(d AS VARCHAR), '0'), '.') END;
-- Digits left-padded with zeros to at least 7 (DuckDB's lpad cuts longer strings).
CREATE MACRO pad7(p) AS CASE WHEN length(p) >= 7 THEN p ELSE lpad(p, 7, '0') END;
-- Floor division (DuckDB's // truncates towards zero).
CREATE MACRO floor_to(a, b) AS a - ((a % b) + b) % b;
-- RFC 3339 UTC with milliseconds, as amend (chrono) prints it: a year past 9999 gets a `+`.
CREATE MACRO rfc3339(ms) AS
    CASE WHEN ms >= 253402300800000 THEN '+' ELSE '' END
    || strftime(epoch_ms(ms), '%Y-%m-%dT%H:%M:%S.%gZ');
"""

# Only the strict variant needs these: docs/format.md section 1's field rules in SQL.
STRICT_MACROS = r"""
-- The contents of a JSON string (j is its JSON text, quotes included).
CREATE MACRO json_str(j) AS
    CASE WHEN contains(j, '\') THEN json_extract_string(j, '$') ELSE j[2:-2] END;
-- A JSON number's text as amend reads it at --scale 6: NULL when it has more than 6
-- significant fractional digits or does not fit. Without an exponent DuckDB's cast is exact;
-- with one, the digits are shifted as text (amend's Decimal::parse).
CREATE MACRO units_dec(s, p) AS
    TRY_CAST(s || left(p, length(p) - 6) || '.' || right(p, 6) AS DECIMAL(38,6));
CREATE MACRO dec6_shift(s, d, t, x) AS
    CASE WHEN d = '' THEN CAST(0 AS DECIMAL(38,6))
         WHEN x IS NULL OR x < -6 OR length(t) + x + 6 > 38 THEN NULL
         ELSE units_dec(s, pad7(t || repeat('0', CAST(x + 6 AS INTEGER)))) END;
CREATE MACRO dec6_exp(m) AS
    dec6_shift(m.s, ltrim(m.i || m.f, '0'), rtrim(ltrim(m.i || m.f, '0'), '0'),
               TRY_CAST(m.e AS BIGINT) - length(m.f)
               + length(ltrim(m.i || m.f, '0')) - length(rtrim(ltrim(m.i || m.f, '0'), '0')));
CREATE MACRO dec6(t) AS
    CASE WHEN regexp_full_match(t, '-?[0-9]{1,32}(\.[0-9]{1,6})?') THEN CAST(t AS DECIMAL(38,6))
         WHEN regexp_full_match(t, '-?[0-9]+(\.[0-9]*)?')
         THEN CASE WHEN length(rtrim(regexp_extract(t, '\.([0-9]*)', 1), '0')) <= 6
                   THEN TRY_CAST(t AS DECIMAL(38,6)) END
         ELSE dec6_exp(regexp_extract(t, '^(-?)([0-9]*)\.?([0-9]*)[eE]([+-]?[0-9]+)$',
                                      ['s', 'i', 'f', 'e'])) END;
-- RFC 3339 with an offset, as chrono reads it: `T`, `t` or a space; seconds 60 (a leap
-- second, 1 s after :59); any number of fractional digits, floored to the millisecond.
-- The date itself is checked by DuckDB's cast (no 30 February).
CREATE MACRO ts_parts(s) AS regexp_extract(s,
    '^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)'
    || '(\.[0-9]+)?([Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))$',
    ['date', 'h', 'mi', 'sec', 'frac', 'z', 'sign', 'oh', 'om']);
CREATE MACRO ts_ms_of(p) AS
    epoch_ms(TRY_CAST(p.date || ' ' || p.h || ':' || p.mi || ':'
                      || CASE WHEN p.sec = '60' THEN '59' ELSE p.sec END AS TIMESTAMP))
    + CASE WHEN p.sec = '60' THEN 1000 ELSE 0 END
    + CAST(substr(p.frac || '0000', 2, 3) AS BIGINT)
    - CASE WHEN p.sign = '' THEN 0
           ELSE (CASE WHEN p.sign = '-' THEN -1 ELSE 1 END)
                * (CAST(p.oh AS BIGINT) * 3600000 + CAST(p.om AS BIGINT) * 60000) END;
-- The usual form, 2026-11-20T10:15:00.000Z, without the regular expression's captures.
CREATE MACRO ts_ms(s) AS
    CASE WHEN regexp_full_match(s, '[0-9]{4}-[0-9]{2}-[0-9]{2}T'
                                   || '([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z')
         THEN epoch_ms(TRY_CAST(left(s, 23) AS TIMESTAMP))
         ELSE ts_ms_of(ts_parts(s)) END;
-- Years 1 to 9999, as amend keeps them.
CREATE MACRO in_range(ms) AS
    CASE WHEN ms BETWEEN -62135596800000 AND 253402300799999 THEN ms END;
CREATE MACRO u64(j) AS CASE WHEN regexp_full_match(j, '[0-9]+') THEN TRY_CAST(j AS UBIGINT) END;
CREATE MACRO is_number(j) AS contains('-0123456789', j[1]);
CREATE MACRO present(f) AS
    CAST(f[1] IS NOT NULL AS INTEGER) + CAST(f[2] IS NOT NULL AS INTEGER)
    + CAST(f[3] IS NOT NULL AS INTEGER) + CAST(f[4] IS NOT NULL AS INTEGER)
    + CAST(f[5] IS NOT NULL AS INTEGER) + CAST(f[6] IS NOT NULL AS INTEGER)
    + CAST(f[7] IS NOT NULL AS INTEGER) + CAST(f[8] IS NOT NULL AS INTEGER);
"""

# One file as raw lines: DuckDB's CSV reader with no quoting and a delimiter (0x01) that valid
# JSON never holds; a line that holds it gets a `rest` and is bad. Empty lines come as NULL.
# max_line_size stays at its default (2 MB): raising it makes DuckDB read a file of less than
# a few buffers on one thread.
LINES = (
    "read_csv({path}, columns = {{'text': 'VARCHAR', 'rest': 'VARCHAR'}}, header = false, "
    "delim = chr(1), quote = '', escape = '', auto_detect = false, new_line = '\\n', "
    "strict_mode = false, null_padding = true)"
)

KNOWN_FIELDS = "('id', 'key', 'ts', 'value', 'op', 'version', 'source', 'seq')"
VALUE_RAW = r"""'"value"\s*:\s*(-?[0-9][0-9.eE+-]*)'"""

# Every non-blank line of one file, checked; innermost query first. DuckDB inlines macros,
# so whatever is used more than once is computed in a query of its own.
# 1. valid JSON for serde_json: DuckDB's parser (yyjson) also takes NaN/Infinity literals and a
#    trailing comma, so a line with either outside its strings is bad; a JSON object; at most
#    1 MiB (--max-line-bytes).
# 2. the known fields' JSON texts, f[1..8], in one parse (NULL if absent).
# 3. DuckDB re-prints numbers from a double, so the value's own text is found in the line by a
#    regular expression and checked against the parsed number (no candidate: `ambiguous`); the
#    timestamp's parts; the line's colons beyond the timestamp's (more than fields: a field may
#    be there twice, which json_keys then decides).
# 4. each field's type and range. 5. the timestamp's range.
STRICT_PARSE = r"""
SELECT {file} AS file,
    ok AND id IS NOT NULL AND id <> '' AND key IS NOT NULL AND in_range(ts) IS NOT NULL
       AND value IS NOT NULL AND del IS NOT NULL AND version IS NOT NULL AND source_ok
       AND seq_ok AND NOT duplicate AS ok,
    id, key, ts, value, del, version, ambiguous
FROM (
  SELECT ok,
    CASE WHEN f[1][1] = '"' THEN json_str(f[1])
         WHEN f[1] = '0' AND negative_zero
         THEN CASE WHEN regexp_matches(text, '"id"\s*:\s*-0([^.0-9eE]|$)') THEN '-0'
                   ELSE '0' END
         WHEN regexp_full_match(f[1], '-?[0-9]+') THEN f[1] END AS id,
    CASE WHEN f[2][1] = '"' THEN json_str(f[2]) END AS key,
    CASE WHEN f[3][1] = '"' THEN ts_ms(ts_text)
         WHEN regexp_full_match(f[3], '-?[0-9]+') THEN TRY_CAST(f[3] AS BIGINT) END AS ts,
    CASE WHEN is_number(f[4]) THEN dec6(raw_value) END AS value,
    CASE WHEN f[5] IS NULL OR f[5] = 'null' OR f[5] = '"upsert"' THEN false
         WHEN f[5] = '"delete"' THEN true
         WHEN f[5][1] = '"' THEN (CASE json_str(f[5]) WHEN 'upsert' THEN false
                                                    WHEN 'delete' THEN true END)
    END AS del,
    CASE WHEN f[6] IS NULL OR f[6] = 'null' THEN CAST(0 AS UBIGINT)
         WHEN f[6] = '0' AND negative_zero
         THEN CASE WHEN regexp_matches(text, '"version"\s*:\s*-0([^.0-9eE]|$)') THEN NULL
                   ELSE CAST(0 AS UBIGINT) END
         ELSE u64(f[6]) END AS version,
    f[7] IS NULL OR f[7] = 'null' OR f[7][1] = '"' AS source_ok,
    CASE WHEN f[8] IS NULL OR f[8] = 'null' THEN true
         WHEN f[8] = '0' AND negative_zero
         THEN NOT regexp_matches(text, '"seq"\s*:\s*-0([^.0-9eE]|$)')
         ELSE u64(f[8]) IS NOT NULL END AS seq_ok,
    CASE WHEN ok AND colons > present(f)
         THEN len(list_filter(json_keys(text), lambda k: k IN {known}))
              > len(list_distinct(list_filter(json_keys(text), lambda k: k IN {known})))
         ELSE false END AS duplicate,
    is_number(f[4]) AND raw_value IS NULL AS ambiguous
  FROM (
    SELECT ok, text, f, negative_zero, ts_text, colons,
      CASE WHEN TRY_CAST(first_value AS DOUBLE) IS NOT DISTINCT FROM TRY_CAST(f[4] AS DOUBLE)
           THEN first_value
           -- Another "value" first (in a nested object): the one that is the parsed number.
           WHEN is_number(f[4])
           THEN list_distinct(list_filter(regexp_extract_all(text, {value_raw}, 1),
                lambda v: TRY_CAST(v AS DOUBLE) IS NOT DISTINCT FROM TRY_CAST(f[4] AS DOUBLE)))[1]
      END AS raw_value
    FROM (
    SELECT ok, text, f, negative_zero,
      CASE WHEN f[3][1] = '"' THEN json_str(f[3]) END AS ts_text,
      strlen(text) - strlen(replace(text, ':', ''))
          - coalesce(strlen(f[3]) - strlen(replace(f[3], ':', '')), 0) AS colons,
      CASE WHEN is_number(f[4]) THEN
        CASE WHEN strpos(text, '"value":') > 0
             THEN rtrim(split_part(substr(text, strpos(text, '"value":') + 8, 64), ',', 1),
                        '}} ' || chr(9) || chr(13))
             ELSE regexp_extract(text, {value_raw}, 1) END
      END AS first_value
    FROM (
      SELECT ok, text,
        CASE WHEN ok THEN CAST(json_extract(text, ['$.id', '$.key', '$.ts', '$.value', '$.op',
                                                   '$.version', '$.source', '$.seq'])
                               AS VARCHAR[]) END AS f,
        ok AND regexp_matches(text, '-0([^.0-9eE]|$)') AS negative_zero
      FROM (
        SELECT text,
          rest IS NULL AND strlen(text) <= 1048576 AND json_valid(text)
          AND ltrim(text, ' ' || chr(9) || chr(13)) LIKE '{{%'
          AND CASE WHEN regexp_matches(text, '(?i)nan|inf|,\s*[}}\]]')
                   THEN NOT regexp_matches(regexp_replace(text, '"(?:[^"\\]|\\.)*"', '""', 'g'),
                                           '(?i)nan|inf|,\s*[}}\]]')
                   ELSE true END AS ok
        FROM {lines}
        WHERE rest IS NOT NULL OR NOT regexp_full_match(coalesce(text, ''), '[ \t\r\n\f]*')
      )
    )
    )
  )
)
"""

STRICT_RESOLVE = """
CREATE TEMP TABLE records AS
SELECT r.key AS key, r.ts AS ts, r.value AS value FROM (
    SELECT arg_max({'key': key, 'ts': ts, 'value': value, 'del': del},
                   (CAST(version AS HUGEINT) << 40) + rowid) AS r
    FROM parsed WHERE ok GROUP BY id)
WHERE NOT r.del
"""

PLAIN_COLUMNS = ("{{'id': 'VARCHAR', 'key': 'VARCHAR', 'ts': 'TIMESTAMPTZ', "
                 "'value': 'DECIMAL(38,6)', 'op': 'VARCHAR', 'version': 'UBIGINT'}}")
PLAIN_READ = ("read_json({path}, format = 'newline_delimited', columns = " + PLAIN_COLUMNS
              + ", ignore_errors = true)")
PLAIN_FILTER = ("id IS NOT NULL AND key IS NOT NULL AND ts IS NOT NULL AND value IS NOT NULL "
                "AND (op IS NULL OR op IN ('upsert', 'delete'))")
PLAIN_RESOLVE = """
CREATE TEMP TABLE records AS
SELECT key, floor_to(epoch_us(ts), 1000) // 1000 AS ts, value FROM (
    SELECT key, ts, value, op FROM (SELECT rowid AS position, * FROM raw)
    WHERE """ + PLAIN_FILTER + """
    QUALIFY row_number() OVER (PARTITION BY id
                               ORDER BY coalesce(version, 0) DESC, position DESC) = 1)
WHERE op IS DISTINCT FROM 'delete'
"""

# The minimal job: the few lines a DuckDB user would write, with two threads, the table written
# once as CSV and no digest (its digest is computed afterwards, outside the timed process, from
# table.csv). Only equal to amend's on data without bad lines.
MINIMAL_COLUMNS = ("{{'id':'VARCHAR','key':'VARCHAR','ts':'VARCHAR','value':'DECIMAL(38,6)',"
                   "'op':'VARCHAR','version':'UBIGINT'}}")
MINIMAL = """
COPY (
  WITH cur AS (SELECT * FROM (
      SELECT 0 AS fi, row_number() OVER () AS ln, * FROM read_json({events},
          format='newline_delimited', columns=""" + MINIMAL_COLUMNS + """)
      UNION ALL
      SELECT 1, row_number() OVER (), * FROM read_json({corrections},
          format='newline_delimited', columns=""" + MINIMAL_COLUMNS + """))
    QUALIFY row_number() OVER (PARTITION BY id
                               ORDER BY coalesce(version, 0) DESC, fi DESC, ln DESC) = 1)
  SELECT (epoch_ms(try_cast(ts AS TIMESTAMPTZ)) // 60000) * 60000 AS ws, key, count(*),
         sum(value), min(value), max(value)
  FROM cur WHERE coalesce(op, 'upsert') = 'upsert' GROUP BY ALL ORDER BY 1, 2
) TO {out} (HEADER)
"""

# The table, with its decimals as canonical text: count, sum, min, max and mean = sum / count
# rounded half to even at 6 digits, from the sum's units (10^-6) as a HUGEINT.
AGGREGATE = f"""
CREATE TEMP TABLE result AS
SELECT ws, we, key, n, canon(s) AS sum_t, canon(lo) AS min_t, canon(hi) AS max_t,
       CASE WHEN mu = 0 THEN '0'
            ELSE (CASE WHEN mu < 0 THEN '-' ELSE '' END) || left(mp, -6)
                 || CASE WHEN rtrim(right(mp, 6), '0') = '' THEN ''
                         ELSE '.' || rtrim(right(mp, 6), '0') END
       END AS mean_t
FROM (
  SELECT *, pad7(mt) AS mp FROM (
    SELECT *, CAST(abs(mu) AS VARCHAR) AS mt FROM (
      SELECT *, (CASE WHEN u < 0 THEN -1 ELSE 1 END)
                * (q + CASE WHEN 2 * r > n OR (2 * r = n AND q % 2 = 1) THEN 1 ELSE 0 END) AS mu
      FROM (
        SELECT *, abs(u) // n AS q, abs(u) % n AS r FROM (
          SELECT *, CAST(replace(CAST(s AS VARCHAR), '.', '') AS HUGEINT) AS u FROM (
            SELECT ws, ws + {WINDOW_MS} AS we, key, count(*) AS n, sum(value) AS s,
                   min(value) AS lo, max(value) AS hi
            FROM (SELECT key, floor_to(ts, {WINDOW_MS}) AS ws, value FROM records)
            GROUP BY ws, key))))))
"""

SNAPSHOT = """
COPY (SELECT rfc3339(ws) AS window_start, rfc3339(we) AS window_end, key, n AS count,
             sum_t AS sum, min_t AS min, max_t AS max, mean_t AS mean
      FROM result ORDER BY ws, we, key) TO {path} (FORMAT JSON)
"""

WINDOW_DIGESTS = """
CREATE TEMP TABLE window_digests AS
SELECT ws, we, sha256(string_agg(strlen(key) || ':' || key || '|' || n || '|' || sum_t || '|'
                                 || min_t || '|' || max_t || chr(10), '' ORDER BY key)) AS d
FROM result GROUP BY ws, we
"""

TABLE_DIGEST = """
SELECT coalesce(sha256(string_agg(ws || ':' || we || ':' || d || chr(10), '' ORDER BY ws, we)),
                sha256('')), count(*)
FROM window_digests
"""


def canonical(text):
    """A DuckDB DECIMAL's text (`30.500000`) in canonical form (`30.5`)."""
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    if whole == "0" and not fraction:
        return "0"
    return ("-" if negative else "") + whole + ("." + fraction if fraction else "")


def minimal_digest(path):
    """The table digest and window count of the minimal job's table.csv (1-minute windows)."""
    windows = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for ws, key, n, total, lo, hi in rows:
            raw = key.encode()
            text = f"{len(raw)}:{key}|{n}|{canonical(total)}|{canonical(lo)}|{canonical(hi)}\n"
            windows.setdefault(int(ws), []).append((raw, text.encode()))
    table = hashlib.sha256()
    for ws in sorted(windows):
        window = hashlib.sha256()
        for _, text in sorted(windows[ws]):
            window.update(text)
        table.update(f"{ws}:{ws + WINDOW_MS}:{window.hexdigest()}\n".encode())
    return table.hexdigest(), len(windows)


def sql_str(text):
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def run_duckdb(variant, events, corrections, out, check=False):
    """The DuckDB job in this process; writes out/snapshot.jsonl and out/result.json. With
    `check`, plain also counts the records it accepts (after the job, for the smoke check)."""
    started = time.monotonic()
    con = duckdb.connect(config={"temp_directory": os.path.join(out, "duckdb.tmp")})
    con.execute("SET TimeZone = 'UTC'")
    if variant == "minimal":
        con.execute("SET threads = 2")
        con.execute(MINIMAL.format(events=sql_str(events), corrections=sql_str(corrections),
                                   out=sql_str(os.path.join(out, "table.csv"))))
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump({"variant": variant, "duckdb": duckdb.__version__,
                       "seconds": time.monotonic() - started}, f)
        return
    con.execute(MACROS)
    phases = {}
    mark = time.monotonic()
    result = {"variant": variant, "duckdb": duckdb.__version__}
    if variant == "strict":
        con.execute(STRICT_MACROS)
        for index, path in enumerate((events, corrections)):
            select = STRICT_PARSE.format(file=index, lines=LINES.format(path=sql_str(path)),
                                         known=KNOWN_FIELDS, value_raw=VALUE_RAW)
            # Inserting in order keeps rowid = position: DuckDB preserves insertion order.
            con.execute(("CREATE TEMP TABLE parsed AS " if index == 0 else
                         "INSERT INTO parsed ") + select)
        phases["read"] = time.monotonic() - mark
        mark = time.monotonic()
        con.execute(STRICT_RESOLVE)
        read, bad, ambiguous = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT ok), count(*) FILTER (WHERE ambiguous) "
            "FROM parsed").fetchone()
        result.update(records_read=read, bad_lines=bad, ambiguous=ambiguous)
    else:
        for index, path in enumerate((events, corrections)):
            select = "SELECT * FROM " + PLAIN_READ.format(path=sql_str(path))
            con.execute(("CREATE TEMP TABLE raw AS " if index == 0 else
                         "INSERT INTO raw ") + select)
        phases["read"] = time.monotonic() - mark
        mark = time.monotonic()
        con.execute(PLAIN_RESOLVE)
        result["rows_read"] = con.execute("SELECT count(*) FROM raw").fetchone()[0]
    result["records_current"] = con.execute("SELECT count(*) FROM records").fetchone()[0]
    con.execute(AGGREGATE)
    phases["resolve_aggregate"] = time.monotonic() - mark
    mark = time.monotonic()
    con.execute(SNAPSHOT.format(path=sql_str(os.path.join(out, "snapshot.jsonl"))))
    phases["write"] = time.monotonic() - mark
    mark = time.monotonic()
    con.execute(WINDOW_DIGESTS)
    digest, windows = con.execute(TABLE_DIGEST).fetchone()
    phases["digest"] = time.monotonic() - mark
    result.update(table=digest, windows=windows, phases=phases,
                  rows=con.execute("SELECT count(*) FROM result").fetchone()[0],
                  seconds=time.monotonic() - started)
    result["window_digests"] = con.execute(
        "SELECT ws, we, d FROM window_digests ORDER BY ws, we").fetchall()
    if check and variant == "plain":
        result["accepted"] = con.execute(
            f"SELECT count(*) FROM raw WHERE {PLAIN_FILTER}").fetchone()[0]
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


# ---------------------------------------------------------------------------------------------
# Runs, each a timed process.

def amend_full(amend, data, workers, work, keep=False, name=None):
    """One `amend aggregate` over the dataset; returns its figures. With `keep`, its output
    directory stays (figures["out"])."""
    out = os.path.join(work, (name or f"amend-{workers}") + ("-kept" if keep else ""))
    seconds, cpu, rss, code = reconcile.timed_cpu(
        [amend, "aggregate", "--input", os.path.join(data, "events.jsonl"),
         "--corrections", os.path.join(data, "corrections.jsonl"), "--window", "tumbling:1m",
         "--workers", str(workers), "--quiet", "--out", out])
    if code != 0:
        sys.exit(f"amend aggregate exited {code}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "digests.json")) as f:
        digests = json.load(f)
    if not keep:
        shutil.rmtree(out)
    return {"wall": seconds, "cpu": cpu, "rss": rss, "summary": summary,
            "table": digests["table"],
            "window_digests": [(w["start"], w["end"], w["digest"]) for w in digests["windows"]],
            "out": out if keep else None}


def duckdb_full(variant, events, corrections, work, keep=False, check=False):
    """One DuckDB job in a child process; returns its figures and result.json. With `keep`,
    its output directory stays (figures["out"]); `check` is run_duckdb's."""
    out = os.path.join(work, f"duckdb-{variant}" + ("-kept" if keep else ""))
    os.makedirs(out)
    seconds, cpu, rss, code = reconcile.timed_cpu(
        [sys.executable, os.path.abspath(__file__), "--run-duckdb", variant,
         "--events-file", events, "--corrections-file", corrections, "--out", out]
        + (["--check"] if check else []))
    if code != 0:
        sys.exit(f"the DuckDB {variant} job exited {code}")
    with open(os.path.join(out, "result.json")) as f:
        result = json.load(f)
    if variant == "minimal":
        result["table"], result["windows"] = minimal_digest(os.path.join(out, "table.csv"))
    if not keep:
        shutil.rmtree(out)
    return {"wall": seconds, "cpu": cpu, "rss": rss, "result": result,
            "out": out if keep else None}


def wait_loaded(epochs, proc, name, size):
    """Waits for the epoch that ends file `name` at byte `size`."""
    epochs.wait(lambda e: os.path.basename(str(e.get("source"))) == name
                and e.get("end") == size, proc)


def amend_correction(amend, data, work, workers, injections=0, gap=0.02):
    """Loads `amend aggregate --follow` with the events and an empty corrections file, appends
    the whole corrections file in one write and times it; then `injections` single corrections.
    Returns the figures."""
    events = os.path.join(data, "events.jsonl")
    corrections = os.path.join(work, "corrections.jsonl")
    open(corrections, "w").close()
    with open(os.path.join(data, "corrections.jsonl")) as f:
        text = f.read()
    out = os.path.join(work, "follow")
    cmd = [amend, "aggregate", "--follow", "--input", events, "--corrections", corrections,
           "--window", "tumbling:1m", "--workers", str(workers), "--poll-interval", "1ms",
           "--snapshot-interval", "1h", "--quiet", "--out", out]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        epochs = follow.Epochs(os.path.join(out, "epochs.jsonl"))
        wait_loaded(epochs, proc, "events.jsonl", os.path.getsize(events))
        load = time.monotonic() - started
        time.sleep(0.2)  # let the loaded process settle, as a user's would between updates
        ms = follow.inject(corrections, epochs, proc, text, "corrections.jsonl")[0]
        # follow.inject's in-process figure would also count the empty file's epoch at load.
        ours = [e for e in epochs.lines if e.get("end", 0) > e.get("start", 0)
                and os.path.basename(str(e.get("source"))) == "corrections.jsonl"]
        inproc = (follow.parse_time(ours[-1]["flushed_at"])
                  - follow.parse_time(ours[0]["read_at"])) * 1000.0
        figures = {"load_s": load, "wall_ms": ms, "latency_ms": inproc,
                   "records": sum(e.get("records", 0) for e in ours), "epochs": len(ours),
                   "lines": text.count("\n")}
        if injections:
            ids = follow.Ids(events)
            single = []
            for i in range(injections):
                time.sleep(gap)
                single.append(follow.inject(corrections, epochs, proc,
                                            ids.line(i, follow.MIX[i % len(follow.MIX)]),
                                            "corrections.jsonl")[:2])
            figures["single"] = single
    finally:
        proc.terminate()
        code = proc.wait()
    if code != 0:
        sys.exit(f"amend aggregate --follow exited {code} on SIGTERM")
    with open(os.path.join(out, "summary.json")) as f:
        figures["table"] = json.load(f).get("table_digest")
    shutil.rmtree(out)
    os.remove(corrections)
    return figures


# ---------------------------------------------------------------------------------------------
# Checks.

def first_difference(ours, theirs):
    """The first window whose digest differs, as text."""
    a = {(s, e): d for s, e, d in ours}
    b = {(s, e): d for s, e, d in theirs}
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"window {key}: duckdb {a.get(key)} amend {b.get(key)}"
    return "no window differs"


def check_strict(strict, amend_run):
    """Fails loudly unless the strict variant agrees with amend."""
    r = strict["result"]
    dead = amend_run["summary"]["records_dead_lettered"]
    if r["ambiguous"]:
        sys.exit(f"strict: {r['ambiguous']} line(s) whose value text could not be found")
    if r["bad_lines"] != dead:
        sys.exit(f"strict: {r['bad_lines']} bad lines, amend dead-lettered {dead}")
    if r["records_read"] != amend_run["summary"]["records_read"]:
        sys.exit(f"strict: {r['records_read']} records read, amend "
                 f"{amend_run['summary']['records_read']}")
    if r["table"] != amend_run["table"]:
        sys.exit(f"strict: table digest {r['table']} != amend's {amend_run['table']}; "
                 + first_difference(r["window_digests"], amend_run["window_digests"]))


PLAIN_LENIENT = {
    "string": "a value written as a JSON string is cast to DECIMAL",
    "precise": "a value with 7 or more fractional digits is rounded to 6",
    "offset": "a timestamp without an offset is read as UTC",
}


def lenient_kind(letter):
    """Which of PLAIN_LENIENT explains a dead letter that plain accepts, if any."""
    reason = letter["reason"]
    if reason.startswith("field `value` must be a JSON number, got a string"):
        return "string"
    if "significant fractional digits" in reason:
        return "precise"
    if "is not an RFC 3339 timestamp with an offset" in reason:
        ts = json.loads(letter["raw"]).get("ts")
        if isinstance(ts, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", ts):
            return "offset"
    return None


def plain_accepts(dead_letters, work, limit=2000):
    """Runs the plain variant's read and filter over amend's dead letters (the first `limit`):
    returns how many it accepts, per PLAIN_LENIENT kind (None: a kind none of them explains)."""
    with open(dead_letters) as f:
        letters = [json.loads(line) for _, line in zip(range(limit), f)]
    con = duckdb.connect()
    one = os.path.join(work, "one.jsonl")
    counts = {}
    # One query per line: ignore_errors drops lines, so rows could not be matched back.
    for letter in letters:
        with open(one, "w") as f:
            f.write(letter["raw"] + "\n")
        accepted = con.execute(f"SELECT count(*) FROM {PLAIN_READ.format(path=sql_str(one))} "
                               f"WHERE {PLAIN_FILTER}").fetchone()[0]
        if accepted:
            kind = lenient_kind(letter)
            counts[kind] = counts.get(kind, 0) + 1
    os.remove(one)
    return len(letters), counts


def edge_lines():
    """Hand-made lines, good and bad in the ways docs/format.md sections 1 and 5 name, each good one
    under its own key: amend and the strict variant must agree on every one. Lines of the
    differences listed in the module docstring are left out."""
    t = '"2026-11-20T10:15:00.000Z"'

    def rec(i, ts=t, value="1.5", extra="", rid=None, key=None):
        rid = rid if rid is not None else f'"x{i}"'
        key = key if key is not None else f'"k{i}"'
        return f'{{"id":{rid},"key":{key},"ts":{ts},"value":{value}{extra}}}'

    timestamps = [
        '"2026-11-20T10:15:00Z"', '"2026-11-20t10:15:00z"', '"2026-11-20 10:15:00Z"',
        '"2026-11-20T10:15:00+0200"', '"2026-11-20T10:15:00+02"', '"2026-11-20T10:15:60Z"',
        '"2026-11-20T10:59:60.5Z"', '"2026-11-20T24:00:00Z"', '"2026-11-20T10:15:00.9999999Z"',
        '"2026-11-20T10:15:00.Z"', '"2026-11-20T10:15Z"', '"+2026-11-20T10:15:00Z"',
        '"0000-01-01T00:00:00Z"', '"0001-01-01T00:00:00+01:00"', '"0001-01-01T00:00:00Z"',
        '"9999-12-31T23:59:59.999Z"', '"9999-12-31T23:59:59-01:00"',
        '"2026-11-20T10:15:00-00:00"', '"2026-11-20T10:15:00+24:00"',
        '"2026-11-20T10:15:00+23:59"', '"2026-1-20T10:15:00Z"', '"2026-11-20T10:15:00Z "',
        '" 2026-11-20T10:15:00Z"', '"2024-02-29T00:00:00Z"', '"2026-02-29T00:00:00Z"',
        '"2026-02-30T10:15:00.000Z"', '"2026-13-45T25:61:00.000Z"', '"yesterday"', '""',
        '"2026-11-20T10:15:00.000"', 'true', '"2026-11-20T10:15:00,5Z"',
        '"2026-11-20T10:15:00.123+05:30"', '"2026-11-20T10:15:00.5-05:30"',
        '"1969-12-31T23:59:59.9999Z"', '"2026-11-20T10:15:00.000\\u005a"', '0', '-5',
        '253402300799999', '253402300800000', '-62135596800000', '-62135596800001', '1e3',
        '1.0', '-0', '"1795169700000"', '99999999999999999999', 'null']
    values = [
        '1.50000000', '15e-1', '1e-7', '0.0000001e1', '1E2', '-0', '0e999999999',
        '1e999999999', '1e-999999999', '99999999999999999999999999999999.999999', '1.2300000',
        '0.000001', '-0.0000010', '12345678901234567.123456', '1E+2', '2.5E-6', '1.5e-7',
        '"1.5"', 'true', 'null', '[1]', '{"a":1}', '1.0000001', '-1e-6', '100e-8', '100e-9',
        '0.00000000', '00', '-', '1.e3', 'NaN', 'Infinity', '-Infinity', '1e400',
        '319.5655575', '-12.3456780']
    ids = ['42', '-0', '""', '1.5', 'true', 'null', '18446744073709551616', '"e1"', '"a\\"b"',
           '"\\u00e9"', '1e2', '[1]']
    keys = ['5', '""', 'null', '"\\u00e9t\\u00e9"', '"a\\/b"', '"k\\n"', 'true']
    extras = [
        ',"op":"Upsert"', ',"op":null', ',"op":5', ',"op":"delete"', ',"op":"upsert"',
        ',"op":"\\u0064elete"', ',"op":"merge"', ',"version":-1', ',"version":1.0',
        ',"version":"1"', ',"version":null', ',"version":18446744073709551615',
        ',"version":18446744073709551616', ',"version":1e2', ',"version":-0',
        ',"version":true', ',"source":5', ',"source":null', ',"source":"s"', ',"seq":-1',
        ',"seq":"3"', ',"seq":null', ',"seq":18446744073709551616', ',"seq":1.5', ',"seq":-0',
        ',"id":"dup"', ',"x":1,"x":2', ',"extra":NaN', ',"extra":-Infinity', ',"extra":inf',
        ',"extra":[1,2,]', ',"extra":{"value":3}', ',"extra":"NaN inf ,}"', ',',
        ',"extra":nan', ',"extra":1e400', ',"extra":[1e400]', ',"extra":0e999',
        ',"extra":123456789012345678901234567890', ',"s":"\\ud83d\\ude00"',
        ',"note":"-0,"', ',"version":0,"note":"-0"']
    lines = [rec(i, ts=v) for i, v in enumerate(timestamps)]
    lines += [rec(100 + i, value=v) for i, v in enumerate(values)]
    lines += [rec(200 + i, rid=v) for i, v in enumerate(ids)]
    lines += [rec(300 + i, key=v) for i, v in enumerate(keys)]
    lines += [rec(400 + i, extra=v) for i, v in enumerate(extras)]
    lines += [
        '{"meta":{"value":9},"id":"n1","key":"kn1","ts":' + t + ',"value":2}',
        '{"\\u0069d":"n3","key":"kn3","ts":' + t + ',"value":3}',
        '  {"id":"n4","key":"kn4","ts":' + t + ',"value":4}  ',
        '{"id" : "n5" , "key" : "kn5" , "ts" : ' + t + ' , "value" : 5 }',
        '{"id":"n6","key":"kn6","ts":' + t + ',"value":6}\r', '', '   ', '\t', 'null',
        '[1,2,3]', '5', '"str"', 'true', '{}', 'garbage', 'id,key,ts,value',
        '<html><body><h1>502 Bad Gateway</h1></body></html>',
        '{"id":"n8","key":"kn8","ts":' + t + ',"value":8} x',
        '{"id":"n9","key":"kn9","ts":' + t + ',"value":9}{"a":1}',
        '{"id":"n10","key":"kn10","ts":' + t + ',"value":10,"value":11}',
        '{"id":"n11","key":"kn11","ts":' + t + ',"value":-0.5,"note":"\\"value\\":99"}',
        '{"note":"x\\"value\\":99","id":"n12","key":"kn12","ts":' + t + ',"value":12}',
        '{"id":"n13","key":"kn13","ts":' + t + ',"value":13,"s":"\u00e9\u4e2d"}',
        '{"id":"n14","key":"kn14","ts":' + t + ',"value":14,"s":"a\x02b"}',
        '{"id":"n15","key":"kn15","ts":' + t + ',"value"  :  15.25}',
        '{"id":"n16","key":"kn16","ts":' + t + ',"value":1.5e1}',
        '{"id":"n17","key":"kn17","ts":' + t + ',"value":"1', '{"id":"n18","key":"kn1',
        # Resolution: versions, a same-version fix later in the file, deletes, integer ids.
        '{"id":"r1","key":"kr","ts":' + t + ',"value":1,"version":2}',
        '{"id":"r1","key":"kr","ts":' + t + ',"value":5,"version":1}',
        '{"id":"r1","key":"kr","ts":' + t + ',"value":7,"version":2}',
        '{"id":"r2","key":"kr","ts":' + t + ',"value":3}',
        '{"id":"r2","key":"kr","ts":' + t + ',"value":3,"op":"delete"}',
        '{"id":"r3","key":"kr","ts":' + t + ',"value":1,"op":"delete","version":1}',
        '{"id":"r3","key":"kr","ts":' + t + ',"value":4,"version":1}',
        '{"id":77,"key":"kr","ts":' + t + ',"value":8}',
        '{"id":"77","key":"kr","ts":' + t + ',"value":9}',
    ]
    corrections = [
        '{"id":"r1","key":"kr","ts":' + t + ',"value":100,"version":2}',
        '{"id":"r3","key":"kr","ts":' + t + ',"value":1,"op":"delete","version":0}',
        '{"id":"x0","key":"k0","ts":' + t + ',"value":0.25}',
        '{"id":"x1","key":"k1","ts":' + t + ',"op":"delete","value":0}',
        '{"id":"77","key":"kr","ts":' + t + ',"value":1,"version":"2"}',
    ]
    return lines, corrections


def gen(amend, events, out, bad=None):
    """`amend gen` with bench/aggregate.py's dataset parameters into `out` (and `--bad`)."""
    subprocess.run([amend, "gen", "--events", str(events), "--keys", "10000", "--span", "1d",
                    "--corrections", "0.01", "--seed", "1", "--out", out]
                   + (["--bad", str(bad)] if bad is not None else []),
                   check=True, stdout=subprocess.DEVNULL)


def same_file(a, b):
    """Whether two files hold the same bytes."""
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def smoke(amend):
    """The CI check: strict agrees with amend on a small generated dataset and on edge cases;
    plain agrees or differs only as documented; minimal agrees on data without bad lines.
    Returns the exit code."""
    started = time.monotonic()
    failures = []
    with tempfile.TemporaryDirectory(prefix="duckdb-smoke-") as work:
        data = os.path.join(work, "data")
        gen(amend, 20_000, data)
        events = os.path.join(data, "events.jsonl")
        corrections = os.path.join(data, "corrections.jsonl")
        run = amend_full(amend, data, 2, work, keep=True)
        strict = duckdb_full("strict", events, corrections, work, keep=True)
        check_strict(strict, run)
        amend_snapshot = os.path.join(run["out"], "snapshot.jsonl")
        if not same_file(os.path.join(strict["out"], "snapshot.jsonl"), amend_snapshot):
            failures.append("strict: snapshot.jsonl differs from amend's")
        print(f"strict: digest and {strict['result']['bad_lines']} bad lines equal amend's "
              f"({run['summary']['records_read']:,} records); snapshot.jsonl byte-identical",
              flush=True)
        plain = duckdb_full("plain", events, corrections, work, check=True)
        checked, counts = plain_accepts(os.path.join(run["out"], "dead_letter.jsonl"), work)
        kinds = ", ".join(f"{n} {PLAIN_LENIENT.get(k, 'of no documented kind')}"
                          for k, n in counts.items())
        if plain["result"]["table"] == run["table"]:
            print("plain: digest equals amend's", flush=True)
        else:
            print(f"plain: digest differs (of {checked} dead letters it accepts {kinds})",
                  flush=True)
            if None in counts or not counts:
                failures.append("plain: differs from amend beyond the documented kinds")
        # Nor may plain drop a record amend accepts.
        expected = run["summary"]["records_accepted"] + sum(counts.values())
        if plain["result"]["accepted"] != expected:
            failures.append(f"plain: accepts {plain['result']['accepted']} records, expected "
                            f"{expected} (amend's and the dead letters above)")

        clean = os.path.join(work, "clean-data")
        gen(amend, 20_000, clean, bad=0)
        clean_run = amend_full(amend, clean, 2, work, name="clean")
        minimal = duckdb_full("minimal", os.path.join(clean, "events.jsonl"),
                              os.path.join(clean, "corrections.jsonl"), work)
        if minimal["result"]["table"] != clean_run["table"]:
            failures.append(f"minimal: digest {minimal['result']['table']} differs from "
                            f"amend's {clean_run['table']} on data without bad lines")
        else:
            print(f"minimal: digest equals amend's on data without bad lines "
                  f"({clean_run['summary']['records_read']:,} records, "
                  f"{minimal['result']['windows']:,} windows)", flush=True)

        edge = os.path.join(work, "edge")
        os.makedirs(edge)
        lines, fixes = edge_lines()
        for name, text in (("events.jsonl", lines), ("corrections.jsonl", fixes)):
            with open(os.path.join(edge, name), "w", newline="") as f:
                f.write("".join(line + "\n" for line in text))
        edge_run = amend_full(amend, edge, 1, edge)
        edge_strict = duckdb_full("strict", os.path.join(edge, "events.jsonl"),
                                  os.path.join(edge, "corrections.jsonl"), edge)
        check_strict(edge_strict, edge_run)
        print(f"edge cases: strict agrees with amend on {len(lines) + len(fixes)} lines "
              f"({edge_run['summary']['records_dead_lettered']} bad)")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    print(f"smoke: {'FAILED' if failures else 'passed'} in {time.monotonic() - started:.1f} s "
          f"({time.time() - STARTED:.1f} s with the virtualenv check)")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------
# The benchmark.

# On the generated data: amend with 1 and 2 workers, the strict and plain DuckDB jobs and the
# correction. On the same data generated without bad lines (bench/data/N-clean): amend with 1
# and 2 workers and the minimal DuckDB job, whose digest is then checked equal to amend's.
JOBS = ["amend-1", "amend-2", "strict", "plain", "correction", "clean-1", "clean-2", "minimal"]
LABELS = {"amend-1": "amend, 1 worker", "amend-2": "amend, 2 workers",
          "strict": "DuckDB strict", "plain": "DuckDB plain",
          "clean-1": "amend, 1 worker", "clean-2": "amend, 2 workers",
          "minimal": "DuckDB minimal"}
CLEAN = ("clean-1", "clean-2", "minimal")


def stats(values):
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt(values, spec=".2f", scale=1.0):
    """`median (min–max)` of values times scale."""
    med, lo, hi = stats([v * scale for v in values])
    return f"{med:{spec}} ({lo:{spec}}–{hi:{spec}})"


def machine():
    """CPU count and model, load, versions."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "operators", "pipelines",
                            "Cargo.toml", "Cargo.lock"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {"nproc": nproc, "cpu": model, "amend": head + (" (uncommitted changes in the Rust "
                                                          "sources)" if dirty else ""),
            "duckdb": duckdb.__version__, "python": sys.version.split()[0],
            "loadavg_start": os.getloadavg()}


def clean_dataset(amend, events):
    """bench/data/N-clean: the dataset of follow.dataset without bad lines (`--bad 0`)."""
    out = os.path.join(DATA, f"{events}-clean")
    if not os.path.exists(os.path.join(out, "corrections.jsonl")):
        gen(amend, events, out, bad=0)
    return out


def run_job(job, amend, data, clean, work, args, first):
    """One run of one job."""
    if job in ("amend-1", "amend-2"):
        return amend_full(amend, data, int(job[-1]), work, keep=first)
    if job in ("clean-1", "clean-2"):
        return amend_full(amend, clean, int(job[-1]), work, name=job)
    if job == "correction":
        return amend_correction(amend, data, work, 2,
                                injections=args.injections if first else 0)
    source = clean if job == "minimal" else data
    return duckdb_full(job, os.path.join(source, "events.jsonl"),
                       os.path.join(source, "corrections.jsonl"), work)


def check_minimal(runs):
    """Every minimal run's digest equals every clean amend run's, or the benchmark stops."""
    ours = {run["table"] for job in ("clean-1", "clean-2") for run in runs.get(job, [])}
    theirs = {run["result"]["table"] for run in runs.get("minimal", [])}
    assert len(ours) <= 1, f"amend runs on the clean data disagree: {ours}"
    if ours and theirs and theirs != ours:
        sys.exit(f"the minimal DuckDB job's digest {theirs} differs from amend's {ours}")


def one_size(amend, events, args):
    """All rounds at one size; returns the raw figures."""
    jobs = list(CLEAN) if args.clean_only else JOBS
    dirty = [job for job in jobs if job not in CLEAN]
    data = follow.dataset(amend, events) if dirty else None
    clean = clean_dataset(amend, events) if len(dirty) < len(jobs) else None
    runs = {job: [] for job in jobs}
    print(f"\n{events:,} events: {data or ''} {clean or ''}", flush=True)
    with tempfile.TemporaryDirectory(dir=DATA, prefix="duckdb-run-") as work:
        for r in range(args.runs):
            order = jobs[r % len(jobs):] + jobs[:r % len(jobs)]
            for job in order:
                runs[job].append(run_job(job, amend, data, clean, work, args, r == 0))
            print(f"round {r + 1}: " + ", ".join(
                f"{job} {runs[job][-1]['wall']:.2f} s" if job != "correction" else
                f"correction {runs[job][-1]['wall_ms']:.0f} ms" for job in order), flush=True)
        check_minimal(runs)
        if not dirty:
            return {"data": clean, "runs": runs}
        tables = {run["table"] for job in ("amend-1", "amend-2") for run in runs[job]}
        assert len(tables) == 1, f"amend runs disagree: {tables}"
        # Loaded, then corrected: the same table as the batch run (unless single corrections
        # followed).
        for run in runs["correction"]:
            if "single" not in run and run["table"] not in tables:
                sys.exit(f"amend --follow after the corrections: table {run['table']}, "
                         f"batch runs {tables}")
        for run in runs["strict"]:
            check_strict(run, runs["amend-2"][0])
        plain_equal = all(run["result"]["table"] == runs["amend-2"][0]["table"]
                          for run in runs["plain"])
        plain_checked, plain_counts = (0, {}) if plain_equal else plain_accepts(
            os.path.join(runs["amend-2"][0]["out"], "dead_letter.jsonl"), work)
    for job in runs:
        for run in runs[job]:
            run.pop("window_digests", None)
            run.get("result", {}).pop("window_digests", None)
    return {"data": data, "runs": runs, "plain_equal": plain_equal,
            "plain_checked": plain_checked,
            "plain_accepts": {str(k): n for k, n in plain_counts.items()}}


def report(sizes, info, amend, args):
    """Prints the Markdown tables."""
    print(f"\nmachine: {info['nproc']} cores (nproc), {info['cpu']}; load average at start "
          f"{info['loadavg_start'][0]:.2f}, at end {info['loadavg_end'][0]:.2f}")
    print(f"versions: amend {info['amend']}, duckdb {info['duckdb']} (default threads; the "
          f"minimal job 2), python {info['python']}; {args.runs} rounds per size, "
          "configurations interleaved")
    print("\ncommands (DIR a fresh directory, N the events):\n")
    print(f"- amend: `{amend} aggregate --input bench/data/N/events.jsonl --corrections "
          "bench/data/N/corrections.jsonl --window tumbling:1m --workers W --quiet --out DIR`")
    print(f"- DuckDB: `{sys.executable} bench/duckdb.py --run-duckdb strict|plain|minimal "
          "--events-file bench/data/N/events.jsonl --corrections-file "
          "bench/data/N/corrections.jsonl --out DIR`")
    print(f"- correction: `{amend} aggregate --follow --input bench/data/N/events.jsonl "
          "--corrections EMPTY --window tumbling:1m --workers 2 --poll-interval 1ms "
          "--snapshot-interval 1h --quiet --out DIR`, then corrections.jsonl appended to EMPTY")
    print(f"- each under `/usr/bin/time -f '%U %S %M'`; data: `{amend} gen --events N --keys "
          "10000 --span 1d --corrections 0.01 --seed 1 --out bench/data/N`, and with `--bad 0` "
          "into bench/data/N-clean for the minimal job and the amend runs beside it")
    first = next(iter(sizes.values()))["runs"]
    if "minimal" in first:
        report_clean(sizes)
    if "amend-1" in first:
        report_generated(sizes)


def report_clean(sizes):
    """The tables of amend against the minimal DuckDB job, on the data without bad lines."""
    print("\n### Against the minimal DuckDB job (data without bad lines, digests equal)\n")
    print("| events | job | wall s median (min–max) | CPU s median (min–max) "
          "| peak RSS MiB median (min–max) | peak RSS B per live record |")
    print("|---|---|---|---|---|---|")
    for events, size in sizes.items():
        ids = size["runs"]["clean-1"][0]["summary"]["ids_current"]
        for job in CLEAN:
            runs = size["runs"][job]
            rss = [run["rss"] for run in runs]
            print(f"| {events:,} | {LABELS[job]} | {fmt([r['wall'] for r in runs])} "
                  f"| {fmt([r['cpu'] for r in runs])} | {fmt(rss, ',.0f', 1 / 2**20)} "
                  f"| {statistics.median(rss) / ids:,.0f} |")
    print("\n| events | amend workers | wall / minimal, per round median (min–max) "
          "| CPU / minimal | peak RSS / minimal | 2 workers / 1 worker, wall (speed-up) |")
    print("|---|---|---|---|---|---|")
    for events, size in sizes.items():
        theirs = size["runs"]["minimal"]
        one = size["runs"]["clean-1"]
        for job in ("clean-1", "clean-2"):
            ours = size["runs"][job]
            ratio = {k: [a[k] / d[k] for a, d in zip(ours, theirs)] for k in ("wall", "cpu", "rss")}
            speedup = (fmt([o["wall"] / t["wall"] for o, t in zip(one, ours)])
                       if job == "clean-2" else "")
            print(f"| {events:,} | {job[-1]} | {fmt(ratio['wall'])} | {fmt(ratio['cpu'])} "
                  f"| {fmt(ratio['rss'])} | {speedup} |")


def report_generated(sizes):
    """The tables of amend against the strict and plain DuckDB jobs, and the corrections."""
    print("\n### Full run\n")
    print("| events | job | wall s median (min–max) | records/s (median wall) "
          "| peak RSS MiB median (min–max) |")
    print("|---|---|---|---|---|")
    for events, size in sizes.items():
        read = size["runs"]["amend-1"][0]["summary"]["records_read"]
        for job in JOBS[:4]:
            runs = size["runs"][job]
            walls = [run["wall"] for run in runs]
            print(f"| {events:,} | {LABELS[job]} | {fmt(walls)} | "
                  f"{read / statistics.median(walls):,.0f} | "
                  f"{fmt([run['rss'] for run in runs], ',.0f', 1 / 2**20)} |")

    print("\n### Where DuckDB's time goes (in-process phases, median s)\n")
    print("| events | variant | read and check | resolve, aggregate, canonical text | write "
          "(COPY) | digest (SQL) | in process | process wall |")
    print("|---|---|---|---|---|---|---|---|")
    for events, size in sizes.items():
        for variant in ("strict", "plain"):
            runs = size["runs"][variant]
            phase = {k: statistics.median(r["result"]["phases"][k] for r in runs)
                     for k in ("read", "resolve_aggregate", "write", "digest")}
            print(f"| {events:,} | {variant} | {phase['read']:.2f} "
                  f"| {phase['resolve_aggregate']:.2f} | {phase['write']:.2f} "
                  f"| {phase['digest']:.2f} "
                  f"| {statistics.median(r['result']['seconds'] for r in runs):.2f} "
                  f"| {statistics.median(r['wall'] for r in runs):.2f} |")

    print("\n### amend (2 workers) / DuckDB, wall time\n")
    print("| events | DuckDB variant | per-round ratio median (min–max) | ratio of medians "
          "| peak RSS ratio of medians | digest |")
    print("|---|---|---|---|---|---|")
    for events, size in sizes.items():
        ours = size["runs"]["amend-2"]
        for variant in ("strict", "plain"):
            theirs = size["runs"][variant]
            ratios = [a["wall"] / d["wall"] for a, d in zip(ours, theirs)]
            of_medians = (statistics.median(a["wall"] for a in ours)
                          / statistics.median(d["wall"] for d in theirs))
            rss = (statistics.median(a["rss"] for a in ours)
                   / statistics.median(d["rss"] for d in theirs))
            if variant == "strict":
                digest = "equal to amend's (asserted)"
            elif size["plain_equal"]:
                digest = "equal to amend's"
            else:
                digest = "differs: " + plain_reason(size)
            print(f"| {events:,} | {variant} | {fmt(ratios)} | {of_medians:.2f} | {rss:.2f} "
                  f"| {digest} |")

    print("\n### Memory per live record (peak RSS / ids_current)\n")
    print("| events | ids_current | amend 1 worker B/id | amend 2 workers B/id "
          "| DuckDB strict B/id | DuckDB plain B/id |")
    print("|---|---|---|---|---|---|")
    for events, size in sizes.items():
        ids = size["runs"]["amend-1"][0]["summary"]["ids_current"]
        cells = [f"{statistics.median(run['rss'] for run in size['runs'][job]) / ids:,.0f}"
                 for job in JOBS[:4]]
        print(f"| {events:,} | {ids:,} | " + " | ".join(cells) + " |")

    print("\n### Correction cost: all of corrections.jsonl appended to a loaded "
          "`amend --follow` vs DuckDB recomputing\n")
    print("| events | correction lines | amend load s median | amend: ms from the write to "
          "the last epoch, median (min–max) | in process: first read to last flushed, ms "
          "median | µs per correction | DuckDB strict full run / amend correction, per round "
          "median (min–max) | DuckDB plain / amend correction | DuckDB minimal (data without "
          "bad lines) / amend correction |")
    print("|---|---|---|---|---|---|---|---|---|")
    for events, size in sizes.items():
        corr = size["runs"]["correction"]
        ms = [c["wall_ms"] for c in corr]
        lines = corr[0]["lines"]
        ratio = {v: [d["wall"] * 1000 / c["wall_ms"] for d, c in zip(size["runs"][v], corr)]
                 for v in ("strict", "plain", "minimal") if v in size["runs"]}
        minimal = fmt(ratio["minimal"], '.1f') if "minimal" in ratio else ""
        print(f"| {events:,} | {lines:,} | {statistics.median(c['load_s'] for c in corr):.2f} "
              f"| {fmt(ms, '.1f')} | {statistics.median(c['latency_ms'] for c in corr):.1f} "
              f"| {statistics.median(ms) * 1000 / lines:.1f} "
              f"| {fmt(ratio['strict'], '.1f')} | {fmt(ratio['plain'], '.1f')} | {minimal} |")

    print("\n### One correction at a time (bench/follow.py's injections, loaded process of "
          "round 1)\n")
    print("| events | corrections | wall ms p50 | wall ms p99 | wall ms max | latency_ms p50 "
          "| latency_ms p99 |")
    print("|---|---|---|---|---|---|---|")
    for events, size in sizes.items():
        single = size["runs"]["correction"][0].get("single", [])
        if not single:
            continue
        wall = [w for w, _ in single]
        inproc = [i for _, i in single]
        print(f"| {events:,} | {len(single)} | {follow.percentile(wall, 50):.2f} "
              f"| {follow.percentile(wall, 99):.2f} | {max(wall):.2f} "
              f"| {follow.percentile(inproc, 50):.2f} | {follow.percentile(inproc, 99):.2f} |")

    print("\n### Scaling (median wall s; correction in ms)\n")
    names = list(sizes)
    print("| job | " + " | ".join(f"{n:,} events" for n in names)
          + (f" | {names[-1]:,} / {names[0]:,} |" if len(names) > 1 else " |"))
    print("|---|" + "---|" * len(names) + ("---|" if len(names) > 1 else ""))
    for job in [job for job in JOBS if job in sizes[names[0]]["runs"] and job not in CLEAN]:
        key = "wall_ms" if job == "correction" else "wall"
        med = [statistics.median(r[key] for r in sizes[n]["runs"][job]) for n in names]
        label = LABELS.get(job, "amend correction (all corrections, one write)")
        print(f"| {label} | " + " | ".join(f"{m:.2f}" for m in med)
              + (f" | {med[-1] / med[0]:.2f}x |" if len(names) > 1 else " |"))
    if len(names) > 1:
        a = [statistics.median(r["wall"] for r in sizes[n]["runs"]["amend-2"]) for n in names]
        c = [statistics.median(r["wall_ms"] for r in sizes[n]["runs"]["correction"])
             * 1000 / sizes[n]["runs"]["correction"][0]["lines"] for n in names]
        print(f"\namend (2 workers) {names[0]:,} → {names[-1]:,} events: {a[-1] / a[0]:.2f}x the "
              f"time for {names[-1] / names[0]:.0f}x the events; correction cost per correction: "
              + ", ".join(f"{x:.1f} µs at {n:,}" for x, n in zip(c, names)))


def plain_reason(size):
    """Why plain's digest differs, from its run over amend's dead letters."""
    counts = size["plain_accepts"]
    parts = [f"{n} {PLAIN_LENIENT.get(k, 'of no documented kind')}" for k, n in counts.items()]
    return (f"of {size['plain_checked']:,} dead letters checked it accepts "
            + ("; ".join(parts) if parts else "none"))


def bench(amend, args):
    """Measures every size, prints the tables, writes bench/data/duckdb-results.json."""
    os.makedirs(DATA, exist_ok=True)
    info = machine()
    sizes = {}
    for events in args.events:
        sizes[events] = one_size(amend, events, args)
    info["loadavg_end"] = os.getloadavg()
    report(sizes, info, amend, args)
    for events, size in sizes.items():
        if not size.get("plain_equal", True):
            print(f"\nplain ({events:,} events): digest differs ({plain_reason(size)})")
    with open(RESULTS, "w") as f:
        json.dump({"machine": info, "amend": amend, "runs_per_size": args.runs,
                   "sizes": {str(k): v for k, v in sizes.items()}}, f, indent=1)
    print(f"\nraw results: {RESULTS}")


def main():
    """Parses the arguments; runs the benchmark, the smoke check or one DuckDB job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=5, help="rounds per size (median reported)")
    parser.add_argument("--injections", type=int, default=200,
                        help="single corrections after the first round's load")
    parser.add_argument("--amend", default=None,
                        help="an amend binary to use instead of building target/release/amend "
                        "(with --smoke: default target/debug/amend)")
    parser.add_argument("--clean-only", action="store_true",
                        help="only amend and the minimal DuckDB job on the data without bad "
                        "lines")
    parser.add_argument("--smoke", action="store_true", help="the CI check; exits 0 or 1")
    parser.add_argument("--run-duckdb", choices=["strict", "plain", "minimal"],
                        help="(internal) run one DuckDB job in this process")
    parser.add_argument("--events-file", help="(with --run-duckdb)")
    parser.add_argument("--corrections-file", help="(with --run-duckdb)")
    parser.add_argument("--out", help="(with --run-duckdb) a directory for its outputs")
    parser.add_argument("--check", action="store_true",
                        help="(with --run-duckdb plain) also count the records it accepts")
    args = parser.parse_args()
    ensure_duckdb()
    if args.run_duckdb:
        run_duckdb(args.run_duckdb, args.events_file, args.corrections_file, args.out,
                   args.check)
        return 0
    if not os.path.exists("/usr/bin/time"):
        sys.exit("bench needs GNU time: apt-get install time")
    if args.smoke:
        amend = os.path.abspath(args.amend or os.path.join(ROOT, "target", "debug", "amend"))
        return smoke(amend)
    amend = args.amend
    if amend is None:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "amend"], cwd=ROOT,
                       check=True)
        amend = AMEND
    bench(os.path.abspath(amend), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
