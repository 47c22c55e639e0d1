// SimpleRNN, LSTM and GRU: the shared time loop (input projection for all steps at once, then one
// recurrent matmul per step) and each cell's step.
#include "meshflow/models/layers/recurrent.h"

#include "layers/config_fields.h"
#include "layers/sequence_ops.h"
#include "meshflow/core/error.h"
#include "meshflow/core/init.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/linalg.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/core/trace.h"
#include "meshflow/models/masking.h"

namespace meshflow::layers {
namespace {

template <typename Options>
RecurrentSettings settings_of(const Options& o, const std::string& recurrent_activation) {
  return {.activation = o.activation,
          .recurrent_activation = recurrent_activation,
          .use_bias = o.use_bias,
          .kernel_initializer = o.kernel_initializer,
          .recurrent_initializer = o.recurrent_initializer,
          .bias_initializer = o.bias_initializer,
          .dropout = o.dropout,
          .recurrent_dropout = o.recurrent_dropout,
          .return_sequences = o.return_sequences,
          .return_state = o.return_state,
          .go_backwards = o.go_backwards,
          .zero_output_for_mask = o.zero_output_for_mask};
}

template <typename Options>
LayerOptions layer_options_of(const Options& o) {
  return {.name = o.name, .trainable = o.trainable, .dtype = o.dtype};
}

// The options a recurrent config holds (Note [One field list per options struct]): one list for
// RecurrentSettings, which get_config writes, and the three options structs, which from_config
// reads. SimpleRNN has no recurrent_activation option, though its config writes "sigmoid".
template <typename O, typename F>
void recurrent_fields(O& o, F&& f) {
  f("activation", o.activation);
  if constexpr (requires { o.recurrent_activation; }) f("recurrent_activation", o.recurrent_activation);
  f("use_bias", o.use_bias);
  f("kernel_initializer", o.kernel_initializer);
  f("recurrent_initializer", o.recurrent_initializer);
  f("bias_initializer", o.bias_initializer);
  f("dropout", o.dropout);
  f("recurrent_dropout", o.recurrent_dropout);
  f("return_sequences", o.return_sequences);
  f("return_state", o.return_state);
  f("go_backwards", o.go_backwards);
  f("zero_output_for_mask", o.zero_output_for_mask);
}

// Reads the fields get_config wrote (missing ones keep their defaults).
template <typename Options>
Options options_from_config(const Json& c) {
  Options o;
  detail::read_fields(c, o);
  detail::read_common_strict(c, o);
  return o;
}

// The mask for one step, [batch, 1], to pick between new and carried values.
Tensor step_mask(const Tensor& mask, int64_t t) { return mask.slice(1, t, t + 1); }

}  // namespace

// What write_fields and read_fields walk for each struct.
template <typename F>
void fields(RecurrentSettings& o, F&& f) {
  recurrent_fields(o, f);
}
template <typename F>
void fields(SimpleRNNOptions& o, F&& f) {
  recurrent_fields(o, f);
}
template <typename F>
void fields(LSTMOptions& o, F&& f) {
  recurrent_fields(o, f);
}
template <typename F>
void fields(GRUOptions& o, F&& f) {
  recurrent_fields(o, f);
}

// RecurrentLayer ---------------------------------------------------------------------------------

RecurrentLayer::RecurrentLayer(int64_t units, int64_t gates, int64_t num_states, RecurrentSettings settings,
                               LayerOptions options, const std::string& class_name)
    : Layer(std::move(options), class_name),
      units_(units),
      gates_(gates),
      num_states_(num_states),
      settings_(std::move(settings)) {
  MF_CHECK(units > 0, class_name, " '", name(), "': units must be positive, got ", units);
  MF_CHECK(settings_.dropout >= 0 && settings_.dropout < 1 && settings_.recurrent_dropout >= 0 &&
               settings_.recurrent_dropout < 1,
           class_name, " '", name(), "': dropout rates must be in [0, 1), got dropout=", settings_.dropout,
           " and recurrent_dropout=", settings_.recurrent_dropout);
  try {
    activation_ = activations::get(settings_.activation);
    recurrent_activation_ = activations::get(settings_.recurrent_activation);
  } catch (const Error& e) {
    MF_THROW(class_name, " '", name(), "': ", e.what());
  }
}

void RecurrentLayer::build(const std::vector<Shape>& input_shapes) { build(input_shapes.at(0)); }

void RecurrentLayer::build(const Shape& in) {
  MF_CHECK(in.size() == 3, class_name(), " '", name(), "': expected a 3-D input [batch, timesteps, features], got ",
           "shape ", shape_str(in), "; add a time axis (reshape to [batch, 1, features]) for a single step");
  MF_CHECK(in[2] > 0, class_name(), " '", name(), "': the feature dimension of input shape ", shape_str(in),
           " must be known");
  kernel_ = add_weight("kernel", {in[2], gates_ * units_}, settings_.kernel_initializer);
  recurrent_kernel_ = add_weight("recurrent_kernel", {units_, gates_ * units_}, settings_.recurrent_initializer);
  if (settings_.use_bias) bias_ = add_weight("bias", initial_bias());
}

Tensor RecurrentLayer::initial_bias() const {
  return init::by_name(settings_.bias_initializer, bias_shape(), nullptr, dtype_);
}

void RecurrentLayer::check_input(const Tensor& x) const {
  MF_CHECK(x.dim() == 3, class_name(), " '", name(), "': expected a 3-D input [batch, timesteps, features], got ",
           "shape ", shape_str(x.shape()), "; add a time axis (reshape to [batch, 1, features]) for a single step");
  MF_CHECK(is_floating(x.dtype()), class_name(), " '", name(), "': expected a floating input, got ",
           dtype_name(x.dtype()), " of shape ", shape_str(x.shape()));
  MF_CHECK(x.size(2) == kernel_.size(0), class_name(), " '", name(), "': input shape ", shape_str(x.shape()), " has ",
           x.size(2), " features but the layer was built for ", kernel_.size(0), " (kernel ",
           shape_str(kernel_.shape()), ")");
}

Tensor RecurrentLayer::fed_back(const Tensor& h) const {
  return recurrent_dropout_mask_.defined() ? h * recurrent_dropout_mask_ : h;
}

Tensors RecurrentLayer::call(const Tensors& inputs) {
  const Tensor& x = inputs[0];
  check_input(x);
  Tensor mask;
  std::vector<Tensor> states;
  for (size_t i = 1; i < inputs.size(); ++i) {
    if (inputs[i].dtype() == DType::Bool) {
      MF_CHECK(!mask.defined(), class_name(), " '", name(), "': got two bool masks among the inputs");
      mask = inputs[i];
    } else {
      states.push_back(inputs[i]);
    }
  }
  MF_CHECK(states.empty() || static_cast<int64_t>(states.size()) == num_states_, class_name(), " '", name(),
           "': expected ", num_states_, " initial state tensor(s) [batch, ", units_, "], got ", states.size(),
           " (a mask must be a bool tensor)");
  const int64_t batch = x.size(0), steps = x.size(1), features = x.size(2);
  for (const auto& s : states)
    MF_CHECK(s.dim() == 2 && s.size(1) == units_ && (batch < 0 || s.size(0) < 0 || s.size(0) == batch), class_name(),
             " '", name(), "': an initial state has shape ", shape_str(s.shape()), " but [", batch, ", ", units_,
             "] is expected for input shape ", shape_str(x.shape()), " (a mask must be a bool tensor)");
  if (mask.defined())
    MF_CHECK(mask.dim() == 2 && (mask.size(1) < 0 || steps < 0 || mask.size(1) == steps), class_name(), " '", name(),
             "': the mask has shape ", shape_str(mask.shape()), " but the input has shape ", shape_str(x.shape()),
             "; expected a bool mask [batch, timesteps]");

  Tensors out;
  if (x.is_symbolic()) {  // shapes only: the time loop runs when the model runs on data
    out.push_back(symbolic(settings_.return_sequences ? Shape{batch, steps, units_} : Shape{batch, units_}, x.dtype()));
    for (int64_t i = 0; settings_.return_state && i < num_states_; ++i)
      out.push_back(symbolic({batch, units_}, x.dtype()));
    Tensor sequence_mask = mask.defined() ? mask : keras_mask(x);
    if (settings_.return_sequences && sequence_mask.defined()) set_keras_mask(out[0], sequence_mask);
    return out;
  }
  MF_CHECK(steps > 0, class_name(), " '", name(), "': the input shape ", shape_str(x.shape()), " has no time steps");
  if (!mask.defined()) mask = keras_mask(x);

  // Dropout masks are drawn once per call and shared by every step, as Keras does.
  const TensorOptions like{.dtype = x.dtype(), .device = x.device()};
  const bool training = Layer::training();
  Tensor inputs_seq = x;
  if (training && settings_.dropout > 0)
    inputs_seq = x * dropout(ones({batch, 1, features}, like), settings_.dropout, true);
  recurrent_dropout_mask_ = Tensor();
  if (training && settings_.recurrent_dropout > 0)
    recurrent_dropout_mask_ = dropout(ones({batch, units_}, like), settings_.recurrent_dropout, true);

  // Note [RNN input projection]: the input half of every gate is one GEMM over all steps; the
  // loop then does one [batch, units] x [units, gates * units] matmul per step.
  Tensor projected = matmul(inputs_seq.reshape({batch * steps, features}), kernel_);
  Tensor in_bias = input_bias();
  if (in_bias.defined()) projected = projected + in_bias;
  std::vector<Tensor> per_step = meshflow::unbind(projected.reshape({batch, steps, gates_ * units_}), 1);

  if (states.empty())
    for (int64_t i = 0; i < num_states_; ++i)
      states.push_back(zeros({batch, units_}, {.dtype = projected.dtype(), .device = x.device()}));
  Tensor zero_output = zeros({batch, units_}, {.dtype = projected.dtype(), .device = x.device()});
  Tensor previous_output = zero_output;
  std::vector<Tensor> outputs;
  if (settings_.return_sequences) outputs.reserve(static_cast<size_t>(steps));
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t t = settings_.go_backwards ? steps - 1 - i : i;
    std::vector<Tensor> next = step(per_step[static_cast<size_t>(t)], states);
    Tensor output = next[0];
    if (mask.defined()) {
      Tensor keep = step_mask(mask, t);
      for (size_t s = 0; s < next.size(); ++s) next[s] = where(keep, next[s], states[s]);
      output = where(keep, output, settings_.zero_output_for_mask ? zero_output : previous_output);
    }
    states = std::move(next);
    previous_output = output;
    if (settings_.return_sequences) outputs.push_back(output);
  }
  recurrent_dropout_mask_ = Tensor();

