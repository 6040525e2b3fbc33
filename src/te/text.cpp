// The text form of workloads: a hand-written lexer and recursive-descent
// parser (positions on every token so each error names its line and column)
// and a printer whose output parses back to the same text.
#include "te/text.h"

#include "ir/bounds.h"
#include "ir/op.h"
#include "ir/printer.h"
#include "ir/visitor.h"
#include "te/tensor.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace tessel::te {

namespace {

using ir::DataType;

// Hostile input must not exhaust the stack: parser recursion is bounded by the
// nesting limit, and the depth of a built expression (left-associative chains
// such as a + a + ... + a) by the token limit per statement, which keeps the
// recursive IR passes run afterwards (bounds, printing, destruction) shallow.
constexpr int kMaxNesting = 200;
constexpr size_t kMaxStatementTokens = 4096;
// As in operator specs: far beyond any real axis, and small enough that index
// arithmetic on extents cannot overflow 64 bits in the bounds checks.
constexpr uint64_t kMaxExtent = (uint64_t(1) << 31) - 1;

constexpr const char *kDtypeList = "f32 f16 bf16 f64 i8 i32 i64";
constexpr const char *kFunctionList = "select min max sum exp log sqrt rsqrt tanh erf abs floor ceil pow";

bool is_reserved_word(std::string_view s) { return s == "true" || s == "false" || s == "inf" || s == "nan"; }

bool is_identifier(std::string_view s) {
  if (s.empty() || !(std::isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum((unsigned char)c) || c == '_')) return false;
  return true;
}

bool is_literal(const Expr &e) { return e.as<ir::IntImm>() || e.as<ir::FloatImm>(); }

std::optional<ir::Intrinsic> intrinsic_named(std::string_view n) {
  static const std::pair<const char *, ir::Intrinsic> table[] = {
      {"exp", ir::Intrinsic::Exp},     {"log", ir::Intrinsic::Log},     {"sqrt", ir::Intrinsic::Sqrt},
      {"rsqrt", ir::Intrinsic::Rsqrt}, {"tanh", ir::Intrinsic::Tanh},   {"erf", ir::Intrinsic::Erf},
      {"abs", ir::Intrinsic::Abs},     {"floor", ir::Intrinsic::Floor}, {"ceil", ir::Intrinsic::Ceil},
      {"pow", ir::Intrinsic::Pow}};
  for (auto &[name, f] : table)
    if (n == name) return f;
  return std::nullopt;
}

// =================================================================== printer

// Binding strength of each printed form; a child binding weaker than its
// context gets parentheses.
enum Prec : int { kOr = 1, kAnd, kEquality, kRelational, kAdditive, kMultiplicative, kUnary, kPrimary };

int binary_prec(ir::BinaryOp op) {
  switch (op) {
  case ir::BinaryOp::Or: return kOr;
  case ir::BinaryOp::And: return kAnd;
  case ir::BinaryOp::EQ:
  case ir::BinaryOp::NE: return kEquality;
  case ir::BinaryOp::LT:
  case ir::BinaryOp::LE:
  case ir::BinaryOp::GT:
  case ir::BinaryOp::GE: return kRelational;
  case ir::BinaryOp::Add:
  case ir::BinaryOp::Sub: return kAdditive;
  case ir::BinaryOp::Mul:
  case ir::BinaryOp::Div:
  case ir::BinaryOp::Mod: return kMultiplicative;
  case ir::BinaryOp::Min:
  case ir::BinaryOp::Max: return kPrimary; // printed as min(a, b)
  }
  return kPrimary;
}

// 0 - x, as the parser builds it for `-x` (ir::operator-). A negative zero is
// excluded: -0.0 - x differs from 0.0 - x when x is zero.
bool is_negation(const ir::Binary *b) {
  if (b->op != ir::BinaryOp::Sub || is_literal(b->b)) return false;
  if (auto *i = b->a.as<ir::IntImm>()) return i->value == 0 && !i->type.is_bool();
  if (auto *f = b->a.as<ir::FloatImm>()) return f->value == 0 && !std::signbit(f->value);
  return false;
}

std::string plain_int(int64_t v) { return std::to_string(v); }

// Prints expressions in the text form. Tensor and variable names come from the
// maps when present, else from the nodes themselves.
class ExprWriter {
public:
  std::unordered_map<const ir::TensorNode *, std::string> tensor_names;
  std::unordered_map<const ir::ExprNode *, std::string> var_names;
  // Assigns names to variables missing from var_names (canonical mode: v<N>).
  bool canonical = false;
  int next_var = 0;

