// The ckpt tool, run as a user runs it: exit codes, output and messages.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ckpt/manager.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"
#include "cli_test_support.hpp"

namespace {

using ckpt::test::run_cli;
using ckpt::test::TempDir;
using testing::HasSubstr;
using testing::Not;

constexpr const char* commands[] = {"ls", "info", "verify", "convert", "diff", "trajectory"};

std::string write_sample(const TempDir& dir, const std::string& name, const nlohmann::json& metadata = {{"step", 7}}) {
  const ckpt::test::SampleTensors sample;
  const std::string path = dir.file(name);
  ckpt::write_checkpoint(path, sample.named(), metadata);
  return path;
}

std::uint64_t offset_of(const std::string& path, const std::string& tensor) {
  return ckpt::Reader(path).find(tensor)->file_offset;
}

TEST(CliUsage, NoArgumentsPrintsTheCommandsAndFailsWithUsageError) {
  const auto result = run_cli({});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("Usage: ckpt COMMAND"));
  for (const char* command : commands) EXPECT_THAT(result.err, HasSubstr(command));
}

TEST(CliUsage, HelpWorksForTheToolAndEveryCommand) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
    const auto result = run_cli(args);
    EXPECT_EQ(result.exit_code, 0) << args[0];
    EXPECT_THAT(result.out, HasSubstr("Usage: ckpt COMMAND")) << args[0];
  }
  for (const std::string command : commands) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{command, "--help"}, {command, "-h"}, {"help", command}, {command, "x", "--help"}}) {
      const auto result = run_cli(args);
      EXPECT_EQ(result.exit_code, 0) << command;
      EXPECT_THAT(result.out, HasSubstr("Usage: ckpt " + command)) << command;
      EXPECT_EQ(result.err, "") << command;
    }
  }
}

TEST(CliUsage, UnknownCommandIsAUsageError) {
  const auto result = run_cli({"frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("unknown command 'frobnicate'"));
}

TEST(CliUsage, BadArgumentsAreUsageErrorsNamingTheProblem) {
  TempDir dir;
  const std::string file = write_sample(dir, "a.safetensors");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"info", file, "--bogus"}, "unknown option '--bogus'"},
      {{"info"}, "missing arguments"},
      {{"info", file, file}, "unexpected argument"},
      {{"convert", file}, "missing arguments"},
      {{"convert", file, dir.file("b.safetensors"), "--codec"}, "option '--codec' needs a value"},
      {{"diff", file}, "missing arguments"},
      {{"info", dir.file("missing.safetensors")}, "does not exist"},
      {{"verify", dir.file("missing.safetensors")}, "does not exist"},
      {{"diff", file, dir.file("missing.safetensors")}, "does not exist"},
      {{"ls", dir.file("missing")}, "is not a directory"},
      {{"ls", file}, "is not a directory"},
  };
  for (const Case& c : cases) {
    const auto result = run_cli(c.args);
    EXPECT_EQ(result.exit_code, 2) << c.args[0] << " " << c.message;
    EXPECT_THAT(result.err, HasSubstr(c.message));
    EXPECT_THAT(result.err, HasSubstr("Usage: ckpt " + c.args[0]));
  }
}

TEST(CliUsage, UnknownExtensionIsAUsageError) {
  TempDir dir;
  ckpt::test::write_file(dir.file("notes.txt"), "hello");
  const auto result = run_cli({"info", dir.file("notes.txt")});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("unknown format"));
}

TEST(CliInfo, ListsEveryTensorWithDtypeShapeBytesAndCodecAndTheMetadata) {
  TempDir dir;
  const std::string file = write_sample(dir, "a.safetensors", {{"step", 7}, {"run", "alpha"}});
  const auto result = run_cli({"info", file});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("(ckpt format " + std::to_string(ckpt::format_version) + ")"));
  for (const auto& tensor : ckpt::test::SampleTensors().named()) EXPECT_THAT(result.out, HasSubstr(tensor.name));
  EXPECT_THAT(result.out, HasSubstr("layer1/bias_bf16  BF16     [2, 2]  8      8       raw"));
  EXPECT_THAT(result.out, HasSubstr("\"run\": \"alpha\""));
}

