"""Sphinx extension of the book: plain-text page titles where a title holds math.

A chapter heading may carry math (``# ... and $\\mathcal{L}_\\text{simple}$``); in the page body MathJax
typesets it, but the window title, the previous/next links, the breadcrumbs and the print header show the
title as text, where LaTeX would appear raw. After Sphinx has collected a page's title, this extension
replaces a title that holds math by a plain-text one: the ``title:`` the page has in ``_toc.yml`` when there
is one (the navigation shows that title too), otherwise the title with its math turned into text
(``\\mathcal{L}_\\text{simple}`` -> ``L_simple``). The page body keeps its typeset heading.
"""
from __future__ import annotations

import re

from docutils import nodes

GREEK = {name: chr(code) for name, code in [
    ("alpha", 0x3B1), ("beta", 0x3B2), ("gamma", 0x3B3), ("delta", 0x3B4), ("epsilon", 0x3B5),
    ("eta", 0x3B7), ("theta", 0x3B8), ("lambda", 0x3BB), ("mu", 0x3BC), ("pi", 0x3C0), ("sigma", 0x3C3),
    ("tau", 0x3C4), ("phi", 0x3C6), ("omega", 0x3C9), ("Sigma", 0x3A3), ("nabla", 0x2207)]}


def latex_to_text(tex: str) -> str:
    """Readable text for a short inline formula: ``\\mathcal{L}_\\text{simple}`` -> ``L_simple``."""
    text = re.sub(r"\\(?:mathcal|mathrm|mathbf|mathit|mathsf|text|textrm|operatorname|bar|hat|tilde)\s*\{([^{}]*)\}",
                  r"\1", tex)
    text = re.sub(r"\\([A-Za-z]+)", lambda m: GREEK.get(m.group(1), m.group(1)), text)
    return re.sub(r"[{}\\]", "", text).strip()


def plain_title(title: nodes.Element) -> str:
    """The title's text with every math node replaced by :func:`latex_to_text` of its source."""
    parts = []
    for node in title.traverse(lambda n: isinstance(n, (nodes.Text, nodes.math)), include_self=False):
        if isinstance(node, nodes.math):
            parts.append(latex_to_text(node.astext()))
        elif not isinstance(node.parent, nodes.math):
            parts.append(node.astext())
    return " ".join("".join(parts).split())


def _plain_titles(app, doctree) -> None:
    env = app.env
    docname = env.docname
    title = env.titles.get(docname)
    if title is None or not any(isinstance(n, nodes.math) for n in title.traverse()):
        return
    site_map = getattr(env, "external_site_map", None)
    toc_title = None
    if site_map is not None and docname in site_map:
        toc_title = site_map[docname].title
    text = toc_title or plain_title(title)
    env.titles[docname] = nodes.title(text, text)
    env.longtitles[docname] = nodes.title(text, text)


def setup(app):
    # After Sphinx's own title collector (priority 500) has stored the page's title.
    app.connect("doctree-read", _plain_titles, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
