#include "schedules/intrinsics.h"

namespace tessel::sched {

const std::vector<TensorIntrinsic> &tensor_intrinsics() {
  static const std::vector<TensorIntrinsic> all = {
      {"avx512_fma_f32", "tessel_ukernel_f32_fma_avx512", "avx512f", ir::DataType::f32(), ir::DataType::f32(),
       ir::DataType::f32(),
       "AVX-512 FMA micro-kernel: up to 6 rows x 64 columns of C in zmm accumulators, A broadcast, B streamed"},
      {"avx512_bf16_dot", "tessel_ukernel_bf16_dot_avx512", "avx512bf16", ir::DataType::bf16(), ir::DataType::bf16(),
       ir::DataType::f32(),
       "AVX-512 BF16 dot products (vdpbf16ps): f32 C += bf16 A * bf16 B, two products per lane, pairs along k"},
  };
  return all;
}

const TensorIntrinsic *find_tensor_intrinsic(const std::string &name) {
  for (auto &t : tensor_intrinsics())
    if (t.name == name) return &t;
  return nullptr;
}

} // namespace tessel::sched
