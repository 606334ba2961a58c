// CUDA kernels of outlook attention, written for their access pattern.
//
// gather (forward, and grad_value with the attention matrices transposed): one thread per
// kVec consecutive channels of one output pixel (16-byte vector loads and stores where the
// channel count and alignment allow, one channel otherwise). Consecutive threads are consecutive
// channel groups of the channels-last map, so every load of a source pixel and every store is
// coalesced, and the threads of a head read the same attention weight (a broadcast). The thread
// index is split into (pixel, channel group) once, in 32-bit arithmetic when every tensor has
// fewer than 2^31 elements (64-bit otherwise).
//
// grad_attn: one warp per (b, head, window). The warp stages the window's K*K source rows of
// grad_output and value (the head's channels, read coalesced, zeros outside the map) in shared
// memory as float, then each lane computes dot products of length head_dim from shared memory
// (rows padded by one element: no bank conflicts) and the warp writes the window's K^4 weights
// contiguously. Each element of grad_output and value is read once per covering window from L2
// instead of once per attention weight that uses it. Windows whose rows do not fit in shared
// memory use a one-thread-per-weight kernel.
//
// Half and bfloat16 accumulate in float (at::opmath_type).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <limits>

#include "pytorch_cpp_helper.h"

namespace mmvit_hybrid {
namespace outlook_attention {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = 4;
constexpr size_t kMaxSharedBytes = 48 * 1024;

template <typename scalar_t, int kVec>
struct alignas(sizeof(scalar_t) * kVec) Pack {
  scalar_t v[kVec];
};

// The geometry as 32-bit ints (each size is checked to fit by the front end).
struct Geom32 {
  int B, C, H, W, heads, head_dim, Ho, Wo, K, KK, pad, stride;
};

Geom32 to32(const Geometry& g) {
  return {static_cast<int>(g.B),     static_cast<int>(g.C),        static_cast<int>(g.H),
          static_cast<int>(g.W),     static_cast<int>(g.heads),    static_cast<int>(g.head_dim),
          static_cast<int>(g.Ho),    static_cast<int>(g.Wo),       static_cast<int>(g.K),
          static_cast<int>(g.KK),    static_cast<int>(g.pad),      static_cast<int>(g.stride)};
}

// Windows along one axis whose taps cover coordinate y: the inclusive range [lo, hi].
__device__ __forceinline__ void covering(int y, int pad, int K, int stride, int n, int& lo,
                                         int& hi) {
  const int t = y + pad;
  const int first = t - K + 1;
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int last = t / stride;
  hi = last < n - 1 ? last : n - 1;
}

template <typename scalar_t, int kVec, bool kTransposed, typename index_t>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const scalar_t* __restrict__ src, const scalar_t* __restrict__ attn,
                  scalar_t* __restrict__ out, const Geom32 g, const index_t n_threads) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, kVec>;
  const index_t idx = static_cast<index_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= n_threads) return;
  // idx enumerates (b, y, x, channel group) of the channels-last map
  const int groups = g.C / kVec;
  const index_t pixel = idx / groups;
  const int c = static_cast<int>(idx - pixel * groups) * kVec;  // first channel of the group
  const index_t row = pixel / g.W;                                // b * H + y
  const int x = static_cast<int>(pixel - row * g.W);
  const int b = static_cast<int>(row / g.H);
  const int y = static_cast<int>(row - static_cast<index_t>(b) * g.H);
  const int h = c / g.head_dim;  // a group never straddles two heads (head_dim % kVec == 0)
  const int KK = g.KK;
  int u_lo, u_hi, w_lo, w_hi;
  covering(y, g.pad, g.K, g.stride, g.Ho, u_lo, u_hi);
  covering(x, g.pad, g.K, g.stride, g.Wo, w_lo, w_hi);
  const scalar_t* src_b = src + static_cast<index_t>(b) * g.H * g.W * g.C + c;
  const scalar_t* attn_bh =
      attn + (static_cast<index_t>(b) * g.heads + h) * g.Ho * g.Wo * KK * KK;
  acc_t acc[kVec];
#pragma unroll
  for (int v = 0; v < kVec; ++v) acc[v] = acc_t(0);
  for (int u = u_lo; u <= u_hi; ++u) {
    const int y0 = u * g.stride - g.pad;  // top row of window u
    for (int w = w_lo; w <= w_hi; ++w) {
      const int x0 = w * g.stride - g.pad;
      const int t = (y - y0) * g.K + (x - x0);  // tap of (y, x) in this window
      const scalar_t* a = attn_bh + (static_cast<index_t>(u) * g.Wo + w) * KK * KK;
      for (int ky = 0; ky < g.K; ++ky) {
        const int sy = y0 + ky;
        if (sy < 0 || sy >= g.H) continue;
        for (int kx = 0; kx < g.K; ++kx) {
          const int sx = x0 + kx;
          if (sx < 0 || sx >= g.W) continue;
          const int k = ky * g.K + kx;  // tap of the source pixel
          const acc_t wgt = static_cast<acc_t>(kTransposed ? a[k * KK + t] : a[t * KK + k]);
          const pack_t s = *reinterpret_cast<const pack_t*>(
              src_b + (static_cast<index_t>(sy) * g.W + sx) * g.C);
#pragma unroll
          for (int v = 0; v < kVec; ++v) acc[v] += wgt * static_cast<acc_t>(s.v[v]);
        }
      }
    }
  }
  pack_t o;
