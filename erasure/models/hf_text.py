"""Pretrained transformer text classifiers (BERT, DistilBERT, DeBERTa, RoBERTa...) from ``transformers``."""
from __future__ import annotations

import sys

import torch
from torch import Tensor

from erasure.core.params import NonNegativeInt, PositiveInt
from erasure.data.sources.huggingface import swap_padding
from erasure.models.base import Model
from erasure.models.torchvision_model import _split_last_linear


class HFTextClassifier(Model):
    """``AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_classes)``.

    ``path`` is a local folder written by ``save_pretrained`` or a Hub name already in the
    Hugging Face cache: nothing is downloaded unless ``download`` is true (``local_files_only``).
    The data must be token ids from the same model's tokenizer: ``HuggingFaceSource`` with
    ``tokenizer`` set to the same path, which gives ``vocab_size`` and ``pad_token_id`` (ids hold
    0 for padding, the tokenizer's padding id in its place; the model swaps them back and masks
    the padding). The network's last linear layer (BERT's ``classifier``, RoBERTa's
    ``classifier.out_proj``) is ``head``; ``features`` is its input, the pooled representation
    (BERT's pooler output, DistilBERT's after ``pre_classifier``). A checkpoint whose head has
    another number of labels gets a new one (``ignore_mismatched_sizes``), seeded like any model.
    Weights are float32. https://huggingface.co/docs/transformers/model_doc/auto
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt, path: str, download: bool = False,
                 revision: str | None = None, cache_dir: str | None = None,
                 vocab_size: PositiveInt | None = None, pad_token_id: NonNegativeInt | None = None):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.path = path
        self.download = download
        self.revision = revision
        self.cache_dir = cache_dir
        self.vocab_size = vocab_size
        self.pad_token_id = pad_token_id
        try:
            from transformers import AutoModelForSequenceClassification
        except ImportError as exc:
            raise RuntimeError("HFTextClassifier needs the 'transformers' package (pip install 'erasure[hf]')") from exc
        if pad_token_id is None:
            raise ValueError(f"HFTextClassifier reads token ids of its own tokenizer: set the data source's "
                             f"'tokenizer' to {path!r} (HuggingFaceSource)")
        try:
            self.body = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=num_classes, ignore_mismatched_sizes=True, local_files_only=not download,
                revision=revision, cache_dir=cache_dir).float()
        except OSError as exc:
            hint = "" if download else (" (download is false: write it there with save_pretrained, fetch it once where "
                                        f"there is network with `hf download {path}`, or set download to true)")
            raise RuntimeError(f"cannot load the model {path!r}: {exc}{hint}") from exc
        config = self.body.config
        if vocab_size is not None and vocab_size > config.vocab_size:
            raise ValueError(f"the data's tokenizer has {vocab_size} tokens, the model {path!r} embeds {config.vocab_size}: "
                             "tokenize with the model's own tokenizer")
        if config.pad_token_id is not None and config.pad_token_id != pad_token_id:
            raise ValueError(f"the data's tokenizer pads with id {pad_token_id}, the model {path!r} with "
                             f"{config.pad_token_id}: tokenize with the model's own tokenizer")
        positions = getattr(config, "max_position_embeddings", None)
        if positions is not None and input_shape[0] > positions:
            raise ValueError(f"texts of {input_shape[0]} tokens are longer than the model's {positions} positions: "
                             "lower the source's max_length")
        self.head = _split_last_linear(self.body)
        if self.head.out_features != num_classes:
            raise ValueError(f"the last linear layer of {type(self.body).__name__} is not its classifier")
        # Architectures whose masks come from transformers' masking_utils (BERT, DistilBERT, RoBERTa...)
        # get the 4D mask made in advance: the 2D path skips the mask when a batch has no padding,
        # a data-dependent test that per-sample gradients (torch.func.vmap: SSD, Fisher) cannot run.
        self._full_mask = hasattr(sys.modules[type(self.body).__module__], "create_bidirectional_mask")

    def features(self, x: Tensor) -> Tensor:
        x = x.long()
        mask = x != 0
        if self._full_mask:
            from transformers.masking_utils import create_bidirectional_mask

            shape = torch.empty(*x.shape, 0, dtype=self.head.weight.dtype, device=x.device)  # batch, length, dtype
            mask = create_bidirectional_mask(self.body.config, shape, mask, allow_is_bidirectional_skip=False)
        return self.body(input_ids=swap_padding(x, self.pad_token_id), attention_mask=mask).logits
