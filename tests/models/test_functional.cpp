// The functional API on custom layers: several inputs and outputs, dict outputs, shared layers,
// nested models, models called as functions, summary, and the errors users hit.
#include <set>

#include "meshflow/meshflow.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::tensors_near;

namespace {

// y = x * w + b over the last axis (w, b of the feature size): only elementwise ops.
class Scale : public Layer {
 public:
  explicit Scale(LayerOptions o = {}) : Layer(o, "Scale") {}
  void build(const Shape& in) override {
    w_ = add_weight("w", full({in.back()}, 2.0, {.dtype = dtype()}));
    b_ = add_weight("b", full({in.back()}, 0.5, {.dtype = dtype()}));
  }
  Tensor call(const Tensor& x) override { return x * w_ + b_; }

 private:
  Variable w_, b_;
};

// Seed 000's layer returning a dict: {"sum": x + y, "diff": x - y}.
class MultiIO : public Layer {
 public:
  MultiIO() : Layer({}, "MultiIO") {}
  Tensors call(const Tensors& in) override { return {{"sum", in[0] + in[1]}, {"diff", in[0] - in[1]}}; }
};

}  // namespace

TEST(Functional, DictOutputsAndSeveralInputs) {
  reset_layer_names();
  auto in1 = Input({4}), in2 = Input({4});
  auto io = make_layer<MultiIO>()({in1, in2});
  Model model({in1, in2}, {io["sum"], io["diff"]});
  EXPECT_EQ(model.output_names(), (std::vector<std::string>{"multi_io", "multi_io_1"}));
  Tensor a = mf_test::from_values({1, 2, 3, 4}, {1, 4}, DType::F32);
  Tensor b = mf_test::from_values({4, 3, 2, 1}, {1, 4}, DType::F32);
  Tensors out = model({a, b});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(tensors_near(out[0], mf_test::from_values({5, 5, 5, 5}, {1, 4}, DType::F32)));
  EXPECT_TRUE(tensors_near(out[1], mf_test::from_values({-3, -1, 1, 3}, {1, 4}, DType::F32)));
  EXPECT_EQ(model.input_names(), (std::vector<std::string>{"input_1", "input_2"}));
}

TEST(Functional, SharedLayerHasOneSetOfWeights) {
  reset_layer_names();
  auto shared = make_layer<Scale>();
  auto ia = Input({3}), ib = Input({3});
  Tensor oa = shared(ia), ob = shared(ib);
  Model model({ia, ib}, {oa + ob});
  EXPECT_EQ(model.count_params(), 6);  // w and b once, though called twice
  EXPECT_EQ(model.weights().size(), 2u);
  Tensor x = mf_test::from_values({1, 2, 3}, {1, 3}, DType::F32);
  Tensor y = mf_test::from_values({3, 2, 1}, {1, 3}, DType::F32);
  // (2x + .5) + (2y + .5) = 2(x + y) + 1 = 9 everywhere
  EXPECT_TRUE(tensors_near(model({x, y})[0], full({1, 3}, 9.0)));
  std::string s = model.summary_string();
  EXPECT_NE(s.find("scale (Scale)"), std::string::npos) << s;
  EXPECT_NE(s.find("input_1[0][0]"), std::string::npos) << s;
  EXPECT_NE(s.find("input_2[0][0]"), std::string::npos) << s;  // the second call, on its own row
  EXPECT_NE(s.find("Total params: 6"), std::string::npos) << s;
  // A gradient reaches the shared weights from both calls.
  Tensor loss = sum(model({x, y})[0]);
  loss.backward();
  auto ws = model.trainable_weights();
  EXPECT_TRUE(tensors_near(ws[0].grad(), mf_test::from_values({4, 4, 4}, {3}, DType::F32)));  // x + y
  EXPECT_TRUE(tensors_near(ws[1].grad(), full({3}, 2.0)));
}

TEST(Functional, NestedModelAndModelCalledOnNewTensors) {
  reset_layer_names();
  auto in = Input({2});
  auto inner = std::make_shared<Model>(Tensors{in}, Tensors{make_layer<Scale>()(in)});
  auto in2 = Input({2});
  Tensor h = (*inner)(in2);          // the whole model as a layer on a new input
  Tensor out = make_layer<Scale>()(h);
  Model outer({in2}, {out});
  EXPECT_EQ(outer.count_params(), 8);
  Tensor x = mf_test::from_values({1, -1}, {1, 2}, DType::F32);
  // inner: 2x + .5 = [2.5, -1.5]; outer: 2h + .5 = [5.5, -2.5]
  EXPECT_TRUE(tensors_near(outer(x), mf_test::from_values({5.5, -2.5}, {1, 2}, DType::F32)));
  EXPECT_EQ(outer.layers().size(), 2u);
  EXPECT_EQ(outer.layers()[0]->class_name(), "Functional");
}

TEST(Functional, ErrorsNameWhatIsWrong) {
  reset_layer_names();
  auto a = Input({3}, {.name = "features"});
  auto b = Input({3}, {.name = "extra"});
  auto layer = make_layer<Scale>();
  Tensor out = layer(a + b);
  EXPECT_MF_ERROR(Model({a}, {out}), "Graph disconnected", "'extra'", "add");
  Model ok({a, b}, {out});
  EXPECT_MF_ERROR(ok(ones({1, 3})), "expects 2 input(s)", "features, extra", "got 1");
  EXPECT_MF_ERROR(ok({ones({1, 3}), ones({1, 3}, {.dtype = DType::I64})}), "'extra'", "expects f32", "got i64");
  EXPECT_MF_ERROR(ok({ones({1, 4}), ones({1, 4})}), "expects shape [?, 3]", "[1, 4]");
  Scale on_stack;
  EXPECT_MF_ERROR(on_stack(Input({3})), "not owned by a shared_ptr", "make_layer<Scale>");
  EXPECT_MF_ERROR(Model({ones({2, 3})}, {out}), "not a symbolic tensor", "Input()");
}

