"""Backbones: output shapes, parameter groups, and the offline error for pretrained weights."""
import urllib.error

import pytest
import torch
import torchvision

from kesl_utils import models


@pytest.mark.parametrize("name", models.BACKBONES)
def test_output_shape_at_32_px(name):
    torch.manual_seed(0)
    model = models.build_model(name, num_classes=7).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    head = models.classifier_parameters(model, name)
    body = models.backbone_parameters(model, name)
    assert [tuple(p.shape) for p in head] == [(7, head[0].shape[1]), (7,)]
    assert len(head) + len(body) == len(list(model.parameters()))
    assert not {id(p) for p in head} & {id(p) for p in body}


def test_v1_weights_for_every_backbone():
    assert models.pretrained_weights("resnet18") is torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert models.pretrained_weights("resnet50") is torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    assert models.pretrained_weights("mobilenet_v2") is torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1


def test_pretrained_offline_names_file_and_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as info:
        models.build_model("resnet18", 5, imagenet_weights=True)
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_pretrained_from_cache_replaces_classifier(monkeypatch, tmp_path):
    # A weight file already in the cache is used without any download.
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail("must not download a cached file"))
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2(weights=None)
    target = models.weight_file("mobilenet_v2")
    target.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), target)
    model = models.build_model("mobilenet_v2", 3, imagenet_weights=True)
    assert model.classifier[-1].out_features == 3
    assert torch.equal(model.features[0][0].weight, reference.features[0][0].weight)


def test_bad_name():
    with pytest.raises(ValueError, match="resnet18"):
        models.build_model("vgg16", 10)


def test_a_damaged_weight_file_in_the_hub_cache_names_the_file_and_what_to_do(monkeypatch, tmp_path):
    """Issue 23: a corrupt torch-hub weight file raised a bare UnpicklingError."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("must not download"))
    target = models.weight_file("resnet18")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x80\x02 not a pickle, an interrupted download")
    with pytest.raises(models.DamagedWeightsError) as info:
        models.build_model("resnet18", 5, imagenet_weights=True)
    message = str(info.value)
    assert str(target) in message and "Delete it and run again to download it again" in message
