// Front end of the fused outlook-attention op: schema registration (TORCH_LIBRARY), input
// validation, layout conversion, and dispatch to the CPU / CUDA kernels.
//
// Three ops, so that backward computes only the gradients autograd asks for:
//   outlook_attention_forward(value, attn)           -> out         (B, C, H, W)
//   outlook_attention_grad_value(grad_output, attn)  -> grad_value  (B, C, H, W)
//   outlook_attention_grad_attn(grad_output, value)  -> grad_attn   (B, heads, Ho, Wo, KK, KK)
// Every kernel entry validates its inputs before anything touches a device (the CUDA guard
// included), so a CPU/CUDA or dtype mix gets this file's message. Autograd, autocast and the fake
// (meta) implementations are registered in Python (mmvit_hybrid/ops/outlook_attention.py).
//
// Credit: the tree follows mmcv's ops/csrc layout (common/ headers, a pytorch/ front end,
// pytorch/cpu and pytorch/cuda implementations); the kernels themselves are this package's own.
// The computation is timm's / sail-sg/volo's OutlookAttention (fold(attn @ unfold(v))), with each
// output pixel gathered from its covering windows instead.
#include <torch/extension.h>
#include <torch/library.h>

#include <limits>

#include <c10/core/DeviceGuard.h>

#ifdef WITH_CUDA
#include <cuda.h>  // CUDA_VERSION
#endif

#include "pytorch_cpp_helper.h"

namespace mmvit_hybrid {
namespace outlook_attention {
namespace {

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();

// Checks the (B, C, H, W) map tensor `map` (value or grad_output, named `map_name`) against the
// window configuration; returns the geometry with heads unset.
Geometry check_map(const at::Tensor& map, const char* map_name, int64_t kernel_size,
                   int64_t padding, int64_t stride) {
  TORCH_CHECK(kernel_size >= 1 && stride >= 1 && padding >= 0 && padding < kernel_size,
              "outlook_attention: need kernel_size >= 1, stride >= 1 and 0 <= padding < "
              "kernel_size; got kernel_size=", kernel_size, ", padding=", padding,
              ", stride=", stride);
  TORCH_CHECK(map.dim() == 4, "outlook_attention: ", map_name, " must be (B, C, H, W), got shape ",
              map.sizes());
  TORCH_CHECK(at::isFloatingType(map.scalar_type()), "outlook_attention: ", map_name,
              " must be floating point, got ", map.scalar_type());
  Geometry g;
  g.B = map.size(0);
  g.C = map.size(1);
  g.H = map.size(2);
  g.W = map.size(3);
  g.K = kernel_size;
  g.KK = kernel_size * kernel_size;
  g.pad = padding;
  g.stride = stride;
  TORCH_CHECK(g.H + 2 * padding >= kernel_size && g.W + 2 * padding >= kernel_size,
              "outlook_attention: a ", g.H, "x", g.W, " map with padding ", padding,
              " is smaller than the ", kernel_size, "x", kernel_size, " window");
  // each size fits 32 bits (the kernels' per-axis arithmetic); products may not
  TORCH_CHECK(g.B <= kIntMax && g.C <= kIntMax && g.H <= kIntMax && g.W <= kIntMax &&
                  kernel_size <= 64,
              "outlook_attention: sizes too large: ", map.sizes(), ", kernel_size=", kernel_size);
  g.Ho = (g.H + 2 * padding - kernel_size) / stride + 1;
  g.Wo = (g.W + 2 * padding - kernel_size) / stride + 1;
  return g;
}

void set_heads(Geometry& g, int64_t heads) {
  TORCH_CHECK(heads >= 1 && g.C % heads == 0, "outlook_attention: value has C=", g.C,
              " channels, which attn's num_heads=", heads, " (dim 1) does not divide");
  g.heads = heads;
  g.head_dim = g.C / heads;
}

void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                const char* b_name) {
  TORCH_CHECK(a.device() == b.device(), "outlook_attention: ", a_name, " is on ", a.device(),
              " but ", b_name, " on ", b.device(), "; move both to the same device");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "outlook_attention: ", a_name, " (",
              a.scalar_type(), ") and ", b_name, " (", b.scalar_type(),
              ") must have the same dtype");
}

// value-or-grad_output map against attn (forward, grad_value)
Geometry check_map_attn(const at::Tensor& map, const char* map_name, const at::Tensor& attn,
                        int64_t kernel_size, int64_t padding, int64_t stride) {
  Geometry g = check_map(map, map_name, kernel_size, padding, stride);
  TORCH_CHECK(attn.dim() == 6,
              "outlook_attention: attn must be (B, num_heads, Ho, Wo, K*K, K*K), got shape ",
              attn.sizes());
  TORCH_CHECK(at::isFloatingType(attn.scalar_type()), "outlook_attention: ", map_name,
              " and attn must be floating point, got ", map.scalar_type(), " and ",
              attn.scalar_type());
  check_same(map, map_name, attn, "attn");
  TORCH_CHECK(attn.size(0) == g.B, "outlook_attention: batch sizes differ: ", map_name, " ",
              g.B, ", attn ", attn.size(0));
  set_heads(g, attn.size(1));
  TORCH_CHECK(attn.size(2) == g.Ho && attn.size(3) == g.Wo && attn.size(4) == g.KK &&
                  attn.size(5) == g.KK,
              "outlook_attention: attn has shape ", attn.sizes(), ", expected (", g.B, ", ",
              g.heads, ", ", g.Ho, ", ", g.Wo, ", ", g.KK, ", ", g.KK, ") for a ", g.H, "x", g.W,
              " ", map_name, " map with kernel_size=", kernel_size, ", padding=", padding,
              ", stride=", stride);
  return g;
}

at::Tensor channels_last(const at::Tensor& t) {
  return t.contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor empty_channels_last(const at::Tensor& like) {
  return at::empty(like.sizes(), like.options().memory_format(at::MemoryFormat::ChannelsLast));
}

// forward (transposed = false) and grad_value (transposed = true) share the gather kernels
at::Tensor gather_impl(const at::Tensor& map, const at::Tensor& attn, const Geometry& g,
                       bool transposed, bool cuda) {
  const at::Tensor src = channels_last(map);  // (B, C, H, W) shape, (B, H, W, C) in memory
  const at::Tensor a = attn.contiguous();     // (B, heads, Ho, Wo, KK, KK)
  at::Tensor out = empty_channels_last(map);  // (B, C, H, W) shape, (B, H, W, C) in memory
  if (out.numel() == 0) return out;
  if (cuda) {
#ifdef WITH_CUDA
    gather_cuda(src, a, out, g, transposed);
#endif
  } else {
    gather_cpu(src, a, out, g, transposed);
  }
  return out;
}

at::Tensor grad_attn_impl(const at::Tensor& grad_output, const at::Tensor& value,
                          const Geometry& g, bool cuda) {
  const at::Tensor go = channels_last(grad_output);  // (B, H, W, C) in memory
  const at::Tensor v = channels_last(value);         // (B, H, W, C) in memory
  at::Tensor grad_attn = at::empty({g.B, g.heads, g.Ho, g.Wo, g.KK, g.KK}, value.options());
  if (grad_attn.numel() == 0) return grad_attn;
  if (cuda) {
#ifdef WITH_CUDA
    grad_attn_cuda(go, v, grad_attn, g);
#endif
  } else {
    grad_attn_cpu(go, v, grad_attn, g);
  }
  return grad_attn;
}

Geometry check_grad_attn(const at::Tensor& grad_output, const at::Tensor& value,
                         int64_t num_heads, int64_t kernel_size, int64_t padding,
                         int64_t stride) {
  Geometry g = check_map(value, "value", kernel_size, padding, stride);
  check_same(grad_output, "grad_output", value, "value");
  TORCH_CHECK(grad_output.sizes() == value.sizes(), "outlook_attention backward: grad_output "
              "shape ", grad_output.sizes(), " differs from value shape ", value.sizes());
  set_heads(g, num_heads);
  return g;
}

template <bool kCuda>
at::Tensor forward(const at::Tensor& value, const at::Tensor& attn, int64_t kernel_size,
                   int64_t padding, int64_t stride) {
  const Geometry g = check_map_attn(value, "value", attn, kernel_size, padding, stride);
  c10::OptionalDeviceGuard guard;  // set only after the checks above
  if (kCuda) guard.reset_device(value.device());
  return gather_impl(value, attn, g, /*transposed=*/false, kCuda);
}

template <bool kCuda>
at::Tensor grad_value(const at::Tensor& grad_output, const at::Tensor& attn, int64_t kernel_size,
                      int64_t padding, int64_t stride) {
  const Geometry g =
      check_map_attn(grad_output, "grad_output", attn, kernel_size, padding, stride);
  c10::OptionalDeviceGuard guard;  // set only after the checks above
  if (kCuda) guard.reset_device(attn.device());
  return gather_impl(grad_output, attn, g, /*transposed=*/true, kCuda);
}

template <bool kCuda>
at::Tensor grad_attn(const at::Tensor& grad_output, const at::Tensor& value, int64_t num_heads,
                     int64_t kernel_size, int64_t padding, int64_t stride) {
  const Geometry g = check_grad_attn(grad_output, value, num_heads, kernel_size, padding, stride);
  c10::OptionalDeviceGuard guard;  // set only after the checks above
  if (kCuda) guard.reset_device(value.device());
  return grad_attn_impl(grad_output, value, g, kCuda);
}

}  // namespace
}  // namespace outlook_attention
}  // namespace mmvit_hybrid

