// Wall-clock timing shared by the benchmark programs: warm-up calls, timed runs, the best or the median.
#pragma once

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Mean seconds per call over `calls` back-to-back calls of fn.
template <typename F>
double seconds_per_call(int calls, F&& fn) {
  auto t0 = Clock::now();
  for (int c = 0; c < calls; ++c) fn();
  return seconds_since(t0) / calls;
}

// How to time fn: `warmups` untimed calls, then `repeats` timed runs of `calls` calls each (a run's
// time is divided by `calls`). With a budget, runs go on past `repeats` until they add up to
// `budget_s` seconds, but never past `max_repeats`: short work gets many samples, long work few.
struct Runs {
  int repeats = 1;
  int calls = 1;
  int warmups = 0;
  double budget_s = 0;
  int max_repeats = 0;
};

// Seconds per call of each timed run, in run order.
template <typename F>
std::vector<double> time_runs(const Runs& runs, F&& fn) {
  for (int w = 0; w < runs.warmups; ++w) fn();
  const int limit = std::max(runs.repeats, runs.max_repeats);
  std::vector<double> per_call;
  per_call.reserve(static_cast<size_t>(std::max(limit, 0)));
  double total = 0;
  for (int r = 0; r < limit && (r < runs.repeats || total < runs.budget_s); ++r) {
    auto t0 = Clock::now();
    for (int c = 0; c < runs.calls; ++c) fn();
    const double s = seconds_since(t0);
    total += s;
    per_call.push_back(s / runs.calls);
  }
  return per_call;
}

// The fastest sample: the run least disturbed by other processes. +infinity for no samples, so a
// rate computed from it (work / seconds) is 0.
inline double best(const std::vector<double>& seconds) {
  return seconds.empty() ? std::numeric_limits<double>::infinity() : *std::min_element(seconds.begin(), seconds.end());
}

// The middle sample (the upper middle of an even count); the samples must not be empty.
inline double median(std::vector<double> seconds) {
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

template <typename F>
double best_seconds(const Runs& runs, F&& fn) {
  return best(time_runs(runs, fn));
}

template <typename F>
double median_seconds(const Runs& runs, F&& fn) {
  return median(time_runs(runs, fn));
}

}  // namespace bench
