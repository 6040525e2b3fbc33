// The operator library: spec parsing, canonical keys, shapes and structure of
// the generated workloads, error messages, and the suites in configs/workloads.
#include "te/ops.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

using namespace tessel;
using namespace tessel::te;

namespace {

const std::filesystem::path kRepo = std::filesystem::path(__FILE__).parent_path().parent_path();

Workload build(const std::string &spec) {
  auto w = make_op_workload(spec);
  EXPECT_TRUE(w.has_value()) << spec << ": " << (w ? "" : w.error());
  if (!w) return Workload{};
  return w.take();
}

std::string error_of(const std::string &spec) {
  auto w = make_op_workload(spec);
  EXPECT_FALSE(w.has_value()) << spec << " unexpectedly built";
  return w ? std::string() : w.error();
}

const ir::Tensor *find(const Workload &w, const std::string &name) {
  for (auto &t : w.inputs)
    if (t->name == name) return &t;
  for (auto &t : w.stages)
    if (t->name == name) return &t;
  return nullptr;
}

std::vector<int64_t> shape_of(const Workload &w, const std::string &name) {
  auto *t = find(w, name);
  EXPECT_NE(t, nullptr) << "no tensor " << name << " in " << w.key;
  return t ? (*t)->shape : std::vector<int64_t>{};
}

std::vector<std::string> stage_names(const Workload &w) {
  std::vector<std::string> v;
  for (auto &s : w.stages) v.push_back(s->name);
  return v;
}

using Shape = std::vector<int64_t>;

} // namespace

TEST(Ops, ListHasEveryOperatorWithExamples) {
  std::set<std::string> names;
  for (auto &op : list_ops()) {
    names.insert(op.name);
    EXPECT_FALSE(op.summary.empty()) << op.name;
    EXPECT_FALSE(op.params.empty()) << op.name;
    for (auto &p : op.params) EXPECT_FALSE(p.help.empty()) << op.name << "." << p.name;
    ASSERT_EQ(op.example.rfind(op.name + ":", 0), 0u) << op.example;
    Workload w = build(op.example);
    EXPECT_EQ(w.key.rfind(op.name + ":", 0), 0u);
    EXPECT_FALSE(w.outputs.empty());
    EXPECT_GT(w.flops(), 0) << op.example;
  }
  for (const char *n :
       {"matmul", "batch_matmul", "dense", "conv2d", "depthwise_conv2d", "conv2d_bias_relu", "max_pool2d", "avg_pool2d",
        "softmax", "layernorm", "gelu", "relu", "add", "multiply", "bias_add"})
    EXPECT_TRUE(names.count(n)) << n;
}

TEST(Ops, CanonicalKeysSpellEveryKeyInOrder) {
  EXPECT_EQ(build("matmul:M=256,N=256,K=256").key, "matmul:M=256,N=256,K=256,dtype=f32");
  EXPECT_EQ(build("matmul:K=3,dtype=f16,N=2,M=0001").key, "matmul:M=1,N=2,K=3,dtype=f16");
  EXPECT_EQ(build("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW").key,
            "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,dilation=1,groups=1,layout=NCHW,dtype=f32");
  EXPECT_EQ(build("conv2d:layout=nhwc,N=1,C=4,H=5,W=5,K=2,R=1,S=1").key,
            "conv2d:N=1,C=4,H=5,W=5,K=2,R=1,S=1,stride=1,pad=0,dilation=1,groups=1,layout=NHWC,dtype=f32");
  EXPECT_EQ(build("depthwise_conv2d:N=1,C=8,H=9,W=9,R=3,S=3").key,
            "depthwise_conv2d:N=1,C=8,H=9,W=9,R=3,S=3,multiplier=1,stride=1,pad=0,dilation=1,layout=NCHW,dtype=f32");
  EXPECT_EQ(build("layernorm:M=2,N=3").key, "layernorm:M=2,N=3,eps=1e-05,dtype=f32");
  EXPECT_EQ(build("layernorm:M=2,N=3,eps=0.001").key, "layernorm:M=2,N=3,eps=0.001,dtype=f32");
  EXPECT_EQ(build("max_pool2d:N=1,C=3,H=8,W=8,R=2,S=2,stride=2").key,
            "max_pool2d:N=1,C=3,H=8,W=8,R=2,S=2,stride=2,pad=0,dtype=f32");
  EXPECT_EQ(build("batch_matmul:B=2,M=3,N=4,K=5,dtype=i8").key, "batch_matmul:B=2,M=3,N=4,K=5,dtype=i8");
  // Keys are fixed points: building from a key gives the same key.
  for (auto &op : list_ops()) {
    Workload w = build(op.example);
    EXPECT_EQ(build(w.key).key, w.key);
  }
}