  if (settings_.return_sequences) {
    Tensor sequence = stack(outputs, 1);
    if (mask.defined()) set_keras_mask(sequence, mask);
    out.push_back(sequence);
  } else {
    out.push_back(previous_output);
  }
  if (settings_.return_state)
    for (const auto& s : states) out.push_back(s);
  return out;
}

Json RecurrentLayer::get_config() const {
  Json c = Layer::get_config();
  c["units"] = units_;
  detail::write_fields(c, settings_);
  return c;
}

// SimpleRNN --------------------------------------------------------------------------------------

SimpleRNNLayer::SimpleRNNLayer(int64_t units, SimpleRNNOptions o)
    : RecurrentLayer(units, 1, 1, settings_of(o, "sigmoid"), layer_options_of(o), "SimpleRNN") {}

std::vector<Tensor> SimpleRNNLayer::step(const Tensor& projected, const std::vector<Tensor>& states) {
  return {activation_(projected + matmul(fed_back(states[0]), recurrent_kernel_))};
}

std::shared_ptr<SimpleRNNLayer> SimpleRNNLayer::from_config(const Json& c) {
  return std::make_shared<SimpleRNNLayer>(c.at("units").get<int64_t>(), options_from_config<SimpleRNNOptions>(c));
}

// LSTM -------------------------------------------------------------------------------------------

