"""Training with Lightning: ``augment`` (raw-count augmentation), ``datamodule`` (crop folders or
simulated crops, sample-level splits), ``lit`` (the thin LightningModule around the classifier)
and ``cli`` (LightningCLI: ``ctcnet train`` / ``train.py``)."""
