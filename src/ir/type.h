// Scalar and vector data types of the loop IR and the tensor language.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tessel::ir {

struct DataType {
  enum Code : uint8_t { Int, UInt, Float, BFloat, Handle };
  Code code = Int;
  uint8_t bits = 32;
  uint16_t lanes = 1;

  constexpr DataType() = default;
  constexpr DataType(Code c, int b, int l = 1) : code(c), bits(uint8_t(b)), lanes(uint16_t(l)) {}

  static constexpr DataType f32() { return {Float, 32}; }
  static constexpr DataType f64() { return {Float, 64}; }
  static constexpr DataType f16() { return {Float, 16}; }
  static constexpr DataType bf16() { return {BFloat, 16}; }
  static constexpr DataType i8() { return {Int, 8}; }
  static constexpr DataType i32() { return {Int, 32}; }
  static constexpr DataType i64() { return {Int, 64}; }
  static constexpr DataType boolean() { return {UInt, 1}; }
  static constexpr DataType handle() { return {Handle, 64}; }
  // Loop variables and flattened indices are 64-bit: no int32 index overflow.
  static constexpr DataType index() { return i64(); }

  bool is_float() const { return code == Float || code == BFloat; }
  bool is_int() const { return code == Int; }
  bool is_uint() const { return code == UInt; }
  bool is_bool() const { return code == UInt && bits == 1; }
  bool is_integer() const { return (code == Int || code == UInt) && bits > 1; }
  bool is_handle() const { return code == Handle; }
  bool is_vector() const { return lanes > 1; }
  bool is_scalar() const { return lanes == 1; }
  int bytes() const { return (bits + 7) / 8; }
  DataType element_of() const { return {code, bits, 1}; }
  DataType with_lanes(int l) const { return {code, bits, l}; }

  bool operator==(const DataType &o) const { return code == o.code && bits == o.bits && lanes == o.lanes; }
  bool operator!=(const DataType &o) const { return !(*this == o); }

  // "f32", "i8", "bool", "f32x16".
  std::string str() const;
  // Parses the names the text form accepts: f32 f16 bf16 f64 i8 i32 i64 bool.
  static std::optional<DataType> parse(std::string_view name);
};

} // namespace tessel::ir
