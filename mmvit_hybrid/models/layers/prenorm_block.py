"""The pre-norm residual block shared by VOLO's outlookers, transformer blocks and class-attention
blocks: ``x + DropPath(attn(LN(x)))`` then ``x + DropPath(MLP(LN(x)))``, channels-last. Only the
token mixer differs, so subclasses build ``attn`` and pass it in; the parameter names (``norm1``,
``attn``, ``norm2``, ``ffn``) are what ``tools/model_converters/volo_to_mmvit.py`` maps to."""
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule


class PreNormBlock(BaseModule):
    """Pre-norm residual block around a given token mixer and an MLP (mmcv ``FFN``).

    Args:
        embed_dims (int): Channels C (last dimension of the input).
        attn (nn.Module): The token mixer; maps the normalised input to the residual branch.
        mlp_ratio (float): MLP hidden width over C.
        drop_path_rate (float): Stochastic depth of both branches. Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to GELU.
        norm_cfg (dict): The two pre-norms. Defaults to LN.
        with_cp (bool): Recompute the block in backward to save memory. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 embed_dims: int,
                 attn: nn.Module,
                 mlp_ratio: float,
                 drop_path_rate: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'),
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(embed_dims, int(embed_dims * mlp_ratio), act_cfg=act_cfg,
                       dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate) if drop_path_rate > 0 else None)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return self.ffn(self.norm2(x), identity=x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ..., C) -> (B, ..., C)."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)
