"""`arch`, `valset` and `trainset` are checked against the registries: one class plus one line is enough."""
import os
import subprocess
import sys

import pytest
import torch
from torchvision import models

from libs.config import load_cfg
from libs.dataset.build import check_dataset_names
from libs.dataset.folder import FolderDataset
from libs.dataset.registry import register_dataset
from libs.errors import VOSError
from libs.models import build_model
from libs.models.backbone import register_backbone


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ResNet10(models.ResNet):
    """A ResNet with one basic block per stage."""

    def __init__(self, weights=None):
        super().__init__(models.resnet.BasicBlock, [1, 1, 1, 1])


register_backbone("test_resnet10", ResNet10)


@register_dataset("TEST_MYDATA")
class MyData(FolderDataset):
    """A custom folder data set."""

    subdir = "MyData"


def test_a_registered_backbone_is_accepted_and_built():
    cfg = load_cfg(None, ["arch", "test_resnet10", "keydim", "8", "valdim", "16"])
    model = build_model(cfg).eval()
    assert model.arch == "test_resnet10"
    assert len({k.split(".")[2] for k in model.state_dict() if k.startswith("Encoder_Q.res4.")}) == 1
    with torch.no_grad():
        query = model.encode_query(torch.randn(1, 3, 32, 48))
    assert query.key.shape == (1, 8, 2, 3)


def test_a_backbone_without_imagenet_weights_says_what_to_pass():
    cfg = load_cfg(None, ["arch", "test_resnet10", "backbone_weights", "imagenet"])
    with pytest.raises(VOSError, match="arch test_resnet10 has no ImageNet weights registered; pass backbone_weights"):
        build_model(cfg)


def test_a_registered_data_set_is_accepted_for_testing_and_training():
    cfg = load_cfg(None, ["valset", "TEST_MYDATA", "trainset", "['TEST_MYDATA', 'DAVIS17']"])
    assert cfg.valset == "TEST_MYDATA" and cfg.trainset == ["TEST_MYDATA", "DAVIS17"]


@pytest.mark.parametrize("opts,message", [
    (["arch", "resnet9"], "config key 'arch' must be one of resnet18, resnet34, resnet50, resnet101"),
    (["arch", "resnet9"], "test_resnet10; got 'resnet9'"),
    (["valset", "DAVIS18"], "config key 'valset': unknown data set 'DAVIS18'; known data sets: DAVIS16, DAVIS17"),
    (["trainset", "['DAVIS17', 'VOZ']"], "config key 'trainset': unknown data set 'VOZ'"),
    (["trainset", "['DAVIS17', 'VOZ']"], "TEST_MYDATA"),
])
def test_unknown_names_list_the_registered_ones_where_the_objects_are_built(opts, message):
    """The config loads (it imports no registry); building the model or checking the data sets says which
    names are known."""
    cfg = load_cfg(None, opts)
    with pytest.raises(VOSError) as err:
        build_model(cfg) if opts[0] == "arch" else check_dataset_names(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_config_package_imports_no_registry():
    """libs.config is a leaf: importing it (in a fresh interpreter) loads no data set or model module."""
    code = ("import sys, libs.config; bad = [m for m in sys.modules if m.startswith(('libs.dataset', 'libs.models', "
            "'torch'))]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
