"""Training with Lightning: ``datamodule`` (crop folders or simulated crops, augmented by
``ctcnet.simulate.augment``), ``splits`` (the crops in memory, split by sample), ``lit``
(the thin LightningModule around the classifier), ``cli`` (LightningCLI: ``ctcnet train``,
``train.py``, ``scripts/train_default_model.py``) and ``finetune`` (a lab's crops on top of
the shipped model)."""