  // `adapts`: a plain literal here would adopt this literal's type (it is an
  // operand beside a non-literal of the same type), so i64 constants may print
  // as plain integers.
  std::string expr(const Expr &e, bool adapts = false) {
    if (!e.defined()) return "<undefined>";
    switch (e.kind()) {
    case ir::ExprKind::IntImm:
    case ir::ExprKind::FloatImm: return literal(e, adapts);
    case ir::ExprKind::Var: return var_name(e.get());
    case ir::ExprKind::Cast: {
      auto *c = e.as<ir::Cast>();
      // A cast of a literal would fold into a constant when read back, so the
      // literal is written in its explicit typed form: f16(i32(3)), not f16(3).
      return c->type.str() + "(" + (is_literal(c->value) ? explicit_literal(c->value) : expr(c->value)) + ")";
    }
    case ir::ExprKind::Binary: return binary(e.as<ir::Binary>());
    case ir::ExprKind::Not: return "!" + unary_operand(e.as<ir::Not>()->value);
    case ir::ExprKind::Select: {
      auto *s = e.as<ir::Select>();
      return "select(" + expr(s->cond) + ", " + expr(s->true_value, !is_literal(s->false_value)) + ", " +
             expr(s->false_value, !is_literal(s->true_value)) + ")";
    }
    case ir::ExprKind::Call: {
      auto *c = e.as<ir::Call>();
      std::string s = std::string(ir::intrinsic_name(c->func)) + "(";
      for (size_t i = 0; i < c->args.size(); ++i) {
        bool partner_is_value = c->args.size() == 2 && !is_literal(c->args[1 - i]);
        s += (i ? ", " : "") + expr(c->args[i], partner_is_value);
      }
      return s + ")";
    }
    case ir::ExprKind::TensorRead: {
      auto *r = e.as<ir::TensorRead>();
      std::string s = tensor_name(r->tensor.get()) + "[";
      for (size_t i = 0; i < r->indices.size(); ++i) s += (i ? ", " : "") + index(r->indices[i]);
      return s + "]";
    }
    case ir::ExprKind::Reduce: {
      auto *r = e.as<ir::Reduce>();
      std::string s = std::string(ir::reduce_op_name(r->op)) + "(";
      for (size_t i = 0; i < r->axes.size(); ++i)
        s += (i ? ", " : "") + var_name(r->axes[i].var.get()) + " < " + plain_int(r->axes[i].extent);
      return s + ": " + expr(r->source) + ")";
    }
    default: return ir::to_string(e); // loop-IR nodes never occur in tensor expressions
    }
  }

  std::string var_name(const ir::ExprNode *v) {
    auto it = var_names.find(v);
    if (it != var_names.end()) return it->second;
    std::string n = canonical ? "v" + std::to_string(next_var++) : static_cast<const ir::Var *>(v)->name;
    var_names[v] = n;
    return n;
  }

  std::string tensor_name(const ir::TensorNode *t) {
    auto it = tensor_names.find(t);
    return it != tensor_names.end() ? it->second : t->name;
  }

private:
  static int prec_of(const Expr &e, const std::string &text) {
    if (is_literal(e)) return !text.empty() && text[0] == '-' ? kUnary : kPrimary;
    if (auto *b = e.as<ir::Binary>()) return is_negation(b) ? kUnary : binary_prec(b->op);
    if (e.as<ir::Not>()) return kUnary;
    return kPrimary;
  }

  // `e` printed where it must bind at least as tightly as `min_prec`.
  std::string operand(const Expr &e, int min_prec, bool adapts) {
    std::string s = expr(e, adapts);
    return prec_of(e, s) < min_prec ? "(" + s + ")" : s;
  }

  std::string unary_operand(const Expr &e) {
    std::string s = expr(e);
    // "--x" would read fine, but "-(-x)" says what it means.
    return prec_of(e, s) < kUnary || s[0] == '-' ? "(" + s + ")" : s;
  }

  std::string binary(const ir::Binary *b) {
    if (b->op == ir::BinaryOp::Min || b->op == ir::BinaryOp::Max)
      return std::string(ir::binary_op_name(b->op)) + "(" + expr(b->a, !is_literal(b->b)) + ", " +
             expr(b->b, !is_literal(b->a)) + ")";
    if (is_negation(b)) return "-" + unary_operand(b->b);
    int p = binary_prec(b->op);
    // Operators associate to the left; a right operand of equal strength keeps
    // its parentheses because float arithmetic is not associative.
    return operand(b->a, p, !is_literal(b->b)) + " " + ir::binary_op_name(b->op) + " " +
           operand(b->b, p + 1, !is_literal(b->a));
  }

  // Indices are converted to i64 when a read is built, so the implicit cast is
  // left out: the parser puts it back.
public:
  std::string index(const Expr &e) {
    if (auto *c = e.as<ir::Cast>())
      if (c->type == DataType::index() && c->value.type().is_integer() && c->value.type().is_scalar())
        return expr(c->value);
    return expr(e, /*adapts=*/true);
  }

private:
  std::string literal(const Expr &e, bool adapts) {
    if (auto *i = e.as<ir::IntImm>()) {
      if (i->type.is_bool()) return i->value ? "true" : "false";
      bool fits_i32 =
          i->value >= std::numeric_limits<int32_t>::min() && i->value <= std::numeric_limits<int32_t>::max();
      if (i->type == DataType::i32() || (i->type == DataType::i64() && adapts && fits_i32)) return plain_int(i->value);
      return explicit_literal(e);
    }
    auto *f = e.as<ir::FloatImm>();
    if (f->type == DataType::f32()) return ir::format_float(f->value, f->type);
    return explicit_literal(e);
  }

