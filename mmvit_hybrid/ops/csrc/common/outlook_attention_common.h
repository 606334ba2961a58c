// Geometry shared by the CPU and CUDA kernels of outlook attention (VOLO).
//
// Layout used by every kernel: value, grad_output, output and grad_value are read and written
// channels-last, (B, H, W, C) in memory (the layout VOLO's value Linear already produces), and
// attn / grad_attn are contiguous (B, heads, Ho, Wo, K*K, K*K).
// Window (u, w) covers the pixels (u * stride - pad + ky, w * stride - pad + kx), 0 <= ky, kx < K.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define OA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define OA_HOST_DEVICE inline
#endif

namespace mmvit_hybrid {
namespace outlook_attention {

struct Geometry {
  int64_t B, C, H, W;       // value map
  int64_t heads, head_dim;  // C = heads * head_dim
  int64_t Ho, Wo;           // window grid
  int64_t K, KK;            // window size and K * K
  int64_t pad, stride;
};

// Windows along one axis whose taps cover coordinate y: the inclusive range [*lo, *hi]
// (empty when *lo > *hi). Window u covers y with tap y + pad - u * stride in [0, K).
OA_HOST_DEVICE void covering_windows(int64_t y, int64_t pad, int64_t K, int64_t stride,
                                     int64_t n_windows, int64_t* lo, int64_t* hi) {
  const int64_t t = y + pad;         // coordinate in the padded map, >= 0
  const int64_t first = t - K + 1;   // smallest u * stride that still covers t
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int64_t last = t / stride;
  *hi = last < n_windows - 1 ? last : n_windows - 1;
}

}  // namespace outlook_attention
}  // namespace mmvit_hybrid
