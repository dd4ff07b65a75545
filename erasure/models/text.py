"""Text classifiers over token ids ``(N, L)`` (0 = padding)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erasure.core.params import NonNegativeFloat, PositiveInt
from erasure.models.base import Model


class _Block(nn.Module):
    """Pre-norm self-attention block written out so every layer is called (and hooked) in order."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mask = ~pad[:, None, None, :]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, d)
        x = x + self.dropout(self.proj(attn))
        return x + self.dropout(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class TextClassifier(Model):
    """Bag of embeddings (fastText-like, Joulin et al., 2017) or a small Transformer encoder.

    ``architecture="bag"``: mean of the token embeddings (padding excluded);
    ``"transformer"``: learned positions, ``layers`` pre-norm self-attention blocks,
    mean over non-padding tokens. Both end with ``Linear(embed_dim, hidden)``–ReLU
    as the penultimate features. ``vocab_size`` comes from the data (the source's
    vocabulary or tokenizer) unless given.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt, vocab_size: PositiveInt | None = None,
                 architecture: Literal["bag", "transformer"] = "bag", embed_dim: PositiveInt = 64,
                 hidden: PositiveInt = 64, layers: PositiveInt = 2, heads: PositiveInt = 4,
                 dropout: NonNegativeFloat = 0.1):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.vocab_size = vocab_size
        self.architecture = architecture
        self.embed_dim = embed_dim
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.dropout = dropout
        if vocab_size is None:
            raise ValueError("vocab_size is unknown: the data source gives none, so set it in the model's parameters")
        if architecture == "bag":
            self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=0)
        else:
            if embed_dim % heads:
                raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
            self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
            self.position = nn.Parameter(torch.zeros(1, input_shape[0], embed_dim))
            nn.init.normal_(self.position, std=0.02)
            self.blocks = nn.ModuleList(_Block(embed_dim, heads, dropout) for _ in range(layers))
            self.norm = nn.LayerNorm(embed_dim)
        self.fc = nn.Linear(embed_dim, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        x = x.long()
        if self.architecture == "bag":
            pooled = self.embedding(x)
        else:
            pad = x == 0
            pad = pad & ~pad.all(1, keepdim=True)  # an empty text attends to its padding
            h = self.embedding(x) + self.position[:, : x.shape[1]]
            for block in self.blocks:
                h = block(h, pad)
            h = self.norm(h)
            keep = (~pad).unsqueeze(-1).to(h.dtype)
            pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1)
        return F.relu(self.fc(pooled))
