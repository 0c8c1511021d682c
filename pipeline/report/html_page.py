"""reports/report.md as one page to open: the same text, its figures inside it, nothing fetched.

The markdown is the report (it diffs well in git); this renders it as CommonMark with GitHub's
pipe tables, as GitHub shows it, and puts every figure it links to into the page as a data: URI,
so report.html can be mailed, archived or opened offline and still shows everything.
"""
import base64
import html
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt

from pipeline import PipelineError
from pipeline.files import write_text

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2328;
       max-width: 1280px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.7em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #d0d7de; padding-bottom: .25em; margin-top: 2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
code { font: .88em ui-monospace, "DejaVu Sans Mono", monospace; background: #f2f4f7; padding: .1em .3em;
       border-radius: 4px; overflow-wrap: anywhere; }
pre { background: #f6f8fa; padding: 12px 16px; border-radius: 6px; overflow-x: auto; }
pre code { background: none; padding: 0; }
.table { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: .9em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; }
td { white-space: nowrap; }  /* a number and its spread or interval stay on one line */
th { background: #f2f4f7; text-align: left; vertical-align: bottom; }
tbody tr:nth-child(even) { background: #f8f9fb; }
tbody tr:hover { background: #eef4ff; }
body > .table:first-of-type tbody tr:first-child { font-weight: 600; }  /* the comparison's chosen row */
img { max-width: 100%; height: auto; display: block; margin: 12px 0; }
/* Figures of one paragraph (the other rows' confusion matrices): two or more a line. */
p:has(> img + img) { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0 16px; }
p:has(> img + img) > img { max-width: calc(50% - 8px); }
li { margin: .15em 0; }
"""


def render(markdown, folder, title):
    """The whole page, as text: `markdown` rendered, each image it links to (relative to `folder`) inlined."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")  # folder names are text, never markup
    # Wide tables scroll on their own instead of widening the page.
    parser.renderer.rules["table_open"] = lambda *args: '<div class="table"><table>\n'
    parser.renderer.rules["table_close"] = lambda *args: "</table></div>\n"
    tokens = parser.parse(markdown)
    for token in tokens:
        for child in token.children or ():
            if child.type == "image":
                # The parser percent-encodes a name (curve_é.png); the file has it as it is.
                child.attrSet("src", data_uri(Path(folder) / unquote(child.attrGet("src"))))
    body = parser.renderer.render(tokens, parser.options, {})
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def data_uri(path):
    """The file's bytes as a data: URI; a figure the text names but the folder lacks is an error."""
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        raise PipelineError(f"the report shows {path}, which is {'missing' if kind else 'not an image'}: "
                            "run `dvc repro` to write the report again")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def write(markdown_file, html_file, title):
    """Render `markdown_file` (its figures beside it) to `html_file`; return the path written."""
    markdown_file = Path(markdown_file)
    write_text(html_file, render(markdown_file.read_text(), markdown_file.parent, title))
    return Path(html_file)
