"""Check, and refresh, the measured numbers quoted in prose (theory/*.md, README.md, the notebooks'
markdown cells) against results/*.json.

Convention. A number measured by a notebook is followed directly by an HTML comment that names the
results file and the key path, with slashes::

    103.7<!-- q1/vae/test_neg_elbo -->     round(results/q1_metrics.json["vae"]["test_neg_elbo"], 1)
    92.8 %<!-- q1/cvae/conditional_accuracy -->   the stored value times 100 (or "92.8%<!--..")
    20<!-- q1/beta_sweep/1/active_units -->   list indices are path segments
    1,000<!-- q1/vae/iwae_n_test -->          thousands separators are allowed

The first segment names the file (q1 -> results/q1_metrics.json, q2 -> results/q2_metrics.json,
beta -> results/beta_metrics.json). The number is compared after rounding the stored value to as
many decimals as are written. A sign written before the number is outside it: if the stored value is
negative, its absolute value is compared. Tagged numbers must stand in prose, not inside ``$...$``
or ``$$`` math (the comment would be part of the formula), and tags inside code spans or fenced code
are ignored.

Usage::

    python -m tools.quoted_numbers             # list every tag; exit 1 on a mismatch or missing key
    python -m tools.quoted_numbers --write     # rewrite every tagged number from the results files

``check(theory_dir, results_dir)`` returns the list of problems (empty when every tag matches);
``write(theory_dir, results_dir)`` rewrites the files and returns ``(changes, problems)``.
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every place where prose quotes measured numbers: the theory answers, the README, the notebooks'
# markdown.
PROSE = [ROOT / "theory", ROOT / "README.md", ROOT / "Q1_VAE_CVAE.ipynb", ROOT / "Q2_VQVAE.ipynb",
         ROOT / "extras" / "beta_vae_disentanglement.ipynb"]
RESULTS_FILES = {
    "q1": "q1_metrics.json",
    "q2": "q2_metrics.json",
    "beta": "beta_metrics.json",
}
# A number (optionally with thousands separators and decimals), an optional percent sign, then the
# tag.
TAG_RE = re.compile(
    r"(?P<num>(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)"
    r"(?P<pct>[ \u00a0]?%)?"
    r"<!--(?P<key>[^<>]*?)-->"
)
# Any HTML comment whose content starts with a results prefix is meant as a tag.
COMMENT_RE = re.compile(r"<!--\s*(?P<key>(?:" + "|".join(RESULTS_FILES) + r")/[^<>]*?)\s*-->")


@dataclass
class Tag:
    path: Path
    line: int
    start: int          # offset of the number in the file's text
    end: int            # offset just past the number
    text: str           # the number as written
    percent: bool
    key: str

    def where(self):
        return f"{self.path.name}:{self.line}"


def _mask_code(text):
    """The text with fenced code blocks and inline code spans blanked (same length and lines)."""
    out = list(text)

    def blank(a, b):
        for i in range(a, b):
            if out[i] != "\n":
                out[i] = " "

    for m in re.finditer(r"^```.*?^```[ \t]*$", text, flags=re.S | re.M):
        blank(m.start(), m.end())
    masked = "".join(out)
    for m in re.finditer(r"`[^`\n]*`", masked):
        blank(m.start(), m.end())
    return "".join(out)


def _math_ranges(masked):
    """(start, end) offsets of display math ($$ lines and what is between) and inline $...$."""
    ranges, offset, block_start = [], 0, None
    for line in masked.splitlines(keepends=True):
        if line.strip() == "$$":
            if block_start is None:
                block_start = offset
            else:
                ranges.append((block_start, offset + len(line)))
                block_start = None
        elif block_start is None:
            dollars = [m.start() for m in re.finditer(r"(?<!\\)\$", line)]
            for a, b in zip(dollars[0::2], dollars[1::2]):
                ranges.append((offset + a, offset + b + 1))
        offset += len(line)
    if block_start is not None:
        ranges.append((block_start, offset))
    return ranges


def markdown_files(where):
    """The files to read: a folder's *.md, a single .md or .ipynb file, or a list of either."""
    if isinstance(where, (list, tuple)):
        return [f for w in where for f in markdown_files(w)]
    where = Path(where)
    return sorted(where.glob("*.md")) if where.is_dir() else [where]


def read_prose(path):
    """A Markdown file's text; for a notebook, its markdown cells joined by blank lines (code cells
    are not prose: the numbers they print come from the run itself)."""
    path = Path(path)
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def collect(theory_dir):
    """Every tag in the Markdown files of ``theory_dir`` (see markdown_files), plus the problems
    found while reading them (misplaced tags)."""
    tags, problems = [], []
    for path in markdown_files(theory_dir):
        text = read_prose(path)
        masked = _mask_code(text)
        math = _math_ranges(masked)
        attached = set()
        for m in TAG_RE.finditer(masked):
            key = m.group("key").strip()
            if key.split("/", 1)[0] not in RESULTS_FILES:
                continue                                   # an ordinary comment after a number
            line = masked.count("\n", 0, m.start()) + 1
            tag = Tag(path, line, m.start("num"), m.end("num"), m.group("num"),
                      bool(m.group("pct")), key)
            attached.add(m.start("key") - len("<!--"))
            if any(a <= m.start() < b for a, b in math):
                problems.append(f"{tag.where()}: tagged number {tag.text} ({key}) is inside math; "
                                "write it in prose")
                continue
            tags.append(tag)
        for m in COMMENT_RE.finditer(masked):
            if m.start() not in attached:
                line = masked.count("\n", 0, m.start()) + 1
                problems.append(f"{path.name}:{line}: tag <!-- {m.group('key')} --> does not "
                                "directly follow a number")
    return tags, problems