LSTMLayer::LSTMLayer(int64_t units, LSTMOptions o)
    : RecurrentLayer(units, 4, 2, settings_of(o, o.recurrent_activation), layer_options_of(o), "LSTM"),
      unit_forget_bias_(o.unit_forget_bias) {}

Tensor LSTMLayer::initial_bias() const {
  Tensor b = RecurrentLayer::initial_bias();
  if (unit_forget_bias_) {  // Keras: the initializer's values, with the forget gate's set to 1
    Tensor b4 = b.reshape({4, units_});
    b4.slice(0, 1, 2).fill_(1.0);
  }
  return b;
}

// Gates in Keras's order: input, forget, cell candidate, output.
std::vector<Tensor> LSTMLayer::step(const Tensor& projected, const std::vector<Tensor>& states) {
  const Tensor &h = states[0], &c = states[1];
  Tensor z = projected + matmul(fed_back(h), recurrent_kernel_);
  std::vector<Tensor> g = meshflow::unbind(z.reshape({z.size(0), 4, units_}), 1);
  Tensor i = recurrent_activation_(g[0]), f = recurrent_activation_(g[1]);
  Tensor o = recurrent_activation_(g[3]);
  Tensor c_next = f * c + i * activation_(g[2]);
  return {o * activation_(c_next), c_next};
}

