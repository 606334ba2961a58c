"""The dual-stream block of DS-Net (arXiv 2105.14734), shared by the backbone and DS-FPN.

The dataflow follows the ``MixBlock`` of the public DS-Net implementations (SteveTsui/DS-Net,
PaddleClas ``dsnet.py``), which is more specific than the paper text:

1. conditional position encoding ``x = x + DWConv3x3(x)``;
2. ``BN -> Conv1x1`` then a channel split in half: the first half is the global stream, the
   second half the local stream;
3. intra-scale propagation: local ``l = l + DWConv3x3(BN(l))`` at full resolution; global: bilinear
   resize to ``(H // global_stride, W // global_stride)``, tokens, ``g = g + MHSA(LN(g))`` with a
   biased qkv projection and *no* output projection;
4. inter-scale alignment (co-attention, both directions, separate parameters): local q/k/v from
   ``Conv1x1(BN(l))``, global q/k/v from ``Linear(LN(g))``;
   ``l = l + Linear(softmax(Q_l K_g^T / sqrt(d)) V_g)`` and ``g = g + Linear(softmax(Q_g K_l^T / sqrt(d)) V_l)``;
5. fusion: upsample ``g`` to ``(H, W)``, ``cat([l, g])``, ``Conv1x1``, DropPath, add the block input;
6. conv FFN with a BN pre-norm: ``x = x + DropPath(Conv1x1(GELU(Conv1x1(BN(x)))))``.

All three attentions run through :func:`torch.nn.functional.scaled_dot_product_attention`; their
scale is the default ``head_dim ** -0.5``, as in the reference. Their q/k/v come out of the
projections per head with a unit last-dim stride, the layout torch's fused kernels require (CPU
flash; CUDA flash and memory-efficient): the global stream is token-major, so its ``Linear`` gives
``(B, N, 3C/2)``; the local stream is stored channels-last before its co-attention norm and 1x1
conv, so the conv writes ``(B, H, W, 3C/2)`` and the tokens are a view of it. The fused kernels
never materialise the ``(N_q, N_k)`` probability matrix; at 800x1344 the stage-1 co-attention pairs
67,200 local tokens with 1,050 global ones.

Attention dropout (the reference's 0.1) runs in the fused kernel on CUDA. torch's fused CPU kernels
take no dropout, so on CPU a block with dropout splits the queries into chunks
(:func:`dropout_attention_in_chunks`) and recomputes each chunk in backward: memory stays linear
in the number of tokens instead of keeping a probability matrix and a dropout mask of
``N_q x N_k`` per attention.

:func:`init_dual_stream_weights` is the backbone's initialisation of these blocks.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init


def _split_heads(qkv: torch.Tensor, num_heads: int):
    """Split packed projections into per-head q, k, v.

    Args:
        qkv (Tensor): (B, N, 3 * C) packed projections.
        num_heads (int): Number of heads.

    Returns:
        tuple[Tensor]: q, k, v, each (B, num_heads, N, C // num_heads).
    """
    B, N, C3 = qkv.shape
    # (B, N, 3C) -> (3, B, heads, N, C / heads)
    qkv = qkv.reshape(B, N, 3, num_heads, C3 // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return qkv.unbind(0)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    B, h, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, h * d)


def dropout_attention_in_chunks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float,
                                max_elements: int = 2**22) -> torch.Tensor:
    """Scaled dot-product attention with dropout, the queries in chunks, each recomputed in backward.

    Each chunk's attention matrix holds at most ``max_elements`` entries; under autograd every chunk
    runs through non-reentrant activation checkpointing, which restores the RNG state for the
    recomputation, so backward sees the forward's dropout mask and only one chunk's probabilities
    and mask exist at a time.

    Args:
        q (Tensor): (B, heads, N, d) queries.
        k (Tensor): (B, heads, M, d) keys.
        v (Tensor): (B, heads, M, d) values.
        dropout_p (float): Dropout on the attention probabilities.
        max_elements (int): Largest ``B * heads * chunk * M`` of one chunk. Defaults to 2**22
            (16 MiB in float32).

    Returns:
        Tensor: (B, heads, N, d).
    """
    B, h, N, _ = q.shape
    chunk = max(1, max_elements // (B * h * k.shape[-2]))
    recompute = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    outs = []
    for start in range(0, N, chunk):
        q_chunk = q[:, :, start:start + chunk]
        if recompute:
            outs.append(cp.checkpoint(F.scaled_dot_product_attention, q_chunk, k, v, dropout_p=dropout_p,
                                      use_reentrant=False))
        else:
            outs.append(F.scaled_dot_product_attention(q_chunk, k, v, dropout_p=dropout_p))
    return torch.cat(outs, dim=2)


class DualStreamBlock(BaseModule):
    """Dual-stream block: local depthwise-conv stream, global attention stream, co-attention.

    Args:
        embed_dims (int): Channels C of the (B, C, H, W) input; must be even, each stream gets C / 2.
        num_heads (int): Heads of the self- and co-attentions; must divide C / 2.
        global_stride (int): The global stream works on an (H // s, W // s) grid (at least 1x1).
        mlp_ratio (float): FFN hidden width over C. Defaults to 4.
        attn_drop_rate (float): Dropout on the attention probabilities. Defaults to 0.1, the
            value the reference code hard-codes (on CPU it runs in query chunks, see
            :func:`dropout_attention_in_chunks`).
        drop_path_rate (float): Stochastic depth of both residual branches. Defaults to 0.
        norm_cfg (dict): Norm for the convolutional (B, C, H, W) tensors. Defaults to BN.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 global_stride: int,
                 mlp_ratio: float = 4.,
                 attn_drop_rate: float = 0.1,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % 2 or (embed_dims // 2) % num_heads:
            raise ValueError(
                f'DualStreamBlock needs embed_dims even and embed_dims/2 divisible by num_heads '
                f'(each stream gets half the channels); got embed_dims={embed_dims}, num_heads={num_heads}')
        if global_stride < 1:
            raise ValueError(f'global_stride must be >= 1, got {global_stride}')
        self.num_heads = num_heads
        self.global_stride = global_stride
        self.attn_drop_rate = attn_drop_rate
        self.with_cp = with_cp
        self.stream_dims = stream_dims = embed_dims // 2
        C = embed_dims

        self.cpe = nn.Conv2d(C, C, 3, padding=1, groups=C)
        self.norm1 = build_norm_layer(norm_cfg, C)[1]
        self.proj_in = nn.Conv2d(C, C, 1)
        # intra-scale propagation
        self.local_norm = build_norm_layer(norm_cfg, stream_dims)[1]
        self.local_dwconv = nn.Conv2d(stream_dims, stream_dims, 3, padding=1, groups=stream_dims)
        self.global_norm = nn.LayerNorm(stream_dims)
        self.global_qkv = nn.Linear(stream_dims, 3 * stream_dims)
        # inter-scale alignment
        self.local_co_norm = build_norm_layer(norm_cfg, stream_dims)[1]
        self.local_co_qkv = nn.Conv2d(stream_dims, 3 * stream_dims, 1)
        self.global_co_norm = nn.LayerNorm(stream_dims)
        self.global_co_qkv = nn.Linear(stream_dims, 3 * stream_dims)
        self.local_co_proj = nn.Linear(stream_dims, stream_dims)
        self.global_co_proj = nn.Linear(stream_dims, stream_dims)
        # fusion and FFN
        self.proj_out = nn.Conv2d(C, C, 1)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, C)[1]
        hidden = int(C * mlp_ratio)
        self.ffn = nn.Sequential(nn.Conv2d(C, hidden, 1), nn.GELU(), nn.Conv2d(hidden, C, 1))

    def _attend(self, q, k, v):
        """(B, heads, N, d) queries, (B, heads, M, d) keys/values -> (B, N, heads * d)."""
        dropout_p = self.attn_drop_rate if self.training else 0.
        if dropout_p > 0 and not q.is_cuda:  # no fused CPU kernel takes dropout
            return _merge_heads(dropout_attention_in_chunks(q, k, v, dropout_p))
        return _merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.cpe(x)
        B, C, H, W = x.shape
        shortcut = x
        global_x, local_x = self.proj_in(self.norm1(x)).split(self.stream_dims, dim=1)

        # intra-scale propagation
        local_x = local_x + self.local_dwconv(self.local_norm(local_x))
        grid = (max(H // self.global_stride, 1), max(W // self.global_stride, 1))
        global_x = F.interpolate(global_x, size=grid, mode='bilinear', align_corners=False)
        global_x = global_x.flatten(2).transpose(1, 2)  # (B, C/2, h, w) -> (B, h*w, C/2)
        global_x = global_x + self._attend(
            *_split_heads(self.global_qkv(self.global_norm(global_x)), self.num_heads))

        # inter-scale alignment: both directions read the same (pre-update) q/k/v. Channels-last
        # storage makes the norm and the 1x1 conv write token-major memory, so the tokens below
        # are views with unit channel stride (the fused attention kernels' layout).
        local_x = local_x.contiguous(memory_format=torch.channels_last)
        local_qkv = self.local_co_qkv(self.local_co_norm(local_x))
        local_qkv = local_qkv.flatten(2).transpose(1, 2)  # (B, 3C/2, H, W) -> (B, H*W, 3C/2)
        local_q, local_k, local_v = _split_heads(local_qkv, self.num_heads)
        global_q, global_k, global_v = _split_heads(
            self.global_co_qkv(self.global_co_norm(global_x)), self.num_heads)
        local_x = local_x.flatten(2).transpose(1, 2)  # (B, C/2, H, W) -> (B, H*W, C/2)
        local_x = local_x + self.local_co_proj(self._attend(local_q, global_k, global_v))
        global_x = global_x + self.global_co_proj(self._attend(global_q, local_k, local_v))

        # fusion (local first, as in the reference)
        local_x = local_x.transpose(1, 2).reshape(B, self.stream_dims, H, W)  # (B, H*W, C/2) -> (B, C/2, H, W)
        global_x = global_x.transpose(1, 2).reshape(B, self.stream_dims, *grid)  # -> (B, C/2, h, w)
        global_x = F.interpolate(global_x, size=(H, W), mode='bilinear', align_corners=False)
        x = shortcut + self.drop_path(self.proj_out(torch.cat([local_x, global_x], dim=1)))
        return x + self.drop_path(self.ffn(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


def init_dual_stream_weights(module: nn.Module):
    """The DS-Net backbone's initialisation of dual-stream blocks, for ``module`` and its children:
    PyTorch's default for convolutions and BatchNorms (``reset_parameters``), truncated-normal
    (std 0.02) Linear weights with zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_init(m, std=.02, bias=0.)
        elif isinstance(m, nn.LayerNorm):
            constant_init(m, val=1., bias=0.)
        elif isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm)):
            m.reset_parameters()
