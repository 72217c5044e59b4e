"""Thin builders that read the config and construct data set readers."""
import os

from yacs.config import CfgNode

from libs.dataset.registry import get_dataset_class


def build_eval_dataset(cfg: CfgNode):
    """The reader of `valset` / `valsplit` under `data_root`."""
    import libs.dataset  # noqa: F401  (registers the built-in readers)

    cls = get_dataset_class(cfg.valset)
    return cls(os.path.join(cfg.data_root, cls.subdir), cfg.valsplit)
