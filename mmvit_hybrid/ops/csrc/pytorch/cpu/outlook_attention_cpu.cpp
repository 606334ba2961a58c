// CPU kernels of outlook attention. Every output pixel is gathered from the windows that cover it
// (no unfolded tensor, no fold), parallel over image rows with at::parallel_for; the innermost
// loops run over a head's channels, contiguous in the channels-last layout, so they vectorise.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "pytorch_cpp_helper.h"

namespace mmvit_hybrid {
namespace outlook_attention {
namespace {

// One (attention weight, source pixel) pair that contributes to an output pixel.
struct Source {
  int64_t attn;  // offset of the weight in attn, for head 0
  int64_t src;   // offset of the source pixel's channel 0 in the channels-last map
};

template <typename scalar_t, bool kTransposed>
void gather_kernel(const scalar_t* src, const scalar_t* attn, scalar_t* out, const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kChunk = 16;  // channels accumulated in registers at a time
  const int64_t C = g.C, H = g.H, W = g.W, K = g.K, KK = g.KK, d = g.head_dim;
  const int64_t head_stride = g.Ho * g.Wo * KK * KK;  // attn offset between heads
  // one task per image row (b, y); rows never share an output pixel, so no races
  at::parallel_for(0, g.B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<Source> sources;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      int64_t u_lo, u_hi;
      covering_windows(y, g.pad, K, g.stride, g.Ho, &u_lo, &u_hi);
      for (int64_t x = 0; x < W; ++x) {
        // the (weight, pixel) pairs of every window covering (y, x), shared by all heads
        sources.clear();
        int64_t w_lo, w_hi;
        covering_windows(x, g.pad, K, g.stride, g.Wo, &w_lo, &w_hi);
        for (int64_t u = u_lo; u <= u_hi; ++u) {
          const int64_t y0 = u * g.stride - g.pad;  // top row of window u
          for (int64_t w = w_lo; w <= w_hi; ++w) {
            const int64_t x0 = w * g.stride - g.pad;
            const int64_t t = (y - y0) * K + (x - x0);  // tap of (y, x) in this window
            const int64_t a0 = (((b * g.heads) * g.Ho + u) * g.Wo + w) * KK * KK;
            for (int64_t ky = 0; ky < K; ++ky) {
              const int64_t sy = y0 + ky;
              if (sy < 0 || sy >= H) continue;
              for (int64_t kx = 0; kx < K; ++kx) {
                const int64_t sx = x0 + kx;
                if (sx < 0 || sx >= W) continue;
                const int64_t k = ky * K + kx;  // tap of the source pixel
                sources.push_back({a0 + (kTransposed ? k * KK + t : t * KK + k),
                                   ((b * H + sy) * W + sx) * C});
              }
            }
          }
        }
        scalar_t* o = out + ((b * H + y) * W + x) * C;
        for (int64_t h = 0; h < g.heads; ++h) {
          const scalar_t* a_h = attn + h * head_stride;
          const scalar_t* src_h = src + h * d;
          int64_t c0 = 0;
          for (; c0 + kChunk <= d; c0 += kChunk) {
            acc_t acc[kChunk] = {};
            for (const Source& e : sources) {
              const acc_t wgt = static_cast<acc_t>(a_h[e.attn]);
              const scalar_t* sp = src_h + e.src + c0;
              for (int64_t c = 0; c < kChunk; ++c) acc[c] += wgt * static_cast<acc_t>(sp[c]);
            }
            for (int64_t c = 0; c < kChunk; ++c) o[h * d + c0 + c] = static_cast<scalar_t>(acc[c]);
          }
          if (c0 < d) {  // remaining channels of the head
            acc_t acc[kChunk] = {};
            const int64_t n = d - c0;
            for (const Source& e : sources) {
              const acc_t wgt = static_cast<acc_t>(a_h[e.attn]);
              const scalar_t* sp = src_h + e.src + c0;
              for (int64_t c = 0; c < n; ++c) acc[c] += wgt * static_cast<acc_t>(sp[c]);
            }
            for (int64_t c = 0; c < n; ++c) o[h * d + c0 + c] = static_cast<scalar_t>(acc[c]);
          }
        }
      }
    }
  });
}

template <typename acc_t, typename scalar_t>
inline acc_t dot(const scalar_t* p, const scalar_t* q, int64_t n) {
  // eight partial sums so the compiler vectorises without reassociating a single chain
  acc_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    for (int k = 0; k < 8; ++k) s[k] += static_cast<acc_t>(p[c + k]) * static_cast<acc_t>(q[c + k]);
  }
  for (; c < n; ++c) s[0] += static_cast<acc_t>(p[c]) * static_cast<acc_t>(q[c]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <typename scalar_t>
void grad_attn_kernel(const scalar_t* go, const scalar_t* value, scalar_t* grad_attn,
                      const Geometry& g) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = g.C, H = g.H, W = g.W, K = g.K, KK = g.KK, d = g.head_dim;
  // one task per window row (b, h, u)
  at::parallel_for(0, g.B * g.heads * g.Ho, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> offset(KK);  // element offset of each tap's pixel, -1 outside the map
    for (int64_t r = begin; r < end; ++r) {
      const int64_t u = r % g.Ho, h = (r / g.Ho) % g.heads, b = r / (g.Ho * g.heads);
      for (int64_t w = 0; w < g.Wo; ++w) {
        const int64_t y0 = u * g.stride - g.pad, x0 = w * g.stride - g.pad;
        for (int64_t k = 0; k < KK; ++k) {
          const int64_t sy = y0 + k / K, sx = x0 + k % K;
          offset[k] = (sy < 0 || sy >= H || sx < 0 || sx >= W)
                          ? -1 : ((b * H + sy) * W + sx) * C + h * d;
        }
        scalar_t* ga = grad_attn + (r * g.Wo + w) * KK * KK;  // (KK, KK) block of this window
        for (int64_t i = 0; i < KK; ++i) {
          for (int64_t j = 0; j < KK; ++j) {
            ga[i * KK + j] = (offset[i] < 0 || offset[j] < 0)
                ? scalar_t(0)
                : static_cast<scalar_t>(dot<acc_t>(go + offset[i], value + offset[j], d));
          }
        }
      }
    }
  });
}

}  // namespace

void gather_cpu(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                const Geometry& g, bool transposed) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(),
                                  "outlook_attention_gather_cpu", [&] {
    if (transposed) {
      gather_kernel<scalar_t, true>(src.const_data_ptr<scalar_t>(),
                                    attn.const_data_ptr<scalar_t>(),
                                    out.mutable_data_ptr<scalar_t>(), g);
    } else {
      gather_kernel<scalar_t, false>(src.const_data_ptr<scalar_t>(),
                                     attn.const_data_ptr<scalar_t>(),
                                     out.mutable_data_ptr<scalar_t>(), g);
    }
  });
}

void grad_attn_cpu(const at::Tensor& grad_out, const at::Tensor& value, at::Tensor& grad_attn,
                   const Geometry& g) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "outlook_attention_grad_attn_cpu", [&] {
    grad_attn_kernel<scalar_t>(grad_out.const_data_ptr<scalar_t>(),
                               value.const_data_ptr<scalar_t>(),
                               grad_attn.mutable_data_ptr<scalar_t>(), g);
  });
}

}  // namespace outlook_attention
}  // namespace mmvit_hybrid
