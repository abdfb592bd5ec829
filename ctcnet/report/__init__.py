"""What a person reads and decides after a run: ``review`` (gallery montages with overlays and
saliency, the static ``index.html``), ``server`` + ``decisions`` (the browser review loop and its
``review.csv``) and ``event_crops`` (reviewed events cut again from the frames)."""
