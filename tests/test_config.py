"""Config identity (the run id), normalisation and validation with the library's own validators."""
import dataclasses
import json
import math

import pytest

from kesl_utils import losses, names, soft_labels
from kesl_utils.config import Config, split_overrides


def kesl(**params):
    return Config(loss="kesl", loss_params=params)


def test_equal_configs_share_run_id():
    a = kesl(lam=0.5, T=2, alpha=1, beta=0.1)
    b = kesl(lam=0.5, T=2.0, alpha=1.0, beta=0.1)
    assert a == b and a.run_id == b.run_id and hash(a) == hash(b)
    assert a.run_id.startswith("cub-resnet18-kesl-") and len(a.run_id.rsplit("-", 1)[1]) == 10
    assert Config.from_dict(json.loads(json.dumps(a.to_dict()))).run_id == a.run_id
    # The registry's defaults complete the parameters: an empty dict is the full paper setting.
    assert kesl() == a and a.loss_params == {"lam": 0.5, "T": 2.0, "alpha": 1.0, "beta": 0.1, "kl": "reverse",
                                             "distance": "edges"}


def test_a_loss_holds_exactly_its_own_parameters():
    assert Config(loss="ce").loss_params == {}
    assert Config(loss="label_smoothing").loss_params == {"epsilon": 0.1}
    assert Config(schedule="cosine", step_size=3, gamma=0.5).run_id == Config(schedule="cosine").run_id
    assert Config(dataset="cub", hierarchy_mode="tree").run_id == Config(dataset="cub").run_id
    assert Config(dataset="small_imagenet", hierarchy_mode="tree").run_id != Config(dataset="small_imagenet").run_id


CHANGES = {
    "dataset": "mini_imagenet", "n_per_class": 3, "n_test_per_class": 4, "alignment": 0.5, "label_noise": 0.2,
    "image_size": 16, "backbone": "resnet50", "imagenet_weights": True, "loss": "ce", "lr": 0.01,
    "backbone_lr_mult": 0.1, "momentum": 0.5, "weight_decay": 0.0, "schedule": "step", "warmup_epochs": 1,
    "epochs": 6, "batch_size": 64, "max_batches_per_epoch": 2, "eval_every": 2, "amp": True,
    "channels_last": True, "compile": True, "seed": 1, "profile": "quick",
}
#: What a change needs besides itself: a step schedule names its step and factor (nothing assumes them).
COMPANIONS = {"schedule": dict(step_size=30, gamma=0.1)}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_every_field_changes_the_hash(name):
    base = kesl()
    assert base.replace(**{name: CHANGES[name]}, **COMPANIONS.get(name, {})).run_id != base.run_id


@pytest.mark.parametrize("param,value", [("lam", 0.25), ("T", 4.0), ("alpha", 0.5), ("beta", 1.0),
                                         ("kl", "forward"), ("distance", "lca")])
def test_every_loss_parameter_changes_the_hash(param, value):
    assert kesl(**{param: value}).run_id != kesl().run_id
    assert Config(loss="label_smoothing", loss_params={"epsilon": 0.2}).run_id != \
        Config(loss="label_smoothing").run_id


def test_real_data_and_pretraining_enter_the_hash():
    real = Config(source="real")
    assert real.replace(data_fingerprint="abc").run_id != real.run_id
    assert real.replace(skip_bad_images=True).run_id != real.run_id
    source = Config(dataset="small_imagenet", n_per_class=40, seed=100)
    tuned = Config(pretrain_run=source)
    assert tuned.run_id != Config().run_id
    assert Config(pretrain_run=source.replace(epochs=6)).run_id != tuned.run_id
    assert Config.from_dict(json.loads(json.dumps(tuned.to_dict()))) == tuned
    assert tuned.to_dict()["pretrain_run"]["n_per_class"] == 40


