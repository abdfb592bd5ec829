"""A run's events for other tools: ``event_exports`` (FCS files for gating tools and GeoJSON for
QuPath, ``ctcnet export-events``), ``fcs`` (the FCS 3.1 writer) and ``event_crops`` (chosen
events cut again from the frames: the reviewed crop dataset of ``ctcnet crops --reviewed``, and
the review server's tiles)."""
