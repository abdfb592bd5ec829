"""A run's static report, drawn by predict and redrawn by the review server as decisions are
saved: ``gallery_pages`` (gallery montages with overlays and saliency), ``report_page`` (the
static ``index.html``: the run, its counts, the reviewed counts and sign-off), ``crop_set_page``
(a crop folder's page, and evaluate's), ``run_report`` (what predict is handed to draw them),
``display`` (each marker on one scale for the whole sample, and its intensity in noise units),
``reasons`` (why an event is shown to a reviewer) and ``colours`` (each marker's overlay
colour)."""