TEST(Ops, MatmulShapesAndDtypes) {
  for (Shape s : {Shape{1, 1, 1}, Shape{7, 13, 3}, Shape{256, 256, 256}, Shape{1, 97, 1}}) {
    std::string spec = "matmul:M=" + std::to_string(s[0]) + ",N=" + std::to_string(s[1]) + ",K=" + std::to_string(s[2]);
    Workload w = build(spec);
    ASSERT_EQ(w.inputs.size(), 2u);
    EXPECT_EQ(w.inputs[0]->shape, (Shape{s[0], s[2]}));
    EXPECT_EQ(w.inputs[1]->shape, (Shape{s[2], s[1]}));
    ASSERT_EQ(w.outputs.size(), 1u);
    EXPECT_EQ(w.outputs[0]->shape, (Shape{s[0], s[1]}));
    EXPECT_EQ(w.outputs[0]->dtype, ir::DataType::f32());
    EXPECT_NE(w.outputs[0]->body.as<ir::Reduce>(), nullptr);
    EXPECT_DOUBLE_EQ(w.flops(), 2.0 * s[0] * s[1] * s[2]);
  }
  Workload h = build("matmul:M=4,N=5,K=6,dtype=f16");
  EXPECT_EQ(stage_names(h), (std::vector<std::string>{"Cacc", "C"}));
  EXPECT_EQ((*find(h, "Cacc"))->dtype, ir::DataType::f32());
  EXPECT_EQ(h.outputs[0]->dtype, ir::DataType::f16());
  EXPECT_EQ(build("matmul:M=4,N=5,K=6,dtype=bf16").outputs[0]->dtype, ir::DataType::bf16());
  Workload q = build("matmul:M=4,N=5,K=6,dtype=i8");
  EXPECT_EQ(q.inputs[0]->dtype, ir::DataType::i8());
  EXPECT_EQ(q.outputs[0]->dtype, ir::DataType::i32());
  EXPECT_EQ(q.stages.size(), 1u);
}

TEST(Ops, BatchMatmulAndDense) {
  Workload b = build("batch_matmul:B=3,M=5,N=7,K=2");
  EXPECT_EQ(b.inputs[0]->shape, (Shape{3, 5, 2}));
  EXPECT_EQ(b.inputs[1]->shape, (Shape{3, 2, 7}));
  EXPECT_EQ(b.outputs[0]->shape, (Shape{3, 5, 7}));
  Workload d = build("dense:M=5,N=11,K=3");
  ASSERT_EQ(d.inputs.size(), 3u);
  EXPECT_EQ(d.inputs[0]->shape, (Shape{5, 3}));
  EXPECT_FALSE(d.inputs[0]->is_constant);
  EXPECT_EQ(d.inputs[1]->shape, (Shape{11, 3}));
  EXPECT_TRUE(d.inputs[1]->is_constant);
  EXPECT_EQ(d.inputs[2]->shape, (Shape{11}));
  EXPECT_TRUE(d.inputs[2]->is_constant);
  EXPECT_EQ(d.outputs[0]->shape, (Shape{5, 11}));
  EXPECT_EQ(stage_names(d), (std::vector<std::string>{"matmul", "Y"}));
  Workload q = build("dense:M=1,N=1,K=1,dtype=i8");
  EXPECT_EQ(q.inputs[2]->dtype, ir::DataType::i32());
  EXPECT_EQ(q.outputs[0]->dtype, ir::DataType::i32());
}

