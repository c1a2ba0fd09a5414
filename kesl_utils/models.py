"""The backbones of the registry (:data:`kesl_utils.names.BACKBONES`), each with a new classifier.

A backbone is one :class:`~kesl_utils.names.BackboneSpec` entry: its builder, its ImageNet weights
and the path of its classifier head, written as import strings that this module resolves when a
model is built (so that the registry, and ``Config`` validation, stay torch-free).

The paper's three backbones (ResNet-18, ResNet-50, MobileNetV2) come from torchvision and use its
standard ImageNet stem at every input size: at the quick profile's 32 px the feature map is 1×1
before pooling, which is coarse but ~15× cheaper than a stride-1 "CIFAR" stem, and the same
network is used in every profile.

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
from torch import nn

from . import names

#: The registry, re-exported: name → :class:`~kesl_utils.names.BackboneSpec`.
BACKBONES = names.BACKBONES


class DamagedWeightsError(RuntimeError):
    """A weight file (torch hub's ImageNet weights, a pretraining run's ``weights.pt``) exists but
    cannot be read; the message names it and says how to get a sound copy."""


def pretrained_weights(name: str):
    """The ImageNet weights (the torchvision enum member) of backbone ``name``."""
    spec = names.backbone_spec(name)
    if spec.weights is None:
        raise ValueError(f"backbone {name!r} has no ImageNet weights in the registry")
    return names.resolve(spec.weights, f"the weights of backbone {name!r}")


def weight_file(name: str) -> Path:
    """Where torch's hub cache keeps (or expects) the pretrained weights of ``name``."""
    url = pretrained_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_model(name: str, num_classes: int, imagenet_weights: bool = False) -> nn.Module:
    """Backbone ``name`` with a freshly initialised ``num_classes``-way classifier.

    Input (B, 3, H, W) → logits (B, num_classes). ``imagenet_weights`` loads the backbone's
    ImageNet weights into everything but the classifier. Raises ``RuntimeError`` naming the
    weight file and the folder to put it in when it cannot be downloaded, and
    :class:`DamagedWeightsError` naming the file when the file in the cache cannot be read.
    """
    spec = names.backbone_spec(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}; expected a positive int")
    builder = names.resolve(spec.builder, f"the builder of backbone {name!r}")
    if not imagenet_weights:
        return builder(weights=None, num_classes=num_classes)

    weights = pretrained_weights(name)
    try:
        model = builder(weights=weights)
    except Exception as error:  # noqa: BLE001 - any download failure gets the same advice
        target = weight_file(name)
        if target.is_file():
            raise DamagedWeightsError(
                f"cannot read the ImageNet weights of {name} in torch's hub cache, {target} "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): the file is damaged "
                f"(an interrupted download?). Delete it and run again to download it again, or place a sound copy "
                f"of {weights.url} there") from error
        raise RuntimeError(
            f"could not download the pretrained {name} weights ({type(error).__name__}: {error}). "
            f"Download {weights.url} on a machine with network access and place the file "
            f"{target.name} in {target.parent}/ (torch.hub.get_dir()/checkpoints; "
            f"set $TORCH_HOME to use another cache), then run again."
        ) from error
    _replace_classifier(model, spec, num_classes)
    return model


def _replace_classifier(model: nn.Module, spec: names.BackboneSpec, num_classes: int) -> None:
    old = model.get_submodule(spec.head)
    new = nn.Linear(old.in_features, num_classes)
    if spec.head_init_std is not None:
        nn.init.normal_(new.weight, 0, spec.head_init_std)
        nn.init.zeros_(new.bias)
    parent, _, attribute = spec.head.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, new)


def classifier_module(model: nn.Module, name: str) -> nn.Module:
    """The final classifier of a model of backbone ``name`` (its registry entry's ``head``)."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper
    return model.get_submodule(names.backbone_spec(name).head)


def classifier_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """Parameters of the new classifier (they get the config's ``lr``)."""
    return list(classifier_module(model, name).parameters())


def backbone_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """All other parameters (they get ``lr * backbone_lr_mult``)."""
    head = {id(p) for p in classifier_parameters(model, name)}
    return [p for p in model.parameters() if id(p) not in head]
