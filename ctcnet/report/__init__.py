"""What a person reads after a run: ``review`` writes the gallery of crops with overlays and
saliency and the static ``index.html``."""