TEST(Ops, Conv2dShapes) {
  // ResNet stem: 224 -> 112.
  Workload w = build("conv2d:N=1,C=3,H=224,W=224,K=64,R=7,S=7,stride=2,pad=3");
  EXPECT_EQ(shape_of(w, "data"), (Shape{1, 3, 224, 224}));
  EXPECT_EQ(shape_of(w, "weight"), (Shape{64, 3, 7, 7}));
  EXPECT_EQ(shape_of(w, "pad"), (Shape{1, 3, 230, 230}));
  EXPECT_EQ(w.outputs[0]->shape, (Shape{1, 64, 112, 112}));
  EXPECT_TRUE((*find(w, "weight"))->is_constant);
  EXPECT_EQ(stage_names(w), (std::vector<std::string>{"pad", "conv"}));
  EXPECT_DOUBLE_EQ(w.flops(), 2.0 * 64 * 112 * 112 * 3 * 7 * 7);

  // No padding: no pad stage.
  Workload np = build("conv2d:N=2,C=5,H=7,W=11,K=3,R=3,S=1");
  EXPECT_EQ(stage_names(np), (std::vector<std::string>{"conv"}));
  EXPECT_EQ(np.outputs[0]->shape, (Shape{2, 3, 5, 11}));

  // NHWC, stride, dilation, groups: weight HWIO [R, S, C/groups, K].
  Workload nh = build("conv2d:N=1,C=6,H=13,W=10,K=4,R=3,S=2,stride=2,pad=2,dilation=2,groups=2,layout=NHWC");
  EXPECT_EQ(shape_of(nh, "data"), (Shape{1, 13, 10, 6}));
  EXPECT_EQ(shape_of(nh, "weight"), (Shape{3, 2, 3, 4}));
  EXPECT_EQ(shape_of(nh, "pad"), (Shape{1, 17, 14, 6}));
  // (13 + 4 - 2*2 - 1) / 2 + 1 = 7; (10 + 4 - 2*1 - 1) / 2 + 1 = 6.
  EXPECT_EQ(nh.outputs[0]->shape, (Shape{1, 7, 6, 4}));

  // Size-1 everything.
  Workload one = build("conv2d:N=1,C=1,H=1,W=1,K=1,R=1,S=1");
  EXPECT_EQ(one.outputs[0]->shape, (Shape{1, 1, 1, 1}));

  // f16 accumulates in an f32 stage; i8 produces i32.
  Workload h = build("conv2d:N=1,C=2,H=5,W=5,K=3,R=3,S=3,pad=1,dtype=f16");
  EXPECT_EQ(stage_names(h), (std::vector<std::string>{"pad", "conv_acc", "conv"}));
  EXPECT_EQ((*find(h, "conv_acc"))->dtype, ir::DataType::f32());
  EXPECT_EQ(h.outputs[0]->dtype, ir::DataType::f16());
  EXPECT_EQ(build("conv2d:N=1,C=2,H=5,W=5,K=3,R=3,S=3,dtype=i8").outputs[0]->dtype, ir::DataType::i32());
}

TEST(Ops, DepthwiseAndBiasRelu) {
  Workload d = build("depthwise_conv2d:N=1,C=5,H=9,W=7,R=3,S=3,multiplier=2,stride=2,pad=1");
  EXPECT_EQ(shape_of(d, "weight"), (Shape{10, 1, 3, 3}));
  EXPECT_EQ(d.outputs[0]->shape, (Shape{1, 10, 5, 4}));
  auto *r = d.outputs[0]->body.as<ir::Reduce>();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->axes.size(), 2u); // no axis over the single input channel
  Workload dn = build("depthwise_conv2d:N=2,C=3,H=4,W=4,R=3,S=3,pad=1,layout=NHWC");
  EXPECT_EQ(shape_of(dn, "weight"), (Shape{3, 3, 1, 3}));
  EXPECT_EQ(dn.outputs[0]->shape, (Shape{2, 4, 4, 3}));

  Workload b = build("conv2d_bias_relu:N=1,C=3,H=6,W=6,K=4,R=3,S=3,pad=1");
  EXPECT_EQ(stage_names(b), (std::vector<std::string>{"pad", "conv", "out"}));
  EXPECT_EQ(shape_of(b, "bias"), (Shape{4}));
  EXPECT_TRUE((*find(b, "bias"))->is_constant);
  EXPECT_EQ(b.outputs[0]->shape, (Shape{1, 4, 6, 6}));
  Workload bh = build("conv2d_bias_relu:N=1,C=3,H=6,W=6,K=4,R=3,S=3,pad=1,layout=NHWC,dtype=bf16");
  EXPECT_EQ(bh.outputs[0]->shape, (Shape{1, 6, 6, 4}));
  EXPECT_EQ(bh.outputs[0]->dtype, ir::DataType::bf16());
}

