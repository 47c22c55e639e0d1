// HyperbandOracle: brackets of successive halving (Li et al., JMLR 2018), sized as Keras Tuner or the paper.
#include <algorithm>

#include "meshflow/core/error.h"
#include "meshflow/tuner/oracle.h"

namespace meshflow::tuner {

namespace {
int64_t ipow(int64_t b, int e) {
  int64_t r = 1;
  for (int i = 0; i < e; ++i) r *= b;
  return r;
}
}  // namespace

// Note [Hyperband in integers]: s_max = floor(log_eta(R)) and the bracket sizes are computed with
// integer arithmetic, so R = 81, eta = 3 gives s_max = 4 exactly (floating log(81)/log(3) is
// 4.000000000000001 or 3.9999999999999996 depending on the library, and a floor or ceil of it
// changes the whole schedule).
//
// Note [Hyperband schedules]: both schedules share the brackets (s_max + 1 of them) and the epochs
// of each round, r_i = ceil(R / eta^(s - i)) (Keras Tuner's epochs are whole and at least 1). They
// differ in how many configurations a round holds:
// - Paper (Li et al., JMLR 2018, Algorithm 1 with B = (s_max + 1) R): bracket s starts
//   n = ceil((s_max + 1) eta^s / (s + 1)) configurations and round i keeps floor(n / eta^i).
//   R = 81, eta = 3 is Table 1: 81/27/9/3/1, 34/11/3/1, 15/5/1, 8/2, 5 (206 trials).
// - KerasTuner (keras_tuner/tuners/hyperband.py, HyperbandOracle._get_size): every bracket ends
//   with E / (s + 1) models, E = ceil(1 + log_eta(R)), and each round is rounded up:
//   n_i = ceil(E eta^(s - i) / (s + 1)). R = 81, eta = 3: 81/27/9/3/1, 34/12/4/2, 15/5/2, 8/3, 5
//   (211 trials, 1767 epochs when promoted trials train on from their parents, against the
//   paper's 1581). Where R is not a power of eta, E is s_max + 2 and the first rounds are larger
//   than the paper's too (R = 100: 98 configurations in bracket 4, not 81).
// Keras Tuner computes E with a floating log; in integers E is 1 + s_max when R = eta^s_max and
// s_max + 2 otherwise, which equals Keras Tuner's value for every R <= 2000 and eta 2..10
// (checked against its formula in Python when this was written).
std::string schedule_name(HyperbandSchedule s) { return s == HyperbandSchedule::Paper ? "paper" : "keras_tuner"; }

std::vector<std::vector<BracketRound>> hyperband_schedule(int max_epochs, int factor, HyperbandSchedule schedule) {
  MF_CHECK(max_epochs >= 1, "Hyperband: max_epochs must be >= 1, not ", max_epochs);
  MF_CHECK(factor >= 2, "Hyperband: factor must be >= 2, not ", factor);
  MF_CHECK(schedule == HyperbandSchedule::KerasTuner || schedule == HyperbandSchedule::Paper,
           "Hyperband: unknown schedule ", static_cast<int>(schedule));
  int s_max = 0;
  while (ipow(factor, s_max + 1) <= max_epochs) ++s_max;
  const int64_t end_models = ipow(factor, s_max) == max_epochs ? s_max + 1 : s_max + 2;  // Keras Tuner's E
  std::vector<std::vector<BracketRound>> out;
  for (int s = s_max; s >= 0; --s) {
    // The paper's n = ceil(B / R * eta^s / (s + 1)) with B = (s_max + 1) R.
    const int64_t n = (static_cast<int64_t>(s_max + 1) * ipow(factor, s) + s) / (s + 1);
    std::vector<BracketRound> rounds;
    for (int i = 0; i <= s; ++i) {
      const int64_t div = ipow(factor, s - i);
      const int64_t n_i = schedule == HyperbandSchedule::Paper ? std::max<int64_t>(n / ipow(factor, i), 1)
                                                               : (end_models * div + s) / (s + 1);
      rounds.push_back({n_i, (max_epochs + div - 1) / div});
    }
    out.push_back(std::move(rounds));
  }
  return out;
}

HyperbandOracle::HyperbandOracle(OracleOptions options, HyperbandOptions hyperband)
    : Oracle(std::move(options)),
      h_(hyperband),
      schedule_(hyperband_schedule(h_.max_epochs, h_.factor, h_.schedule)) {
  MF_CHECK(h_.hyperband_iterations >= 1, "Hyperband: hyperband_iterations must be >= 1, not ",
           h_.hyperband_iterations);
}

Oracle::Next HyperbandOracle::populate_space(const std::string&) {
  for (;;) {
    if (iteration_ >= h_.hyperband_iterations) return {TrialStatus::Stopped, Json(), Json::object()};
    const auto& rounds = schedule_[static_cast<size_t>(bracket_)];
    const BracketRound& r = rounds[static_cast<size_t>(round_)];
    int64_t target = r.configurations;
    if (round_ > 0) target = std::min<int64_t>(target, static_cast<int64_t>(candidates_.size()));
    bool full = static_cast<int64_t>(round_trials_.size()) >= target;
    if (!full) {
      Json info = {{"bracket", static_cast<int>(schedule_.size()) - 1 - bracket_},
                   {"round", round_},
                   {"epochs", r.epochs},
                   {"initial_epoch", 0},
                   {"iteration", iteration_}};
      Json values;
      if (round_ == 0) {
        auto v = random_values();
        if (!v) {
          // The space is exhausted: this round holds what it has.
          if (round_trials_.empty()) return {TrialStatus::Stopped, Json(), Json::object()};
          full = true;
        } else {
          values = *v;
        }
      } else {
        const Trial& parent = trials_.at(candidates_[round_trials_.size()]);
        values = parent.values;
        info["parent"] = parent.trial_id;
        info["initial_epoch"] = rounds[static_cast<size_t>(round_ - 1)].epochs;
      }
      if (!full) {
        // The id the base class is about to give this trial.
        round_trials_.push_back(pending_id());
        return {TrialStatus::Running, values, info};
      }
    }
    // The round is full: wait for its trials, then rank them for the next round.
    for (const auto& id : round_trials_) {
      auto it = trials_.find(id);
      if (it == trials_.end() || it->second.status == TrialStatus::Running) return {TrialStatus::Idle, Json(), Json::object()};
    }
    std::vector<std::string> ranked;
    for (const auto& id : round_trials_)
      if (trials_.at(id).status == TrialStatus::Completed && trials_.at(id).score) ranked.push_back(id);
    std::stable_sort(ranked.begin(), ranked.end(), [&](const std::string& a, const std::string& b) {
      return o_.objective.better(*trials_.at(a).score, *trials_.at(b).score);
    });
    candidates_ = ranked;
    round_trials_.clear();
    ++round_;
    if (round_ >= static_cast<int>(rounds.size()) || candidates_.empty()) {
      round_ = 0;
      candidates_.clear();
      if (++bracket_ >= static_cast<int>(schedule_.size())) {
        bracket_ = 0;
        ++iteration_;
      }
    }
  }
}

Json HyperbandOracle::get_state() const {
  return {{"iteration", iteration_},       {"bracket", bracket_},        {"round", round_},
          {"round_trials", round_trials_}, {"candidates", candidates_},  {"max_epochs", h_.max_epochs},
          {"factor", h_.factor},           {"schedule", schedule_name(h_.schedule)}};
}

void HyperbandOracle::set_state(const Json& state) {
  if (state.empty()) return;
  // A folder searched with other brackets cannot be continued with these (its rounds would not fit).
  const std::string saved = state.value("schedule", schedule_name(h_.schedule));
  const int saved_epochs = state.value("max_epochs", h_.max_epochs), saved_factor = state.value("factor", h_.factor);
  MF_CHECK(saved == schedule_name(h_.schedule) && saved_epochs == h_.max_epochs && saved_factor == h_.factor,
           "Hyperband: the project ", project_dir(), " was searched with max_epochs ", saved_epochs, ", factor ",
           saved_factor, " and the ", saved, " schedule, not max_epochs ", h_.max_epochs, ", factor ", h_.factor,
           " and the ", schedule_name(h_.schedule), " schedule (pass overwrite = true to start again)");
  iteration_ = state.at("iteration").get<int>();
  bracket_ = state.at("bracket").get<int>();
  round_ = state.at("round").get<int>();
  round_trials_ = state.at("round_trials").get<std::vector<std::string>>();
  candidates_ = state.at("candidates").get<std::vector<std::string>>();
}

}  // namespace meshflow::tuner
