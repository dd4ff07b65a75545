"""The new models: shapes from the data, penultimate features, layers in forward order."""
from __future__ import annotations

import pytest
import torch

from erasure.models.base import parametrized_layers
from erasure.models.fast_resnet import FastResNet
from erasure.models.resnet import ResNet18
from erasure.models.text import TextClassifier
from erasure.models.torchvision_model import TorchVisionModel


def test_resnet18_cifar_stem_and_classes():
    model = ResNet18((3, 32, 32), 7)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7) and model.features(x).shape == (2, 512)
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)  # CIFAR stem, no max-pool
    names = [n for n, _ in parametrized_layers(model, x)]
    assert names[0] == "conv1" and names[-1] == "head" and len(names) == 41  # 20 convs + 20 BNs + head
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(11.17e6, rel=0.01)
    grey = ResNet18((1, 28, 28), 10, width=16)
    assert grey(torch.randn(2, 1, 28, 28)).shape == (2, 10) and grey.features(torch.randn(2, 1, 28, 28)).shape == (2, 128)


def test_fast_resnet_is_airbench_shaped_and_fits_small_images():
    model = FastResNet((3, 32, 32), 10)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10) and model.features(x).shape == (2, 256)
    assert torch.allclose(model(x), model.head(model.features(x)) / 9)  # logits scaled by 1/9
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1.97e6, rel=0.01)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6 and not any(m.weight.requires_grad for m in norms) and all(m.bias.requires_grad for m in norms)
    names = [n for n, _ in parametrized_layers(model, x)]
    assert names[0] == "body.0" and names[-1] == "head"
    digits = FastResNet((1, 8, 8), 10, widths=[8, 16, 16], stem=8)  # 8x8 images: pools stop at 1x1
    assert digits(torch.randn(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_model_gets_a_new_head(name):
    model = TorchVisionModel((1, 32, 32), 5, name=name)
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, 5)
    layers = parametrized_layers(model, x)
    assert layers[-1][0] == "head" and layers[-1][1].in_features == model.features(x).shape[1]
    assert not any(isinstance(m, torch.nn.Linear) and m.out_features == 1000 for m in model.modules())


@pytest.mark.parametrize("architecture", ["bag", "transformer"])
def test_text_classifier_ignores_padding(architecture):
    torch.manual_seed(0)
    model = TextClassifier((6,), 3, vocab_size=20, architecture=architecture, embed_dim=16, hidden=8, heads=2, dropout=0.0).eval()
    short = torch.tensor([[5, 6, 7, 0, 0, 0]])
    assert model(short).shape == (1, 3) and model.features(short).shape == (1, 8)
    if architecture == "bag":  # the mean excludes padding: the same words padded differently agree
        assert torch.allclose(model(short), model(torch.tensor([[5, 6, 7, 0, 0]])))
    changed_padding_embedding = model.embedding.weight.detach().clone()
    changed_padding_embedding[0] += 5
    with torch.no_grad():
        before = model(short)
        model.embedding.weight.copy_(changed_padding_embedding)
        assert torch.allclose(before, model(short), atol=1e-6)
    names = [n for n, _ in parametrized_layers(model, short)]
    assert names[-2:] == ["fc", "head"]
    with pytest.raises(ValueError, match="vocab_size"):
        TextClassifier((6,), 3)


def test_gcn_and_gin_on_nodes_and_graphs(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from real_formats import write_tudataset

    from erasure.data.sources.pyg import PyGSource
    from erasure.models.graph import GCN, GIN

    karate = PyGSource("KarateClub").load()
    nodes = karate.take(torch.tensor([0, 5, 33]))
    for model in (GCN(karate.input_shape, 4, hidden=[8, 8]), GIN(karate.input_shape, 4, hidden=8, layers=2)):
        assert model(nodes).shape == (3, 4)
        assert [n for n, _ in parametrized_layers(model, nodes)][-1] == "head"
    gcn = GCN(karate.input_shape, 4).eval()
    isolated = karate.without_edges_of(torch.tensor([0]))
    assert not torch.allclose(gcn(nodes), gcn(isolated.take(torch.tensor([0, 5, 33]))))  # the graph matters
    write_tudataset(tmp_path, "TOY")
    graphs = PyGSource("TUDataset", str(tmp_path), name="TOY", download=False).load()
    batch = graphs.take(torch.arange(5))
    assert GIN(graphs.input_shape, 2)(batch).shape == (5, 2) and GCN(graphs.input_shape, 2).features(batch).shape == (5, 16)


def test_torchvision_model_forwards_weights_and_name():
    with pytest.raises(KeyError, match="NO_SUCH_WEIGHTS"):
        TorchVisionModel((3, 32, 32), 5, name="resnet18", weights="NO_SUCH_WEIGHTS")  # would otherwise download
    with pytest.raises(ValueError):
        TorchVisionModel((3, 32, 32), 5, name="no_such_net")
    assert isinstance(TorchVisionModel((3, 32, 32), 5, name="alexnet").head, torch.nn.Linear)