@pytest.mark.parametrize("kwargs, words", [
    (dict(dataset="cifar"), ["dataset", "'cub'", "'mini_imagenet'"]),
    (dict(backbone="vgg16"), ["backbone", "'resnet18'", "'mobilenet_v2'"]),
    (dict(loss="focal"), ["loss", "'kesl'"]),
    (dict(loss="kesl", loss_params={"kl": "both"}), ["kl", "'reverse'", "'forward'"]),
    (dict(loss="kesl", loss_params={"lam": 0.0}), ["lam", "(0, 1)"]),
    (dict(loss="kesl", loss_params={"lam": 1}), ["lam", "(0, 1)"]),
    (dict(loss="kesl", loss_params={"T": -1.0}), ["T", "> 0"]),
    (dict(loss="kesl", loss_params={"T": math.inf}), ["T", "finite"]),
    (dict(loss="kesl", loss_params={"alpha": math.inf}), ["alpha", "finite"]),
    (dict(loss="kesl", loss_params={"alpha": 0, "beta": 0}), ["alpha", "beta", "both be zero"]),
    (dict(loss="label_smoothing", loss_params={"epsilon": 1.0}), ["epsilon", "[0, 1)"]),
    (dict(loss="ce", loss_params={"lam": 0.5}), ["'lam' is a parameter of 'kesl'"]),
    (dict(loss="kesl", loss_params={"epsilon": 0.1}), ["'epsilon' is a parameter of 'label_smoothing'"]),
    (dict(epochs=0), ["epochs", ">= 1"]),
    (dict(warmup_epochs=9, epochs=5), ["warmup_epochs"]),
    (dict(alignment=1.5), ["alignment", "[0, 1]"]),
    (dict(label_noise=-0.1), ["label_noise", "[0, 1]"]),
    (dict(lr="0.1"), ["lr", "float"]),
    (dict(lr=math.inf), ["lr", "finite"]),
    (dict(lr=0.0), ["lr", "> 0"]),
    (dict(imagenet_weights=1), ["imagenet_weights", "bool"]),
    (dict(epochs=2.5), ["epochs", "int"]),
    (dict(schedule="step"), ["step_size", "required"]),
    (dict(source="real", alignment=0.5), ["alignment", "real data"]),
    (dict(source="real", label_noise=0.1), ["label_noise", "real data"]),
    (dict(data_fingerprint="abc"), ["data_fingerprint", "synthetic"]),
    (dict(imagenet_weights=True, pretrain_run=Config(dataset="small_imagenet")), ["imagenet_weights", "pretrain_run"]),
    (dict(pretrain_run=Config(backbone="resnet50")), ["resnet50", "same backbone"]),
])
def test_validation_names_field_and_allowed_values(kwargs, words):
    with pytest.raises(ValueError) as info:
        Config(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, math.inf, math.nan, True, "0.5"])
def test_config_and_soft_labels_share_one_lambda_rule(value):
    """The check Config makes is the check soft_label_matrix makes: same function, same message."""
    with pytest.raises(ValueError) as from_config:
        kesl(lam=value)
    with pytest.raises(ValueError) as from_library:
        soft_labels.soft_label_matrix([[0, 2], [2, 0]], value, 2.0)
    assert str(from_library.value) in str(from_config.value)


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_config_and_loss_share_one_temperature_and_weight_rule(value):
    with pytest.raises(ValueError) as from_config:
        kesl(T=value)
    with pytest.raises(ValueError) as from_library:
        names.check_temperature(value)
    assert str(from_library.value) in str(from_config.value)
    if value != 0.0:
        with pytest.raises(ValueError) as from_loss:
            losses.KESLLoss(soft_labels.soft_label_matrix([[0, 2], [2, 0]], 0.5, 2.0), alpha=value)
        with pytest.raises(ValueError) as config_alpha:
            kesl(alpha=value)
        assert str(from_loss.value) in str(config_alpha.value)


def test_unknown_names_list_the_fields_and_parameters():
    for call in (lambda: Config().replace(learning_rate=0.1),
                 lambda: Config.from_dict({**Config().to_dict(), "learning_rate": 0.1})):
        with pytest.raises(ValueError, match="learning_rate.*the fields are: dataset, source"):
            call()
    with pytest.raises(ValueError, match="loss parameters: .*lam"):
        split_overrides({"lamda": 0.5})


def test_replace_moves_between_losses():
    ce = Config(loss="ce")
    assert ce.replace(loss="kesl") == kesl()
    assert ce.replace(loss="kesl", T=16).param("T") == 16.0
    assert kesl(T=16).replace(loss="ce").loss_params == {}
    assert kesl(T=16).replace(beta=1).loss_params["T"] == 16.0  # other parameters are kept
    with pytest.raises(ValueError, match="'lam' is a parameter of 'kesl'"):
        ce.replace(lam=0.3)
    with pytest.raises(ValueError, match="step_size and Config.gamma are required"):
        Config(schedule="cosine").replace(schedule="step")  # the constructor's rule: nothing is assumed
    assert Config(schedule="cosine").replace(schedule="step", step_size=30, gamma=0.1).step_size == 30
    with pytest.raises(KeyError, match="loss 'ce' has no parameter 'T'"):
        ce.param("T")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ce.lr = 1.0
