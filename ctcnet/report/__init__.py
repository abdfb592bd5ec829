"""What a person reads and decides after a run: ``review`` (gallery montages with overlays and
saliency, the static ``index.html``), ``display`` (each marker on one scale for the whole
sample, and its intensity in noise units), ``server`` + ``decisions`` + ``tiles`` (the browser
review loop, its ``review.csv`` and the tiles it cuts from the frames), ``event_crops``
(reviewed events cut again from the frames) and ``event_exports`` (a run's events as FCS files
for gating tools and GeoJSON for QuPath)."""
