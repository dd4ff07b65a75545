"""Any torchvision classifier, e.g. ``resnet50``, ``vgg11_bn``, ``mobilenet_v3_small``, ``vit_b_16``."""
from __future__ import annotations

import os

from torch import Tensor, nn

from erasure.core.errors import ConfigError
from erasure.core.params import PositiveInt
from erasure.models.base import Model


def _split_last_linear(net: nn.Module) -> nn.Linear:
    """Replace the network's last ``nn.Linear`` (its classifier) by ``Identity``; return it."""
    name = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, attr = name.rpartition(".")
    parent = net.get_submodule(parent_name)
    last = getattr(parent, attr)
    setattr(parent, attr, nn.Identity())  # works for Sequential children ("1") too
    return last


class TorchVisionModel(Model):
    """``torchvision.models.get_model(name, weights=weights)`` with a new ``num_classes`` head.

    The network's last linear layer becomes ``head`` (re-initialised for
    ``num_classes``); everything before it is ``features``. ``weights`` names
    torchvision weights (``"DEFAULT"``, ``"IMAGENET1K_V1"``), read from torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``) and
    downloaded there by torchvision when missing; None trains from scratch. For weights of your
    own, use the model's ``checkpoint``. Grey images are repeated to 3 channels when the network
    expects 3.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt, name: str = "resnet18",
                 weights: str | None = None):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.name = name
        self.weights = weights
        import torchvision

        try:
            self.body = torchvision.models.get_model(name, weights=weights)
        except OSError as exc:  # not in the hub cache, and no network (URLError is an OSError)
            import torch.hub

            where = os.path.join(torch.hub.get_dir(), "checkpoints")
            raise ConfigError(f"torchvision weights {weights!r} of {name} are not in the local cache ({where}) and "
                              f"could not be downloaded ({exc}); put the file there, or give the model a "
                              "'checkpoint'", "weights") from exc
        last = _split_last_linear(self.body)
        self.head = nn.Linear(last.in_features, num_classes)
        first = next(m for m in self.body.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
        self._channels = first.in_channels if isinstance(first, nn.Conv2d) else None

    def features(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if self._channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.body(x).flatten(1)
