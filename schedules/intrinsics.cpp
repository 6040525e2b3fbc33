#include "schedules/intrinsics.h"

namespace tessel::sched {

const std::vector<TensorIntrinsic> &tensor_intrinsics() {
  static const std::vector<TensorIntrinsic> all = {
      {"avx512_fma_f32", "tessel_ukernel_f32_fma_avx512", "avx512f", ir::DataType::f32(), ir::DataType::f32(),
       ir::DataType::f32(),
       "AVX-512 FMA micro-kernel: 6 rows x 32 columns of C in 12 zmm accumulators, A broadcast, B streamed"},
  };
  return all;
}

const TensorIntrinsic *find_tensor_intrinsic(const std::string &name) {
  for (auto &t : tensor_intrinsics())
    if (t.name == name) return &t;
  return nullptr;
}

} // namespace tessel::sched
