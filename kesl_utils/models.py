"""The paper's backbones (ResNet-18, ResNet-50, MobileNetV2) from torchvision, new classifier.

All three use torchvision's standard ImageNet stem at every input size: at the quick
profile's 32 px the feature map is 1×1 before pooling, which is coarse but ~15× cheaper than
a stride-1 "CIFAR" stem, and the same network is used in every profile.

Pretrained weights are torchvision's ``IMAGENET1K_V1`` for all three backbones
(``ResNet18_Weights``, ``ResNet50_Weights``, ``MobileNet_V2_Weights``): the original
torchvision recipe of the paper's era (2020), not the later ``V2`` re-training of ResNet-50.
They are downloaded on first use into ``torch.hub.get_dir()/checkpoints``; offline, place
the file there by hand (the error says which file and where).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn

BACKBONES = ("resnet18", "resnet50", "mobilenet_v2")

_WEIGHTS = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "mobilenet_v2": ("mobilenet_v2", "MobileNet_V2_Weights"),
}


def pretrained_weights(name: str):
    """The torchvision weights enum member used for ``name`` (``IMAGENET1K_V1``)."""
    _check_name(name)
    return getattr(torchvision.models, _WEIGHTS[name][1]).IMAGENET1K_V1


def weight_file(name: str) -> Path:
    """Where torch's hub cache keeps (or expects) the pretrained weights of ``name``."""
    url = pretrained_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_model(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """Backbone ``name`` with a freshly initialised ``num_classes``-way classifier.

    Input (B, 3, H, W) → logits (B, num_classes). ``pretrained`` loads ImageNet
    ``IMAGENET1K_V1`` weights into everything but the classifier. Raises ``RuntimeError``
    naming the weight file and the folder to put it in when it cannot be downloaded.
    """
    _check_name(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}; expected a positive int")
    builder = getattr(torchvision.models, _WEIGHTS[name][0])
    if not pretrained:
        return builder(weights=None, num_classes=num_classes)

    weights = pretrained_weights(name)
    try:
        model = builder(weights=weights)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same advice
        target = weight_file(name)
        if target.is_file():
            raise  # the file is there but broken: the original error says why
        raise RuntimeError(
            f"could not download the pretrained {name} weights ({type(error).__name__}: {error}). "
            f"Download {weights.url} on a machine with network access and place the file "
            f"{target.name} in {target.parent}/ (torch.hub.get_dir()/checkpoints; "
            f"set $TORCH_HOME to use another cache), then run again."
        ) from error
    _replace_classifier(model, name, num_classes)
    return model


def _replace_classifier(model: nn.Module, name: str, num_classes: int) -> None:
    if name.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:
        old = model.classifier[-1]
        new = nn.Linear(old.in_features, num_classes)
        # torchvision's MobileNetV2 initialises its classifier this way.
        nn.init.normal_(new.weight, 0, 0.01)
        nn.init.zeros_(new.bias)
        model.classifier[-1] = new


def classifier_module(model: nn.Module) -> nn.Module:
    """The final classifier of a model from :func:`build_model` (``fc`` or ``classifier``)."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper
    for attr in ("fc", "classifier"):
        if isinstance(getattr(model, attr, None), nn.Module):
            return getattr(model, attr)
    raise ValueError(f"{type(model).__name__} has neither .fc nor .classifier")


def classifier_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the new classifier (they get the config's ``lr``)."""
    return list(classifier_module(model).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """All other parameters (they get ``lr * backbone_lr_mult``)."""
    head = {id(p) for p in classifier_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not supported; expected one of {', '.join(BACKBONES)}")