TEST(CliInfo, JsonOutputDescribesTensorsCodecsAndRatios) {
  TempDir dir;
  std::vector<float> zeros(16384, 0.0f);
  const std::string file = dir.file("z.safetensors");
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy("zstd");
  ckpt::write_checkpoint(file, {{"zeros", ckpt::TensorView(zeros.data(), {128, 128})}}, {{"step", 3}}, options);

  const auto result = run_cli({"info", file, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["format"], "ckpt");
  EXPECT_EQ(report["metadata"]["step"], 3);
  ASSERT_EQ(report["tensors"].size(), 1u);
  const nlohmann::json& tensor = report["tensors"][0];
  EXPECT_EQ(tensor["name"], "zeros");
  EXPECT_EQ(tensor["dtype"], "F32");
  EXPECT_EQ(tensor["shape"], nlohmann::json({128, 128}));
  EXPECT_EQ(tensor["bytes"], 65536);
  EXPECT_EQ(tensor["codec"], "zstd");
  EXPECT_LT(tensor["stored_bytes"].get<std::uint64_t>(), 65536u);
  EXPECT_GT(tensor["ratio"].get<double>(), 10.0);
}

TEST(CliInfo, AFileThatIsNotACheckpointFailsNamingTheFile) {
  TempDir dir;
  const std::string file = dir.file("garbage.safetensors");
  ckpt::test::write_file(file, std::string(64, 'x'));
  const auto result = run_cli({"info", file});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("format_error"));
  EXPECT_THAT(result.err, HasSubstr(file));
}

TEST(CliVerify, AGoodFilePasses) {
  TempDir dir;
  const std::string file = write_sample(dir, "a.safetensors");
  const auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("OK"));
  EXPECT_THAT(result.out, HasSubstr("7 tensors, checksums verified"));
}

TEST(CliVerify, AFlippedByteIsReportedNamingFileAndTensor) {
  TempDir dir;
  const std::string file = write_sample(dir, "a.safetensors");
  ckpt::test::flip_byte(file, static_cast<std::int64_t>(offset_of(file, "layer1/weight")) + 1);
  const auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("CORRUPT"));
  EXPECT_THAT(result.out, HasSubstr("file '" + file + "'"));
  EXPECT_THAT(result.out, HasSubstr("tensor 'layer1/weight'"));
  EXPECT_THAT(result.out, Not(HasSubstr("tensor 'steps'")));
  EXPECT_THAT(result.err, HasSubstr("1 of 1 files corrupt"));
}

TEST(CliVerify, EveryCorruptTensorIsNamed) {
  TempDir dir;
  const std::string file = write_sample(dir, "a.safetensors");
  ckpt::test::flip_byte(file, static_cast<std::int64_t>(offset_of(file, "layer1/weight")));
  ckpt::test::flip_byte(file, static_cast<std::int64_t>(offset_of(file, "steps")));
  const auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("tensor 'layer1/weight'"));
  EXPECT_THAT(result.out, HasSubstr("tensor 'steps'"));
}

TEST(CliVerify, ATruncatedFileIsCorruption) {
  TempDir dir;
  const std::string file = write_sample(dir, "a.safetensors");
  const std::string bytes = ckpt::test::read_file(file);
  ckpt::test::write_file(file, bytes.substr(0, bytes.size() - 3));
  const auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("CORRUPT"));
  EXPECT_THAT(result.out, HasSubstr(file));
}

TEST(CliVerify, ADirectoryReportsEachFileAndFailsIfAnyIsCorrupt) {
  TempDir dir;
  const std::string good = write_sample(dir, "good.safetensors");
  const std::string bad = write_sample(dir, "bad.safetensors");
  ckpt::test::flip_byte(bad, -1);
  ckpt::test::write_file(dir.file("README.txt"), "not a checkpoint");
  ckpt::test::write_file(dir.file(".bad.safetensors.tmp-1"), "a leftover temp file");

  auto result = run_cli({"verify", dir.path()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("OK       " + good));
  EXPECT_THAT(result.out, HasSubstr("CORRUPT  [ckpt.integrity_error"));
  EXPECT_THAT(result.out, HasSubstr("file '" + bad + "'"));
  EXPECT_THAT(result.out, Not(HasSubstr("README")));
  EXPECT_THAT(result.out, Not(HasSubstr("tmp-1")));
  EXPECT_THAT(result.err, HasSubstr("1 of 2 files corrupt"));

  std::filesystem::remove(bad);
  result = run_cli({"verify", dir.path()});
  EXPECT_EQ(result.exit_code, 0) << result.out;
}

TEST(CliVerify, AForeignSafetensorsFileHasItsHeaderAndSizesChecked) {
  TempDir dir;
  const std::string file = dir.file("foreign.safetensors");
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  ckpt::test::write_file(file, bytes + header + std::string(8, '\x01'));
  auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 0) << result.out;
  EXPECT_THAT(result.out, HasSubstr("1 tensors, no checksums (not written by ckpt)"));
  ckpt::test::write_file(file, bytes + header + std::string(7, '\x01'));
  result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("CORRUPT  [ckpt.format_error"));
}

