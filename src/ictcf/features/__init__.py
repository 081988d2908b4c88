"""Feature matrices built from the patient database for the prediction models."""

from ictcf.features.cf_features import (
    CFFeature,
    FeatureMatrix,
    NormalisationPolicy,
    build_feature_matrix,
    normalise_measurements,
    select_features,
)

__all__ = [
    "CFFeature",
    "FeatureMatrix",
    "NormalisationPolicy",
    "build_feature_matrix",
    "normalise_measurements",
    "select_features",
]
