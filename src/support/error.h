// Explicit error values (LLVM Expected-style) that cross module boundaries.
//
// Convention: functions that consume user input (parsers, operator builders,
// lowering, code generation, CLI) return Expected<T> / Status. Inside the
// tensor-expression DSL, where C++ operator overloading cannot return errors,
// misuse throws tessel::Error; every public entry point catches it and turns it
// into a value, so no exception escapes a module.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace tessel {

// The thrown form, used only inside DSL construction (see above).
class Error : public std::runtime_error {
public:
  explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
};

// Success or a message explaining what went wrong, where, and how to fix it.
class [[nodiscard]] Status {
public:
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }
  bool is_ok() const { return !message_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const std::string &message() const {
    static const std::string empty;
    return message_ ? *message_ : empty;
  }

private:
  Status() = default;
  explicit Status(std::string m) : message_(std::move(m)) {}
  std::optional<std::string> message_;
};

struct ErrorValue {
  std::string message;
};
inline ErrorValue make_error(std::string message) { return ErrorValue{std::move(message)}; }

template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : storage_(std::move(value)) {}
  Expected(ErrorValue error) : storage_(std::move(error)) {}
  Expected(const Status &status) : storage_(ErrorValue{status.message()}) {}

  bool has_value() const { return storage_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T &operator*() { return std::get<0>(storage_); }
  const T &operator*() const { return std::get<0>(storage_); }
  T *operator->() { return &std::get<0>(storage_); }
  const T *operator->() const { return &std::get<0>(storage_); }
  T take() { return std::move(std::get<0>(storage_)); }
  const std::string &error() const { return std::get<1>(storage_).message; }
  Status status() const { return has_value() ? Status::ok() : Status::error(error()); }

private:
  std::variant<T, ErrorValue> storage_;
};

// Runs `fn`, turning a thrown tessel::Error into an error value.
template <typename F> auto catch_errors(F &&fn) -> Expected<decltype(fn())> {
  try {
    return fn();
  } catch (const Error &e) {
    return make_error(e.what());
  }
}

} // namespace tessel

#define TESSEL_CHECK(cond, msg)                                                                                        \
  do {                                                                                                                 \
    if (!(cond)) throw ::tessel::Error(msg);                                                                           \
  } while (0)