#ifdef CKPT_WITH_NPZ
TEST(CliVerify, ACorruptNpzMemberFailsItsCrc) {
  TempDir dir;
  const std::string npz = dir.file("a.npz");
  ASSERT_EQ(run_cli({"convert", write_sample(dir, "a.safetensors"), npz}).exit_code, 0);
  EXPECT_EQ(run_cli({"verify", npz}).exit_code, 0);
  std::string bytes = ckpt::test::read_file(npz);
  const std::size_t weight = bytes.find(std::string("\x00\x00\xc0\x3f\x00\x00\x10\xc0", 8));  // 1.5f, -2.25f
  ASSERT_NE(weight, std::string::npos);
  bytes[weight + 3] = 0x40;
  ckpt::test::write_file(npz, bytes);
  const auto result = run_cli({"verify", npz});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("CORRUPT  [ckpt.integrity_error.301] file '" + npz + "': tensor 'layer1/weight'"));
}

TEST(CliInfo, DescribesAnNpzFile) {
  TempDir dir;
  const std::string npz = dir.file("a.npz");
  ASSERT_EQ(run_cli({"convert", write_sample(dir, "a.safetensors"), npz}).exit_code, 0);
  const auto result = run_cli({"info", npz, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["format"], "npz");
  EXPECT_EQ(report["metadata"]["step"], 7);
  ASSERT_EQ(report["tensors"].size(), 7u);
  for (const nlohmann::json& tensor : report["tensors"]) {
    if (tensor["name"] == "layer1/bias_bf16") {
      EXPECT_EQ(tensor["dtype"], "BF16");
    }
    EXPECT_FALSE(tensor.contains("codec")) << "an .npz does not say how each member is stored";
  }
}
#endif

TEST(CliVerify, AnEmptyDirectoryHasNothingCorrupt) {
  TempDir dir;
  const auto result = run_cli({"verify", dir.path()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("no checkpoint files"));
}

// Inputs are read as their content shows, whatever they are called.
TEST(CliFormats, ACorruptCheckpointWithoutExtensionIsCorruptionNamingFileAndTensor) {
  TempDir dir;
  const std::string file = write_sample(dir, "bad");
  EXPECT_EQ(run_cli({"verify", file}).exit_code, 0);
  ckpt::test::flip_byte(file, static_cast<std::int64_t>(offset_of(file, "steps")));
  const auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_THAT(result.out, HasSubstr("CORRUPT  [ckpt.integrity_error.301] file '" + file + "': tensor 'steps'"));
  EXPECT_THAT(result.err, HasSubstr("1 of 1 files corrupt"));
}

TEST(CliFormats, ADamagedHeaderSizeWithoutExtensionIsCorruption) {
  TempDir dir;
  const std::string file = write_sample(dir, "bad");
  ckpt::test::flip_byte(file, 5);  // the 8-byte header size becomes absurd; the '{' after it remains
  const auto result = run_cli({"verify", file});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_THAT(result.out, HasSubstr("CORRUPT  [ckpt.format_error.202] file '" + file + "': expected a header size"));
}

TEST(CliFormats, TheContentWinsOverAMisleadingExtension) {
  TempDir dir;
  const std::string file = write_sample(dir, "really_a_checkpoint.npz");
  const auto result = run_cli({"info", file, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["format"], "ckpt");
  EXPECT_EQ(report["tensors"].size(), 7u);
}

TEST(CliFormats, AFileRecognisedNeitherByContentNorByNameIsAUsageError) {
  TempDir dir;
  const std::string file = dir.file("garbage");
  ckpt::test::write_file(file, std::string(64, 'x'));
  for (const char* command : {"info", "verify"}) {
    const auto result = run_cli({command, file});
    EXPECT_EQ(result.exit_code, 2) << command;
    EXPECT_THAT(result.err, HasSubstr("'" + file + "': unknown format: its content is not safetensors"));
  }
}

TEST(CliFormats, AnOutputsFormatIsChosenByItsExtension) {
  TempDir dir;
  const std::string input = write_sample(dir, "a.safetensors");
  const auto result = run_cli({"convert", input, dir.file("copy")});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("unknown format for an output; its name must end in .safetensors"));
  EXPECT_FALSE(ckpt::test::path_exists(dir.file("copy")));
}

#ifdef CKPT_WITH_NPZ
TEST(CliFormats, AnNpzWithoutExtensionIsRecognisedAsAZipArchive) {
  TempDir dir;
  const std::string original = write_sample(dir, "a.safetensors");
  ASSERT_EQ(run_cli({"convert", original, dir.file("a.npz")}).exit_code, 0);
  const std::string exported = dir.file("exported");
  std::filesystem::rename(dir.file("a.npz"), exported);
  const auto info = run_cli({"info", exported, "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["format"], "npz");
  const auto diff = run_cli({"diff", original, exported});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
  EXPECT_THAT(diff.out, HasSubstr("identical: 7 tensors"));
}

TEST(CliFormats, AnEmptyZipArchiveIsAnNpzWithoutTensors) {
  TempDir dir;
  const std::string file = dir.file("empty");
  ckpt::test::write_file(file, std::string("PK\5\6", 4) + std::string(18, '\0'));  // the end record alone
  const auto result = run_cli({"info", file, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["format"], "npz");
  EXPECT_TRUE(report["tensors"].empty());
}
#endif

// Every tensor of `a` equals the same-named tensor of `b`, bit for bit.
void expect_same_tensors(const std::string& a, const std::string& b) {
  const ckpt::Reader first(a), second(b);
  ASSERT_EQ(first.tensors().size(), second.tensors().size());
  for (const ckpt::TensorInfo& info : first.tensors()) {
    const ckpt::Tensor x = first.tensor(info.name), y = second.tensor(info.name);
    EXPECT_EQ(x.dtype(), y.dtype()) << info.name;
    EXPECT_EQ(x.shape(), y.shape()) << info.name;
    ASSERT_EQ(x.nbytes(), y.nbytes()) << info.name;
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.nbytes()), 0) << info.name;
  }
  EXPECT_EQ(first.metadata(), second.metadata());
}

class CliConvertRoundTrip : public testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(CliConvertRoundTrip, KeepsEveryTensorDtypeAndTheMetadata) {
  const auto& [extension, codec] = GetParam();
  TempDir dir;
  const std::string original = write_sample(dir, "a.safetensors", {{"step", 7}, {"config", {{"lr", 0.5}}}});
  const std::string middle = dir.file("b" + extension), back = dir.file("c.safetensors");
  auto result = run_cli({"convert", original, middle, "--codec", codec});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("wrote " + middle + ": 7 tensors"));
  result = run_cli({"convert", middle, back});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  expect_same_tensors(original, back);
  result = run_cli({"diff", original, middle});
  EXPECT_EQ(result.exit_code, 0) << result.out;
}

// Each format (and codec) this build can write.
std::vector<std::pair<std::string, std::string>> convertible_formats() {
  std::vector<std::pair<std::string, std::string>> formats = {
      {".safetensors", "zstd"}, {".safetensors", "shuffle+zstd:1"}, {".ckpt", "raw"}};
#ifdef CKPT_WITH_NPZ
  formats.insert(formats.end(), {{".npz", "raw"}, {".npz", "deflate:9"}});
#endif
#ifdef CKPT_WITH_HDF5
  formats.insert(formats.end(), {{".h5", "raw"}, {".hdf5", "deflate"}});
#endif
  return formats;
}

INSTANTIATE_TEST_SUITE_P(Formats, CliConvertRoundTrip, testing::ValuesIn(convertible_formats()));

TEST(CliConvert, RecompressingChangesTheCodecAndKeepsTheValues) {
  TempDir dir;
  const std::string original = write_sample(dir, "a.safetensors");
  const std::string packed = dir.file("packed.safetensors");
  ASSERT_EQ(run_cli({"convert", original, packed, "--codec=zstd:5"}).exit_code, 0);
  const ckpt::Reader reader(packed);
  for (const ckpt::TensorInfo& info : reader.tensors()) EXPECT_EQ(info.codec, "zstd") << info.name;
  expect_same_tensors(original, packed);
}

TEST(CliConvert, NeverOverwritesWithoutForce) {
  TempDir dir;
  const std::string input = write_sample(dir, "a.safetensors");
  const std::string output = dir.file("b.safetensors");
  ckpt::test::write_file(output, "precious");
  auto result = run_cli({"convert", input, output});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("'" + output + "' exists; pass --force"));
  EXPECT_EQ(ckpt::test::read_file(output), "precious");

  result = run_cli({"convert", input, output, "--force"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  expect_same_tensors(input, output);
}

TEST(CliConvert, BadCodecsAreUsageErrorsAndWriteNothing) {
  TempDir dir;
  const std::string input = write_sample(dir, "a.safetensors");
  struct Case {
    std::string output, codec, message;
  };
  const std::vector<Case> cases = {
      {"b.safetensors", "bogus", "bogus"},          {"b.safetensors", "deflate", "deflate"},
      {"b.npz", "zstd", "expected raw or deflate"}, {"b.h5", "deflate:12", "LEVEL 1 to 9"},
      {"b.txt", "raw", "unknown format"},
  };
  for (const Case& c : cases) {
    const auto result = run_cli({"convert", input, dir.file(c.output), "--codec", c.codec});
    EXPECT_EQ(result.exit_code, 2) << c.output << " " << c.codec;
    EXPECT_THAT(result.err, HasSubstr(c.message));
    EXPECT_FALSE(ckpt::test::path_exists(dir.file(c.output)));
  }
}

TEST(CliConvert, ACorruptInputFailsAndWritesNothing) {
  TempDir dir;
  const std::string input = write_sample(dir, "a.safetensors");
  ckpt::test::flip_byte(input, static_cast<std::int64_t>(offset_of(input, "steps")));
  const auto result = run_cli({"convert", input, dir.file("b.safetensors")});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("tensor 'steps'"));
  EXPECT_FALSE(ckpt::test::path_exists(dir.file("b.safetensors")));
}

TEST(CliDiff, IdenticalFilesExitZero) {
  TempDir dir;
  const auto result = run_cli({"diff", write_sample(dir, "a.safetensors"), write_sample(dir, "b.safetensors")});
  EXPECT_EQ(result.exit_code, 0) << result.out;
  EXPECT_THAT(result.out, HasSubstr("=  layer1/weight: equal"));
  EXPECT_THAT(result.out, HasSubstr("identical: 7 tensors"));
}

TEST(CliDiff, ReportsHowManyElementsDifferAndByHowMuch) {
  TempDir dir;
  const std::string a = write_sample(dir, "a.safetensors");
  ckpt::test::SampleTensors changed;
  changed.weight[4] = 0.5f;       // was -0.0
  changed.weight[5] = 6.25f;      // was 6.5
  changed.bf16_bits[0] = 0x4000;  // 2.0, was 1.0
  const std::string b = dir.file("b.safetensors");
  ckpt::write_checkpoint(b, changed.named(), {{"step", 7}});

  const auto result = run_cli({"diff", a, b});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("!  layer1/weight: 2 of 6 elements differ, max abs difference 0.5\n"));
  EXPECT_THAT(result.out, HasSubstr("!  layer1/bias_bf16: 1 of 4 elements differ, max abs difference 1\n"));
  EXPECT_THAT(result.out, HasSubstr("different: 2 of 7 tensors, 0 metadata keys"));
}

TEST(CliDiff, ReportsShapeDtypeMembershipAndMetadataChanges) {
  TempDir dir;
  const std::string a = write_sample(dir, "a.safetensors", {{"step", 7}});
  const ckpt::test::SampleTensors sample;
  std::vector<double> steps_as_double{1, -2, 3};
  std::vector<float> extra{1};
  auto tensors = sample.named();
  tensors[0].view = ckpt::TensorView(sample.weight.data(), {3, 2});
  tensors[3].view = ckpt::TensorView(steps_as_double.data(), {3});
  tensors.erase(tensors.begin() + 4);  // "scalar"
  tensors.push_back({"extra", ckpt::TensorView(extra.data(), {1})});
  const std::string b = dir.file("b.safetensors");
  ckpt::write_checkpoint(b, tensors, {{"step", 8}});

  const auto result = run_cli({"diff", a, b});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, HasSubstr("!  layer1/weight: shape [2, 3] -> [3, 2]"));
  EXPECT_THAT(result.out, HasSubstr("!  steps: dtype I64 -> F64"));
  EXPECT_THAT(result.out, HasSubstr("-  scalar: only in " + a));
  EXPECT_THAT(result.out, HasSubstr("+  extra: only in " + b));
  EXPECT_THAT(result.out, HasSubstr("=  fp8: equal"));
  EXPECT_THAT(result.out, HasSubstr("!  metadata 'step': 7 -> 8"));
}

