// A model whose first layer is BatchNormalization, and its moving statistics after data-parallel
// fit computed in a float64 loop (Note [Replica-local statistics] in models/src/replication.cpp).
#pragma once

#include "dp_models.h"

namespace dp_test {

// BatchNormalization first, so its moving statistics depend on the data alone, not on weights.
inline std::shared_ptr<mf::Model> bn_model() {
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      std::make_shared<mf::layers::BatchNormalizationLayer>(mf::layers::BatchNormalizationOptions{.dtype = DType::F64}),
      std::make_shared<TestDense>(3, "softmax")});
}

struct BnStatistics {
  std::vector<double> mean, variance;  // after fit: every replica's, the mean over replicas
  std::vector<double> replica0_mean;   // global replica 0's own mean before the last epoch's average
};

// numpy.array_split of `rows` over `parts`: the first row and the count of part i.
inline std::pair<int64_t, int64_t> split(int64_t rows, int parts, int i) {
  int64_t count = rows / parts + (i < rows % parts ? 1 : 0);
  return {rows / parts * i + std::min<int64_t>(i, rows % parts), count};
}

// fit without shuffle on x [n, c] in batches of `batch` with `processes` x `local` replicas:
// each process takes its array_split share of a global batch, each local replica its share of
// that; each replica updates its own statistics (momentum 0.99, the unbiased batch variance, as
// batch_norm does), and at each epoch's end every replica takes the mean over replicas.
inline BnStatistics bn_reference(const Tensor& x, int64_t batch, int processes, int local, int epochs) {
  const int64_t n = x.size(0), c = x.size(1);
  const std::vector<double> xv = x.to_vector<double>();
  const int replicas = processes * local;
  std::vector<std::vector<double>> mean(replicas, std::vector<double>(c, 0.0));
  std::vector<std::vector<double>> var(replicas, std::vector<double>(c, 1.0));
  BnStatistics out;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    for (int64_t b = 0; b < n; b += batch) {
      const int64_t rows = std::min(batch, n - b);
      for (int p = 0; p < processes; ++p) {
        auto [pfirst, pcount] = split(rows, processes, p);
        for (int l = 0; l < local; ++l) {
          auto [lfirst, k] = split(pcount, local, l);
          const int64_t first = b + pfirst + lfirst;
          const int g = p * local + l;
          for (int64_t ch = 0; ch < c; ++ch) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < k; ++i) s += xv[(first + i) * c + ch];
            const double m = s / double(k);
            for (int64_t i = 0; i < k; ++i) ss += (xv[(first + i) * c + ch] - m) * (xv[(first + i) * c + ch] - m);
            mean[g][ch] = 0.99 * mean[g][ch] + 0.01 * m;
            var[g][ch] = 0.99 * var[g][ch] + 0.01 * ss / double(k - 1);
          }
        }
      }
    }
    out.replica0_mean = mean[0];
    for (int64_t ch = 0; ch < c; ++ch) {
      double sm = 0, sv = 0;
      for (int g = 0; g < replicas; ++g) {
        sm += mean[g][ch];
        sv += var[g][ch];
      }
      for (int g = 0; g < replicas; ++g) {
        mean[g][ch] = sm / replicas;
        var[g][ch] = sv / replicas;
      }
    }
  }
  out.mean = mean[0];
  out.variance = var[0];
  return out;
}

// got equals want to float64 rounding.
inline ::testing::AssertionResult statistics_near(const std::vector<double>& got, const std::vector<double>& want,
                                                  const std::string& what) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  for (size_t i = 0; i < got.size(); ++i)
    if (std::abs(got[i] - want[i]) > 1e-12 * std::max(1.0, std::abs(want[i])))
      return ::testing::AssertionFailure() << what << "[" << i << "]: " << got[i] << " vs " << want[i];
  return ::testing::AssertionSuccess();
}

// The BatchNormalization layer's moving mean and variance after fit without shuffle under
// `strategy` (the model built inside its scope with replicate_model).
inline std::pair<std::vector<double>, std::vector<double>> fit_bn(mf::Strategy& strategy, const Tensor& x,
                                                                  const Tensor& y, int64_t batch, int epochs) {
  std::shared_ptr<mf::Model> model;
  {
    auto scope = strategy.scope();
    model = mf::replicate_model(bn_model);
    compile(*model);
  }
  model->fit({x}, {y}, {.epochs = epochs, .batch_size = batch, .verbose = 0, .shuffle = false});
  auto bn = std::dynamic_pointer_cast<mf::layers::BatchNormalizationLayer>(model->layers().at(0));
  return {bn->moving_mean().to_vector<double>(), bn->moving_variance().to_vector<double>()};
}

// n rows of c channels; row i is shifted by i / 10 so every replica's share has another mean.
inline std::pair<Tensor, Tensor> bn_data(int64_t n, int64_t c) {
  auto [x, y] = data(n, {c}, 31);
  std::vector<double> shift(static_cast<size_t>(n * c));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) shift[i * c + j] = 0.1 * double(i) * (j + 1);
  return {x + mf::from_vector(shift, {n, c}, {.dtype = DType::F64}), y};
}

}  // namespace dp_test