Json LSTMLayer::get_config() const {
  Json c = RecurrentLayer::get_config();
  c["unit_forget_bias"] = unit_forget_bias_;
  return c;
}

std::shared_ptr<LSTMLayer> LSTMLayer::from_config(const Json& c) {
  LSTMOptions o = options_from_config<LSTMOptions>(c);
  o.unit_forget_bias = c.value("unit_forget_bias", o.unit_forget_bias);
  return std::make_shared<LSTMLayer>(c.at("units").get<int64_t>(), o);
}

// GRU --------------------------------------------------------------------------------------------

GRULayer::GRULayer(int64_t units, GRUOptions o)
    : RecurrentLayer(units, 3, 1, settings_of(o, o.recurrent_activation), layer_options_of(o), "GRU"),
      reset_after_(o.reset_after) {}

// reset_after keeps separate input and recurrent biases (row 0 and row 1), as cuDNN does.
Shape GRULayer::bias_shape() const { return reset_after_ ? Shape{2, 3 * units_} : Shape{3 * units_}; }

Tensor GRULayer::input_bias() const {
  if (!bias_.defined() || !reset_after_) return bias_;
  return bias_.slice(0, 0, 1).reshape({3 * units_});
}

// Gates in Keras's order: update (z), reset (r), candidate (h).
std::vector<Tensor> GRULayer::step(const Tensor& projected, const std::vector<Tensor>& states) {
  const Tensor& h = states[0];
  const int64_t batch = projected.size(0);
  std::vector<Tensor> xg = meshflow::unbind(projected.reshape({batch, 3, units_}), 1);
  Tensor z, candidate;
  if (reset_after_) {
    Tensor rec = matmul(fed_back(h), recurrent_kernel_);
    if (bias_.defined()) rec = rec + bias_.slice(0, 1, 2);
    std::vector<Tensor> rg = meshflow::unbind(rec.reshape({batch, 3, units_}), 1);
    z = recurrent_activation_(xg[0] + rg[0]);
    Tensor r = recurrent_activation_(xg[1] + rg[1]);
    candidate = activation_(xg[2] + r * rg[2]);
  } else {
    Tensor fed = fed_back(h);
    Tensor rec = matmul(fed, recurrent_kernel_.slice(1, 0, 2 * units_));
    std::vector<Tensor> rg = meshflow::unbind(rec.reshape({batch, 2, units_}), 1);
    z = recurrent_activation_(xg[0] + rg[0]);
    Tensor r = recurrent_activation_(xg[1] + rg[1]);
    candidate = activation_(xg[2] + matmul(r * fed, recurrent_kernel_.slice(1, 2 * units_, 3 * units_)));
  }
  // z * h + (1 - z) * candidate, with one op fewer.
  return {candidate + z * (h - candidate)};
}

Json GRULayer::get_config() const {
  Json c = RecurrentLayer::get_config();
  c["reset_after"] = reset_after_;
  return c;
}

std::shared_ptr<GRULayer> GRULayer::from_config(const Json& c) {
  GRUOptions o = options_from_config<GRUOptions>(c);
  o.reset_after = c.value("reset_after", o.reset_after);
  return std::make_shared<GRULayer>(c.at("units").get<int64_t>(), o);
}

// Factories and registration ---------------------------------------------------------------------

LayerRef<SimpleRNNLayer> SimpleRNN(int64_t units, SimpleRNNOptions options) {
  return make_layer<SimpleRNNLayer>(units, std::move(options));
}
LayerRef<LSTMLayer> LSTM(int64_t units, LSTMOptions options) {
  return make_layer<LSTMLayer>(units, std::move(options));
}
LayerRef<GRULayer> GRU(int64_t units, GRUOptions options) { return make_layer<GRULayer>(units, std::move(options)); }

MF_REGISTER_LAYER(SimpleRNNLayer, "SimpleRNN");
MF_REGISTER_LAYER(LSTMLayer, "LSTM");
MF_REGISTER_LAYER(GRULayer, "GRU");

}  // namespace meshflow::layers