TEST(CliDiff, ComparesAcrossFormats) {
  TempDir dir;
  const std::string a = write_sample(dir, "a.safetensors");
  const std::string b = dir.file("b.safetensors");
  ASSERT_EQ(run_cli({"convert", a, b, "--codec", "zstd"}).exit_code, 0);
  EXPECT_EQ(run_cli({"diff", a, b}).exit_code, 0);
#ifdef CKPT_WITH_NPZ
  ASSERT_EQ(run_cli({"convert", a, dir.file("c.npz")}).exit_code, 0);
  EXPECT_EQ(run_cli({"diff", dir.file("c.npz"), b}).exit_code, 0);
#endif
}

struct SmallState {
  std::vector<float> weights = std::vector<float>(16, 1.0f);
  template <class Archive>
  void describe(Archive& ar) {
    ar("weights", weights);
  }
};

TEST(CliLs, ListsAManagersCheckpointsWithStepMetricsAndStatus) {
  TempDir dir;
  {
    ckpt::CheckpointManager manager(dir.path());
    SmallState state;
    manager.save(10, state, ckpt::StepInfo{1, {{"loss", 0.5}}});
    manager.save(20, state, ckpt::StepInfo{2, {{"loss", 0.25}}});
  }
  auto result = run_cli({"ls", dir.path()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("STEP"));
  EXPECT_THAT(result.out, HasSubstr("loss=0.5"));
  EXPECT_THAT(result.out, HasSubstr("loss=0.25"));
  EXPECT_THAT(result.out, HasSubstr("ckpt-00000020.safetensors  ok"));

  result = run_cli({"ls", dir.path(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json listing = nlohmann::json::parse(result.out);
  ASSERT_EQ(listing.size(), 2u);
  EXPECT_EQ(listing[0]["step"], 10);
  EXPECT_EQ(listing[0]["epoch"], 1);
  EXPECT_EQ(listing[1]["metrics"]["loss"], 0.25);
  EXPECT_EQ(listing[1]["status"], "ok");
  EXPECT_GT(listing[1]["bytes"].get<std::uint64_t>(), 64u);
}

TEST(CliLs, ShowsAnUnreadableCheckpointAsSuch) {
  TempDir dir;
  {
    ckpt::CheckpointManager manager(dir.path());
    manager.save(5, SmallState{});
  }
  ckpt::test::write_file(dir.file("ckpt-00000005.safetensors"), "truncated");
  const auto result = run_cli({"ls", dir.path()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("unreadable: [ckpt.format_error"));
}

TEST(CliLs, UsesTheManagersNameTemplate) {
  TempDir dir;
  {
    ckpt::ManagerOptions options;
    options.name_template = "run-{step:04}.safetensors";
    ckpt::CheckpointManager manager(dir.path(), options);
    manager.save(3, SmallState{});
  }
  auto result = run_cli({"ls", dir.path()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("no checkpoints in"));
  result = run_cli({"ls", dir.path(), "--template", "run-{step:04}.safetensors"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.out, HasSubstr("run-0003.safetensors"));
  result = run_cli({"ls", dir.path(), "--template", "no-step-field"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("--template"));
}

}  // namespace
