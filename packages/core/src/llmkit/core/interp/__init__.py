"""Looking inside core's model: activation capture, the logit lens, linear probes and steering vectors."""

from .capture import SITES, Capture, all_keys, capture, capture_activations, site_module
from .lens import LensRow, logit_lens, top_tokens_per_layer
from .probes import ProbeResult, train_probe, train_test_split
from .statements import Statement, true_false_statements
from .steering import SteeringHandle, SteeringVector, difference_of_means, steer

__all__ = [
    "SITES",
    "Capture",
    "LensRow",
    "ProbeResult",
    "Statement",
    "SteeringHandle",
    "SteeringVector",
    "all_keys",
    "capture",
    "capture_activations",
    "difference_of_means",
    "logit_lens",
    "site_module",
    "steer",
    "top_tokens_per_layer",
    "train_probe",
    "train_test_split",
    "true_false_statements",
]
