// The export test models (export_zoo.h).
#include "export_zoo.h"

#include "meshflow/zoo/gpt.h"
#include "meshflow/zoo/resnet.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

namespace export_zoo {
namespace {

using Ptr = std::shared_ptr<mf::Model>;
Ptr functional(const mf::Tensors& in, const mf::Tensors& out) { return std::make_shared<mf::Model>(in, out); }

Fixture fmnist_mlp() {  // examples/fashion_mnist_keras.cpp --model mlp
  auto in = mf::Input({28, 28, 1});
  auto x = L::Flatten()(in);
  x = L::Dense(256, {.activation = "relu"})(x);
  x = L::Dense(128, {.activation = "relu"})(x);
  auto out = L::Dense(10, {.activation = "softmax"})(x);
  return {"fmnist_mlp", functional({in}, {out}), {{{28, 28, 1}, mf::DType::F32, 0, 0, true}}};
}

Fixture fmnist_cnn() {  // examples/fashion_mnist_keras.cpp --model cnn
  auto in = mf::Input({28, 28, 1});
  auto x = L::Conv2D(32, 3, {.activation = "relu"})(in);
  x = L::MaxPooling2D(2)(x);
  x = L::Conv2D(64, 3, {.activation = "relu"})(x);
  x = L::MaxPooling2D(2)(x);
  x = L::Flatten()(x);
  x = L::Dense(128, {.activation = "relu"})(x);
  auto out = L::Dense(10, {.activation = "softmax"})(x);
  return {"fmnist_cnn", functional({in}, {out}), {{{28, 28, 1}, mf::DType::F32, 0, 0, true}}};
}

Fixture seed_attention_classifier() {
  auto inputs = mf::Input({-1}, {.dtype = mf::DType::I64});
  auto x = L::Embedding(20, 64)(inputs);
  auto attn = L::MultiHeadAttention(2, 64)(mf::Tensors{x, x})[0];
  auto pooled = L::GlobalAveragePooling1D()(attn);
  auto outputs = L::Dense(1, {.activation = "sigmoid"})(pooled);
  return {"seed_attention_classifier", functional({inputs}, {outputs}), {{{-1}, mf::DType::I64, 20, 9}}};
}

Fixture seed_ensembling() {
  auto inp = mf::Input({10});
  auto out1 = L::Dense(1)(L::Dense(32, {.activation = "relu"})(inp));
  auto out2 = L::Dense(1)(L::Dense(16, {.activation = "relu"})(inp));
  return {"seed_ensembling", functional({inp}, {L::average({out1, out2})}), {{{10}}}};
}

Fixture seed_multi_io_model() {
  auto input1 = mf::Input({784}), input2 = mf::Input({784});
  auto dense1 = L::Dense(64, {.activation = "relu"});
  auto output1 = L::Dense(10, {.activation = "softmax"})(dense1(input1));
  auto output2 = L::Dense(10, {.activation = "softmax"})(dense1(input2));
  return {"seed_multi_io_model", functional({input1, input2}, {output1, output2}), {{{784}}, {{784}}}};
}

Fixture seed_multiple_losses() {
  auto inp = mf::Input({4});
  auto h = L::Dense(3, {.activation = "relu"})(inp);
  auto out_reg = L::Dense(1, {.name = "regression"})(h);
  auto out_clf = L::Dense(5, {.activation = "softmax", .name = "classification"})(h);
  return {"seed_multiple_losses", functional({inp}, {out_reg, out_clf}), {{{4}}}};
}

Fixture seed_qa_model() {
  auto a = mf::Input({64});
  auto x = L::Dense(32, {.activation = "relu"})(L::Dense(32, {.activation = "relu"})(a));
  auto b = mf::Input({64});
  auto xb = L::Dense(32, {.activation = "relu"})(L::Dense(32, {.activation = "relu"})(b));
  auto out = L::Dense(10, {.activation = "softmax"})(L::add({x, xb}));
  return {"seed_qa_model", functional({a, b}, {out}), {{{64}}, {{64}}}};
}

mf::Tensor residual_block(const mf::Tensor& x, int64_t filters) {
  auto y = L::Conv2D(filters, 3, {.padding = "same"})(x);
  y = L::Activation("relu")(L::BatchNormalization()(y));
  y = L::BatchNormalization()(L::Conv2D(filters, 3, {.padding = "same"})(y));
  return L::Activation("relu")(L::add({x, y}));
}

Fixture seed_residual_batchnorm() {
  auto inputs = mf::Input({12, 12, 1});
  auto x = L::Conv2D(8, 3, {.padding = "same", .activation = "relu"})(inputs);
  x = residual_block(x, 8);
  x = L::MaxPooling2D(2)(x);
  x = residual_block(x, 8);
  x = L::GlobalAveragePooling2D()(x);
  auto outputs = L::Dense(2, {.activation = "softmax"})(x);
  return {"seed_residual_batchnorm", functional({inputs}, {outputs}), {{{12, 12, 1}}}};
}

Fixture seed_shared_layers() {
  auto shared = L::Dense(8, {.activation = "relu"});
  auto ia = mf::Input({16}), ib = mf::Input({16});
  auto merged = L::concatenate({shared(ia), shared(ib)});
  return {"seed_shared_layers", functional({ia, ib}, {L::Dense(1)(merged)}), {{{16}}, {{16}}}};
}

Fixture seed_model_as_function() {  // a model called as a layer inside a bigger one
  auto input_tensor = mf::Input({32});
  auto x = L::Dense(32, {.activation = "relu"})(input_tensor);
  x = L::Dense(32, {.activation = "relu"})(x);
  auto inner = functional({input_tensor}, {L::Dense(10, {.activation = "softmax"})(x)});
  auto new_input = mf::Input({32});
  auto reused = (*inner)(new_input);
  return {"seed_model_as_function", functional({new_input}, {L::Dense(10, {.activation = "softmax"})(reused)}),
          {{{32}}}};
}

Fixture seed_custom_callback() {  // a Sequential model with an InputLayer
  auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({784}), L::Dense(64, {.activation = "relu"}), L::Dense(10, {.activation = "softmax"})});
  return {"seed_custom_callback", model, {{{784}}}};
}