TEST(Functional, AutomaticNamesFollowKeras) {
  reset_layer_names();
  EXPECT_EQ(to_snake_case("MultiHeadAttention"), "multi_head_attention");
  EXPECT_EQ(to_snake_case("Conv2D"), "conv2d");
  EXPECT_EQ(to_snake_case("SimpleRNN"), "simple_rnn");
  EXPECT_EQ(to_snake_case("GlobalAveragePooling1D"), "global_average_pooling1d");
  EXPECT_EQ(to_snake_case("BatchNormalization"), "batch_normalization");
  auto l1 = make_layer<Scale>(), l2 = make_layer<Scale>();
  EXPECT_EQ(l1->name(), "scale");
  EXPECT_EQ(l2->name(), "scale_1");
  EXPECT_EQ(Input({2}).name(), "input_1");
  EXPECT_EQ(Input({2}).name(), "input_2");
}

// Subclassed model with C++ control flow; sub-layers are tracked when called.
class TwoPath : public Model {
 public:
  TwoPath() : a_(make_layer<Scale>()), b_(make_layer<Scale>()) {}
  Tensor call(const Tensor& x) override { return sum(x).item() > 0 ? a_(x) : b_(a_(x)); }

 private:
  LayerRef<Scale> a_, b_;
};

TEST(Functional, SubclassedModelTracksLayersUsedInCall) {
  reset_layer_names();
  TwoPath m;
  Tensor pos = ones({1, 2}), neg = full({1, 2}, -1.0);
  EXPECT_TRUE(tensors_near(m(pos), full({1, 2}, 2.5)));
  EXPECT_EQ(m.weights().size(), 2u);
  EXPECT_TRUE(tensors_near(m(neg), full({1, 2}, -2.5)));  // 2(2*-1+.5)+.5
  EXPECT_EQ(m.weights().size(), 4u);
}

TEST(Functional, SummaryRowsMatchKerasColumns) {
  reset_layer_names();
  auto in = Input({64});
  auto out = make_layer<Scale>()(in);
  Model m({in}, {out});
  std::string s = m.summary_string();
  // Keras 2's functional table: columns end at 32, 53, 65 and 98 characters.
  EXPECT_NE(s.find("\nLayer (type)                    Output Shape         Param #     Connected to"), std::string::npos) << s;
  EXPECT_NE(s.find("\ninput_1 (InputLayer)            [(None, 64)]         0"), std::string::npos) << s;
  EXPECT_NE(s.find("\nscale (Scale)                   (None, 64)           128         input_1[0][0]"), std::string::npos) << s;
  EXPECT_NE(s.find("\n" + std::string(98, '=') + "\n"), std::string::npos) << s;
}

// Note [Expanding layer calls]: op_graph() replaces every layer call (nested models too) by the
// ops it runs, so the graph has no composite node left, each op carries its layer's name, and
// running it on real data gives what the model gives, in both training modes.
TEST(Functional, OpGraphExpandsLayerCallsIntoOps) {
  reset_layer_names();
  auto x = Input({6});
  auto inner_in = Input({5});
  auto inner = std::make_shared<Model>(Tensors{inner_in}, Tensors{layers::Dense(3, {.activation = "tanh"})(inner_in)},
                                       LayerOptions{.name = "inner"});
  auto h = layers::Dense(5, {.activation = "relu"})(x);
  auto d = layers::Dropout(0.5)(h);
  auto s = make_layer<Scale>()(d);
  Model model({x}, {(*inner)(s)});
  Tensor data = mf_test::random_tensor({4, 6}, 3, -1, 1, DType::F32);

  for (bool training : {false, true}) {
    Graph g = model.op_graph({}, training);
    std::set<std::string> ops;
    std::string scopes;  // each op's layer path, e.g. "functional/dense_1"
    for (const auto& n : g.nodes()) {
      ASSERT_NE(n.op, nullptr) << "a composite node is left: " << n.composite_kind;
      ops.insert(n.op->name);
      scopes += n.scope + " ";
    }
    // Dense(relu)'s bias and activation are the one fused op bias_relu.
    EXPECT_TRUE(ops.count("matmul") && ops.count("bias_relu") && ops.count("tanh") && ops.count("mul")) << g.str();
    EXPECT_EQ(ops.count("dropout"), training ? 1u : 0u) << g.str();
    for (const char* layer : {"/dense_1 ", "/scale ", "/inner/dense "})
      EXPECT_NE(scopes.find(layer), std::string::npos) << layer << " in " << scopes;
    if (!training) {
      Tensor want = model.predict_on_batch({data})[0];
      Tensor got = g.run({data})[0];
      EXPECT_TRUE(tensors_near(got, want, 0, 0));
    }
  }
  // The default graph keeps one composite node per layer call.
  size_t composites = 0;
  for (const auto& n : model.graph().nodes()) composites += n.op == nullptr;
  EXPECT_EQ(composites, 4u);
  // A Sequential model without an InputLayer needs the input shapes.
  Sequential seq({layers::Dense(2)});
  EXPECT_MF_ERROR(seq.op_graph(), "op_graph", "input_specs");
  Graph g = seq.op_graph({{{-1, 3}, DType::F32, Device()}});
  EXPECT_EQ(g.nodes().size(), 2u) << g.str();  // matmul, add
}
