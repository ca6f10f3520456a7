"""The docs say what the code does: the tables of docs/ARCHITECTURE.md and docs/OPERATIONS.md
that can be read off the code are checked against it, and the docs link only inside the
repository."""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
OPS = os.path.join(ROOT, "docs", "OPERATIONS.md")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def table_rows(doc, marker):
    """The body rows (lists of cells) of the table after the <!-- marker … --> line."""
    text = read(doc)
    start = text.index("<!-- " + marker)
    end = text.index("<!-- end of " + marker, start)
    lines = [l for l in text[start:end].splitlines() if l.startswith("|")]
    return [[c.strip() for c in l.strip("|").split("|")] for l in lines[2:]]


def names(cell):
    return set(re.findall(r"`([^`]+)`", cell))


def test_options_table_is_what_options_c_says():
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "options_doc.py"), "--check",
                        OPS], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_metrics_table_names_every_metric_of_the_code_and_no_other():
    in_code = set()
    for path in glob.glob(os.path.join(ROOT, "gateway", "*", "*.c")):
        in_code |= set(re.findall(r'gw_metric_\w+\(\s*"(\w+)"', read(path)))
    in_doc = {next(iter(names(row[0]))) for row in table_rows(OPS, "metrics table")}
    assert in_code, "no metrics found in gateway/"
    assert in_doc == in_code, {"undocumented": in_code - in_doc, "gone": in_doc - in_code}


def includes(module):
    """(file, included module, header) for every #include "x/y.h" of another module."""
    found = []
    for path in glob.glob(os.path.join(ROOT, "gateway", module, "*.[ch]")):
        for other, header in re.findall(r'#include\s+"(\w+)/([\w.]+)"', read(path)):
            if other != module:
                found.append((os.path.relpath(path, ROOT), other, header))
    return found


def test_modules_include_only_the_public_headers_of_lower_layers():
    rows = {}
    for layer, module, _owns, may_use, _libs in table_rows(ARCH, "modules table"):
        rows[module.strip("`")] = (int(layer), set(re.split(r",\s*", may_use)) - {"—", "all"})
    folders = {os.path.basename(os.path.dirname(p))
               for p in glob.glob(os.path.join(ROOT, "gateway", "*", "*.h"))}
    assert folders == set(rows) - {"main.c"}, "the table and gateway/'s folders differ"
    for module in folders:
        layer, allowed = rows[module]
        for dep in allowed:
            assert rows[dep][0] < layer, "%s (layer %d) may not use %s (layer %d)" % (
                module, layer, dep, rows[dep][0])
        for path, other, header in includes(module):
            assert header == other + ".h", "%s includes %s/%s, not a public header" % (
                path, other, header)
            assert other in allowed, "%s includes %s/%s; the table does not let %s use %s" % (
                path, other, header, module, other)


def test_schema_table_names_the_tables_schema_c_creates():
    schema = read(os.path.join(ROOT, "gateway", "store", "schema.c"))
    # the tables the migrations leave, in their order: a migration that rebuilds a
    # table renames the old one, creates the new one, and drops the old one
    created = set()
    for create, old, new, drop in re.findall(
            r"CREATE TABLE (\w+)|ALTER TABLE (\w+) RENAME TO (\w+)|DROP TABLE (\w+)", schema):
        if create:
            created.add(create)
        elif old:
            created.discard(old)
            created.add(new)
        else:
            created.discard(drop)
    in_doc = {next(iter(names(row[0]))) for row in table_rows(ARCH, "schema table")}
    assert created and in_doc == created, {"undocumented": created - in_doc,
                                           "gone": in_doc - created}


def slug(heading):
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_docs_link_only_to_files_in_the_repository():
    docs = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    for doc in docs:
        text = read(doc)
        assert "../shared" not in text and "/work/" not in text, doc
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            assert not re.match(r"[a-z]+:", target), "%s links outside: %s" % (doc, target)
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            assert full.startswith(ROOT + os.sep) and os.path.exists(full), (doc, target)
            if anchor:
                headings = re.findall(r"^#+ (.+)$", read(full), re.M)
                assert anchor in {slug(h) for h in headings}, (doc, target)