#pragma unroll
  for (int v = 0; v < kVec; ++v) o.v[v] = static_cast<scalar_t>(acc[v]);
  *reinterpret_cast<pack_t*>(out + pixel * g.C + c) = o;
}

// One warp per (b, h, u, w): stage the window's rows in shared memory, then K^4 dot products.
template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kWarpSize * kWarpsPerBlock)
    grad_attn_window_kernel(const scalar_t* __restrict__ go, const scalar_t* __restrict__ value,
                            scalar_t* __restrict__ grad_attn, const Geom32 g,
                            const index_t n_windows) {
  using acc_t = at::opmath_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const index_t win = static_cast<index_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (win >= n_windows) return;  // warps are independent: no block-wide barrier below
  const int d = g.head_dim, KK = g.KK, ld = d + 1;  // ld: padded row, conflict-free columns
  acc_t* go_s = reinterpret_cast<acc_t*>(smem_raw) + warp * 2 * KK * ld;  // (KK, ld)
  acc_t* v_s = go_s + KK * ld;                                             // (KK, ld)
  // win enumerates (b, h, u, w) of the contiguous attention tensor
  index_t rest = win / g.Wo;
  const int w = static_cast<int>(win - rest * g.Wo);
  const index_t bh = rest / g.Ho;
  const int u = static_cast<int>(rest - bh * g.Ho);
  const int b = static_cast<int>(bh / g.heads);
  const int h = static_cast<int>(bh - static_cast<index_t>(b) * g.heads);
  const int y0 = u * g.stride - g.pad, x0 = w * g.stride - g.pad;
  const index_t base = static_cast<index_t>(b) * g.H * g.W * g.C + h * d;
  for (int e = lane; e < KK * d; e += kWarpSize) {  // tap t = e / d, channel e % d: coalesced
    const int t = e / d, c = e - t * d;
    const int sy = y0 + t / g.K, sx = x0 + t % g.K;
    acc_t gv = acc_t(0), vv = acc_t(0);
    if (sy >= 0 && sy < g.H && sx >= 0 && sx < g.W) {
      const index_t off = base + (static_cast<index_t>(sy) * g.W + sx) * g.C + c;
      gv = static_cast<acc_t>(go[off]);
      vv = static_cast<acc_t>(value[off]);
    }
    go_s[t * ld + c] = gv;
    v_s[t * ld + c] = vv;
  }
  __syncwarp();
  scalar_t* ga = grad_attn + win * KK * KK;  // the window's (KK, KK) block
  for (int o = lane; o < KK * KK; o += kWarpSize) {
    const int i = o / KK, j = o - (o / KK) * KK;  // i: tap written, j: tap read
    const acc_t* p = go_s + i * ld;
    const acc_t* q = v_s + j * ld;
    acc_t acc = acc_t(0);
    for (int c = 0; c < d; ++c) acc += p[c] * q[c];
    ga[o] = static_cast<scalar_t>(acc);
  }
}

// Fallback for windows too large for shared memory: one thread per attention weight.
template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    grad_attn_naive_kernel(const scalar_t* __restrict__ go, const scalar_t* __restrict__ value,
                           scalar_t* __restrict__ grad_attn, const Geom32 g, const index_t n) {
  using acc_t = at::opmath_type<scalar_t>;
  const index_t idx = static_cast<index_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= n) return;
  const index_t win = idx / (g.KK * g.KK);
  const int o = static_cast<int>(idx - win * g.KK * g.KK);
  const int i = o / g.KK, j = o - i * g.KK;
  index_t rest = win / g.Wo;
  const int w = static_cast<int>(win - rest * g.Wo);
  const index_t bh = rest / g.Ho;
  const int u = static_cast<int>(rest - bh * g.Ho);
  const int b = static_cast<int>(bh / g.heads);
  const int h = static_cast<int>(bh - static_cast<index_t>(b) * g.heads);
  const int y0 = u * g.stride - g.pad, x0 = w * g.stride - g.pad;
  const int iy = y0 + i / g.K, ix = x0 + i % g.K;  // pixel written through tap i
  const int jy = y0 + j / g.K, jx = x0 + j % g.K;  // pixel read through tap j
  acc_t acc = acc_t(0);
  if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W && jy >= 0 && jy < g.H && jx >= 0 &&
      jx < g.W) {
    const index_t base = static_cast<index_t>(b) * g.H * g.W * g.C + h * g.head_dim;
    const scalar_t* p = go + base + (static_cast<index_t>(iy) * g.W + ix) * g.C;
    const scalar_t* q = value + base + (static_cast<index_t>(jy) * g.W + jx) * g.C;
    for (int c = 0; c < g.head_dim; ++c) {
      acc += static_cast<acc_t>(p[c]) * static_cast<acc_t>(q[c]);
    }
  }
  grad_attn[idx] = static_cast<scalar_t>(acc);
}

