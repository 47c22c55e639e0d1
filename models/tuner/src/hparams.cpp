// HParams summaries, encoded by hand (field numbers of TensorBoard's plugins/hparams protos).
#include "meshflow/tuner/hparams.h"

#include <chrono>
#include <filesystem>

#include "meshflow/core/error.h"
#include "meshflow/tbevents/event_file.h"

namespace meshflow::tuner {

using tbevents::ProtoBuilder;

namespace {

double now_secs() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// google.protobuf.Value: number_value 2, string_value 3, bool_value 4.
std::string value_proto(const Json& v) {
  if (v.is_boolean()) return ProtoBuilder().boolean(4, v.get<bool>()).str();
  if (v.is_number()) return ProtoBuilder().float64(2, v.get<double>()).str();
  if (v.is_string()) return ProtoBuilder().bytes(3, v.get<std::string>()).str();
  return ProtoBuilder().bytes(3, v.dump()).str();
}

// HParamsPluginData { int32 version = 1; oneof { experiment 2, session_start_info 3, session_end_info 4 } }.
std::string plugin_data(int field, const std::string& message) {
  return ProtoBuilder().varint(1, 0).bytes(field, message).str();
}

}  // namespace

std::string hparams_experiment_bytes(const HyperParameters& space, const Objective& objective) {
  ProtoBuilder experiment;
  experiment.float64(3, now_secs());
  for (const auto& p : space.space()) {
    // HParamInfo { name 1; type 4 (DataType: 1 string, 2 bool, 3 float64); domain_discrete 5
    // (ListValue { repeated Value values = 1 }) or domain_interval 6 (Interval { min 1; max 2 }) }.
    ProtoBuilder info;
    info.bytes(1, p.name);
    if (p.kind == HyperParameter::Kind::Int || p.kind == HyperParameter::Kind::Float) {
      info.varint(4, 3);
      if (p.kind == HyperParameter::Kind::Float && p.step == 0) {
        info.bytes(6, ProtoBuilder().float64(1, p.min_value).float64(2, p.max_value).str());
      } else {
        ProtoBuilder list;
        for (const auto& v : p.grid_values()) list.bytes(1, value_proto(v));
        info.bytes(5, list.str());
      }
    } else {
      auto values = p.grid_values();
      int type = values.empty() || values[0].is_string() ? 1 : values[0].is_boolean() ? 2 : 3;
      info.varint(4, static_cast<uint64_t>(type));
      ProtoBuilder list;
      for (const auto& v : values) list.bytes(1, value_proto(v));
      info.bytes(5, list.str());
    }
    experiment.bytes(4, info.str());
  }
  // MetricInfo { MetricName name = 1 { group 1; tag 2 }; display_name 3 }.
  std::string metric_name = ProtoBuilder().bytes(1, "").bytes(2, objective.name).str();
  experiment.bytes(5, ProtoBuilder().bytes(1, metric_name).bytes(3, objective.name).str());
  return plugin_data(2, experiment.str());
}

std::string hparams_session_start_bytes(const Trial& trial) {
  // SessionStartInfo { map<string, Value> hparams = 1; group_name 4; start_time_secs 5 }.
  ProtoBuilder start;
  for (const auto& [k, v] : trial.values.items())
    start.bytes(1, ProtoBuilder().bytes(1, k).bytes(2, value_proto(v)).str());
  start.bytes(4, "trial_" + trial.trial_id);
  start.float64(5, now_secs());
  return plugin_data(3, start.str());
}

void write_hparams(const std::string& log_dir, const Trial& trial, const HyperParameters& space,
                   const Objective& objective) {
  MF_CHECK(!log_dir.empty(), "write_hparams: the log folder name is empty");
  MF_CHECK(!trial.trial_id.empty(), "write_hparams: the trial has no id");
  {
    // One experiment at the top: the one written for the previous trial (whose space may have
    // been smaller) is replaced.
    std::filesystem::create_directories(log_dir);
    for (const auto& e : std::filesystem::directory_iterator(log_dir)) {
      std::string name = e.path().filename().string();
      if (e.is_regular_file() && name.rfind("events.out.tfevents.", 0) == 0 && name.size() > 9 &&
          name.substr(name.size() - 9) == ".meshflow")
        std::filesystem::remove(e.path());
    }
    tbevents::EventFile root(log_dir);
    root.write_summary(tbevents::summary_of({tbevents::plugin_value(
                           "_hparams_/experiment", "hparams", hparams_experiment_bytes(space, objective))}),
                       0);
  }
  tbevents::EventFile session((std::filesystem::path(log_dir) / ("trial_" + trial.trial_id)).string());
  session.write_summary(tbevents::summary_of({tbevents::plugin_value("_hparams_/session_start_info", "hparams",
                                                                     hparams_session_start_bytes(trial))}),
                        0);
  if (trial.score) session.write_summary(tbevents::summary_of({tbevents::scalar_value(objective.name, static_cast<float>(*trial.score))}), 0);
  // SessionEndInfo { Status status = 1 (1 success, 2 failure); end_time_secs 2 }.
  int status = trial.status == TrialStatus::Completed ? 1 : 2;
  std::string end = ProtoBuilder().varint(1, static_cast<uint64_t>(status)).float64(2, now_secs()).str();
  session.write_summary(tbevents::summary_of({tbevents::plugin_value("_hparams_/session_end_info", "hparams",
                                                                     plugin_data(4, end))}),
                        0);
}

}  // namespace meshflow::tuner
