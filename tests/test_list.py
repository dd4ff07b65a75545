"""``--list``: every parameter a user can set, and the first sentence of the class's own docstring."""
from erasure.cli import describe_parameters, first_sentence, list_components, main
from erasure.core.registry import registry


def test_list_shows_user_parameters_and_hides_only_what_the_data_gives_a_model(capsys):
    assert main(["--list", "data_source"]) == 0
    listing = capsys.readouterr().out
    assert "Synthetic(n_samples=1000, n_features=16, num_classes=4," in listing
    mlp = describe_parameters(registry("model")["MLP"], "model")
    assert mlp == "hidden=[128, 64], dropout=0.0"
    assert "num_classes" in describe_parameters(registry("data_source")["Synthetic"], "data_source")


class Base:
    """The base class. It says something else."""


class Quiet(Base):
    pass


class Cited(Base):
    """Forgets (Fan et al. 2024, "Can it forget? A study", ICLR; e.g. on CIFAR) in two steps. Then it
    does more.

    Details.
    """


def test_first_sentence_is_the_class_own_and_ends_at_a_sentence_boundary():
    assert first_sentence(Base) == "The base class."
    assert first_sentence(Quiet) == "", "a base class's docstring is not shown for a subclass"
    assert first_sentence(Cited) == 'Forgets (Fan et al. 2024, "Can it forget? A study", ICLR; e.g. on CIFAR) in two steps.'
    listing = list_components("evaluators")
    lines = listing.splitlines()
    start = lines.index("  Accuracy(partitions=None)") + 1
    doc = [line for line in lines[start:start + 3] if line.startswith("      ")]
    assert doc[-1].endswith("JiT tables)."), "the whole first sentence, not its first line"