TEST(Ops, Pools) {
  Workload m = build("max_pool2d:N=1,C=64,H=112,W=112,R=3,S=3,stride=2,pad=1");
  EXPECT_EQ(m.outputs[0]->shape, (Shape{1, 64, 56, 56}));
  EXPECT_EQ(stage_names(m), (std::vector<std::string>{"pad", "pool"}));
  Workload a = build("avg_pool2d:N=2,C=3,H=7,W=5,R=3,S=2,stride=2,pad=1");
  EXPECT_EQ(a.outputs[0]->shape, (Shape{2, 3, 4, 3}));
  EXPECT_EQ(stage_names(a), (std::vector<std::string>{"pad", "pool_sum", "pool"}));
  Workload g = build("avg_pool2d:N=1,C=1,H=1,W=1,R=1,S=1");
  EXPECT_EQ(g.outputs[0]->shape, (Shape{1, 1, 1, 1}));
  EXPECT_EQ(build("max_pool2d:N=1,C=2,H=5,W=5,R=2,S=2,dtype=i8").outputs[0]->dtype, ir::DataType::i8());
}

TEST(Ops, RowOpsAndElementwise) {
  Workload s = build("softmax:M=3,N=17");
  EXPECT_EQ(stage_names(s), (std::vector<std::string>{"rowmax", "exps", "rowsum", "Y"}));
  EXPECT_EQ(s.outputs[0]->shape, (Shape{3, 17}));
  Workload sh = build("softmax:M=3,N=17,dtype=f16");
  EXPECT_EQ((*find(sh, "exps"))->dtype, ir::DataType::f32());
  EXPECT_EQ(sh.outputs[0]->dtype, ir::DataType::f16());

  Workload l = build("layernorm:M=1,N=1");
  EXPECT_EQ(stage_names(l), (std::vector<std::string>{"mean", "variance", "Y"}));
  EXPECT_EQ(l.inputs.size(), 3u);
  EXPECT_TRUE(l.inputs[1]->is_constant && l.inputs[2]->is_constant);

  for (const char *op : {"gelu", "relu", "add", "multiply", "bias_add"}) {
    Workload w = build(std::string(op) + ":M=5,N=31");
    EXPECT_EQ(w.outputs[0]->shape, (Shape{5, 31})) << op;
    EXPECT_EQ(w.stages.size(), 1u) << op;
  }
  EXPECT_EQ(build("bias_add:M=2,N=3").inputs[1]->shape, (Shape{3}));
}

TEST(Ops, KeysAndHashesDifferAcrossShapes) {
  std::set<std::string> keys;
  std::set<std::string> hashes;
  std::vector<std::string> specs = {"matmul:M=64,N=64,K=64",
                                    "matmul:M=64,N=64,K=63",
                                    "matmul:M=64,N=63,K=64",
                                    "matmul:M=64,N=64,K=64,dtype=f16",
                                    "matmul:M=64,N=64,K=64,dtype=i8",
                                    "batch_matmul:B=1,M=64,N=64,K=64",
                                    "conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3",
                                    "conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3,pad=1",
                                    "conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3,layout=NHWC",
                                    "conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,groups=2",
                                    "softmax:M=4,N=8",
                                    "softmax:M=8,N=4",
                                    "relu:M=4,N=8",
                                    "gelu:M=4,N=8",
                                    "add:M=4,N=8",
                                    "multiply:M=4,N=8"};
  for (auto &s : specs) {
    Workload w = build(s);
    keys.insert(w.key);
    std::string h = w.hash_hex();
    EXPECT_EQ(h.size(), 16u);
    EXPECT_EQ(h, build(s).hash_hex()) << "hash not stable across builds: " << s;
    hashes.insert(h);
  }
  EXPECT_EQ(keys.size(), specs.size());
  EXPECT_EQ(hashes.size(), specs.size());
}

