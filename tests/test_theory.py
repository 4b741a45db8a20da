"""Checks on the written theory answers in theory/.

Structure: every answer file exists, is linked from theory/README.md, has a References section, a
takeaway and a link back to the index, and each sub-question (a heading such as "## (a) ..." or "###
(c-i) ...") opens with its answer in one bold sentence.

Length: each bold answer has at most ``MAX_OPENING_WORDS`` words, and all files together have at
most ``MAX_WORDS_OUTSIDE_DETAILS`` words outside their collapsed ``<details>`` blocks (counted like
``wc -w``).

Rendering on GitHub and in Jupyter: display math as ``$$`` on lines of their own; inside a list
item, every line of a display block indented to the item's content column (an unindented block
closes the list and restarts its numbering); balanced ``$$`` and inline ``$`` delimiters, an inline
formula never spanning two lines; none of the TeX escapes that the Markdown pass eats before the
math renderer sees them (``\\{``, ``\\\\``, ``\\,`` ...); no ``\\text`` inside a sub- or
superscript; none of the macros GitHub's math does not reliably render; no ``|`` in inline math
inside a table row.

Numbers: no placeholders; no number written right after an inline formula that ends in "=" (it reads
like an unfilled placeholder); every number tagged ``<!-- q1/... -->`` matches the results file
(``tools/quoted_numbers.py``); every decimal number in an "Evidence from the notebooks" block is
tagged.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "theory"
RESULTS = ROOT / "results"
INDEX = "README.md"
ANSWERS = [
    "T1_ae_vs_vae.md",
    "T2_ml_elbo.md",
    "T3_gaussian_latent.md",
    "T4_beta_vae.md",
    "P2_vqvae.md",
]
ALL_FILES = [INDEX] + ANSWERS
MAX_OPENING_WORDS = 32
MAX_WORDS_OUTSIDE_DETAILS = 6500

# TeX sequences that GitHub's Markdown pass turns into something else inside $...$ / $$...$$.
BAD_IN_MATH = [r"\{", r"\}", "\\\\", r"\,", r"\;", r"\!", r"\:", r"\>", r"\|", "*"]
# Macros that GitHub's math does not render reliably (optional arguments, numbering and
# cross-references, definitions, packages it does not load); write the formula another way.
UNSUPPORTED_MACROS = [
    r"\xrightarrow", r"\xleftarrow", r"\label", r"\eqref", r"\ref", r"\tag",
    r"\newcommand", r"\renewcommand", r"\def", r"\DeclareMathOperator", r"\bm", r"\mathbbm",
    r"\coloneqq", r"\eqqcolon", r"\intertext",
    r"\begin{align}", r"\begin{equation}", r"\begin{eqnarray}",
]
SUBQUESTION_RE = re.compile(r"^#{2,3} \((?:[a-z]|[a-z]-[ivx]+|[ivx]+)\)")
LIST_ITEM_RE = re.compile(r"^( *)([-*+]|\d{1,9}[.)])( +|$)")
NOTEBOOK_LINK_RE = re.compile(r"\]\((\.\./[^)#]+\.ipynb)(#[^)]*)?\)")
INTERNAL_WORDS_RE = re.compile(
    r"\b(issues?|sessions?|H100|H200|A100)\b|/work/|/home/|/tmp/|\]\(/", re.I)


def _read(name):
    return (THEORY / name).read_text(encoding="utf-8")


def _load_numbers():
    """tools/quoted_numbers.py: the one checker for theory/, the README and the notebooks' prose."""
    from tools import quoted_numbers
    return quoted_numbers


