"""Rendering a compliance report (``ComplianceReport.to_json()``) as HTML and as PDF.

The HTML page comes from ``templates/compliance.html.j2`` with every value autoescaped: inline CSS, no
script and no external asset, so it reads the same offline and in an archive. The PDF is laid out with
fpdf2 (the ``pdf`` extra, imported only here) in a core font, so it embeds no font file: text outside
Latin-1 is written with the nearest Latin-1 characters (``?`` where there is none). Both show the same
sections, in ``SECTIONS`` order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jinja2

from steward.errors import InvalidInput

if TYPE_CHECKING:
    from fpdf import FPDF

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("lineage", "Lineage"),
    ("data", "Data"),
    ("policies", "Policy verdicts"),
    ("approvals", "Approvals"),
    ("audit", "Audit trail"),
)
"""The report's sections: key in ``to_json()`` and title, in document order."""
PDF_INSTALL = "pip install 'steward-ml[pdf]'"
_MAX_DETAILS = 300  # characters of an audit entry's details shown in the PDF (the JSON has them whole)
_LATIN1 = str.maketrans(
    {
        "\u2014": "-",  # em dash
        "\u2013": "-",  # en dash
        "\u2026": "...",
        "\u2190": "<-",
        "\u2192": "->",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00b7": "-",
        "\u2022": "-",
        "\u00a0": " ",
    }
)


