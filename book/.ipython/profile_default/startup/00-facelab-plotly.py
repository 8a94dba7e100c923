# Used only while the book is built (book/tools/build.py sets IPYTHONDIR to book/.ipython).
# plotly 7's default renderer emits only its JSON mimetype, which the static site drops, and its
# HTML renderers load plotly.js and MathJax from CDNs. This renderer writes an HTML div that
# uses the page's shared, local plotly.min.js (added by _config.yml) and the page's own MathJax,
# and keeps the JSON mimetype too, so executed notebooks still open as live plots in JupyterLab.
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer


class _SharedPlotlyJS(MimetypeRenderer):
    def to_mimebundle(self, fig_dict):
        html = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            default_height=525,
            validate=False,
        )
        return {"text/html": html}


pio.renderers["facelab_book"] = _SharedPlotlyJS()
pio.renderers.default = "plotly_mimetype+facelab_book"