TORCH_LIBRARY(mmvit_hybrid, m) {
  m.def("outlook_attention_forward(Tensor value, Tensor attn, int kernel_size, int padding, "
        "int stride) -> Tensor");
  m.def("outlook_attention_grad_value(Tensor grad_output, Tensor attn, int kernel_size, "
        "int padding, int stride) -> Tensor");
  m.def("outlook_attention_grad_attn(Tensor grad_output, Tensor value, int num_heads, "
        "int kernel_size, int padding, int stride) -> Tensor");
}

TORCH_LIBRARY_IMPL(mmvit_hybrid, CPU, m) {
  namespace oa = mmvit_hybrid::outlook_attention;
  m.impl("outlook_attention_forward", &oa::forward<false>);
  m.impl("outlook_attention_grad_value", &oa::grad_value<false>);
  m.impl("outlook_attention_grad_attn", &oa::grad_attn<false>);
}

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(mmvit_hybrid, CUDA, m) {
  namespace oa = mmvit_hybrid::outlook_attention;
  m.impl("outlook_attention_forward", &oa::forward<true>);
  m.impl("outlook_attention_grad_value", &oa::grad_value<true>);
  m.impl("outlook_attention_grad_attn", &oa::grad_attn<true>);
}
#endif

// The Python module only reports how the extension was built; importing it registers the ops.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  }, "Whether the CUDA kernels were compiled in.");
  m.def("cuda_version", []() {
#if defined(WITH_CUDA) && defined(CUDA_VERSION)
    return static_cast<int>(CUDA_VERSION);
#else
    return 0;
#endif
  }, "CUDA_VERSION the kernels were compiled with (0 without CUDA).");
}
