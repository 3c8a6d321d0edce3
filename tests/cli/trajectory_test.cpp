// ckpt trajectory: one CSV row per checkpoint of a manager's run, the columns
// docs/cli.md documents, values equal to statistics computed here from the
// tensors written, the same as the Python package's, and usage errors.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/manager.hpp"
#include "ckpt/reader.hpp"
#include "cli_test_support.hpp"

namespace {

using ckpt::test::run_cli;
using ckpt::test::TempDir;
using testing::HasSubstr;

// An element of a narrow float tensor: its stored bits and the value they encode.
struct Coded {
  std::uint16_t bits;
  double value;
};
const std::vector<Coded> f16_values = {{0x3C00, 1.0}, {0x4000, 2.0},     {0xBE00, -1.5},
                                       {0x3800, 0.5}, {0x0001, 0x1p-24}, {0x7BFF, 65504.0}};
const std::vector<Coded> bf16_values = {{0x3F80, 1.0}, {0xC040, -3.0}, {0x3F00, 0.5}, {0x4120, 10.0}};
const std::vector<Coded> e4m3_values = {{0x38, 1.0}, {0xC0, -2.0}, {0x30, 0.5}, {0x7E, 448.0}};

// A training state with every kind of element the statistics convert: F32,
// F16, BF16 and F8 values, integers, booleans; a tensor that appears at
// step 30, and a name that CSV must quote.
struct RunState {
  std::vector<float> weight = std::vector<float>(12);
  std::vector<ckpt::float16> half = std::vector<ckpt::float16>(6);
  std::vector<ckpt::bfloat16> bf16 = std::vector<ckpt::bfloat16>(4);
  std::vector<ckpt::float8_e4m3> fp8 = std::vector<ckpt::float8_e4m3>(4);
  std::vector<std::int64_t> counts = std::vector<std::int64_t>(3);
  bool flags[4] = {false, false, false, false};
  std::vector<float> moments = {0.5f, -0.25f};
  std::optional<std::vector<float>> late;
  std::uint64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("model/weight", ckpt::shaped(weight, {4, 3}))("model/half", half)("model/bf16", bf16)("model/fp8", fp8);
    ar("counts", counts)("flags", flags)("opt/m,v", moments)("late", late)("step", step);
  }

  void advance() {
    ++step;
    // The last row moves every 20 steps only, so `changed` is below 1 in between.
    for (std::size_t i = 0; i < weight.size(); ++i) {
      if (i < 9 || step % 20 == 0) weight[i] += 0.5f * float(i) - float(step);
    }
    for (std::size_t i = 0; i < half.size(); ++i) half[i].bits = f16_values[(step + i) % f16_values.size()].bits;
    for (std::size_t i = 0; i < bf16.size(); ++i) bf16[i].bits = bf16_values[(step / 10 + i) % 4].bits;
    for (std::size_t i = 0; i < fp8.size(); ++i) fp8[i].bits = std::uint8_t(e4m3_values[(step * 3 + i) % 4].bits);
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = std::int64_t(step * (i + 1)) - 7;
    for (std::size_t i = 0; i < 4; ++i) flags[i] = (step / 10 + i) % 3 == 0;
    if (step >= 30) late = std::vector<float>{float(step), -float(step) / 4};
  }

  // Each tensor's values, as the statistics read them.
  std::vector<std::pair<std::string, std::vector<double>>> values() const {
    std::vector<std::pair<std::string, std::vector<double>>> tensors = {
        {"model/weight", {weight.begin(), weight.end()}},
        {"model/half", {}},
        {"model/bf16", {}},
        {"model/fp8", {}},
        {"counts", {counts.begin(), counts.end()}},
        {"flags", {flags, flags + 4}},
        {"opt/m,v", {moments.begin(), moments.end()}}};
    for (const auto& element : half) tensors[1].second.push_back(value_of(f16_values, element.bits));
    for (const auto& element : bf16) tensors[2].second.push_back(value_of(bf16_values, element.bits));
    for (const auto& element : fp8) tensors[3].second.push_back(value_of(e4m3_values, element.bits));
    if (late) tensors.emplace_back("late", std::vector<double>(late->begin(), late->end()));
    return tensors;
  }

  static double value_of(const std::vector<Coded>& table, std::uint16_t bits) {
    for (const Coded& coded : table) {
      if (coded.bits == bits) return coded.value;
    }
    ADD_FAILURE() << "no value for bits " << bits;
    return 0;
  }
};

