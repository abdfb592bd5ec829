"""ctcnet: find and type circulating tumour cells in multichannel fluorescence scans."""

__version__ = "0.1.0"
