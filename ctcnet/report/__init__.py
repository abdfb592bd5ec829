"""What a person reads and decides after a run: ``review`` (gallery montages with overlays and
saliency, the static ``index.html``), ``server`` + ``decisions`` (the browser review loop and its
``review.csv``), ``event_crops`` (reviewed events cut again from the frames) and
``event_exports`` (a run's events as FCS files for gating tools and GeoJSON for QuPath)."""