inline unsigned int blocks_for(int64_t n, int64_t per_block) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(),
              "outlook_attention: too many CUDA blocks (", blocks, ")");
  return static_cast<unsigned int>(blocks);
}

bool fits_int32(std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes) {
    if (s >= std::numeric_limits<int32_t>::max()) return false;
  }
  return true;
}

bool aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename scalar_t, int kVec, bool kTransposed>
void launch_gather(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                   const Geometry& g, cudaStream_t stream) {
  const Geom32 g32 = to32(g);
  const int64_t n_threads = out.numel() / kVec;
  const unsigned int blocks = blocks_for(n_threads, kThreads);
  if (fits_int32({src.numel(), attn.numel(), out.numel()})) {
    gather_kernel<scalar_t, kVec, kTransposed, int32_t><<<blocks, kThreads, 0, stream>>>(
        src.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
        out.mutable_data_ptr<scalar_t>(), g32, static_cast<int32_t>(n_threads));
  } else {
    gather_kernel<scalar_t, kVec, kTransposed, int64_t><<<blocks, kThreads, 0, stream>>>(
        src.const_data_ptr<scalar_t>(), attn.const_data_ptr<scalar_t>(),
        out.mutable_data_ptr<scalar_t>(), g32, n_threads);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, bool kTransposed>
void dispatch_gather(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                     const Geometry& g, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(scalar_t) > 0 ? 16 / sizeof(scalar_t) : 1;
  constexpr size_t kBytes = sizeof(scalar_t) * kVec;
  const bool vec = kVec > 1 && g.head_dim % kVec == 0 &&
                   aligned(src.const_data_ptr(), kBytes) && aligned(out.const_data_ptr(), kBytes);
  if (vec) {
    launch_gather<scalar_t, kVec, kTransposed>(src, attn, out, g, stream);
  } else {
    launch_gather<scalar_t, 1, kTransposed>(src, attn, out, g, stream);
  }
}

}  // namespace

void gather_cuda(const at::Tensor& src, const at::Tensor& attn, at::Tensor& out,
                 const Geometry& g, bool transposed) {
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(),
                                  "outlook_attention_gather_cuda", [&] {
    if (transposed) {
      dispatch_gather<scalar_t, true>(src, attn, out, g, stream);
    } else {
      dispatch_gather<scalar_t, false>(src, attn, out, g, stream);
    }
  });
}

void grad_attn_cuda(const at::Tensor& grad_out, const at::Tensor& value, at::Tensor& grad_attn,
                    const Geometry& g) {
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const Geom32 g32 = to32(g);
  const int64_t n_windows = g.B * g.heads * g.Ho * g.Wo;
  const bool small = fits_int32({grad_out.numel(), value.numel(), grad_attn.numel()});
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "outlook_attention_grad_attn_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const size_t per_warp = 2 * g.KK * (g.head_dim + 1) * sizeof(acc_t);
    const scalar_t* go = grad_out.const_data_ptr<scalar_t>();
    const scalar_t* v = value.const_data_ptr<scalar_t>();
    scalar_t* ga = grad_attn.mutable_data_ptr<scalar_t>();
    if (per_warp * kWarpsPerBlock <= kMaxSharedBytes) {
      const unsigned int blocks = blocks_for(n_windows, kWarpsPerBlock);
      const size_t shared = per_warp * kWarpsPerBlock;
      if (small) {
        grad_attn_window_kernel<scalar_t, int32_t>
            <<<blocks, kWarpSize * kWarpsPerBlock, shared, stream>>>(
                go, v, ga, g32, static_cast<int32_t>(n_windows));
      } else {
        grad_attn_window_kernel<scalar_t, int64_t>
            <<<blocks, kWarpSize * kWarpsPerBlock, shared, stream>>>(go, v, ga, g32, n_windows);
      }
    } else {
      const int64_t n = grad_attn.numel();
      const unsigned int blocks = blocks_for(n, kThreads);
      if (small) {
        grad_attn_naive_kernel<scalar_t, int32_t><<<blocks, kThreads, 0, stream>>>(
            go, v, ga, g32, static_cast<int32_t>(n));
      } else {
        grad_attn_naive_kernel<scalar_t, int64_t><<<blocks, kThreads, 0, stream>>>(
            go, v, ga, g32, n);
      }
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace outlook_attention
}  // namespace mmvit_hybrid