// A run of 60 steps saved every 10, every checkpoint kept; val_loss is
// recorded from step 20 on. Returns the state at each save.
std::vector<RunState> write_run(const std::string& directory) {
  ckpt::ManagerOptions options;
  options.save_policy.every_steps = 10;
  options.retention.max_to_keep = 0;
  options.save.codecs = ckpt::CodecPolicy("raw").for_names("model/half", "shuffle+zstd");
  double now = 1.7e9;
  options.clock = [&now] { return now; };
  ckpt::CheckpointManager manager(directory, options);
  RunState state;
  std::vector<RunState> saved;
  while (state.step < 60) {
    state.advance();
    now += 1.25;
    const double step = static_cast<double>(state.step);
    ckpt::StepInfo info{state.step / 20, {{"loss", 1.0 / step}}};
    if (state.step >= 20) info.metrics["val_loss"] = 2.0 / step;
    if (manager.maybe_save(state.step, state, info)) saved.push_back(state);
  }
  return saved;
}

// RFC 4180: fields separated by commas, quoted when they hold a comma, a
// quote (doubled) or a line break; one record per line.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      record.push_back(std::exchange(field, {}));
    } else if (c == '\n') {
      record.push_back(std::exchange(field, {}));
      records.push_back(std::exchange(record, {}));
    } else {
      field += c;
    }
  }
  EXPECT_TRUE(field.empty() && record.empty() && !quoted) << "the CSV does not end with a complete record";
  return records;
}

double parse_number(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  EXPECT_EQ(*end, '\0') << "not a number: '" << text << "'";
  return value;
}

const std::vector<std::string> every_stat = {"norm", "mean", "std", "max_abs", "dist_first", "dist_prev", "changed"};

// Each statistic of one tensor at one checkpoint, straight from its definition
// on the whole tensor; NaN where there is nothing to compare with.
std::vector<double> expected_stats(const std::vector<double>& x, const std::vector<double>* first,
                                   const std::vector<double>* previous) {
  const double n = static_cast<double>(x.size());
  double sum = 0, squares = 0, max_abs = 0;
  for (double v : x) {
    sum += v;
    squares += v * v;
    max_abs = std::max(max_abs, std::fabs(v));
  }
  const double mean = sum / n;
  double deviations = 0;
  for (double v : x) deviations += (v - mean) * (v - mean);
  auto distance = [&](const std::vector<double>* other) {
    if (other == nullptr) return std::nan("");
    double total = 0;
    for (std::size_t i = 0; i < x.size(); ++i) total += (x[i] - (*other)[i]) * (x[i] - (*other)[i]);
    return std::sqrt(total);
  };
  double changed = std::nan("");
  if (previous != nullptr) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < x.size(); ++i) count += x[i] != (*previous)[i];
    changed = static_cast<double>(count) / n;
  }
  return {std::sqrt(squares), mean, std::sqrt(deviations / n), max_abs, distance(first), distance(previous), changed};
}

// Equal to 1e-12 of the tensor's largest value (sums in another order round
// differently), or both NaN.
void expect_close(double actual, double expected, double scale, const std::string& what) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << what << ": " << actual << ", expected nan";
  } else {
    EXPECT_NEAR(actual, expected, 1e-12 * std::max({std::fabs(expected), scale, 1e-300})) << what;
  }
}

class CliTrajectory : public testing::Test {
 protected:
  TempDir dir;
  std::vector<RunState> saved = write_run(dir.path());
};