// --------------------------------------------------------------- errors
struct BadSpec {
  const char *spec;
  int column; // 0: no column expected
  std::vector<const char *> mentions;
};

TEST(Ops, MalformedSpecsNameColumnAndKey) {
  std::vector<BadSpec> cases = {
      {"matmul:M=2x,N=4", 10, {"M must be a positive integer, got '2x'"}},
      {"matmul:M=0,N=4,K=4", 10, {"M must be a positive integer", "'0'"}},
      {"matmul:M=4,N=-4,K=4", 14, {"N must be a positive integer", "'-4'"}},
      {"matmul:M=4,N=4,K=", 18, {"K must be a positive integer", "''"}},
      {"matmol:M=4,N=4,K=4", 1, {"unknown operator 'matmol'", "matmul", "conv2d", "softmax"}},
      {"matmul:M=4,N=4,Q=4", 16, {"unknown key 'Q'", "M, N, K, dtype"}},
      {"matmul:M=4,N=4,M=5,K=4", 16, {"duplicate key 'M'", "column 8"}},
      {"matmul:M=4,N4,K=4", 12, {"'N4'", "missing '='"}},
      {"matmul:M=4,N=4", 15, {"missing required key 'K'", "M, N, K"}},
      {"matmul:M=4,,N=4,K=4", 12, {"empty parameter"}},
      {"matmul:M=4,N=4,K=4,dtype=f8", 26, {"dtype must be one of", "f32", "bf16", "i8", "'f8'"}},
      {"softmax:M=4,N=4,dtype=i8", 23, {"dtype must be one of f32, f64, f16, bf16 for softmax, got 'i8'"}},
      {"conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3,layout=NCWH", 43, {"layout must be NCHW or NHWC", "'NCWH'"}},
      {"conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3,pad=x", 40, {"pad must be a non-negative integer", "'x'"}},
      {"conv2d:N=1,C=3,H=2,W=8,K=4,R=5,S=3", 30, {"output height is not positive", "R=5", "H + 2*pad = 2"}},
      {"conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3,groups=2", 43, {"C=3 is not divisible by groups=2"}},
      {"conv2d:N=1,C=4,H=8,W=8,K=3,R=3,S=3,groups=2", 43, {"K=3 is not divisible by groups=2"}},
      {"conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=9", 34, {"output width is not positive", "S=9"}},
      {"layernorm:M=4,N=4,eps=-1", 23, {"eps must be a positive number, got '-1'"}},
      {"max_pool2d:N=1,C=1,H=8,W=8,R=2,S=2,pad=2", 40, {"pad=2 is more than half the window"}},
      {"matmul:M=99999999999,N=4,K=4", 10, {"M must be a positive integer below 2^31"}},
      {":M=4", 1, {"missing operator name"}},
      {"matmul:=4,N=4,K=4", 8, {"missing key before '='"}},
      {"conv2d:N=2000000000,C=2000000000,H=9,W=9,K=1,R=1,S=1", 0, {"data would have more than 2^40 elements"}},
  };
  for (auto &c : cases) {
    std::string err = error_of(c.spec);
    EXPECT_NE(err.find("workload spec '" + std::string(c.spec) + "'"), std::string::npos) << err;
    if (c.column) {
      EXPECT_NE(err.find("column " + std::to_string(c.column) + ":"), std::string::npos) << err;
    }
    for (auto *m : c.mentions) EXPECT_NE(err.find(m), std::string::npos) << "'" << m << "' not in: " << err;
  }
}