// Seed 001's MyCustomModel (examples/seed_custom_models.cpp), plus an op outside any layer.
class MyCustomModel : public mf::Model {
 public:
  MyCustomModel()
      : dense1_(L::Dense(128, {.activation = "relu"})), skip_(L::Dense(128)), dense2_(L::Dense(10, {.activation = "softmax"})) {}
  mf::Tensor call(const mf::Tensor& inputs) override { return dense2_(mf::relu(dense1_(inputs) + skip_(inputs))); }

 private:
  mf::LayerRef<L::DenseLayer> dense1_, skip_, dense2_;
};

Fixture seed_custom_models() {
  auto model = std::make_shared<MyCustomModel>();
  (*model)(mf::zeros({1, 32}));  // builds it: a subclassed model knows its input shape after one call
  return {"seed_custom_models", model, {{{32}}}};
}

// Seeds 001, 002 and 004's custom layers (examples/seed_custom_layers.cpp): no mapping of their
// own, exported through their call()s (Note [Custom layers in ONNX]).
class MyCustomLayer : public mf::Layer {
 public:
  void build(const mf::Shape& input_shape) override { kernel_ = add_weight("kernel", {input_shape[1], 128}); }
  mf::Tensor call(const mf::Tensor& inputs) override { return mf::matmul(inputs, kernel_); }

 private:
  mf::Variable kernel_;
};

class CustomDense : public mf::Layer {
 public:
  explicit CustomDense(int64_t units) : units_(units) {}
  void build(const mf::Shape& in) override {
    w_ = add_weight("kernel", {in.back(), units_}, "random_normal");
    b_ = add_weight("bias", {units_}, "zeros");
  }
  mf::Tensor call(const mf::Tensor& x) override { return mf::relu(mf::matmul(x, w_) + b_); }

 private:
  int64_t units_;
  mf::Variable w_, b_;
};

Fixture seed_custom_layers() {
  auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({20}), L::Dense(64, {.activation = "relu"}), mf::make_layer<MyCustomLayer>(),
      mf::make_layer<CustomDense>(32), L::Activation("softmax")});
  (*model)(mf::zeros({1, 20}));
  return {"seed_custom_layers", model, {{{20}}}};
}

// Seed 000's MultiIO layer (examples/seed_multi_io_layer.cpp): two inputs, outputs {"sum", "diff"}.
class MultiIO : public mf::Layer {
 public:
  mf::Tensors call(const mf::Tensors& in) override { return {{"sum", in[0] + in[1]}, {"diff", in[0] - in[1]}}; }
};

Fixture seed_multi_io_layer() {
  auto in1 = mf::Input({4}), in2 = mf::Input({4});
  auto io = mf::make_layer<MultiIO>()({in1, in2});
  auto out_sum = L::Dense(4, {.name = "sum"})(io["sum"]);
  auto out_diff = L::Dense(4, {.name = "diff"})(io["diff"]);
  return {"seed_multi_io_layer", functional({in1, in2}, {out_sum, out_diff}), {{{4}}, {{4}}}};
}

