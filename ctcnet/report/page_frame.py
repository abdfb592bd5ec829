"""The frame of every report page (a cartridge's index.html, a crop set's page): the head and
its style, on screen and on paper (a record's PDF: the sample and the page number on every
page, headings kept with what follows, tables whole, nothing only a screen can use), and the
line that says whether its images loaded."""

from __future__ import annotations

import html


def page_start(name: str, heading: str = "predictions") -> str:
    """A page's HTML up to its title and the line that says whether its images loaded; the
    page's content is its ``main`` landmark (a screen reader's "skip to main"), which
    :data:`PAGE_END` closes."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ctcnet: {html.escape(name)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #444; }}
.ok {{ color: #060; }} .bad {{ color: #b00; font-weight: bold; }}
.state {{ padding: 6px 10px; border: 2px solid; font-weight: bold; margin: 0.5em 0; }}
.state-failed, .state-partial, .state-sign-off-stale {{ border-color: #b00; color: #900;
  background: #fee; }}
.state-preliminary {{ border-color: #b80; color: #640; background: #ffe; }}
.state-signed-off {{ border-color: #060; color: #040; background: #efe; }}
.ruo {{ font-size: 90%; color: #444; }}
.print-only {{ display: none; }}
/* On paper (a record's PDF): the sample and the page on every page, headings kept with what
   follows, tables and boxes whole, nothing that only a screen can use. */
@page {{ margin: 14mm 12mm;
  @top-left {{ content: "{_css_string(f"ctcnet {heading}: {name}")}"; font-size: 9pt; }}
  @bottom-right {{ content: "page " counter(page) " of " counter(pages); font-size: 9pt; }} }}
@media print {{
  body {{ margin: 0; background: #fff; font-size: 10pt; }}
  .screen-only, #image-check {{ display: none; }}
  .print-only {{ display: block; }}
  h1, h2, h3 {{ break-after: avoid; }}
  table, .state, dl {{ break-inside: avoid; }}
  th, td {{ padding: 1px 5px; }}
  /* A gallery starts a page, with its heading; one gallery image fits a Letter page (its
     captions are printed in words below it). */
  section.gallery {{ break-before: page; }}
  section.gallery.empty {{ break-before: auto; }}
  /* what the review changed of the galleries' calls: on the first gallery's page */
  #reviewed-galleries {{ break-before: page; }}
  #reviewed-galleries + section.gallery {{ break-before: avoid; }}
  img {{ max-height: 215mm; width: auto !important; max-width: 100%; break-inside: avoid; }}
}}
</style></head>
<body>
<main>
<h1>ctcnet {html.escape(heading)}: {html.escape(name)}</h1>
<p id="image-check">checking images...</p>"""


def _css_string(text: str) -> str:
    """``text`` as the inside of a CSS string: its backslashes, quotes and line ends escaped
    (a sample id is the lab's), and no ``<`` to end the style element."""
    return "".join(f"\\{ord(ch):x} " if ch in '\\"\n\r<' else ch for ch in text)


IMAGE_CHECK = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  var out = document.getElementById("image-check");
  out.textContent = bad.length ? bad.length + " of " + imgs.length + " images failed to load: " +
      bad.map(function (im) { return im.getAttribute("src"); }).join(", ")
    : "all " + imgs.length + " images loaded";
  out.className = bad.length ? "bad" : "ok";
  document.body.setAttribute("data-images-ok", bad.length ? "no" : "yes");
  document.body.setAttribute("data-images-total", String(imgs.length));
});
</script>
"""
# A page's end: its main landmark closed, then the image check's script.
PAGE_END = f"</main>\n{IMAGE_CHECK}</body></html>\n"
