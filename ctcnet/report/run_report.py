"""The report predict is handed (``PredictOptions.report``, the
:class:`~ctcnet.inference.options.RunReport` it calls): a cartridge's gallery pages
(:mod:`ctcnet.report.gallery_pages`), its ``index.html`` once the summary is final
(:mod:`ctcnet.report.report_page`), and a crop folder's page (:mod:`ctcnet.report.crop_set_page`).

Predict sits a layer below the report and reaches it through this module alone, passed in by
``ctcnet predict`` and the benchmark; a report drawn in a background process travels there by
this module's name.
"""

from __future__ import annotations

from ctcnet.report.crop_set_page import write_crop_set_page
from ctcnet.report.gallery_pages import write_gallery
from ctcnet.report.report_page import write_html

__all__ = ["write_crop_set_page", "write_gallery", "write_html"]