TEST_F(CliTrajectory, CsvHasOneRowPerCheckpointAndTheDocumentedColumns) {
  const auto result = run_cli({"trajectory", dir.path(), "--tensor", "model/*", "--tensor", "opt/*", "--stat",
                               "norm,dist_first", "--stat", "changed"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  const auto records = parse_csv(result.out);
  ASSERT_EQ(records.size(), 1 + saved.size()) << result.out;
  std::vector<std::string> header = {"step", "epoch", "time", "loss", "val_loss"};
  for (const char* tensor : {"model/bf16", "model/fp8", "model/half", "model/weight", "opt/m,v"}) {
    for (const char* stat : {"norm", "dist_first", "changed"}) header.push_back(std::string(tensor) + ":" + stat);
  }
  EXPECT_EQ(records[0], header);
  EXPECT_THAT(result.out, HasSubstr(",\"opt/m,v:norm\","));

  const std::vector<ckpt::CheckpointInfo> listed = ckpt::CheckpointManager(dir.path(),
                                                                           [] {
                                                                             ckpt::ManagerOptions options;
                                                                             options.read_only = true;
                                                                             return options;
                                                                           }())
                                                       .list();
  ASSERT_EQ(listed.size(), saved.size());
  for (std::size_t row = 0; row < listed.size(); ++row) {
    const std::vector<std::string>& record = records[row + 1];
    ASSERT_EQ(record.size(), header.size()) << "row " << row;
    EXPECT_EQ(record[0], std::to_string(listed[row].step));
    EXPECT_EQ(parse_number(record[1]), double(*listed[row].epoch));
    EXPECT_EQ(parse_number(record[2]), listed[row].time);
    EXPECT_EQ(parse_number(record[3]), 1.0 / double(listed[row].step));
    if (listed[row].step < 20) {
      EXPECT_EQ(record[4], "nan") << "val_loss was not recorded at step " << listed[row].step;
    } else {
      EXPECT_EQ(parse_number(record[4]), 2.0 / double(listed[row].step));
    }
  }
  EXPECT_EQ(records[1][header.size() - 1], "nan") << "nothing to compare with at the first checkpoint";
}

TEST_F(CliTrajectory, ValuesEqualTheStatisticsOfTheTensorsWritten) {
  const auto result =
      run_cli({"trajectory", dir.path(), "--stat", "norm,mean,std,max_abs,dist_first,dist_prev,changed"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto records = parse_csv(result.out);
  ASSERT_EQ(records.size(), 1 + saved.size());
  const std::vector<std::string>& header = records[0];
  auto column = [&](const std::string& name) {
    const auto found = std::find(header.begin(), header.end(), name);
    EXPECT_NE(found, header.end()) << "no column " << name;
    return static_cast<std::size_t>(found - header.begin());
  };
  EXPECT_EQ(header.size(), 5 + 8 * every_stat.size()) << "step, epoch, time, 2 metrics, 8 tensors";

  std::map<std::string, std::vector<double>> first, previous;
  for (std::size_t row = 0; row < saved.size(); ++row) {
    for (const auto& [name, values] : saved[row].values()) {
      first.emplace(name, values);
      const auto earlier = previous.find(name);
      const std::vector<double> expected =
          expected_stats(values, &first[name], earlier == previous.end() ? nullptr : &earlier->second);
      double scale = 0;
      for (double v : values) scale = std::max(scale, std::fabs(v));
      for (std::size_t s = 0; s < every_stat.size(); ++s) {
        const std::string what = name + ":" + every_stat[s];
        expect_close(parse_number(records[row + 1][column(what)]), expected[s], scale,
                     what + " at step " + std::to_string(saved[row].step));
      }
      previous[name] = values;
    }
    if (!saved[row].late) {
      for (const std::string& stat : every_stat) EXPECT_EQ(records[row + 1][column("late:" + stat)], "nan");
    }
  }
  // What the run makes visible, spelled out: the weights' last row moves
  // every 20 steps only, and a tensor's first checkpoint is its reference.
  EXPECT_EQ(records[2][column("model/weight:changed")], "1");
  EXPECT_EQ(records[3][column("model/weight:changed")], "0.75");
  EXPECT_EQ(records[3][column("late:dist_first")], "0");
  EXPECT_EQ(records[3][column("late:dist_prev")], "nan");
}

TEST_F(CliTrajectory, JsonHoldsTheSameValuesPerCheckpoint) {
  const std::vector<std::string> args = {"trajectory", dir.path(), "--tensor", "late",
                                         "--tensor",   "flags",    "--stat",   "mean,dist_prev"};
  const auto csv = run_cli(args);
  std::vector<std::string> json_args = args;
  json_args.push_back("--json");
  const auto json = run_cli(json_args);
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto records = parse_csv(csv.out);
  const nlohmann::json rows = nlohmann::json::parse(json.out);
  ASSERT_EQ(rows.size(), saved.size());
  ASSERT_EQ(records[0], (std::vector<std::string>{"step", "epoch", "time", "loss", "val_loss", "flags:mean",
                                                  "flags:dist_prev", "late:mean", "late:dist_prev"}));
  for (std::size_t row = 0; row < rows.size(); ++row) {
    const nlohmann::json& checkpoint = rows[row];
    EXPECT_EQ(checkpoint["step"], saved[row].step);
    EXPECT_EQ(checkpoint["epoch"], saved[row].step / 20);
    EXPECT_EQ(checkpoint["metrics"]["loss"], parse_number(records[row + 1][3]));
    EXPECT_THAT(checkpoint["path"].get<std::string>(), HasSubstr(dir.path()));
    // A tensor the checkpoint lacks is left out; a comparison without an earlier tensor is null.
    EXPECT_EQ(checkpoint["tensors"].contains("late"), saved[row].late.has_value());
    for (std::size_t column = 5; column < records[0].size(); ++column) {
      const std::string& name = records[0][column];
      const std::string tensor = name.substr(0, name.rfind(':')), stat = name.substr(name.rfind(':') + 1);
      const std::string& text = records[row + 1][column];
      if (!checkpoint["tensors"].contains(tensor)) {
        EXPECT_EQ(text, "nan") << name;
      } else if (checkpoint["tensors"][tensor][stat].is_null()) {
        EXPECT_EQ(text, "nan") << name;
      } else {
        EXPECT_EQ(checkpoint["tensors"][tensor][stat].get<double>(), parse_number(text)) << name;
      }
    }
  }
  EXPECT_TRUE(rows[0]["tensors"]["flags"]["dist_prev"].is_null());
}

TEST_F(CliTrajectory, AgreesWithThePythonPackageOnTheSameRun) {
  const auto result =
      run_cli({"trajectory", dir.path(), "--stat", "norm,mean,std,max_abs,dist_first,dist_prev,changed"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string csv_path = dir.file("trajectory.csv");
  ckpt::test::write_file(csv_path, result.out);
  const auto python =
      ckpt::test::run_program("/usr/bin/python3", {CKPT_CLI_TEST_DIR "/trajectory_python.py", dir.path(), csv_path},
                              {"PYTHONPATH=" CKPT_PYTHON_PACKAGE_DIR, "PYTHONDONTWRITEBYTECODE=1"});
  EXPECT_EQ(python.exit_code, 0) << python.out << python.err;
  EXPECT_THAT(python.out, HasSubstr("6 rows, 56 statistics agree"));
}

TEST_F(CliTrajectory, BadGlobsAndStatisticsAreUsageErrorsNamingThem) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tensor", "model/*", "--tensor", "modle/*"}, "--tensor 'modle/*' matches no tensor in the 6 checkpoints of"},
      {{"--stat", "norm,variance"},
       "--stat: unknown statistic 'variance'; expected norm, mean, std, max_abs, "
       "dist_first, dist_prev, changed"},
      {{"--stat", "norm,"}, "--stat: unknown statistic ''"},
      {{"--stat"}, "option '--stat' needs a value"},
      {{"--template", "no-step-field"}, "--template"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"trajectory", dir.path()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto result = run_cli(args);
    EXPECT_EQ(result.exit_code, 2) << c.message;
    EXPECT_THAT(result.err, HasSubstr("ckpt trajectory: " + c.message));
    EXPECT_THAT(result.err, HasSubstr("Usage: ckpt trajectory"));
    EXPECT_EQ(result.out, "") << "a usage error is found before any row is printed";
  }
  const auto not_a_run = run_cli({"trajectory", dir.file("missing")});
  EXPECT_EQ(not_a_run.exit_code, 2);
  EXPECT_THAT(not_a_run.err, HasSubstr("is not a directory"));
}

TEST_F(CliTrajectory, ACorruptCheckpointStopsNamingFileAndTensorAfterTheRowsBefore) {
  const std::string third = dir.file("ckpt-00000030.safetensors");
  ckpt::test::flip_byte(third, static_cast<std::int64_t>(ckpt::Reader(third).find("model/weight")->file_offset));
  const auto result = run_cli({"trajectory", dir.path(), "--tensor", "model/weight"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("ckpt trajectory: [ckpt.integrity_error.301] file '" + third +
                                    "': tensor 'model/weight': checksum mismatch"));
  EXPECT_EQ(parse_csv(result.out).size(), 3u) << "the header and the rows of steps 10 and 20";
}

TEST(CliTrajectoryEmpty, ADirectoryWithoutCheckpointsPrintsTheHeaderAndANote) {
  TempDir dir;
  auto result = run_cli({"trajectory", dir.path(), "--tensor", "model/*"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "step,epoch,time\n");
  EXPECT_THAT(result.err, HasSubstr("no checkpoints in"));
  result = run_cli({"trajectory", dir.path(), "--json"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(result.out), nlohmann::json::array());
}

}  // namespace
