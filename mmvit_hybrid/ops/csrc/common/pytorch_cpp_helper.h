// Declarations shared by the op front end (pytorch/outlook_attention.cpp) and the CPU/CUDA
// implementations. The front end validates inputs and converts them to the kernels' layouts.
#pragma once

#include <ATen/ATen.h>

#include "outlook_attention_common.h"

namespace mmvit_hybrid {
namespace outlook_attention {

// src: (B, H, W, C) channels-last; attn: contiguous (B, heads, Ho, Wo, KK, KK);
// out: (B, H, W, C) channels-last, fully overwritten.
// transposed = false: forward, out[p] = sum over windows/taps i at p of sum_j a[i, j] * src[pos_j]
// transposed = true:  grad_value,
//                     out[p] = sum over windows/taps j at p of sum_i a[i, j] * src[pos_i]
void gather_cpu(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                const Geometry& g, bool transposed);
// grad_attn[b, h, u, w, i, j] = sum over the head's channels of grad_out[pos_i] * value[pos_j]
// (zero where either position is outside the map).
void grad_attn_cpu(const at::Tensor& grad_out, const at::Tensor& value, at::Tensor& grad_attn,
                   const Geometry& g);

#ifdef WITH_CUDA
void gather_cuda(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                 const Geometry& g, bool transposed);
void grad_attn_cuda(const at::Tensor& grad_out, const at::Tensor& value, at::Tensor& grad_attn,
                    const Geometry& g);
#endif

}  // namespace outlook_attention
}  // namespace mmvit_hybrid