Fixture sequential_cnn() {  // Sequential without an InputLayer, built by a call
  auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      L::Conv2D(6, {3, 2}, {.strides = {2, 1}, .padding = "same", .activation = "elu"}), L::BatchNormalization(),
      L::AveragePooling2D(2, {.padding = "same"}), L::Dropout(0.5), L::Flatten(),
      L::Dense(7, {.activation = "tanh"})});
  (*model)(mf::zeros({1, 9, 7, 2}));
  return {"sequential_cnn", model, {{{9, 7, 2}}}};
}

Fixture layers_conv_norm() {
  auto in = mf::Input({10, 6}, {.name = "signal"});
  auto a = L::Conv1D(5, 3, {.padding = "causal", .dilation_rate = 2, .activation = "gelu"})(in);
  auto b = L::Conv1D(5, 3, {.strides = 2, .padding = "same", .activation = "selu"})(in);
  auto img = mf::Input({8, 8, 4}, {.name = "image"});
  auto c = L::Conv2D(4, 3, {.padding = "same", .dilation_rate = 2, .activation = "softplus"})(img);
  c = L::Conv2D(6, 2, {.strides = 2, .groups = 2, .activation = "swish"})(c);
  auto g = L::concatenate({L::GlobalMaxPooling2D()(c), L::GlobalAveragePooling2D()(c)});
  g = L::LayerNormalization()(L::Reshape({3, 4})(g));
  auto seq = L::LayerNormalization({.axis = {-2, -1}, .center = false})(L::Reshape({-1, 5})(a));
  mf::Tensors outs;
  outs.push_back(L::Activation("hard_sigmoid")(g), "norm");
  outs.push_back(seq, "causal");
  outs.push_back(b, "strided");
  return {"layers_conv_norm", functional({in, img}, outs), {{{10, 6}}, {{8, 8, 4}}}};
}

Fixture layers_recurrent() {
  auto ids = mf::Input({7}, {.name = "tokens"});  // float ids, cast as Keras does
  auto e = L::Embedding(12, 6)(ids);
  auto l1 = L::LSTM(5, {.return_sequences = true, .go_backwards = true})(e);
  auto g1 = L::GRU(4, {.return_sequences = true, .reset_after = false})(l1);
  auto r = (*L::SimpleRNN(3, {.activation = "relu", .return_state = true}))(mf::Tensors{g1});
  auto g2 = L::GRU(4, {.activation = "relu"})(l1);
  auto lstm_states = (*L::LSTM(3, {.return_state = true}))(mf::Tensors{e});
  return {"layers_recurrent",
          functional({ids}, {r[0], r[1], g2, lstm_states[0], lstm_states[1], lstm_states[2]}),
          {{{7}, mf::DType::F32, 12}}};
}

Fixture layers_attention() {
  auto q = mf::Input({5, 8}, {.name = "query"}), v = mf::Input({6, 4}, {.name = "value"});
  auto k = mf::Input({6, 3}, {.name = "key"});
  auto mask = mf::Input({5, 6}, {.dtype = mf::DType::Bool, .name = "mask"});
  auto cross = (*L::MultiHeadAttention(3, 4, {.value_dim = 2, .output_shape = 7, .return_attention_scores = true}))(
      q, v, k, mask);
  auto self = L::MultiHeadAttention(2, 3, {.use_bias = false, .use_causal_mask = true})(mf::Tensors{q, q})[0];
  auto merged = L::add({L::subtract({self, q}), L::multiply({self, q})});
  auto mx = L::maximum({merged, q, L::Dense(8, {.activation = "leaky_relu"})(q)});
  return {"layers_attention", functional({q, v, k, mask}, {cross[0], cross[1], L::Activation("softsign")(mx)}),
          {{{5, 8}}, {{6, 4}}, {{6, 3}}, {{5, 6}, mf::DType::Bool}}};
}

// Seed 004's manual model parallelism (examples/seed_model_parallel.cpp): each Dense layer placed on
// its own virtual device; the export reads the weights where they live.
Fixture seed_model_parallel() {
  auto inputs = mf::Input({32});
  mf::Tensor hidden;
  {
    mf::DeviceScope on(mf::Device("cpu:0"));
    hidden = L::Dense(64, {.activation = "relu"})(inputs);
  }
  mf::Tensor output;
  {
    mf::DeviceScope on(mf::Device("cpu:1"));
    output = L::Dense(10, {.activation = "softmax"})(hidden);
  }
  return {"seed_model_parallel", functional({inputs}, {output}), {{{32}}}};
}

// Seed 004's Keras Tuner HyperModel (examples/seed_keras_tuner.cpp) with units = 96.
Fixture seed_keras_tuner() {
  auto model = std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({784}), L::Dense(96, {.activation = "relu"}), L::Dense(10, {.activation = "softmax"})});
  return {"seed_keras_tuner", model, {{{784}, mf::DType::F32, 0, 0, true}}};
}

