"""`vlens view`: one self-contained HTML page showing where a video LLM looks.

| room | what it holds |
|---|---|
| `maps` | attention maps from the answer and question rows to every video patch, reduced in the hook |
| `page_data` | what the page shows, as data, and the page rendered with it |
| `page` | the page itself: HTML, CSS and JavaScript inline |
| `view` | `view_attention(model, inputs)`, `view_run(run_dir)`, the command line |
"""

from vlens.viewer.view import view_attention, view_run

__all__ = ["view_attention", "view_run"]
