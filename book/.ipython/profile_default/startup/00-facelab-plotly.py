# Used only while the book is built (book/tools/build.py sets IPYTHONDIR to book/.ipython).
# plotly 7's default renderer emits only its JSON mimetype, which the static site drops, and its
# HTML renderers load plotly.js and MathJax from CDNs. This renderer writes an HTML div that
# uses the page's shared, local plotly.min.js (added by _config.yml) and the page's own MathJax,
# and keeps the JSON mimetype too, so executed notebooks still open as live plots in JupyterLab.
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer


class _SharedPlotlyJS(MimetypeRenderer):
    # Never animate on load (plotly's to_html default is auto_play=True, which plays every
    # slider figure to its last frame); facelab.viz.frame_slider figures pass auto_play=False
    # too. book/tools/check_html.py fails the build if a page calls Plotly.animate on load.
    auto_play = False
    config = {"displaylogo": False}

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            default_height=525,
            validate=False,
            auto_play=self.auto_play,
            config=self.config,
        )
        return {"text/html": html}


pio.renderers["facelab_book"] = _SharedPlotlyJS()
pio.renderers.default = "plotly_mimetype+facelab_book"
