"""ictcf: chest CT and clinical-feature resource for pneumonia and COVID-19, with HUST-19 models."""

__version__ = "0.1.0"
