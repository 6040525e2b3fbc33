#include "schedules/intrinsics.h"

namespace tessel::sched {

namespace {

TensorIntrinsic cpu(std::string name, std::string symbol, std::string emulation, std::string feature, ir::DataType a,
                    ir::DataType c, std::string description) {
  TensorIntrinsic t;
  t.name = std::move(name);
  t.target_kind = "cpu";
  t.runtime_symbol = std::move(symbol);
  t.emulation_symbol = std::move(emulation);
  t.required_feature = std::move(feature);
  t.a = t.b = a;
  t.c = c;
  t.description = std::move(description);
  return t;
}

// wmma_<a>_m<M>n<N>k<K>: one warp-level mma_sync on A and B fragments loaded from memory.
TensorIntrinsic wmma(ir::DataType a, ir::DataType c, int m, int n, int k, std::string emulation) {
  TensorIntrinsic t;
  std::string shape = "m" + std::to_string(m) + "n" + std::to_string(n) + "k" + std::to_string(k);
  t.name = "wmma_" + a.str() + "_" + shape;
  t.target_kind = "cuda";
  t.runtime_symbol = "tessel_" + t.name;
  t.emulation_symbol = std::move(emulation);
  t.a = t.b = a;
  t.c = c;
  t.m = m, t.n = n, t.k = k;
  t.warp_level = true;
  t.description = "CUDA WMMA " + shape + " (tensor cores): a warp loads A and B fragments, mma_sync adds " + a.str() +
                  " products into a " + c.str() + " accumulator fragment";
  return t;
}

} // namespace

bool TensorIntrinsic::available_on(const Target &target) const {
  if (target.kind != target_kind) return false;
  if (target_kind == "cpu") return target.has_feature(required_feature);
  if (!target.gpu) return false;
  for (auto &tc : target.gpu->tensor_cores)
    if (tc.m == m && tc.n == n && tc.k == k && tc.a_dtype == a.str() && tc.c_dtype == c.str()) return true;
  return false;
}

std::string TensorIntrinsic::shape_str() const {
  if (!fixed_shape()) return "any shape";
  return "m" + std::to_string(m) + "n" + std::to_string(n) + "k" + std::to_string(k);
}

const std::vector<TensorIntrinsic> &tensor_intrinsics() {
  using ir::DataType;
  static const std::vector<TensorIntrinsic> all = {
      cpu("amx_bf16", "tessel_ukernel_bf16_amx", "tessel_ukernel_bf16_amx_emulated", "amx-bf16", DataType::bf16(),
          DataType::f32(),
          "AMX tiles (tdpbf16ps): f32 C += bf16 A * bf16 B in 16 x 16 accumulator tiles, 32 k per instruction"),
      cpu("amx_int8", "tessel_ukernel_i8_amx", "tessel_ukernel_i8_amx_emulated", "amx-int8", DataType::i8(),
          DataType::i32(),
          "AMX tiles (tdpbssd): i32 C += i8 A * i8 B in 16 x 16 accumulator tiles, 64 k per instruction"),
      cpu("avx512_fma_f32", "tessel_ukernel_f32_fma_avx512", "tessel_ukernel_f32_reference", "avx512f", DataType::f32(),
          DataType::f32(),
          "AVX-512 FMA micro-kernel: up to 6 rows x 64 columns of C in zmm accumulators, A broadcast, B streamed"),
      cpu("avx2_fma_f32", "tessel_ukernel_f32_fma_avx2", "tessel_ukernel_f32_reference", "fma", DataType::f32(),
          DataType::f32(),
          "AVX2 + FMA micro-kernel: up to 6 rows x 16 columns of C in ymm accumulators, A broadcast, B streamed"),
      cpu("avx512_bf16_dot", "tessel_ukernel_bf16_dot_avx512", "tessel_ukernel_bf16_reference", "avx512bf16",
          DataType::bf16(), DataType::f32(),
          "AVX-512 BF16 dot products (vdpbf16ps): f32 C += bf16 A * bf16 B, two products per lane, pairs along k"),
      // The WMMA shapes CUDA offers for 16-bit and 8-bit inputs (sm_70+ f16, sm_80+ bf16, sm_72+ i8).
      wmma(DataType::f16(), DataType::f32(), 16, 16, 16, "tessel_ukernel_f16_reference"),
      wmma(DataType::f16(), DataType::f32(), 32, 8, 16, "tessel_ukernel_f16_reference"),
      wmma(DataType::f16(), DataType::f32(), 8, 32, 16, "tessel_ukernel_f16_reference"),
      wmma(DataType::bf16(), DataType::f32(), 16, 16, 16, "tessel_ukernel_bf16_reference"),
      wmma(DataType::bf16(), DataType::f32(), 32, 8, 16, "tessel_ukernel_bf16_reference"),
      wmma(DataType::bf16(), DataType::f32(), 8, 32, 16, "tessel_ukernel_bf16_reference"),
      wmma(DataType::i8(), DataType::i32(), 16, 16, 16, "tessel_ukernel_i8_reference"),
      wmma(DataType::i8(), DataType::i32(), 32, 8, 16, "tessel_ukernel_i8_reference"),
      wmma(DataType::i8(), DataType::i32(), 8, 32, 16, "tessel_ukernel_i8_reference"),
  };
  return all;
}

std::optional<ProductOperands> product_operands(const ir::Tensor &t) {
  auto *red = t->body.as<ir::Reduce>();
  auto *mul = red && red->op == ir::ReduceOp::Sum ? red->source.as<ir::Binary>() : nullptr;
  if (!mul || mul->op != ir::BinaryOp::Mul) return std::nullopt;
  auto operand = [&](const ir::Expr &e) -> const ir::TensorRead * {
    if (auto *c = e.as<ir::Cast>()) return c->type == t->dtype ? c->value.as<ir::TensorRead>() : nullptr;
    return e.as<ir::TensorRead>();
  };
  const ir::TensorRead *a = operand(mul->a), *b = operand(mul->b);
  if (!a || !b) return std::nullopt;
  return ProductOperands{a, b};
}

bool fits_intrinsic_layout(const TileStrides &t, bool has_j) {
  return t.c_k == 0 && t.a_j == 0 && t.b_i == 0 && (!has_j || (t.c_j == 1 && t.b_j == 1));
}

const TensorIntrinsic *find_tensor_intrinsic(const std::string &name) {
  for (auto &t : tensor_intrinsics())
    if (t.name == name) return &t;
  return nullptr;
}

const TensorIntrinsic *intrinsic_of_symbol(const std::string &symbol) {
  for (auto &t : tensor_intrinsics())
    if (t.runtime_symbol == symbol) return &t;
  return nullptr;
}

} // namespace tessel::sched