TEST(Ops, LoadWorkloadFromSpecOrFile) {
  auto w = load_workload("relu:M=2,N=3");
  ASSERT_TRUE(w) << w.error();
  EXPECT_EQ(w->key, "relu:M=2,N=3,dtype=f32");
  auto missing = load_workload("no/such/file.te");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("does not exist"), std::string::npos) << missing.error();
  auto junk = load_workload("frobnicate");
  ASSERT_FALSE(junk);
  EXPECT_NE(junk.error().find("neither a workload file nor a spec"), std::string::npos) << junk.error();
  EXPECT_NE(junk.error().find("matmul"), std::string::npos) << junk.error();
  auto bad = load_workload("matmul:M=1");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("missing required key 'N'"), std::string::npos) << bad.error();
  auto suite = load_workload((kRepo / "configs/workloads/gemm.spec").string());
  ASSERT_FALSE(suite);
  EXPECT_NE(suite.error().find("suite"), std::string::npos) << suite.error();
}

// The text-form examples parse (through te::parse_workload) into workloads
// equivalent to the operator library's.
TEST(Ops, TextWorkloadFiles) {
  auto m = load_workload((kRepo / "configs/workloads/matmul_64.te").string());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->inputs.size(), 2u);
  EXPECT_EQ(m->outputs[0]->shape, (Shape{64, 64}));
  EXPECT_EQ(m->hash_hex(), build("matmul:M=64,N=64,K=64").hash_hex());
  auto s = load_workload((kRepo / "configs/workloads/softmax_128x256.te").string());
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->outputs[0]->shape, (Shape{128, 256}));
  EXPECT_EQ(s->stages.size(), 4u);
  EXPECT_EQ(s->hash_hex(), build("softmax:M=128,N=256").hash_hex());
}

TEST(Ops, SuiteFilesBuild) {
  int files = 0;
  for (auto &entry : std::filesystem::directory_iterator(kRepo / "configs/workloads")) {
    if (entry.path().extension() != ".spec") continue;
    ++files;
    std::ifstream in(entry.path());
    std::string line;
    int specs = 0, lineno = 0;
    std::set<std::string> keys;
    while (std::getline(in, line)) {
      ++lineno;
      auto hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      while (!line.empty() && std::isspace((unsigned char)line.back())) line.pop_back();
      while (!line.empty() && std::isspace((unsigned char)line.front())) line.erase(0, 1);
      if (line.empty()) continue;
      auto w = make_op_workload(line);
      EXPECT_TRUE(w) << entry.path() << ":" << lineno << ": " << (w ? "" : w.error());
      if (w) {
        EXPECT_TRUE(keys.insert(w->key).second) << entry.path() << ":" << lineno << ": duplicate " << w->key;
      }
      ++specs;
    }
    EXPECT_GT(specs, 0) << entry.path();
  }
  EXPECT_GE(files, 3);
}

// The structural hash keys the tuning database, so it must not drift between
// builds, machines or releases. These literals were computed once; if a change
// to the canonical text form (te/text.cpp) or to an operator's definition
// changes them, that change invalidates every stored record and must be
// deliberate (update the literals and say so).
TEST(Ops, StructuralHashesAreAContract) {
  EXPECT_EQ(build("matmul:M=256,N=256,K=256").hash_hex(), "0f0ae14cdce6d841");
  EXPECT_EQ(build("matmul:M=64,N=64,K=64,dtype=i8").hash_hex(), "2728ffd5616232d8");
  EXPECT_EQ(build("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1").hash_hex(), "8c8a521d85cd4a20");
  EXPECT_EQ(build("softmax:M=1536,N=128").hash_hex(), "0fe40a10cba0cd11");
  EXPECT_EQ(build("layernorm:M=128,N=768").hash_hex(), "da289ad722a37766");
  EXPECT_EQ(build("avg_pool2d:N=1,C=2,H=7,W=7,R=3,S=3,stride=2,pad=1").hash_hex(), "580754e97646b972");
  // Names do not matter: the key differs, the structure (and hash) does not.
  EXPECT_EQ(build("add:M=4,N=8").hash_hex(), build("add:M=4,N=8").hash_hex());
  EXPECT_NE(build("add:M=4,N=8").hash_hex(), build("multiply:M=4,N=8").hash_hex());
}
