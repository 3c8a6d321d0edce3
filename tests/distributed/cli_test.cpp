// The ckpt tool on distributed checkpoint directories: info, verify (files,
// pieces, coverage), convert to one file, diff against a file.

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "cli_test_support.hpp"
#include "distributed/sample_state.hpp"
#include "distributed/thread_communicator.hpp"

namespace ckpt::test {
namespace {

// The sample state saved by 3 ranks into `directory`.
void save_sample(const std::string& directory, const std::string& codec = "raw") {
  DistributedOptions options;
  options.save.codecs = CodecPolicy(codec);
  const auto failures = run_ranks(3, [&](Communicator& communicator) {
    DistributedCheckpoint<SampleState>(communicator, options)
        .save(directory, 42, sample_for_saving(communicator.rank(), 3, 42));
  });
  for (const auto& failure : failures) ASSERT_FALSE(failure);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(DistributedCli, InfoShowsTheStepRanksFilesAndEachTensorsPieces) {
  TempDir temp;
  save_sample(temp.file("c"));
  const CliResult result = run_cli({"info", temp.file("c")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "(ckpt distributed checkpoint, format 1)")) << result.out;
  EXPECT_TRUE(contains(result.out, "step:      42, saved by 3 ranks into 3 files")) << result.out;
  EXPECT_TRUE(contains(result.out, "layers/0/rows")) << result.out;
  const CliResult json = run_cli({"info", temp.file("c"), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json report = nlohmann::json::parse(json.out);
  EXPECT_EQ(report["world_size"], 3);
  for (const nlohmann::json& tensor : report["tensors"]) {
    if (tensor["name"] == "layers/0/columns") {
      EXPECT_EQ(tensor["shape"], (nlohmann::json{6, 11}));
      EXPECT_EQ(tensor["pieces"], 3);
    }
  }
}

TEST(DistributedCli, VerifyChecksEveryFilePieceAndTensorsCoverage) {
  TempDir temp;
  save_sample(temp.file("c"));
  const CliResult good = run_cli({"verify", temp.file("c")});
  ASSERT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_TRUE(contains(good.out, "each tensor covered without gap or overlap")) << good.out;
  EXPECT_TRUE(contains(good.out, "OK       " + temp.file("c") + "/model-00003-of-00003.safetensors")) << good.out;

  flip_byte(temp.file("c/model-00002-of-00003.safetensors"), -1);  // a tensor byte
  const CliResult corrupt = run_cli({"verify", temp.file("c")});
  EXPECT_EQ(corrupt.exit_code, 1);
  EXPECT_TRUE(contains(corrupt.out, "CORRUPT  [ckpt.integrity_error.301] file '" + temp.file("c") +
                                        "/model-00002-of-00003.safetensors'"))
      << corrupt.out;
  EXPECT_TRUE(contains(corrupt.err, "1 of 3 files corrupt")) << corrupt.err;
}

TEST(DistributedCli, VerifyReportsAReplacedFileAndAnUncommittedDirectory) {
  TempDir temp;
  save_sample(temp.file("a"));
  save_sample(temp.file("b"), "zstd");
  // A rank file of another save: valid on its own, not the one a's index committed.
  std::filesystem::copy_file(temp.file("b/model-00001-of-00003.safetensors"),
                             temp.file("a/model-00001-of-00003.safetensors"),
                             std::filesystem::copy_options::overwrite_existing);
  const CliResult replaced = run_cli({"verify", temp.file("a")});
  EXPECT_EQ(replaced.exit_code, 1);
  EXPECT_TRUE(contains(replaced.out, "CORRUPT  [ckpt.integrity_error.302] file '" + temp.file("a") +
                                         "/model-00001-of-00003.safetensors': expected the file the index committed"))
      << replaced.out;

  std::filesystem::remove(temp.file("b/model.safetensors.index.json"));
  const CliResult uncommitted = run_cli({"verify", temp.file("b")});
  EXPECT_EQ(uncommitted.exit_code, 1);
  EXPECT_TRUE(contains(uncommitted.out, "CORRUPT  [ckpt.state_error.704]")) << uncommitted.out;
}

TEST(DistributedCli, ConvertConsolidatesIntoOneFileThatDiffFindsEqual) {
  TempDir temp;
  save_sample(temp.file("c"));
  const CliResult converted = run_cli({"convert", temp.file("c"), temp.file("whole.safetensors")});
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  const Reader reader(temp.file("whole.safetensors"));
  EXPECT_EQ(reader.tensors().size(), sample_tensors().size());
  ASSERT_NE(reader.find("optimizer/zero"), nullptr);
  EXPECT_EQ(reader.find("optimizer/zero")->shape, (Shape{5, 7, 3}));
  EXPECT_EQ(reader.metadata().at("step"), 42);

  const CliResult same = run_cli({"diff", temp.file("c"), temp.file("whole.safetensors")});
  EXPECT_EQ(same.exit_code, 0) << same.out;
  EXPECT_TRUE(contains(same.out, "identical: " + std::to_string(sample_tensors().size()) + " tensors")) << same.out;

  // Change one element of a tensor the directory holds in 3 pieces.
  std::map<std::string, Tensor> tensors;
  SingleProcessCommunicator one;
  DistributedCheckpoint<std::map<std::string, Tensor>>(one).load(temp.file("c"), tensors);
  std::vector<NamedTensor> named;
  std::vector<Tensor> copies;
  for (const auto& [name, tensor] : tensors) copies.push_back(Tensor::copy_of(tensor.view()));
  copies[0].mutable_data()[0] ^= std::byte{1};
  std::size_t i = 0;
  for (const auto& entry : tensors) named.push_back({entry.first, copies[i++].view()});
  write_checkpoint(temp.file("changed.safetensors"), named, {{"step", 42}, {"note", "saved by 3 ranks"}});
  const CliResult different = run_cli({"diff", temp.file("c"), temp.file("changed.safetensors")});
  EXPECT_EQ(different.exit_code, 1);
  EXPECT_TRUE(contains(different.out, "!  " + tensors.begin()->first + ": 1 of ")) << different.out;
}

// `ckpt ls` lists the steps a DistributedCheckpointManager keeps, with the
// ranks that saved each, their size and status; a step being deleted (a
// dotted directory) and an uncommitted one are not listed.
TEST(DistributedCli, LsListsTheStepsOfADistributedRunWithWorldSizeSizeAndStatus) {
  TempDir temp;
  ManagerOptions options;
  options.name_template = "step-{step:04}";
  const auto failures = run_ranks(3, [&](Communicator& communicator) {
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    for (std::uint64_t step : {10, 20}) manager.save(step, sample_for_saving(communicator.rank(), 3, step));
    manager.pin(10);
  });
  for (const auto& failure : failures) ASSERT_FALSE(failure);
  std::filesystem::create_directories(temp.file(".step-0005.removing"));
  std::filesystem::create_directories(temp.file("step-0030"));
  write_file(temp.file("step-0030/model-00001-of-00003.safetensors"), "partial");

  const CliResult table = run_cli({"ls", temp.path(), "--template", "step-{step:04}"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(contains(table.out, "RANKS")) << table.out;
  EXPECT_TRUE(contains(table.out, temp.file("step-0020") + "  ok")) << table.out;
  EXPECT_TRUE(contains(table.out, temp.file("step-0010") + "  ok, pinned")) << table.out;
  EXPECT_FALSE(contains(table.out, "step-0030")) << table.out;
  EXPECT_FALSE(contains(table.out, "step-0005")) << table.out;

  const CliResult json = run_cli({"ls", temp.path(), "--template", "step-{step:04}", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const nlohmann::json listing = nlohmann::json::parse(json.out);
  ASSERT_EQ(listing.size(), 2u);
  EXPECT_EQ(listing[1]["step"], 20);
  EXPECT_EQ(listing[1]["world_size"], 3);
  EXPECT_EQ(listing[1]["status"], "ok");
  std::uint64_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(temp.file("step-0020"))) files += entry.file_size();
  EXPECT_EQ(listing[1]["bytes"].get<std::uint64_t>(), files);
}

}  // namespace
}  // namespace ckpt::test
