// Front end of the fused outlook-attention op: schema registration (TORCH_LIBRARY), input
// validation, layout conversion, and dispatch to the CPU / CUDA kernels.
// Autograd and the fake (meta) implementations are registered in Python
// (mmvit_hybrid/ops/outlook_attention.py) with torch.library.
//
// Credit: the tree follows mmcv's ops/csrc layout (common/ headers, a pytorch/ front end,
// pytorch/cpu and pytorch/cuda implementations); the kernels themselves are this package's own.
// The computation is timm's / sail-sg/volo's OutlookAttention (fold(attn @ unfold(v))), with each
// output pixel gathered from its covering windows instead.
#include <torch/extension.h>
#include <torch/library.h>

#ifdef WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#endif

#include "pytorch_cpp_helper.h"

namespace mmvit_hybrid {
namespace outlook_attention {
namespace {

Geometry check_inputs(const at::Tensor& value, const at::Tensor& attn, int64_t kernel_size,
                      int64_t padding, int64_t stride) {
  TORCH_CHECK(kernel_size >= 1 && stride >= 1 && padding >= 0 && padding < kernel_size,
              "outlook_attention: need kernel_size >= 1, stride >= 1 and 0 <= padding < "
              "kernel_size; got kernel_size=", kernel_size, ", padding=", padding,
              ", stride=", stride);
  TORCH_CHECK(value.dim() == 4, "outlook_attention: value must be (B, C, H, W), got shape ",
              value.sizes());
  TORCH_CHECK(attn.dim() == 6,
              "outlook_attention: attn must be (B, num_heads, Ho, Wo, K*K, K*K), got shape ",
              attn.sizes());
  TORCH_CHECK(at::isFloatingType(value.scalar_type()) && at::isFloatingType(attn.scalar_type()),
              "outlook_attention: value and attn must be floating point, got ",
              value.scalar_type(), " and ", attn.scalar_type());
  TORCH_CHECK(value.scalar_type() == attn.scalar_type(), "outlook_attention: value (",
              value.scalar_type(), ") and attn (", attn.scalar_type(),
              ") must have the same dtype");
  TORCH_CHECK(value.device() == attn.device(), "outlook_attention: value is on ",
              value.device(), " but attn on ", attn.device(), "; move both to the same device");
  Geometry g;
  g.B = value.size(0);
  g.C = value.size(1);
  g.H = value.size(2);
  g.W = value.size(3);
  g.heads = attn.size(1);
  g.K = kernel_size;
  g.KK = kernel_size * kernel_size;
  g.pad = padding;
  g.stride = stride;
  g.Ho = (g.H + 2 * padding - kernel_size) / stride + 1;
  g.Wo = (g.W + 2 * padding - kernel_size) / stride + 1;
  TORCH_CHECK(g.H + 2 * padding >= kernel_size && g.W + 2 * padding >= kernel_size,
              "outlook_attention: a ", g.H, "x", g.W, " map with padding ", padding,
              " is smaller than the ", kernel_size, "x", kernel_size, " window");
  TORCH_CHECK(attn.size(0) == g.B, "outlook_attention: batch sizes differ: value ", g.B,
              ", attn ", attn.size(0));
  TORCH_CHECK(g.heads >= 1 && g.C % g.heads == 0, "outlook_attention: value has C=", g.C,
              " channels, which attn's num_heads=", g.heads, " (dim 1) does not divide");
  g.head_dim = g.C / g.heads;
  TORCH_CHECK(attn.size(0) == g.B && attn.size(2) == g.Ho && attn.size(3) == g.Wo &&
                  attn.size(4) == g.KK && attn.size(5) == g.KK,
              "outlook_attention: attn has shape ", attn.sizes(), ", expected (", g.B, ", ",
              g.heads, ", ", g.Ho, ", ", g.Wo, ", ", g.KK, ", ", g.KK, ") for a ", g.H, "x", g.W,
              " value map with kernel_size=", kernel_size, ", padding=", padding,
              ", stride=", stride);
  return g;
}

void check_grad_output(const at::Tensor& grad_output, const at::Tensor& value) {
  TORCH_CHECK(grad_output.sizes() == value.sizes(), "outlook_attention backward: grad_output ",
              "shape ", grad_output.sizes(), " differs from value shape ", value.sizes());
  TORCH_CHECK(grad_output.scalar_type() == value.scalar_type() &&
                  grad_output.device() == value.device(),
              "outlook_attention backward: grad_output (", grad_output.scalar_type(), ", ",
              grad_output.device(), ") must match value (", value.scalar_type(), ", ",
              value.device(), ")");
}

at::Tensor channels_last(const at::Tensor& t) {
  return t.contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor empty_channels_last(const at::Tensor& like) {
  return at::empty(like.sizes(), like.options().memory_format(at::MemoryFormat::ChannelsLast));
}

at::Tensor forward_impl(const at::Tensor& value, const at::Tensor& attn, int64_t kernel_size,
                        int64_t padding, int64_t stride, bool cuda) {
  const Geometry g = check_inputs(value, attn, kernel_size, padding, stride);
  const at::Tensor v = channels_last(value);   // (B, C, H, W) shape, (B, H, W, C) in memory
  const at::Tensor a = attn.contiguous();      // (B, heads, Ho, Wo, KK, KK)
  at::Tensor out = empty_channels_last(value);  // (B, C, H, W) shape, (B, H, W, C) in memory
  if (out.numel() == 0) return out;
  if (cuda) {
#ifdef WITH_CUDA
    gather_cuda(v, a, out, g, /*transposed=*/false);
#endif
  } else {
    gather_cpu(v, a, out, g, /*transposed=*/false);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor> backward_impl(const at::Tensor& grad_output,
                                                 const at::Tensor& value, const at::Tensor& attn,
                                                 int64_t kernel_size, int64_t padding,
                                                 int64_t stride, bool cuda) {
  const Geometry g = check_inputs(value, attn, kernel_size, padding, stride);
  check_grad_output(grad_output, value);
  const at::Tensor go = channels_last(grad_output);  // (B, H, W, C) in memory
  const at::Tensor v = channels_last(value);         // (B, H, W, C) in memory
  const at::Tensor a = attn.contiguous();            // (B, heads, Ho, Wo, KK, KK)
  at::Tensor grad_value = empty_channels_last(value);
  at::Tensor grad_attn = at::empty(attn.sizes(), attn.options());  // contiguous
  if (cuda) {
#ifdef WITH_CUDA
    if (grad_value.numel() > 0) gather_cuda(go, a, grad_value, g, /*transposed=*/true);
    if (grad_attn.numel() > 0) grad_attn_cuda(go, v, grad_attn, g);
#endif
  } else {
    if (grad_value.numel() > 0) gather_cpu(go, a, grad_value, g, /*transposed=*/true);
    if (grad_attn.numel() > 0) grad_attn_cpu(go, v, grad_attn, g);
  }
  return std::make_tuple(grad_value, grad_attn);
}

at::Tensor forward_cpu(const at::Tensor& value, const at::Tensor& attn, int64_t kernel_size,
                       int64_t padding, int64_t stride) {
  return forward_impl(value, attn, kernel_size, padding, stride, /*cuda=*/false);
}

std::tuple<at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad_output,
                                                const at::Tensor& value, const at::Tensor& attn,
                                                int64_t kernel_size, int64_t padding,
                                                int64_t stride) {
  return backward_impl(grad_output, value, attn, kernel_size, padding, stride, /*cuda=*/false);
}

#ifdef WITH_CUDA
at::Tensor forward_cuda(const at::Tensor& value, const at::Tensor& attn, int64_t kernel_size,
                        int64_t padding, int64_t stride) {
  const c10::cuda::CUDAGuard guard(value.device());
  return forward_impl(value, attn, kernel_size, padding, stride, /*cuda=*/true);
}

std::tuple<at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_output,
                                                 const at::Tensor& value, const at::Tensor& attn,
                                                 int64_t kernel_size, int64_t padding,
                                                 int64_t stride) {
  const c10::cuda::CUDAGuard guard(value.device());
  return backward_impl(grad_output, value, attn, kernel_size, padding, stride, /*cuda=*/true);
}
#endif

}  // namespace
}  // namespace outlook_attention
}  // namespace mmvit_hybrid

TORCH_LIBRARY(mmvit_hybrid, m) {
  m.def("outlook_attention_forward(Tensor value, Tensor attn, int kernel_size, int padding, "
        "int stride) -> Tensor");
  m.def("outlook_attention_backward(Tensor grad_output, Tensor value, Tensor attn, "
        "int kernel_size, int padding, int stride) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mmvit_hybrid, CPU, m) {
  m.impl("outlook_attention_forward", &mmvit_hybrid::outlook_attention::forward_cpu);
  m.impl("outlook_attention_backward", &mmvit_hybrid::outlook_attention::backward_cpu);
}

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(mmvit_hybrid, CUDA, m) {
  m.impl("outlook_attention_forward", &mmvit_hybrid::outlook_attention::forward_cuda);
  m.impl("outlook_attention_backward", &mmvit_hybrid::outlook_attention::backward_cuda);
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
}