  static std::string explicit_literal(const Expr &e) {
    if (auto *i = e.as<ir::IntImm>()) {
      if (i->type.is_bool()) return i->value ? "true" : "false";
      return i->type.str() + "(" + plain_int(i->value) + ")";
    }
    auto *f = e.as<ir::FloatImm>();
    return f->type.str() + "(" + ir::format_float(f->value, f->type) + ")";
  }
};

// =================================================================== lexer

enum class Tok : uint8_t { Ident, Int, Float, Punct, Newline, End, Error };

struct Token {
  Tok kind = Tok::End;
  std::string text; // as written; for Error, the message
  int line = 1, col = 1;
  uint64_t int_value = 0; // Int: the magnitude (up to 2^63, so that -2^63 can be written)
  double float_value = 0; // Float
};

std::string printable_char(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + char(c) + "'";
  static const char *hex = "0123456789abcdef";
  return std::string("'\\x") + hex[c >> 4] + hex[c & 15] + "'";
}

// Lexes the whole text up front. Lexing stops at the first bad character with
// an Error token, which the parser reports when it gets there (so an earlier
// syntax error is still reported first).
std::vector<Token> lex(std::string_view s) {
  std::vector<Token> out;
  int line = 1, col = 1;
  size_t i = 0;
  auto push = [&](Tok k, std::string text, int c) -> Token & {
    Token t;
    t.kind = k;
    t.text = std::move(text);
    t.line = line;
    t.col = c;
    out.push_back(std::move(t));
    return out.back();
  };
  auto digit = [&](size_t j) { return j < s.size() && std::isdigit((unsigned char)s[j]); };
  auto word_char = [&](size_t j) { return j < s.size() && (std::isalnum((unsigned char)s[j]) || s[j] == '_'); };
  while (i < s.size()) {
    unsigned char c = s[i];
    if (c == '\n') {
      push(Tok::Newline, "\n", col);
      ++i, ++line, col = 1;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i, ++col;
      continue;
    }
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    size_t start = i;
    int start_col = col;
    if (std::isalpha(c) || c == '_') {
      while (word_char(i)) ++i;
      push(Tok::Ident, std::string(s.substr(start, i - start)), start_col);
    } else if (std::isdigit(c) || (c == '.' && digit(i + 1))) {
      bool is_float = false;
      while (digit(i)) ++i;
      if (i < s.size() && s[i] == '.') {
        is_float = true;
        ++i;
        while (digit(i)) ++i;
      }
      bool bad = false;
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        size_t k = i + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (digit(k)) {
          is_float = true;
          i = k;
          while (digit(i)) ++i;
        } else {
          bad = true;
        }
      }
      if (bad || word_char(i) || (i < s.size() && s[i] == '.')) {
        while (word_char(i) || (i < s.size() && s[i] == '.')) ++i;
        push(Tok::Error,
             "malformed number '" + std::string(s.substr(start, i - start)) + "' (numbers look like 64, 0.5, 1e-5)",
             start_col);
        break;
      }
      std::string text(s.substr(start, i - start));
      if (is_float) {
        double v = 0;
        auto r = std::from_chars(text.data(), text.data() + text.size(), v);
        if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
          push(Tok::Error, "number " + text + " is out of range", start_col);
          break;
        }
        push(Tok::Float, text, start_col).float_value = v;
      } else {
        uint64_t v = 0;
        bool overflow = false;
        for (char d : text) {
          if (v > (uint64_t(1) << 63) / 10) overflow = true;
          v = v * 10 + uint64_t(d - '0');
          if (v > (uint64_t(1) << 63)) overflow = true;
        }
        if (overflow) {
          push(Tok::Error, "integer " + text + " is too large (64-bit integers go up to 9223372036854775807)",
               start_col);
          break;
        }
        push(Tok::Int, text, start_col).int_value = v;
      }
    } else {
      static const char *two[] = {"==", "!=", "<=", ">=", "&&", "||"};
      std::string op;
      for (const char *t : two)
        if (s.substr(i, 2) == t) op = t;
      if (op.empty() && std::string_view("()[],:=<>+-*/%!").find(char(c)) != std::string_view::npos) op = char(c);
      if (op.empty()) {
        std::string msg = "unexpected character " + printable_char(c);
        if (c == '&' || c == '|') msg += std::string(" (did you mean '") + char(c) + char(c) + "'?)";
        push(Tok::Error, msg, start_col);
        break;
      }
      push(Tok::Punct, op, start_col);
      i += op.size();
    }
    col += int(i - start);
  }
  push(Tok::End, "", col);
  return out;
}

std::string describe(const Token &t) {
  switch (t.kind) {
  case Tok::Newline: return "end of line";
  case Tok::End: return "end of input";
  case Tok::Error: return "invalid text";
  default: return "'" + t.text + "'";
  }
}

std::string position(const Token &t) { return std::to_string(t.line) + ":" + std::to_string(t.col); }

