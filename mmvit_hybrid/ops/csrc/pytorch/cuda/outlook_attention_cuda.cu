// CUDA kernels of outlook attention. One thread per output element: the gather kernel (forward,
// and grad_value with the attention matrices transposed) computes one channel of one pixel from
// the windows that cover it; consecutive threads are consecutive channels of the channels-last
// map, so reads of the map are coalesced and the threads of a head share each attention weight.
// grad_attn uses one thread per attention weight, a dot product over the head's channels.
// Half and bfloat16 accumulate in float (at::opmath_type).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>

#include "pytorch_cpp_helper.h"

namespace mmvit_hybrid {
namespace outlook_attention {
namespace {

constexpr int kThreads = 256;

inline int64_t num_blocks(int64_t n) { return (n + kThreads - 1) / kThreads; }

template <typename scalar_t, bool kTransposed>
__global__ void gather_kernel(const scalar_t* __restrict__ src,
                              const scalar_t* __restrict__ attn, scalar_t* __restrict__ out,
                              const Geometry g, const int64_t n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n) return;
  // idx enumerates (b, y, x, c) of the channels-last map
  const int64_t c = idx % g.C;
  int64_t rest = idx / g.C;
  const int64_t x = rest % g.W;
  rest /= g.W;
  const int64_t y = rest % g.H;
  const int64_t b = rest / g.H;
  const int64_t h = c / g.head_dim;
  const int64_t KK = g.KK;
  int64_t u_lo, u_hi, w_lo, w_hi;
  covering_windows(y, g.pad, g.K, g.stride, g.Ho, &u_lo, &u_hi);
  covering_windows(x, g.pad, g.K, g.stride, g.Wo, &w_lo, &w_hi);
  const scalar_t* src_b = src + b * g.H * g.W * g.C + c;
  acc_t acc = acc_t(0);
  for (int64_t u = u_lo; u <= u_hi; ++u) {
    const int64_t y0 = u * g.stride - g.pad;  // top row of window u
    for (int64_t w = w_lo; w <= w_hi; ++w) {
      const int64_t x0 = w * g.stride - g.pad;
      const int64_t t = (y - y0) * g.K + (x - x0);  // tap of (y, x) in this window
      const scalar_t* a = attn + (((b * g.heads + h) * g.Ho + u) * g.Wo + w) * KK * KK;
      for (int64_t ky = 0; ky < g.K; ++ky) {
        const int64_t sy = y0 + ky;
        if (sy < 0 || sy >= g.H) continue;
        for (int64_t kx = 0; kx < g.K; ++kx) {
          const int64_t sx = x0 + kx;
          if (sx < 0 || sx >= g.W) continue;
          const int64_t k = ky * g.K + kx;  // tap of the source pixel
          const acc_t wgt = static_cast<acc_t>(kTransposed ? a[k * KK + t] : a[t * KK + k]);
          acc += wgt * static_cast<acc_t>(src_b[(sy * g.W + sx) * g.C]);
        }
      }
    }
  }
  out[idx] = static_cast<scalar_t>(acc);
}

template <typename scalar_t>
__global__ void grad_attn_kernel(const scalar_t* __restrict__ go,
                                 const scalar_t* __restrict__ value,
                                 scalar_t* __restrict__ grad_attn, const Geometry g,
                                 const int64_t n) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n) return;
  // idx enumerates (b, h, u, w, i, j) of the contiguous attention tensor
  const int64_t j = idx % g.KK;
  const int64_t i = (idx / g.KK) % g.KK;
  int64_t rest = idx / (g.KK * g.KK);
  const int64_t w = rest % g.Wo;
  rest /= g.Wo;
  const int64_t u = rest % g.Ho;
  rest /= g.Ho;
  const int64_t h = rest % g.heads;
  const int64_t b = rest / g.heads;
  const int64_t y0 = u * g.stride - g.pad, x0 = w * g.stride - g.pad;
  const int64_t iy = y0 + i / g.K, ix = x0 + i % g.K;  // pixel written through tap i
  const int64_t jy = y0 + j / g.K, jx = x0 + j % g.K;  // pixel read through tap j
  acc_t acc = acc_t(0);
  if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W && jy >= 0 && jy < g.H && jx >= 0 &&
      jx < g.W) {
    const scalar_t* p = go + ((b * g.H + iy) * g.W + ix) * g.C + h * g.head_dim;
    const scalar_t* q = value + ((b * g.H + jy) * g.W + jx) * g.C + h * g.head_dim;
    for (int64_t c = 0; c < g.head_dim; ++c) {
      acc += static_cast<acc_t>(p[c]) * static_cast<acc_t>(q[c]);
    }
  }
  grad_attn[idx] = static_cast<scalar_t>(acc);
}

}  // namespace

void gather_cuda(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                 const Geometry& g, bool transposed) {
  const int64_t n = out.numel();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(),
                                  "outlook_attention_gather_cuda", [&] {
    if (transposed) {
      gather_kernel<scalar_t, true><<<num_blocks(n), kThreads, 0, stream>>>(
          src.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
          out.mutable_data_ptr<scalar_t>(), g, n);
    } else {
      gather_kernel<scalar_t, false><<<num_blocks(n), kThreads, 0, stream>>>(
          src.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
          out.mutable_data_ptr<scalar_t>(), g, n);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void grad_attn_cuda(const at::Tensor& grad_out, const at::Tensor& value, at::Tensor& grad_attn,
                    const Geometry& g) {
  const int64_t n = grad_attn.numel();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "outlook_attention_grad_attn_cuda", [&] {
    grad_attn_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
        grad_out.const_data_ptr<scalar_t>(), value.const_data_ptr<scalar_t>(),
        grad_attn.mutable_data_ptr<scalar_t>(), g, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace outlook_attention
}  // namespace mmvit_hybrid