def _strip_code(text):
    """Blank out fenced code blocks and inline code spans (they may legitimately hold `$`), keeping
    lines."""
    text = re.sub(r"^```.*?^```[ \t]*$", lambda m: "\n" * m.group(0).count("\n"), text,
                  flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _split_math(text):
    """Return (display_blocks, prose_lines, errors) for a Markdown text without code.

    display_blocks: list of (line number of the opening $$, [content lines]).
    """
    display, prose, errors = [], [], []
    block = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if "$$" in line and stripped != "$$":
            errors.append(f"line {lineno}: '$$' must stand on a line of its own")
        if stripped == "$$":
            if block is None:
                block = (lineno, [])
            else:
                display.append(block)
                block = None
            continue
        if block is not None:
            block[1].append(line)
        else:
            prose.append((lineno, line))
    if block is not None:
        errors.append(f"line {block[0]}: unclosed '$$' display block")
    return display, prose, errors


def _inline_spans(line):
    """Split a prose line on unescaped `$`; return (n_delimiters, list of math spans)."""
    parts = re.split(r"(?<!\\)\$", line)
    return len(parts) - 1, parts[1::2]


def _math_chunks(text):
    """(line number, math source) for every display block and inline span of a text without code."""
    display, prose, _ = _split_math(text)
    chunks = [(start, "\n".join(lines)) for start, lines in display]
    for lineno, line in prose:
        chunks += [(lineno, span) for span in _inline_spans(line)[1]]
    return chunks


def _braced(math, start):
    """The contents of the brace group opening at math[start] == '{' (unbalanced: to the end)."""
    depth = 0
    for i in range(start, len(math)):
        if math[i] == "{" and (i == 0 or math[i - 1] != "\\"):
            depth += 1
        elif math[i] == "}" and math[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return math[start + 1:i]
    return math[start + 1:]


def _text_in_scripts(math):
    """Sub- and superscripts of a formula that contain \\text (GitHub's math fails on them)."""
    bad = []
    for m in re.finditer(r"[_^]\s*", math):
        rest = m.end()
        if math.startswith(r"\text", rest):
            bad.append(math[m.start():rest + 12])
        elif rest < len(math) and math[rest] == "{":
            group = _braced(math, rest)
            if r"\text" in group:
                bad.append(math[m.start():rest + len(group) + 2])
    return bad


def list_math_problems(text):
    """Display blocks that break the list they sit in.

    Inside a list item, every line of a $$ block must be indented to the item's content column. A
    block that is less indented closes the list; that is only acceptable when it follows a blank
    line and the list does not continue after the block (the block was moved out of the list).
    """
    problems = []
    lines = text.splitlines()
    # [(marker indent, content column)] of the open list items, innermost last
    stack = []
    prev_blank = True
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if stripped == "$$":
            end = i + 1
            while end < len(lines) and lines[end].strip() != "$$":
                end += 1
            block = lines[i:end + 1]
            if stack:
                marker, column = stack[-1]
                if indent >= column:
                    short = [i + 1 + k for k, b in enumerate(block)
                             if b.strip() and len(b) - len(b.lstrip(" ")) < column]
                    if short:
                        problems.append(f"line(s) {short}: display math inside the list item "
                                        f"at column {column} is not indented to the item's content")
                elif not prev_blank:
                    problems.append(f"line {i + 1}: '$$' right after a list item but not indented "
                                    f"to its content column {column}: "
                                    f"indent the block by {column} spaces")
                else:
                    closed = [(m, c) for m, c in stack if indent < c]
                    after = end + 1
                    while after < len(lines) and not lines[after].strip():
                        after += 1
                    nxt = lines[after] if after < len(lines) else ""
                    nxt_indent = len(nxt) - len(nxt.lstrip(" "))
                    nxt_item = LIST_ITEM_RE.match(nxt)
                    continues = (nxt_item and any(nxt_indent == m for m, _ in closed)) or \
                        (not nxt_item and nxt.strip() and any(nxt_indent >= c for _, c in closed))
                    if continues:
                        problems.append(f"line {i + 1}: this display block closes the list item, "
                                        f"which continues after it (line {after + 1}), "
                                        "so the list breaks and its numbering restarts: "
                                        f"indent the block by {column} spaces")
                    stack = [(m, c) for m, c in stack if indent >= c]
            i = end + 1
            prev_blank = False
            continue
        if not stripped:
            prev_blank = True
            i += 1
            continue
        item = LIST_ITEM_RE.match(line)
        if item:
            stack = [(m, c) for m, c in stack if m < indent]
            stack.append((indent, len(item.group(0)) if item.group(3)
                          else indent + len(item.group(2)) + 1))
        elif stack and (stripped.startswith("#") or (prev_blank and indent < stack[-1][1])):
            stack = ([(m, c) for m, c in stack if indent >= c]
                     if not stripped.startswith("#") else [])
        prev_blank = False
        i += 1
    return problems


def _details_blocks(text):
    """(first line number, lines) of every <details> ... </details> block."""
    blocks, start = [], None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("<details"):
            start = (lineno, [])
        elif line.strip().startswith("</details>") and start is not None:
            blocks.append(start)
            start = None
        elif start is not None:
            start[1].append(line)
    return blocks


# ----------------------------------------------------------------------------------------------
# structure


@pytest.mark.parametrize("name", ALL_FILES)
def test_file_exists_and_not_empty(name):
    path = THEORY / name
    assert path.is_file(), f"missing {path}"
    assert len(_read(name).strip()) > 200, f"{name} is (nearly) empty"


@pytest.mark.parametrize("name", ANSWERS)
def test_linked_from_index(name):
    index = _read(INDEX)
    assert re.search(r"\]\((\./)?" + re.escape(name) + r"(#[^)]*)?\)", index), (
        f"{name} is not linked from theory/{INDEX}"
    )


@pytest.mark.parametrize("name", ALL_FILES)
def test_has_references_section(name):
    assert re.search(r"^#{1,6}\s+References\b", _read(name), flags=re.M), (
        f"{name}: no 'References' section"
    )


@pytest.mark.parametrize("name", ANSWERS)
def test_answer_structure(name):
    text = _read(name)
    assert "Takeaway" in text, f"{name}: no one-line takeaway"
    assert "[Back to the index](README.md)" in text, f"{name}: no link back to the index"


def _openings(text):
    """(line index of the heading, heading, first paragraph joined into one line) for every
    sub-question."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not SUBQUESTION_RE.match(line):
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        paragraph = []
        while j < len(lines) and lines[j].strip():
            paragraph.append(lines[j].strip())
            j += 1
        out.append((i, line, " ".join(paragraph)))
    return out


def _words_outside_details(text):
    """Whitespace-separated words (as ``wc -w`` counts them) outside <details> ... </details>
    blocks."""
    return len(re.sub(r"<details\b.*?</details>", " ", text, flags=re.S).split())


@pytest.mark.parametrize("name", ANSWERS)
def test_subquestions_open_with_one_bold_sentence(name):
    openings = _openings(_read(name))
    assert openings, f"{name}: no sub-question headings like '## (a) ...'"
    problems = []
    for i, heading, opening in openings:
        if not (opening.startswith("**") and opening.endswith("**") and opening.count("**") == 2):
            problems.append(f"line {i + 1} ({heading}): "
                            "the first paragraph is not one bold sentence")
            continue
        # formulas hold no sentence breaks
        sentence = re.sub(r"\$[^$]*\$", "x", opening[2:-2])
        if not sentence.endswith(".") or re.search(r"[.!?] +[A-Z]", sentence[:-1]):
            problems.append(f"line {i + 1} ({heading}): "
                            "the bold answer is not exactly one sentence")
    assert not problems, f"{name}: " + "; ".join(problems)
    assert "**Intuition" not in _read(name), \
        f"{name}: answers open with the answer, not with 'Intuition'"


@pytest.mark.parametrize("name", ANSWERS)
def test_bold_answers_are_short(name):
    long = [f"line {i + 1} ({heading}): {len(opening.split())} words"
            for i, heading, opening in _openings(_read(name))
            if len(opening.split()) > MAX_OPENING_WORDS]
    assert not long, f"{name}: bold answers over {MAX_OPENING_WORDS} words: " + "; ".join(long)


def test_words_outside_details_within_budget():
    counts = {name: _words_outside_details(_read(name)) for name in ALL_FILES}
    total = sum(counts.values())
    assert total <= MAX_WORDS_OUTSIDE_DETAILS, (
        f"{total} words outside <details> blocks, more than {MAX_WORDS_OUTSIDE_DETAILS}: {counts}"
    )


def test_length_checks_count_like_wc():
    text = ("## (a) Q\n\n**One two\nthree.**\n\nBody four five.\n\n"
            "<details>\n<summary>Evidence</summary>\n\n"
            "hidden words here\n\n</details>\n\nsix\n")
    assert [len(o.split()) for _, _, o in _openings(text)] == [3]
    assert _words_outside_details(text) == 10


@pytest.mark.parametrize("name", ALL_FILES)
def test_notebook_links_point_to_files(name):
    missing = [link for link, _ in NOTEBOOK_LINK_RE.findall(_read(name))
               if not (THEORY / link).resolve().is_file()]
    assert not missing, f"{name}: links to notebooks that do not exist: {missing}"


@pytest.mark.parametrize("name", ALL_FILES)
def test_speaks_of_the_work_alone(name):
    hits = sorted({m.group(0) for m in INTERNAL_WORDS_RE.finditer(_strip_code(_read(name)))})
    assert not hits, f"{name}: mentions {hits} (issues, sessions, hardware or absolute paths)"


# ----------------------------------------------------------------------------------------------
# rendering


@pytest.mark.parametrize("name", ALL_FILES)
def test_display_math_balanced(name):
    text = _strip_code(_read(name))
    assert text.count("$$") % 2 == 0, f"{name}: odd number of '$$'"
    _, _, errors = _split_math(text)
    assert not errors, f"{name}: " + "; ".join(errors)


@pytest.mark.parametrize("name", ALL_FILES)
def test_inline_math_balanced(name):
    text = _strip_code(_read(name))
    without_display = text.replace("$$", "")
    unescaped = len(re.findall(r"(?<!\\)\$", without_display))
    assert unescaped % 2 == 0, f"{name}: odd number of inline '$' once '$$' are removed"
    _, prose, _ = _split_math(text)
    odd = [n for n, line in prose if _inline_spans(line)[0] % 2]
    assert not odd, f"{name}: inline math opened and not closed on line(s) {odd}"


@pytest.mark.parametrize("name", ALL_FILES)
def test_math_renders_on_github(name):
    text = _strip_code(_read(name))
    _, prose, _ = _split_math(text)
    problems = []
    for lineno, math in _math_chunks(text):
        for bad in BAD_IN_MATH:
            if bad in math:
                problems.append(f"line {lineno}: {bad!r} in math")
        for macro in UNSUPPORTED_MACROS:
            if re.search(re.escape(macro) + r"(?![A-Za-z])", math):
                problems.append(f"line {lineno}: {macro} does not render reliably on GitHub")
        for script in _text_in_scripts(math):
            problems.append(f"line {lineno}: \\text inside a sub- or superscript "
                            f"({script!r}); use \\mathrm")
        if re.search(r"<[A-Za-z/!]", math):
            problems.append(f"line {lineno}: '<' followed by a letter looks like HTML")
        if not math.strip():
            problems.append(f"line {lineno}: empty math")
    for lineno, line in prose:
        spans = _inline_spans(line)[1]
        for span in spans:
            if span != span.strip():
                problems.append(f"line {lineno}: inline math ${span}$ starts or ends with a space")
        if line.lstrip().startswith("|"):
            problems += [f"line {lineno}: '|' inside inline math splits the table cell"
                         for s in spans if "|" in s]
    assert not problems, f"{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", ALL_FILES)
def test_display_math_in_lists_is_indented(name):
    problems = list_math_problems(_strip_code(_read(name)))
    assert not problems, f"{name}: " + "; ".join(problems)


def test_list_math_check_catches_the_known_breakers():
    good = "1. item\n\n   $$\n   x=1\n   $$\n\n2. next\n"
    moved_out = "1. item\n2. last\n\n$$\nx=1\n$$\n\nText.\n"
    closes = "1. item\n\n$$\nx=1\n$$\n\n2. next\n"
    continued = "1. item:\n\n$$\nx=1\n$$\n\n   where x is one.\n"
    lazy = "- item\n$$\nx=1\n$$\n"
    short_content = "- item\n\n  $$\nx=1\n  $$\n"
    assert list_math_problems(good) == []
    assert list_math_problems(moved_out) == []
    for broken in (closes, continued, lazy, short_content):
        assert list_math_problems(broken), broken


def test_script_check_catches_text_in_subscripts():
    assert _text_in_scripts(r"\sum_{i\in\text{batch}}x_i")
    assert _text_in_scripts(r"x_\text{max}")
    assert not _text_in_scripts(r"\sum_{i\in\mathrm{batch}}x_i\ \text{nats}")


# ----------------------------------------------------------------------------------------------
# numbers


@pytest.mark.parametrize("name", ALL_FILES)
def test_no_placeholders(name):
    text = _read(name)
    assert "PLACEHOLDER" not in text and "[measured:" not in text, f"{name}: a placeholder is left"
    _, prose, _ = _split_math(_strip_code(text))
    loose = []
    for lineno, line in prose:
        pieces = re.split(r"(?<!\\)\$", line)
        # pieces[k] is math, pieces[k + 1] the text after it
        for k in range(1, len(pieces) - 1, 2):
            if re.search(r"(=|\\approx|\\le|\\ge|\\lt|\\gt|[<>])\s*$", pieces[k]) and \
                    re.match(r"\s*[-+]?\d", pieces[k + 1]):
                loose.append(lineno)
    assert not loose, (f"{name}: a number follows a formula ending in '=' "
                       f"(write it inside the prose) on {loose}")


def test_quoted_numbers_match_results():
    numbers = _load_numbers()
    problems = numbers.check(numbers.PROSE, RESULTS)
    assert not problems, "quoted numbers differ from the results files:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ALL_FILES)
def test_evidence_decimals_are_tagged(name):
    numbers = _load_numbers()
    untagged = []
    for start, lines in _details_blocks(_strip_code(_read(name))):
        for k, line in enumerate(lines):
            # numbers in formulas are not measured, nor are link targets
            prose = re.sub(r"(?<!\\)\$[^$]*\$", " ", line)
            prose = re.sub(r"\]\([^)]*\)", "]", prose)
            tagged = {m.start("num") for m in numbers.TAG_RE.finditer(prose)}
            for m in re.finditer(r"(?<![\w.,])\d[\d,]*\.\d+", prose):
                if m.start() not in tagged:
                    untagged.append(f"line {start + 1 + k}: {m.group(0)}")
    assert not untagged, f"{name}: measured-looking numbers without a results tag: {untagged}"


def test_numbers_checker(tmp_path):
    """tools/quoted_numbers.py on made-up files: every convention, every kind of problem, and
    --write."""
    numbers = _load_numbers()
    theory, results = tmp_path / "theory", tmp_path / "results"
    theory.mkdir()
    results.mkdir()
    (results / "q1_metrics.json").write_text(json.dumps({
        "vae": {"nll": 98.0795, "acc": 0.928, "gap": -3.858, "n": 1000},
        "sweep": [{"units": 20}, {"units": 7}],
        "flag": True,
    }))
    (results / "beta_metrics.json").write_text(
        json.dumps({"ref": {"4 of 5 (no shape)": {"h": 1.0}}}))
    good = ("NLL 98.1<!-- q1/vae/nll --> nats, accuracy 92.8 %<!-- q1/vae/acc --> "
            "or 92.8%<!-- q1/vae/acc -->,\n"
            "gap -3.86<!-- q1/vae/gap -->, n = 1,000<!-- q1/vae/n -->, "
            "units 7<!-- q1/sweep/1/units -->,\n"
            "score 1.00<!-- beta/ref/4 of 5 (no shape)/h -->, `99.9<!-- q1/vae/nll -->` is code.\n")
    (theory / "good.md").write_text(good)
    assert numbers.check(theory, results) == []
    assert len(numbers.collect(theory)[0]) == 7

    (theory / "bad.md").write_text(
        "wrong 98.2<!-- q1/vae/nll -->, missing 1<!-- q1/vae/nope -->, "
        "index 3<!-- q1/sweep/5/units -->,\n"
        "not a number 1<!-- q1/flag -->, in math $x=98.1<!-- q1/vae/nll -->$, "
        "loose <!-- q1/vae/nll -->.\n")
    problems = numbers.check(theory, results)
    assert len(problems) == 6, problems
    for needle in ("the results say 98.1", "'nope' not found", "not an index", "not a number",
                   "inside math", "does not directly follow"):
        assert any(needle in p for p in problems), (needle, problems)

    (theory / "bad.md").write_text("stale 97.0<!-- q1/vae/nll -->, 91.0 %<!-- q1/vae/acc -->, "
                                   "2,000<!-- q1/vae/n -->\n")
    changes, remaining = numbers.write(theory, results)
    assert len(changes) == 3 and remaining == []
    assert (theory / "bad.md").read_text() == (
        "stale 98.1<!-- q1/vae/nll -->, 92.8 %<!-- q1/vae/acc -->, "
        "1,000<!-- q1/vae/n -->\n")
    assert (theory / "good.md").read_text() == good
    assert numbers.check(theory, results) == []

    # a notebook's markdown cells are prose too (its code cells are not); a stale number there
    # is reported
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["NLL 98.1<!-- q1/vae/nll --> nats"]},
        {"cell_type": "code", "source": ["print('97.0<!-- q1/vae/nll -->')"]},
        {"cell_type": "markdown", "source": ["stale 97.0<!-- q1/vae/nll -->"]}]}))
    problems = numbers.check(notebook, results)
    assert len(problems) == 1 and "the results say 98.1" in problems[0], problems
    # notebooks are edited by hand, never rewritten
    assert numbers.write(notebook, results)[0] == []