std::string plural(size_t n, const char *one, const char *many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// =================================================================== parser

// Unwinds the parser to parse_workload, which turns it into an error value.
struct ParseFailure {
  std::string message;
};

std::vector<const ir::TensorRead *> reads_in(const Expr &e) { return ir::collect_reads(e); }

class Parser {
public:
  Parser(std::vector<Token> tokens, std::string_view source) : toks_(std::move(tokens)), source_(source) {}

  Expected<Workload> run() {
    while (true) {
      const Token &t = cur();
      if (t.kind == Tok::Newline) {
        ++pos_;
        continue;
      }
      if (t.kind == Tok::End) break;
      check_statement_length();
      if (t.kind == Tok::Ident) {
        const Token &n = toks_[pos_ + 1];
        if (t.text == "input" && n.kind == Tok::Ident) {
          parse_input();
          continue;
        }
        if (is_punct(n, "[")) {
          parse_statement();
          continue;
        }
        if (is_punct(n, "="))
          fail(n, "expected '[' and the axes of " + t.text + " before '=', e.g. " + t.text + "[i, j] = ...");
        if (t.text == "input")
          fail(n, n.kind == Tok::Error ? n.text : "expected the name of the input after 'input', found " + describe(n));
      }
      fail(t,
           "expected a declaration 'input NAME: DTYPE[...]' or a statement 'NAME[axes] = expr', found " + describe(t));
    }
    if (stages_.empty()) fail(cur(), "no statements: a workload needs at least one computed tensor");
    std::vector<ir::Tensor> inputs, outputs;
    for (auto &name : inputs_) {
      const Info &in = tensors_.at(name);
      if (!in.read) fail(in.decl, "input " + name + " is never used (remove it or read it in a statement)");
      inputs.push_back(in.tensor);
    }
    for (auto &name : stages_) {
      const Info &s = tensors_.at(name);
      if (!s.read) outputs.push_back(s.tensor);
    }
    Expected<Workload> w = make_workload("", std::move(inputs), std::move(outputs));
    if (!w) fail(toks_.front(), w.error()); // every check it makes was already made per statement
    return w;
  }

private:
  struct Info {
    ir::Tensor tensor;
    Token decl;
    bool read = false; // by some statement
  };
  struct Axis {
    std::string name;
    Expr var;
    Token decl;
    std::optional<int64_t> extent;
  };

  std::vector<Token> toks_;
  std::string source_;
  size_t pos_ = 0;
  std::unordered_map<std::string, Info> tensors_;
  std::vector<std::string> inputs_, stages_; // declaration order

  // The statement being parsed.
  std::string stmt_name_;
  std::vector<Axis> scope_; // its axes, then the axes of the reduction being parsed
  size_t spatial_axes_ = 0; // how many of scope_ are the statement's own axes
  std::unordered_map<const ir::ExprNode *, Token> read_at_;
  std::vector<std::pair<Expr, Token>> reductions_;
  int depth_ = 0;

  // ------------------------------------------------------------ utilities
  [[noreturn]] void fail(const Token &at, const std::string &what) const {
    throw ParseFailure{source_ + ":" + position(at) + ": error: " + what};
  }

  // The current token; a lexer error is reported as soon as the parser reaches it.
  const Token &cur() const {
    const Token &t = toks_[pos_];
    if (t.kind == Tok::Error) fail(t, t.text);
    return t;
  }
  const Token &at(size_t k) const { return toks_[std::min(k, toks_.size() - 1)]; }
  static bool is_punct(const Token &t, std::string_view p) { return t.kind == Tok::Punct && t.text == p; }
  bool is_punct(std::string_view p) const { return is_punct(cur(), p); }

  // Runs DSL construction, reporting a thrown tessel::Error at `where`.
  template <typename F> auto guard(const Token &where, F &&fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const Error &e) {
      fail(where, e.what());
    }
  }

  void check_statement_length() const {
    size_t k = pos_;
    while (toks_[k].kind != Tok::Newline && toks_[k].kind != Tok::End) {
      if (k - pos_ >= kMaxStatementTokens)
        fail(toks_[pos_], "statement is too long (more than " + std::to_string(kMaxStatementTokens) +
                              " tokens); split it into several statements");
      ++k;
    }
  }

  void end_of_line(const std::string &what) {
    const Token &t = cur();
    if (t.kind == Tok::Newline) {
      ++pos_;
      return;
    }
    if (t.kind == Tok::End) return;
    if (is_punct(t, ")")) fail(t, "unmatched ')'");
    if (is_punct(t, "]")) fail(t, "unmatched ']'");
    fail(t, "unexpected " + describe(t) + " after " + what + " (one declaration or statement per line)");
  }

  void check_new_tensor(const Token &name) const {
    auto it = tensors_.find(name.text);
    if (it != tensors_.end())
      fail(name, "redefinition of tensor " + name.text + " (first defined at " + position(it->second.decl) +
                     "); give it another name");
  }

  // A positive integer literal: an input dimension or an axis extent.
  int64_t parse_extent(const std::string &what) {
    const Token &t = cur();
    if (is_punct(t, "-") && at(pos_ + 1).kind == Tok::Int)
      fail(t, "the extent of " + what + " is -" + at(pos_ + 1).text + "; extents must be positive integers");
    if (t.kind == Tok::Float) fail(t, "the extent of " + what + " must be an integer, found '" + t.text + "'");
    if (t.kind != Tok::Int)
      fail(t, "expected the extent of " + what + " (a positive integer literal), found " + describe(t));
    if (t.int_value == 0) fail(t, "the extent of " + what + " is 0; extents must be positive integers");
    if (t.int_value > kMaxExtent)
      fail(t, "the extent of " + what + " is " + t.text + ", more than the limit of 2^31 - 1");
    ++pos_;
    return int64_t(t.int_value);
  }

  // ----------------------------------------------------------- declarations
  // input NAME: DTYPE[INT, ...] [const]
  void parse_input() {
    ++pos_; // 'input'
    Token name = cur();
    ++pos_;
    check_new_tensor(name);
    if (!is_punct(":"))
      fail(cur(), "expected ':' after 'input " + name.text + "', found " + describe(cur()) + " (write input " +
                      name.text + ": f32[64, 64])");
    ++pos_;
    Token dt = cur();
    if (dt.kind != Tok::Ident)
      fail(dt, "expected the dtype of " + name.text + " (one of " + kDtypeList + "), found " + describe(dt));
    std::optional<DataType> type = DataType::parse(dt.text);
    if (!type) fail(dt, "unknown dtype '" + dt.text + "' (expected one of " + kDtypeList + ")");
    if (type->is_bool()) fail(dt, "tensors cannot hold bool (use i8 for masks)");
    ++pos_;
    if (!is_punct("["))
      fail(cur(), "expected '[' and the shape of " + name.text + " after its dtype, found " + describe(cur()) +
                      " (write " + dt.text + "[64, 64])");
    ++pos_;
    std::vector<int64_t> shape;
    if (!is_punct("]")) {
      while (true) {
        shape.push_back(parse_extent("dimension " + std::to_string(shape.size()) + " of " + name.text));
        if (is_punct(",")) {
          ++pos_;
          continue;
        }
        if (is_punct("]")) break;
        fail(cur(), "expected ',' or ']' in the shape of " + name.text + ", found " + describe(cur()));
      }
    }
    ++pos_; // ']'
    bool is_const = false;
    if (cur().kind == Tok::Ident && cur().text == "const") {
      is_const = true;
      ++pos_;
    }
    end_of_line("the declaration of " + name.text);
    Info info{guard(name, [&] { return placeholder(shape, *type, name.text, is_const).node(); }), name};
    tensors_.emplace(name.text, std::move(info));
    inputs_.push_back(name.text);
  }

  // axis := IDENT [ '<' INT ]
  Axis parse_axis(bool in_reduction) {
    const Token &t = cur();
    if (t.kind != Tok::Ident)
      fail(t,
           std::string("expected ") + (in_reduction ? "a reduction axis" : "an axis") + " name, found " + describe(t));
    if (is_reserved_word(t.text)) fail(t, "'" + t.text + "' is a literal and cannot name an axis");
    for (size_t i = 0; i < scope_.size(); ++i)
      if (scope_[i].name == t.text)
        fail(t, in_reduction && i < spatial_axes_
                    ? "reduction axis " + t.text + " shadows axis " + t.text + " of " + stmt_name_ +
                          "; give it another name"
                    : "axis " + t.text + " is declared twice (first at " + position(scope_[i].decl) + ")");
    Axis ax{t.text, ir::Var::make(DataType::index(), t.text), t, std::nullopt};
    ++pos_;
    if (is_punct("<")) {
      ++pos_;
      ax.extent = parse_extent("axis " + ax.name);
    }
    return ax;
  }

  // Infers a missing extent from the reads in `within` that index a tensor
  // dimension with the axis itself (possibly under integer casts).
  void infer_extent(Axis &ax, const Expr &within) const {
    if (ax.extent) return;
    const ir::TensorRead *first = nullptr;
    size_t first_dim = 0;
    for (auto *r : reads_in(within)) {
      for (size_t d = 0; d < r->indices.size(); ++d) {
        Expr idx = r->indices[d];
        while (auto *c = idx.as<ir::Cast>()) {
          if (!c->type.is_integer() || !c->value.type().is_integer()) break;
          idx = c->value;
        }
        if (!idx.same_as(ax.var)) continue;
        int64_t ext = r->tensor->shape[d];
        if (!first) {
          first = r, first_dim = d, ax.extent = ext;
        } else if (ext != *ax.extent) {
          fail(ax.decl, "cannot infer the extent of axis " + ax.name + ": it indexes dimension " +
                            std::to_string(first_dim) + " of " + first->tensor->name + " (extent " +
                            std::to_string(*ax.extent) + ") and dimension " + std::to_string(d) + " of " +
                            r->tensor->name + " (extent " + std::to_string(ext) + "); write " + ax.name +
                            " < N with the extent you mean");
        }
      }
    }
    if (!first)
      fail(ax.decl, "cannot infer the extent of axis " + ax.name +
                        ": it is not used directly as an index of a tensor; write " + ax.name + " < N");
  }

  // NAME[axis, ...] = expr
  void parse_statement() {
    Token name = cur();
    ++pos_;
    check_new_tensor(name);
    stmt_name_ = name.text;
    scope_.clear();
    spatial_axes_ = 0;
    read_at_.clear();
    reductions_.clear();
    ++pos_; // '['
    if (!is_punct("]")) {
      while (true) {
        scope_.push_back(parse_axis(false));
        if (is_punct(",")) {
          ++pos_;
          continue;
        }
        if (is_punct("]")) break;
        fail(cur(), "expected ',' or ']' after axis " + scope_.back().name + ", found " + describe(cur()));
      }
    }
    ++pos_; // ']'
    spatial_axes_ = scope_.size();
    if (!is_punct("=")) fail(cur(), "expected '=' after " + name.text + "[...], found " + describe(cur()));
    ++pos_;
    Token rhs = cur();
    Expr body = parse_expr();
    end_of_line("the statement defining " + name.text);

    for (auto &[r, where] : reductions_)
      if (!r.same_as(body))
        fail(where, "a reduction must be the whole right-hand side; compute it in its own statement, e.g. "
                    "S[i] = sum(k: ...) then Y[i] = f(S[i])");
    for (auto &ax : scope_) infer_extent(ax, body);
    check_bounds(body);

    std::vector<int64_t> shape;
    std::vector<std::string> names;
    for (auto &ax : scope_) {
      shape.push_back(*ax.extent);
      names.push_back(ax.name);
    }
    // compute() makes its own axis variables; the body built with ours is
    // rewritten onto them, keeping compute()'s validation of the body.
    ir::Tensor t = guard(rhs, [&] {
      return compute(
                 shape,
                 [&](Index vars) {
                   std::vector<std::pair<Expr, Expr>> map;
                   for (size_t d = 0; d < vars.size(); ++d) map.emplace_back(scope_[d].var, vars[d]);
                   return ir::substitute(body, map);
                 },
                 name.text, names)
          .node();
    });
    tensors_.emplace(name.text, Info{t, name});
    stages_.push_back(name.text);
    stmt_name_.clear();
  }

  // The same check make_workload makes, done here to point at the read.
  void check_bounds(const Expr &body) const {
    ir::ConstScope scope;
    for (auto &ax : scope_) scope[ax.var.get()] = {0, *ax.extent - 1};
    if (auto *r = body.as<ir::Reduce>())
      for (auto &ax : r->axes) scope[ax.var.get()] = {0, ax.extent - 1};
    for (auto *read : reads_in(body)) {
      for (size_t d = 0; d < read->indices.size(); ++d) {
        ir::ConstRange r = ir::constant_bounds(read->indices[d], scope);
        int64_t extent = read->tensor->shape[d];
        if (r.min && r.max && *r.min >= 0 && *r.max < extent) continue;
        auto it = read_at_.find(read);
        ExprWriter w;
        std::string range = "[" + (r.min ? std::to_string(*r.min) : std::string("-inf")) + ", " +
                            (r.max ? std::to_string(*r.max) : std::string("+inf")) + "]";
        fail(it != read_at_.end() ? it->second : toks_[pos_ - 1],
             "index " + std::to_string(d) + " of " + read->tensor->name + " (" + w.index(read->indices[d]) +
                 ") may range over " + range + " but the dimension has extent " + std::to_string(extent) +
                 "; keep indices in bounds, e.g. clamp with min/max and guard with select");
      }
    }
  }

  // ----------------------------------------------------------- expressions
  Expr parse_expr() { return parse_binary(kOr); }

  static std::optional<ir::BinaryOp> binary_op_at(int level, std::string_view p) {
    using ir::BinaryOp;
    switch (level) {
    case kOr: return p == "||" ? std::optional(BinaryOp::Or) : std::nullopt;
    case kAnd: return p == "&&" ? std::optional(BinaryOp::And) : std::nullopt;
    case kEquality:
      if (p == "==") return BinaryOp::EQ;
      if (p == "!=") return BinaryOp::NE;
      return std::nullopt;
    case kRelational:
      if (p == "<") return BinaryOp::LT;
      if (p == "<=") return BinaryOp::LE;
      if (p == ">") return BinaryOp::GT;
      if (p == ">=") return BinaryOp::GE;
      return std::nullopt;
    case kAdditive:
      if (p == "+") return BinaryOp::Add;
      if (p == "-") return BinaryOp::Sub;
      return std::nullopt;
    case kMultiplicative:
      if (p == "*") return BinaryOp::Mul;
      if (p == "/") return BinaryOp::Div;
      if (p == "%") return BinaryOp::Mod;
      return std::nullopt;
    }
    return std::nullopt;
  }

  // Left-associative binary operators, one precedence level per call.
  Expr parse_binary(int level) {
    if (level == kUnary) return parse_unary();
    Expr lhs = parse_binary(level + 1);
    while (true) {
      const Token &t = cur();
      if (t.kind != Tok::Punct) break;
      std::optional<ir::BinaryOp> op = binary_op_at(level, t.text);
      if (!op) break;
      Token op_tok = t;
      ++pos_;
      Expr rhs = parse_binary(level + 1);
      lhs = guard(op_tok, [&] { return ir::binary(*op, lhs, rhs); });
    }
    return lhs;
  }

  Expr parse_unary() {
    struct Depth {
      int &d;
      ~Depth() { --d; }
    } depth{++depth_};
    if (depth_ > kMaxNesting)
      fail(cur(), "expression is nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
    const Token &t = cur();
    if (is_punct(t, "-")) {
      Token op = t;
      ++pos_;
      // A negative literal directly, so that -2147483648 is an i32.
      if (cur().kind == Tok::Int || cur().kind == Tok::Float) return parse_number(true);
      Expr v = parse_unary();
      return guard(op, [&] { return -v; });
    }
    if (is_punct(t, "!")) {
      Token op = t;
      ++pos_;
      Expr v = parse_unary();
      return guard(op, [&] { return ir::logical_not(v); });
    }
    return parse_primary();
  }

  // Plain literals: integers are i32 and floats f32; both adopt the type of
  // the other operand (see ir/op.h).
  Expr parse_number(bool negate) {
    Token t = cur();
    ++pos_;
    if (t.kind == Tok::Int) {
      uint64_t limit = negate ? uint64_t(1) << 31 : (uint64_t(1) << 31) - 1;
      if (t.int_value > limit)
        fail(t, "integer " + std::string(negate ? "-" : "") + t.text + " does not fit in i32; write i64(" +
                    (negate ? "-" : "") + t.text + ") for a 64-bit constant");
      int64_t v = negate ? -int64_t(t.int_value) : int64_t(t.int_value);
      return ir::IntImm::make(DataType::i32(), v);
    }
    return ir::FloatImm::make(DataType::f32(), negate ? -t.float_value : t.float_value);
  }

  Expr parse_primary() {
    const Token &t = cur();
    if (t.kind == Tok::Int || t.kind == Tok::Float) return parse_number(false);
    if (t.kind == Tok::Ident) return parse_name();
    if (is_punct(t, "(")) {
      Token open = t;
      ++pos_;
      Expr e = parse_expr();
      expect_close(")", open, "");
      return e;
    }
    fail(t, "expected an expression, found " + describe(t));
  }

  void expect_close(const char *close, const Token &open, const std::string &context) {
    if (is_punct(close)) {
      ++pos_;
      return;
    }
    fail(cur(), std::string("expected '") + close + "' to close the '" + open.text + "' at " + position(open) +
                    context + ", found " + describe(cur()));
  }

  Expr parse_name() {
    Token name = cur();
    ++pos_;
    if (is_punct("[")) return parse_read(name);
    if (is_punct("(")) return parse_call(name);
    if (name.text == "true" || name.text == "false") return ir::IntImm::make(DataType::boolean(), name.text == "true");
    if (name.text == "inf") return ir::FloatImm::make(DataType::f32(), std::numeric_limits<double>::infinity());
    if (name.text == "nan") return ir::FloatImm::make(DataType::f32(), std::numeric_limits<double>::quiet_NaN());
    for (size_t i = scope_.size(); i-- > 0;)
      if (scope_[i].name == name.text) return scope_[i].var;
    if (auto it = tensors_.find(name.text); it != tensors_.end())
      fail(name, "tensor " + name.text + " must be indexed with " +
                     plural(it->second.tensor->shape.size(), "index", "indices") + ": " + name.text + "[...]");
    if (name.text == stmt_name_) fail(name, stmt_name_ + " cannot read itself");
    std::string axes;
    for (auto &a : scope_) axes += (axes.empty() ? "" : ", ") + a.name;
    fail(name, "unknown name '" + name.text + "' (" +
                   (axes.empty() ? std::string("there are no axes here") : "the axes here are " + axes) +
                   "; declare axes as " + (stmt_name_.empty() ? "C" : stmt_name_) + "[i, j] or sum(k: ...))");
  }

  Expr parse_read(const Token &name) {
    if (name.text == stmt_name_)
      fail(name, stmt_name_ + " cannot read itself; a statement defines a tensor from other tensors");
    auto it = tensors_.find(name.text);
    if (it == tensors_.end())
      fail(name, "unknown name '" + name.text + "' (declare inputs with 'input " + name.text + ": f32[...]')");
    it->second.read = true;
    ir::Tensor tensor = it->second.tensor;
    Token open = cur();
    ++pos_; // '['
    size_t rank = tensor->shape.size();
    std::vector<Expr> indices;
    for (size_t d = 0; d < rank; ++d) {
      if (is_punct("]"))
        fail(cur(), name.text + " has " + plural(rank, "dimension", "dimensions") + " but " +
                        plural(d, "index is", "indices are") + " given");
      if (d > 0) {
        if (!is_punct(","))
          fail(cur(), "expected ',' between the indices of " + name.text + ", found " + describe(cur()));
        ++pos_;
      }
      Token start = cur();
      Expr e = parse_expr();
      if (!e.type().is_integer() || !e.type().is_scalar())
        fail(start, "index " + std::to_string(d) + " of " + name.text + " must be an integer, got " + e.type().str() +
                        " (cast it, e.g. i64(x))");
      indices.push_back(e);
    }
    if (!is_punct("]")) {
      std::string msg = "expected ']' after the indices of " + name.text + ", found " + describe(cur());
      if (is_punct(",")) msg += " (" + name.text + " has " + plural(rank, "dimension", "dimensions") + ")";
      fail(cur(), msg);
    }
    ++pos_;
    Expr r = guard(name, [&] { return ir::TensorRead::make(tensor, indices); });
    read_at_[r.get()] = name;
    return r;
  }

  // Whether the tokens from the current one read `IDENT [< EXTENT] (, IDENT [< EXTENT])* :`,
  // the axes of a reduction (max(k: ...) rather than max(a, b)).
  bool reduction_ahead() const {
    size_t k = pos_;
    while (true) {
      if (at(k).kind != Tok::Ident) return false;
      ++k;
      if (is_punct(at(k), "<")) {
        ++k;
        if (is_punct(at(k), "-")) ++k;
        Tok e = at(k).kind;
        if (e != Tok::Int && e != Tok::Float && e != Tok::Ident) return false;
        ++k;
      }
      if (is_punct(at(k), ":")) return true;
      if (!is_punct(at(k), ",")) return false;
      ++k;
    }
  }

  std::vector<Expr> parse_args(const Token &name, const Token &open) {
    std::vector<Expr> args;
    if (is_punct(")")) {
      ++pos_;
      return args;
    }
    while (true) {
      args.push_back(parse_expr());
      if (is_punct(",")) {
        ++pos_;
        continue;
      }
      if (is_punct(")")) {
        ++pos_;
        return args;
      }
      fail(cur(), "expected ',' or ')' in the arguments of " + name.text + " (opened at " + position(open) +
                      "), found " + describe(cur()));
    }
  }

  void check_arity(const Token &name, const std::vector<Expr> &args, size_t n, const std::string &usage) const {
    if (args.size() != n)
      fail(name, name.text + " takes " + plural(n, "argument", "arguments") + " (" + usage + "), found " +
                     std::to_string(args.size()));
  }

  Expr parse_call(const Token &name) {
    Token open = cur();
    ++pos_; // '('
    const std::string &f = name.text;
    if (f == "sum") {
      if (!reduction_ahead()) fail(cur(), "sum needs its reduction axes first: sum(k: expr) or sum(k < N: expr)");
      return parse_reduction(ir::ReduceOp::Sum, name, open);
    }
    if ((f == "max" || f == "min") && reduction_ahead())
      return parse_reduction(f == "max" ? ir::ReduceOp::Max : ir::ReduceOp::Min, name, open);
    if (std::optional<DataType> t = DataType::parse(f)) return parse_cast(*t, name, open);
    std::optional<ir::Intrinsic> intrinsic = intrinsic_named(f);
    if (!intrinsic && f != "select" && f != "min" && f != "max") {
      if (tensors_.count(f)) fail(name, f + " is a tensor: read it with " + f + "[...], not " + f + "(...)");
      fail(name, "unknown function '" + f + "' (expected one of " + kFunctionList + ", or a cast such as f32(x))");
    }
    std::vector<Expr> args = parse_args(name, open);
    if (f == "select") {
      check_arity(name, args, 3, "select(condition, if_true, if_false)");
      return guard(name, [&] { return ir::select(args[0], args[1], args[2]); });
    }
    if (f == "min" || f == "max") {
      check_arity(name, args, 2, f + "(a, b), or a reduction " + f + "(k: expr)");
      return guard(name, [&] { return f == "min" ? ir::min(args[0], args[1]) : ir::max(args[0], args[1]); });
    }
    check_arity(name, args, *intrinsic == ir::Intrinsic::Pow ? 2 : 1,
                *intrinsic == ir::Intrinsic::Pow ? "pow(x, y)" : "one value");
    return guard(name, [&] { return ir::call(*intrinsic, args); });
  }

  // dtype(x). A cast of a literal folds into a typed constant: f16(0.5) is an
  // f16 constant and i64(5000000000) an i64 one that no i32 literal could hold.
  Expr parse_cast(DataType t, const Token &name, const Token &open) {
    size_t k = pos_;
    bool negate = is_punct(at(k), "-");
    if (negate) ++k;
    const Token &lit = at(k);
    bool numeric = lit.kind == Tok::Int || lit.kind == Tok::Float ||
                   (lit.kind == Tok::Ident && (lit.text == "inf" || lit.text == "nan"));
    if (numeric && is_punct(at(k + 1), ")")) {
      pos_ = k + 2;
      return typed_constant(t, lit, negate);
    }
    std::vector<Expr> args = parse_args(name, open);
    check_arity(name, args, 1, "the value to convert");
    // Cast::make rather than ir::cast: ir::cast reads its argument after
    // moving from it (unspecified argument evaluation order), which crashes with GCC.
    return guard(name, [&] { return ir::Cast::make(t.with_lanes(args[0].type().lanes), args[0]); });
  }

  Expr typed_constant(DataType t, const Token &lit, bool negate) const {
    std::string text = (negate ? "-" : "") + lit.text;
    if (lit.kind == Tok::Int && !t.is_float()) {
      __int128 v = negate ? -__int128(lit.int_value) : __int128(lit.int_value);
      if (t.is_bool()) return ir::IntImm::make(t, v != 0);
      __int128 lo = -(__int128(1) << (t.bits - 1)), hi = (__int128(1) << (t.bits - 1)) - 1;
      if (v < lo || v > hi)
        fail(lit, text + " does not fit in " + t.str() + " (range " + std::to_string(int64_t(lo)) + " to " +
                      std::to_string(int64_t(hi)) + ")");
      return ir::IntImm::make(t, int64_t(v));
    }
    double v = lit.kind == Tok::Int     ? double(lit.int_value)
               : lit.kind == Tok::Float ? lit.float_value
               : lit.text == "inf"      ? std::numeric_limits<double>::infinity()
                                        : std::numeric_limits<double>::quiet_NaN();
    if (negate) v = -v;
    if (t.is_float()) return ir::FloatImm::make(t, v);
    if (t.is_bool()) {
      if (std::isnan(v)) fail(lit, "nan cannot be converted to bool");
      return ir::IntImm::make(t, v != 0);
    }
    // Float to integer truncates toward zero, as a cast does.
    double lo = -std::ldexp(1.0, t.bits - 1), hi = std::ldexp(1.0, t.bits - 1);
    if (!(std::trunc(v) >= lo && std::trunc(v) < hi)) fail(lit, text + " does not fit in " + t.str());
    return ir::IntImm::make(t, int64_t(std::trunc(v)));
  }

  // sum/max/min(axis [< N], ...: body)
  Expr parse_reduction(ir::ReduceOp op, const Token &name, const Token &open) {
    size_t first = scope_.size();
    while (true) {
      scope_.push_back(parse_axis(true));
      if (!is_punct(",")) break;
      ++pos_;
    }
    if (!is_punct(":")) fail(cur(), "expected ':' after the reduction axes, found " + describe(cur()));
    ++pos_;
    Expr body = parse_expr();
    expect_close(")", open, " of " + name.text);
    std::vector<ir::IterVar> axes;
    for (size_t i = first; i < scope_.size(); ++i) {
      infer_extent(scope_[i], body);
      axes.push_back(ir::IterVar{scope_[i].var, *scope_[i].extent, true});
    }
    scope_.resize(first);
    Expr r = guard(name, [&] { return ir::Reduce::make(op, body, axes); });
    reductions_.emplace_back(r, name);
    return r;
  }
};

} // namespace

