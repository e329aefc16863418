"""Record text is data in every output (issue 14, item 11). In leaderboard.md: raw HTML is
literal text, no kind of line break in an id, a description, a version or a reason can
end a table row or start a heading, pipes cannot add cells, a paragraph cannot open a
block, links and images are not rendered. In leaderboard.csv: a cell a spreadsheet would
run as a formula is neutralised with a leading quote, and numbers stay numbers."""

from __future__ import annotations

import csv
import re

from conftest import built, make_record, write

from benchmarks.report.build import build_leaderboard
from benchmarks.report.markdown import md_escape

BREAKS = ["\r", "\n", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def leaderboard(tmp_path, *records) -> tuple[str, list[dict]]:
    for r in records:
        write(tmp_path, r)
    paths = built(build_leaderboard(tmp_path, "t", plots=False, html=False))[0]
    with open(paths[1], newline="") as f:  # as a spreadsheet reads it: a CR is a CR
        table = list(csv.DictReader(f))
    return paths[0].read_text(), table


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_raw_html_in_record_text_is_literal_in_markdown(tmp_path):
    rec = make_record(model="mlp")
    rec["dataset"]["description"] = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"
    rec["environment"]["device"] = "<iframe src=//evil.example></iframe>"
    failed = make_record(model="boom", status="failed", reason="<b>bad</b> <a href=//x>y</a>")
    md, _ = leaderboard(tmp_path, rec, failed)
    for raw in ("<script", "<img", "<iframe", "<b>", "<a href"):
        assert raw not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x" in md
    assert "&lt;b&gt;bad&lt;/b&gt;" in md and "&lt;iframe" in md


def test_line_breaks_in_record_text_cannot_break_a_table_or_inject_a_heading(tmp_path):
    """Every line break a Markdown renderer (or str.splitlines) honours, in a
    description, a dataset version (in headings and the grid's header) and a failure
    reason (in a table cell): the page keeps its own headings only, and every table line
    keeps its header's number of cells."""
    records = []
    for i, br in enumerate(BREAKS):
        rec = make_record(dataset=f"d{i}", model="mlp", version=f"1{br}# injected v{i}")
        rec["dataset"]["description"] = f"first{br}# injected heading {i}{br}| a | b |"
        records.append(rec)
        records.append(make_record(dataset=f"d{i}", model="boom", status="failed",
                                   version=f"1{br}# injected v{i}",
                                   reason=f"boom{br}## injected {i}{br}| x | y | z |"))
    md, _ = leaderboard(tmp_path, *records)
    lines = md.splitlines()  # splits at every kind of break above
    assert not [ln for ln in lines if "injected" in ln and ln.lstrip().startswith(("#", "|"))
                and not ln.startswith(("## d", "| ", "### "))]
    headings = [ln for ln in lines if ln.startswith("#")]
    assert all(h.startswith(("# Leaderboard", "## ", "### ")) for h in headings)
    assert not [h for h in headings if re.match(r"#+ injected", h)]
    # tables: each line of a table has as many cells as its header
    table, width = [], None
    for ln in lines + [""]:
        if ln.startswith("|"):
            width = unescaped_pipes(ln) if width is None else width
            table.append(unescaped_pipes(ln) == width)
        else:
            width = None
    assert table and all(table)


def test_md_escape_keeps_ids_on_one_line_and_pipes_as_text():
    """An id reaches the tables as it stands (older records, plugins): no break survives,
    a pipe cannot add a cell, a heading marker stays inside the cell."""
    for br in BREAKS:
        out = md_escape(f"p{br}# x|y")
        assert out.splitlines() == [out] and "\\|" in out and unescaped_pipes(out) == 0


def test_a_paragraph_of_record_text_cannot_open_a_block(tmp_path):
    """A description is a paragraph of its own: it cannot start a heading, a quote, a
    list, a numbered list or a setext underline."""
    texts = {"# not a heading": "\\# not a heading", "> not a quote": "&gt; not a quote",
             "- not a list": "\\- not a list", "+ plus list": "\\+ plus list",
             "1. numbered list": "1\\. numbered list", "=== underline": "\\=== underline",
             "  ## indented": "\\## indented"}
    records = []
    for i, text in enumerate(texts):
        r = make_record(dataset=f"p{i}", model="mlp")
        r["dataset"]["description"] = text
        records.append(r)
    lines = leaderboard(tmp_path, *records)[0].splitlines()
    for text, escaped in texts.items():
        assert escaped in lines and text.strip() not in lines


def test_links_and_images_in_record_text_are_not_rendered(tmp_path):
    rec = make_record(model="mlp")
    rec["dataset"]["description"] = ("![pixel](http://evil.example/p.png) "
                                     "[click](javascript:alert(1)) <http://evil.example>")
    md, _ = leaderboard(tmp_path, rec)
    assert not re.search(r"(?<!\\)\]\(", md)  # no link or image syntax left intact
    assert "<http" not in md and "\\[click\\]" in md


def test_csv_formula_cells_are_neutralised_and_numbers_stay_numbers(tmp_path):
    """OWASP: a cell starting with =, +, -, @, tab or CR is prefixed with a single quote.
    Record text reaches the CSV through the model name, the dataset version and the
    names of secondary metrics; numbers (a negative R^2) must stay numbers."""
    payloads = {"formula": '=HYPERLINK("http://evil.example","click")', "plus": "+1+1",
                "minus": "-2+3", "at": "@SUM(A1:A9)", "tab": "\t=1+1", "cr": "\r=1+1"}
    records = []
    for model, text in payloads.items():
        r = make_record(model=model, test=-0.5, metric="r2")
        r["model"]["name"] = text
        records.append(r)
    odd = make_record(dataset="sums", model="m", test=0.25, version="+1+1")
    odd["metrics"]["test"]["@SUM(A1)"] = 0.5
    records.append(odd)
    _, rows = leaderboard(tmp_path, *records)
    names = {r["model"]: r["model_name"] for r in rows if r["dataset"] == "parity"}
    # a CR inside a cell is written as LF, which the CSV quotes (a bare CR would end the row)
    assert names == {m: "'" + t.replace("\r", "\n") for m, t in payloads.items()}
    assert len(rows) == len(payloads) + 1  # every row parsed as one row
    sums = next(r for r in rows if r["dataset"] == "sums")
    assert sums["dataset_version"] == "'+1+1" and sums["secondary"].startswith("'@SUM(A1)=")
    parity = next(r for r in rows if r["model"] == "minus")
    assert parity["test_mean"] == "-0.500000" and float(parity["test_mean"]) == -0.5
    assert parity["n_seeds"] == "1" and parity["seeds"] == "0"
    for r in rows:  # no other cell of any row starts like a formula
        for key, value in r.items():
            if value[:1] in ("=", "+", "@", "\t", "\r") or (
                    value[:1] == "-" and not re.fullmatch(r"-[0-9.]+(e-?[0-9]+)?", value)):
                raise AssertionError(f"{key} = {value!r}")
