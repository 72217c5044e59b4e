"""The STM network, its backbones and checkpoint handling."""
from yacs.config import CfgNode

from .checkpoint import load_weights, save_weights
from .stm import STM, QueryFeatures, soft_aggregate

__all__ = ["STM", "QueryFeatures", "soft_aggregate", "load_weights", "save_weights", "build_model"]


def build_model(cfg: CfgNode, load_initial: bool = True) -> STM:
    """The STM of `cfg` (arch, keydim, valdim, backbone_weights), with `initial` loaded if set and
    `load_initial` (train.py loads the checkpoint its start decision read)."""
    model = STM(cfg.arch, cfg.keydim, cfg.valdim, cfg.backbone_weights)
    if cfg.initial and load_initial:
        load_weights(model, cfg.initial)
    return model
