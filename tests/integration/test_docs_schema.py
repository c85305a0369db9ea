"""docs/schema.md against the live schema of a database `enmsctl migrate` built.

The parseable form the reference keeps:
- each table and view has a section headed "### `name`" (text may follow the
  name); its columns are the backticked names in the first cell of the rows
  of the section's tables whose header starts with "| column |" (one cell may
  name several: `a`, `b`);
- every index is a row of the table under "## Indexes", whose first cell is
  the index's name and second cell its table, both backticked.
The test reads information_schema and pg_indexes and fails naming every
relation, column or index missing from the document or documented but absent,
so a migration that adds a column without a doc line fails the suite."""
import os
import re

from conftest import ROOT, pg_query

DOC_PATH = os.path.join(ROOT, "docs", "schema.md")


def load_doc():
    with open(DOC_PATH, encoding="utf-8") as f:
        return f.read()


def sections(text, level):
    """[(heading text, body)] of the headings of exactly this level."""
    out, head, body = [], None, []
    for line in text.splitlines():
        m = re.match(r"^(#+) (.*)$", line)
        if m and len(m.group(1)) <= level:
            if head is not None:
                out.append((head, "\n".join(body)))
            head, body = (m.group(2) if len(m.group(1)) == level else None), []
        elif head is not None:
            body.append(line)
    if head is not None:
        out.append((head, "\n".join(body)))
    return out


def table_rows(body, header):
    """Rows (lists of cells) of the tables in body whose first header cell is header."""
    rows, in_table, after_header = [], False, False
    for line in body.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:
            in_table, after_header = cells[0] == header, True
            continue
        if after_header:  # the |---| line
            after_header = False
            continue
        rows.append(cells)
    return rows


def documented_relations(text):
    """{relation: set of documented columns}."""
    out = {}
    for head, body in sections(text, 3):
        m = re.match(r"^`(\w+)`", head)
        if not m:
            continue
        assert m.group(1) not in out, f"two sections for {m.group(1)}"
        cols = set()
        for row in table_rows(body, "column"):
            cols |= set(re.findall(r"`(\w+)`", row[0]))
        out[m.group(1)] = cols
    return out


def documented_indexes(text):
    """{index: table} from the table under '## Indexes'."""
    body = dict(sections(text, 2)).get("Indexes")
    assert body is not None, "docs/schema.md has no '## Indexes' section"
    out = {}
    for row in table_rows(body, "index"):
        name = re.fullmatch(r"`(\w+)`", row[0])
        table = re.fullmatch(r"`(\w+)`", row[1])
        assert name and table, f"index row not in the form | `name` | `table` | ...: {row}"
        assert name.group(1) not in out, f"index {name.group(1)} listed twice"
        out[name.group(1)] = table.group(1)
    return out


def live_relations(dsn):
    rows = pg_query(dsn, """
        SELECT c.table_name, c.column_name
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.table_schema = 'public' AND t.table_type IN ('BASE TABLE', 'VIEW')""")
    out = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def test_every_table_view_and_column_is_documented_and_nothing_else(migrated_db):
    live = live_relations(migrated_db)
    doc = documented_relations(load_doc())
    assert len(live) >= 15, sorted(live)  # the query works: every table and view is there
    problems = [f"relation {r} is not documented (a '### `{r}`' section with a column table)"
                for r in sorted(set(live) - set(doc))]
    problems += [f"relation {r} is documented but does not exist"
                 for r in sorted(set(doc) - set(live))]
    for r in sorted(set(live) & set(doc)):
        problems += [f"{r}.{c} is not documented" for c in sorted(live[r] - doc[r])]
        problems += [f"{r}.{c} is documented but does not exist" for c in sorted(doc[r] - live[r])]
    assert not problems, "docs/schema.md disagrees with the schema:\n" + "\n".join(problems)


def test_every_index_is_documented_and_nothing_else(migrated_db):
    live = dict(pg_query(migrated_db, "SELECT indexname, tablename FROM pg_indexes "
                                      "WHERE schemaname = 'public'"))
    doc = documented_indexes(load_doc())
    assert len(live) >= 30, live
    problems = [f"index {i} (on {live[i]}) is not in the '## Indexes' table"
                for i in sorted(set(live) - set(doc))]
    problems += [f"index {i} is documented but does not exist"
                 for i in sorted(set(doc) - set(live))]
    problems += [f"index {i} is on {live[i]}, the doc says {doc[i]}"
                 for i in sorted(set(live) & set(doc)) if live[i] != doc[i]]
    assert not problems, "docs/schema.md disagrees with the schema:\n" + "\n".join(problems)


def test_indexes_named_in_the_text_exist(migrated_db):
    # The prose names indexes too (rules, the job status section): a renamed
    # or dropped index must not linger there.
    live = {r[0] for r in pg_query(migrated_db, "SELECT indexname FROM pg_indexes "
                                                "WHERE schemaname = 'public'")}
    named = set(re.findall(r"`((?:ix|uq)_\w+)", load_doc()))
    assert named - live == set(), f"named in docs/schema.md but absent: {sorted(named - live)}"
