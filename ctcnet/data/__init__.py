"""Package data: the default panel and taxonomy (JSON), read as resources, never imported."""

