"""Generated blocks of docs/CAPACITY.md: each benchmark script owns the text between its
`<!-- BEGIN GENERATED: NAME -->` and `<!-- END GENERATED: NAME -->` markers. Stdlib only."""
import os


def write_block(path, name, lines):
    """Replaces the block `name` of the Markdown file at `path` with `lines` (appending the
    markers at the end of the file when they are missing)."""
    begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
    text = open(path).read() if os.path.exists(path) else ""
    if begin not in text or end not in text:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    block = "\n".join(lines).rstrip("\n")
    with open(path, "w") as f:
        f.write(f"{head}{begin}\n{block}\n{end}{tail}")