def compact(value: Any) -> str:
    """One-line JSON of a value (keys sorted), as the report prints facts; text stays as it is."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("steward.registry", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["compact"] = compact
    return env.get_template("compliance.html.j2")


def render_html(report: Mapping[str, Any]) -> str:
    """Render ``report`` (``ComplianceReport.to_json()``) as one self-contained HTML page."""
    return _template().render(r=report, sections=SECTIONS)


# -- PDF --------------------------------------------------------------------------------------------------


def latin1(text: Any) -> str:
    """``text`` as a string a PDF core font can write (Latin-1; ``?`` for what has no equivalent)."""
    return str(text).translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _pdf_class() -> type[FPDF]:
    try:
        from fpdf import FPDF
    except ImportError:
        raise InvalidInput(
            f"PDF compliance reports need fpdf2: {PDF_INSTALL} (or ask for --format html or json)",
            {"field": "format"},
        ) from None

    class _Document(FPDF):
        footer_text = ""

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(90)
            self.cell(0, 6, f"{self.footer_text} - page {self.page_no()}/{{nb}}", align="C")

    return _Document


class _Writer:
    """The few layout moves a report needs, over one fpdf2 document."""

    def __init__(self, pdf: FPDF) -> None:
        self.pdf = pdf

    def heading(self, text: str, level: int = 1) -> None:
        pdf = self.pdf
        size = {0: 18, 1: 14, 2: 11.5, 3: 10}[level]
        if level <= 1 and pdf.get_y() > pdf.h - 50:
            pdf.add_page()
        pdf.ln(3 if level else 0)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(0, size * 0.5, latin1(text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        pdf.set_font("Helvetica", "", 9)

    def para(self, text: str, style: str = "") -> None:
        self.pdf.set_font("Helvetica", style, 9)
        self.pdf.multi_cell(0, 4.5, latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font("Helvetica", "", 9)

    def pairs(self, rows: Sequence[tuple[str, Any]]) -> None:
        self.table(("", ""), [(k, v) for k, v in rows], (45, 145), headings=False)

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        widths: Sequence[float],
        *,
        size: float = 8.5,
        headings: bool = True,
        empty: str = "None.",
    ) -> None:
        if not rows:
            self.para(empty, "I")
            return
        pdf = self.pdf
        pdf.set_font("Helvetica", "", size)
        with pdf.table(
            col_widths=tuple(widths),
            text_align="LEFT",
            line_height=size * 0.5,
            width=pdf.epw,
            first_row_as_headings=headings,
            padding=1,
        ) as table:
            if headings:
                head = table.row()
                for name in headers:
                    head.cell(latin1(name))
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(latin1("" if value is None else value))
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 9)


def render_pdf(report: Mapping[str, Any], *, compress: bool = True) -> bytes:
    """Render ``report`` (``ComplianceReport.to_json()``) as a PDF with the same sections as the HTML.

    Args:
        report: The report's JSON.
        compress: Deflate the page content (off: the text can be read in the raw bytes, for tests).

    Raises:
        InvalidInput: fpdf2 is not installed.
    """
    pdf = _pdf_class()(orientation="P", unit="mm", format="A4")
    title = f"Compliance report: {report['model']} {report['version']}"
    pdf.footer_text = latin1(title)  # type: ignore[attr-defined]
    pdf.set_compression(compress)
    pdf.set_title(latin1(title))
    pdf.set_creator("Steward")
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_margins(10, 12, 10)
    pdf.add_page()
    out = _Writer(pdf)
    out.heading(title, 0)
    out.para(
        f"Project {report['project']} - generated {report['generated_at']} by {report['generated_by']} "
        "from the records Steward keeps."
    )
    for number, (key, name) in enumerate(SECTIONS, 1):
        out.heading(f"{number}. {name}")
        _PARTS[key](out, report)
    return bytes(pdf.output())


def _summary(out: _Writer, r: Mapping[str, Any]) -> None:
    s = r["summary"]
    sig = s["signature"]
    out.pairs(
        [
            ("Model", s["model"]),
            ("Version", f"{s['version']} ({s['uri']})"),
            ("Version id", s["version_id"]),
            (
                "Status",
                s["status"]
                + (f" since {s['archived_at']}: {s['archived_reason']}" if s["archived_at"] else ""),
            ),
            ("Flavor", f"{s['flavor']} (formats: {', '.join(s['formats'])})"),
            ("Created", f"{s['created_at']} by {s['created_by'] or 'unknown'}"),
            ("Aliases", ", ".join(s["aliases"]) or "none"),
            ("Manifest SHA-256", s["manifest_digest"]),
            (
                "Signature",
                ("verified" if sig["ok"] else "DOES NOT VERIFY")
                + (f" (key {sig['key_id']})" if sig["key_id"] else ""),
            ),
            ("Description", s["description"] or "No description recorded."),
        ]
    )
    out.heading("Signature and digest checks", 2)
    out.table(
        ("Check", "Result", "Detail"),
        [(c["name"], "ok" if c["ok"] else "FAILED", c["detail"]) for c in sig["checks"]],
        (50, 20, 120),
    )
    out.heading("Bundle files", 2)
    out.table(
        ("Format", "File", "Size (bytes)", "SHA-256"),
        [(f["format"], f["path"], f["size"], f["digest"]) for f in s["files"]],
        (20, 45, 25, 100),
    )
    out.heading("Alias moves of this version", 2)
    out.table(
        ("When", "Alias", "From", "To", "By", "Reason"),
        [
            (
                e["at"],
                e["alias"],
                e["from_version"] or "-",
                e["to_version"] or "(removed)",
                e["actor"],
                e["reason"],
            )
            for e in s["alias_history"]
        ],
        (38, 22, 18, 18, 25, 69),
        empty="No alias ever pointed at this version.",
    )
    out.heading("Model card", 2)
    card = s["card"]
    if card["saved"]:
        out.para(f"Saved {card['updated_at']} by {card['updated_by']}.")
        out.pairs([(section["heading"], section["text"] or "Not provided.") for section in card["sections"]])
    else:
        out.para("No model card was saved for this version.", "B")


def _lineage(out: _Writer, r: Mapping[str, Any]) -> None:
    lineage = r["lineage"]
    run = lineage["run"]
    if run:
        commit = run["git_commit"] or "not recorded"
        if run["git_commit"]:
            commit += " (dirty: uncommitted changes)" if run["git_dirty"] else " (clean)"
        out.pairs(
            [
                ("Run", f"{run['name']} {run['id']} ({run['status']})"),
                ("Experiment", run["experiment"]),
                ("Started", f"{run['start_time']} by {run['user']}"),
                ("Entry point", run["entry_point"] or "not recorded"),
                ("Code commit", commit),
            ]
        )
        out.heading("Params", 2)
        out.table(("Param", "Value"), sorted((k, compact(v)) for k, v in run["params"].items()), (60, 130))
    else:
        out.para("No run recorded: the code and parameters behind this version are unknown.", "B")
    out.heading("Metrics", 2)
    recorded = lineage["recorded_metrics"]
    out.table(
        ("Metric", "Value", "Recorded with the version"),
        [(k, v, "yes" if k in recorded else "from the run") for k, v in sorted(lineage["metrics"].items())],
        (70, 50, 70),
    )
    out.heading("Training datasets", 2)
    rows = []
    for d in lineage["datasets"]:
        chain = " <- ".join(
            f"{link['ref']} ({link['source'].get('kind') or '?'})" for link in d.get("chain", [])
        )
        rows.append((d["role"], f"{d.get('ref', '')} {d['id']}", chain or "not a Steward dataset version"))
    out.table(
        ("Role", "Dataset version", "Derivation chain (newest first)"),
        rows,
        (25, 70, 95),
        empty="No training dataset recorded.",
    )


def _data(out: _Writer, r: Mapping[str, Any]) -> None:
    if not r["data"]:
        out.para("The version records no training dataset.", "B")
    for d in r["data"]:
        out.heading(f"{d['role']}: {d.get('ref') or d['id']}", 2)
        if not d["steward"]:
            out.para(d["note"], "B")
            continue
        out.pairs(
            [
                ("Version id", d["id"]),
                ("Rows", d["rows"]),
                ("Content SHA-256", d["content_digest"]),
                ("Published", f"{d['created_at']} by {d['created_by']}"),
                ("Chain", " <- ".join(f"{link['ref']} ({link['source'] or '?'})" for link in d["chain"])),
            ]
        )
        v = d["validation"]
        out.heading("Validation", 3)
        out.para(
            {"validated": "Validated.", "no_expectations": "No expectations set."}.get(
                v["status"], "Released from quarantine despite failed checks."
            ),
            "B",
        )
        for link in v["released"]:
            failed = ", ".join(f"{c['check']}({c['column'] or ''})" for c in link.get("failed_checks", []))
            out.para(
                f'{link["ref"]}: batch {link["batch"]} released because "{link["reason"]}"; failed: {failed}'
            )
        out.pairs(
            [
                (f"Expectations of {name}", compact(e) if e else "none")
                for name, e in sorted(v["expectations"].items())
            ]
        )
        out.para(v["note"], "I")
        out.heading("Quarantine history", 3)
        out.table(
            ("Batch", "Status", "Rows", "Held", "Resolved", "Failed checks"),
            [
                (
                    f"{b['id']} ({b['dataset']})",
                    b["status"],
                    b["rows"],
                    f"{b['created_at']} by {b['created_by']}",
                    f"{b['resolved_at']} by {b['resolved_by']}: {b['resolution']}"
                    if b["resolved_at"]
                    else "-",
                    "; ".join(
                        f"{c['check']}({c['column'] or ''}): {c['failing_rows']} rows"
                        for c in b["failed_checks"]
                    ),
                )
                for b in d["quarantine"]
            ],
            (36, 20, 12, 40, 42, 40),
            empty="No batch was ever quarantined.",
        )
        _pii(out, d["pii"])
        res = d["residency"]
        out.heading("Residency", 3)
        out.pairs(
            [
                ("Dataset region", res["dataset_region"]),
                ("Allowed regions", ", ".join(res["allowed_regions"]) or "none"),
                ("Stored in", f"{res['stored_in']} (artifact store now: {res['store_region']})"),
                ("Verdict", f"{'allowed' if res['ok'] else 'VIOLATION'}: {res['message']}"),
            ]
        )


def _pii(out: _Writer, p: Mapping[str, Any]) -> None:
    out.heading("Personal data", 3)
    out.table(
        ("Version", "Scanned", "Columns tagged"),
        [
            (
                scan["ref"],
                "yes" if scan["scanned"] else "never",
                "; ".join(f"{c}: {', '.join(t)}" for c, t in sorted(scan["columns"].items())) or "none",
            )
            for scan in p["scans"]
        ],
        (40, 20, 130),
    )
    privacy = p["privacy"]
    if privacy["applied"]:
        out.para(f"Privacy policy applied in {privacy['version']} (from {privacy['from']}):")
        out.pairs(
            [
                (verb.capitalize(), ", ".join(privacy[verb]) or "none")
                for verb in ("masked", "pseudonymised", "generalised", "dropped")
            ]
            + [("Policy", compact(privacy["policy"]))]
        )
    else:
        out.para("No privacy policy was applied along this chain.", "I")
    if p["protected"]:
        out.para("Protected: no personal data is left as it was.", "B")
    else:
        out.para(f"Unprotected: {', '.join(p['unprotected'])}", "B")


def _policies(out: _Writer, r: Mapping[str, Any]) -> None:
    if not r["policies"]:
        out.para(f"No policy in force protects an alias of {r['model']}.", "I")
    for section in r["policies"]:
        verdict = section["verdict"]
        out.heading(f"Alias {section['alias']}", 2)
        names = ", ".join(f"{p['name']} v{p['version']} ({p['digest'][:12]})" for p in section["policies"])
        counted = section["approvals_from"]
        out.para(
            f"Held by {section['held_by'] or 'no version'}. Policies in force: {names}. "
            + (
                f"Approvals counted from request {counted['request']} ({counted['status']}, "
                f"{counted['approvals']})."
                if counted
                else "No approval request for this alias."
            )
        )
        out.para(f"Verdict now: {verdict['summary']}", "B")
        out.table(
            ("Policy", "Rule", "Result", "Actual", "Required", "Why"),
            [
                (
                    line["policy"],
                    line["rule"],
                    "PASS" if line["passed"] else "FAIL",
                    compact(line["actual"]),
                    line["required"],
                    line["message"],
                )
                for line in verdict["results"]
            ],
            (22, 50, 14, 28, 34, 42),
        )


def _approvals(out: _Writer, r: Mapping[str, Any]) -> None:
    if not r["approvals"]:
        out.para("No approval was requested for this version.", "I")
    for a in r["approvals"]:
        out.heading(f"Request {a['id']}: {a['alias']} - {a['status']}", 2)
        out.pairs(
            [
                (
                    "Requested",
                    f"{a['requested_at']} by {a['requested_by']}"
                    + (f": {a['reason']}" if a["reason"] else ""),
                ),
                (
                    "Approvals",
                    f"{a['approvals']} of {a['required']} required ({', '.join(a['approvers']) or 'none'})",
                ),
                ("Policies", ", ".join(f"{p['name']} v{p['version']}" for p in a["policies"])),
                ("Resolved", a["resolved_at"] or "not yet"),
            ]
        )
        out.table(
            ("When", "Approver", "Decision", "Comment"),
            [(dec["at"], dec["approver"], dec["decision"], dec["comment"]) for dec in a["decisions"]],
            (40, 30, 20, 100),
            empty="No decision yet.",
        )


def _audit(out: _Writer, r: Mapping[str, Any]) -> None:
    audit = r["audit"]
    ver = audit["verification"]
    if ver["ok"]:
        key = f" (key {ver['key_id']})" if ver["key_id"] else ""
        signed = f"{ver['checkpoints']} signed checkpoints{key}"
        tail = f"{ver['unsigned_tail']} entries after the last checkpoint"
        out.para(f"Trail verification: ok - {ver['entries']} entries, {signed}, {tail}.", "B")
    else:
        bad = ver["first_bad"]
        out.para(f"Trail verification: BROKEN at entry {bad['seq']} ({bad['reason']}): {bad['message']}", "B")
    shown = f"; only the newest {audit['limit']} are shown" if audit["truncated"] else ""
    out.para(
        f"{len(audit['entries'])} entries about this version, its model's aliases, its approvals, run, "
        f"datasets and policies, newest first{shown}.",
        "I",
    )
    rows = []
    for e in audit["entries"]:
        details = compact(e["details"])
        if len(details) > _MAX_DETAILS:
            details = details[: _MAX_DETAILS - 3] + "..."
        rows.append(
            (
                e["seq"],
                e["at"],
                e["actor"],
                e["action"],
                f"{e['resource_kind']} {e['resource_id']}",
                e["outcome"],
                details,
            )
        )
    out.table(
        ("Seq", "When", "Actor", "Action", "Resource", "Outcome", "Details"),
        rows,
        (10, 30, 18, 27, 37, 14, 54),
        size=7,
    )


_PARTS = {
    "summary": _summary,
    "lineage": _lineage,
    "data": _data,
    "policies": _policies,
    "approvals": _approvals,
    "audit": _audit,
}