def _load_results(results_dir):
    results = {}
    for prefix, name in RESULTS_FILES.items():
        path = Path(results_dir) / name
        if path.is_file():
            results[prefix] = json.loads(path.read_text(encoding="utf-8"))
    return results


def resolve(results, key):
    """The number stored under a slash-separated key path; raises KeyError with a reason."""
    prefix, _, rest = key.partition("/")
    if prefix not in results:
        raise KeyError(f"no results file for '{prefix}' ({RESULTS_FILES.get(prefix, '?')})")
    node, walked = results[prefix], prefix
    for segment in rest.split("/") if rest else []:
        if isinstance(node, dict):
            if segment not in node:
                raise KeyError(f"'{segment}' not found under '{walked}'")
            node = node[segment]
        elif isinstance(node, list):
            try:
                node = node[int(segment)]
            except (ValueError, IndexError):
                raise KeyError(f"'{segment}' is not an index of the list at '{walked}' "
                               f"(length {len(node)})") from None
        else:
            raise KeyError(f"'{walked}' is a value, not a dict or list")
        walked += "/" + segment
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise KeyError(f"'{walked}' is not a number ({type(node).__name__})")
    return float(node)


def _decimals(text):
    return len(text.split(".", 1)[1]) if "." in text else 0


def _written_value(text):
    return float(text.replace(",", ""))


def expected_value(tag, stored):
    """The value the tag should show: |stored| (times 100 for %), before rounding."""
    value = abs(stored)
    return value * 100 if tag.percent else value


def matches(tag, stored):
    """True if the written number is the stored value rounded to the written decimals."""
    d = _decimals(tag.text)
    error = abs(_written_value(tag.text) - expected_value(tag, stored))
    return error <= 0.5 * 10 ** -d * (1 + 1e-9) + 1e-12


def format_like(tag, stored):
    """The stored value written with the tag's decimals and thousands-separator style."""
    d = _decimals(tag.text)
    spec = f",.{d}f" if "," in tag.text else f".{d}f"
    return format(expected_value(tag, stored), spec)


def _stored_values(tags, results_dir, problems):
    """(tag, stored value) for every tag whose key exists; a missing key goes to ``problems``."""
    results = _load_results(results_dir)
    for tag in tags:
        try:
            yield tag, resolve(results, tag.key)
        except KeyError as err:
            problems.append(f"{tag.where()}: {tag.text} <!-- {tag.key} -->: missing key: "
                            f"{err.args[0]}")


def check(theory_dir, results_dir, tags=None):
    """List of problems: mismatches, missing keys, misplaced tags. Empty when every tag matches."""
    if tags is None:
        tags, problems = collect(theory_dir)
    else:
        problems = []
    for tag, stored in _stored_values(tags, results_dir, problems):
        if not matches(tag, stored):
            problems.append(f"{tag.where()}: {tag.text}{' %' if tag.percent else ''} <!-- "
                            f"{tag.key} -->: the results say {format_like(tag, stored)} (stored "
                            f"{stored!r})")
    return problems


def write(theory_dir, results_dir):
    """Rewrite every tagged number from the results. Returns (changes, problems that remain)."""
    tags, problems = collect(theory_dir)
    changes, by_file = [], {}
    for tag, stored in _stored_values(tags, results_dir, problems):
        new = format_like(tag, stored)
        if new != tag.text:
            by_file.setdefault(tag.path, []).append((tag, new))
            changes.append(f"{tag.where()}: {tag.text} -> {new} ({tag.key})")
    for path, edits in by_file.items():
        if path.suffix == ".ipynb":     # notebook prose is edited in the notebook: report only
            problems += [f"{tag.where()}: {tag.text} -> {new} ({tag.key}): edit the "
                         "notebook" for tag, new in edits]
            changes = [c for c in changes if not c.startswith(path.name + ":")]
            continue
        text = path.read_text(encoding="utf-8")
        for tag, new in sorted(edits, key=lambda e: e[0].start, reverse=True):
            text = text[:tag.start] + new + text[tag.end:]
        path.write_text(text, encoding="utf-8")
    return changes, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="rewrite every tagged number from the results")
    parser.add_argument("--theory", type=Path, nargs="+", default=PROSE,
                        help="Markdown files, folders or notebooks (default: theory/, README.md, "
                             "the notebooks)")
    parser.add_argument("--results", type=Path, default=ROOT / "results",
                        help="folder of the results JSON")
    args = parser.parse_args(argv)
    missing = [str(p) for p in [*args.theory, args.results] if not Path(p).exists()]
    if missing:
        parser.error(f"not found: {', '.join(missing)} (--theory takes Markdown files, folders or "
                     "notebooks; --results the folder of the results JSON)")

    if args.write:
        changes, problems = write(args.theory, args.results)
        for line in changes:
            print("rewrote", line)
        print(f"{len(changes)} number(s) rewritten")
    tags, read_problems = collect(args.theory)
    problems = check(args.theory, args.results, tags) + read_problems
    results = _load_results(args.results)
    for tag in tags:
        try:
            shown = format_like(tag, resolve(results, tag.key)) + (" %" if tag.percent else "")
        except KeyError:
            shown = "missing"
        print(f"{tag.where():28s} {tag.text + (' %' if tag.percent else ''):>10s}  {tag.key}  "
              f"[results: {shown}]")
    print(f"{len(tags)} tagged number(s), {len(problems)} problem(s)")
    for problem in problems:
        print("PROBLEM", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