// The zoo's Transformer layers: token and position embeddings, a post-norm encoder with an
// attention mask and a pre-norm causal one with a gelu feed-forward.
Fixture zoo_transformer() {
  auto ids = mf::Input({6}, {.dtype = mf::DType::I64, .name = "ids"});
  auto attend = mf::Input({6, 6}, {.dtype = mf::DType::Bool, .name = "attend"});
  auto x = L::TokenAndPositionEmbedding(30, 16, 8)(ids);
  x = L::TransformerEncoder(2, 16)(mf::Tensors{x, attend})[0];
  x = L::TransformerEncoder(2, 12, {.key_dim = 3, .activation = "gelu", .normalize_first = true,
                                    .use_causal_mask = true})(x);
  auto out = L::Dense(3, {.activation = "softmax"})(L::GlobalAveragePooling1D()(x));
  return {"zoo_transformer", functional({ids, attend}, {out, x}),
          {{{6}, mf::DType::I64, 30}, {{6, 6}, mf::DType::Bool}}};
}

// Keras masks (Note [Keras masks in ONNX]): Embedding's mask_zero passed through Dense, applied by
// MultiHeadAttention, combined by Add, passed by LayerNormalization, read by TransformerEncoder as
// its padding and by GlobalAveragePooling1D as a masked mean; TokenAndPositionEmbedding's too.
Fixture masked_text() {
  auto ids = mf::Input({8}, {.dtype = mf::DType::I64, .name = "ids"});
  auto e = L::Embedding(6, 8, {.mask_zero = true})(ids);
  auto d = L::Dense(8, {.activation = "relu"})(e);
  auto a = L::MultiHeadAttention(2, 4)(mf::Tensors{d, d})[0];
  auto n = L::LayerNormalization()(L::add({a, d}));
  auto t = L::TransformerEncoder(2, 16)(n);
  auto out = L::Dense(3, {.activation = "softmax"})(L::GlobalAveragePooling1D()(t));
  auto p = L::TokenAndPositionEmbedding(6, 8, 8, {.mask_zero = true})(ids);
  p = L::TransformerEncoder(2, 12, {.normalize_first = true})(p);
  return {"masked_text", functional({ids}, {out, L::GlobalAveragePooling1D()(p)}), {{{8}, mf::DType::I64, 6}}};
}

// The zoo's models: GPT (tiny preset: ReversibleEmbedding, whose tied head is a transposed matmul,
// pre-norm causal TransformerEncoders, a final LayerNormalization) and ResNet-18 on 32x32 images.
Fixture zoo_gpt() {
  auto config = mf::zoo::GptConfig::tiny();
  return {"zoo_gpt", mf::zoo::gpt(config), {{{config.context}, mf::DType::I64, config.vocab_size}}};
}

Fixture zoo_resnet18() {
  return {"zoo_resnet18", mf::zoo::resnet(18, {.input_shape = {32, 32, 3}, .classes = 10}), {{{32, 32, 3}}}};
}

}  // namespace

std::vector<std::function<Fixture()>> all_fixtures() {
  return {fmnist_mlp,         fmnist_cnn,           seed_attention_classifier, seed_ensembling, seed_multi_io_model,
          seed_multiple_losses, seed_qa_model,      seed_residual_batchnorm,  seed_shared_layers,
          seed_model_as_function, seed_custom_callback, seed_custom_models, seed_custom_layers, seed_multi_io_layer,     sequential_cnn,  layers_conv_norm,
          layers_recurrent,    layers_attention, zoo_transformer, zoo_gpt, zoo_resnet18, seed_model_parallel,
          seed_keras_tuner, masked_text};
}

void randomize_weights(mf::Model& model, uint64_t seed) {
  // Kernels and embeddings keep their initializers' random values (Glorot scales, so activations stay
  // in a realistic range); biases, gammas, betas and moving statistics start as constants, so they are
  // drawn here: a mapping that dropped or misplaced one would otherwise go unseen.
  mf::Generator gen(seed);
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& w : model.weights()) {
    const std::string& n = w.name();
    if (ends_with(n, "moving_variance")) w.assign(mf::rand(w.shape(), {}, &gen) + 0.5);
    else if (ends_with(n, "gamma")) w.assign(mf::randn(w.shape(), {}, &gen) * 0.2 + 1.0);
    else if (ends_with(n, "bias") || ends_with(n, "beta") || ends_with(n, "moving_mean"))
      w.assign(mf::randn(w.shape(), {}, &gen) * 0.3);
  }
}

}  // namespace export_zoo