Expected<Workload> parse_workload(std::string_view text, std::string_view source_name) {
  try {
    Parser parser(lex(text), source_name);
    return parser.run();
  } catch (const ParseFailure &f) {
    return make_error(f.message);
  } catch (const std::exception &e) {
    // Not expected: every DSL error is caught where the parser knows the position.
    return make_error(std::string(source_name) + ":1:1: error: " + e.what());
  }
}

std::string to_text(const Workload &w, bool canonical_names) {
  ExprWriter writer;
  writer.canonical = canonical_names;
  int next_tensor = 0;
  auto name_tensor = [&](const ir::Tensor &t) {
    writer.tensor_names[t.get()] = canonical_names ? "t" + std::to_string(next_tensor++) : t->name;
  };
  for (auto &t : w.inputs) name_tensor(t);
  for (auto &t : w.stages) name_tensor(t);

  std::string out;
  for (auto &t : w.inputs) {
    out += "input " + writer.tensor_name(t.get()) + ": " + t->dtype.str() + "[";
    for (size_t d = 0; d < t->shape.size(); ++d) out += (d ? ", " : "") + std::to_string(t->shape[d]);
    out += t->is_constant ? "] const\n" : "]\n";
  }
  for (auto &s : w.stages) {
    // Variable names are per statement: axes, then reduction axes, then any
    // other variable in order of appearance.
    writer.var_names.clear();
    writer.next_var = 0;
    std::unordered_set<std::string> used;
    auto name_var = [&](const Expr &v) {
      std::string n;
      if (canonical_names) {
        n = "v" + std::to_string(writer.next_var++);
      } else {
        // Names from the C++ API may clash (a reduction axis k beside a third
        // axis k) or not be identifiers; the text form needs them distinct.
        std::string base = v.as<ir::Var>()->name;
        if (!is_identifier(base) || is_reserved_word(base)) base = "v";
        n = base;
        for (int i = 1; used.count(n); ++i) n = base + "_" + std::to_string(i);
      }
      used.insert(n);
      writer.var_names[v.get()] = n;
    };
    for (auto &ax : s->axes) name_var(ax.var);
    auto *reduce = s->body.as<ir::Reduce>();
    if (reduce)
      for (auto &ax : reduce->axes) name_var(ax.var);
    out += writer.tensor_name(s.get()) + "[";
    for (size_t d = 0; d < s->axes.size(); ++d)
      out += (d ? ", " : "") + writer.var_name(s->axes[d].var.get()) + " < " + std::to_string(s->axes[d].extent);
    out += "] = " + writer.expr(s->body) + "\n";
  }
  return out;
}

} // namespace tessel::te
